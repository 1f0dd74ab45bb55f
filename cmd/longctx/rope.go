package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"longctx/config"
	"longctx/rope"
	"longctx/storage"
)

func init() {
	register(&command{
		name:    "rope",
		summary: "plan a RoPE base, print frequencies, extend a config.json",
		run: func(args []string) error {
			return dispatch("rope", args, map[string]subcommand{
				"plan":   {summary: "derive the base for a longer context (Liu et al., Men et al.) and compare methods", run: ropePlan},
				"freqs":  {summary: "print inverse frequencies and attention factor, computed as HF does", run: ropeFreqs},
				"extend": {summary: "write a config.json with a new rope_theta and max_position_embeddings", run: ropeExtend},
			})
		},
	})
}

// ropePlanConfig holds the flags of "rope plan".
type ropePlanConfig struct {
	HeadDim   int     `yaml:"head-dim" help:"rotary dimension per head"`
	Base      float64 `yaml:"base" help:"RoPE base the model was pre-trained with"`
	TrainLen  int     `yaml:"train-len" help:"pre-training context length"`
	TargetLen int     `yaml:"target-len" help:"target context length"`
	NewBase   float64 `yaml:"new-base" help:"base to judge (0 = the critical base)"`
	JSON      bool    `yaml:"json" help:"print the plan as JSON"`
	Plot      string  `yaml:"plot" help:"write a PNG of per-pair wavelengths against both lengths to this file"`
}

func ropePlan(args []string) error {
	cfg := ropePlanConfig{HeadDim: 64, Base: 10000, TrainLen: 2048, TargetLen: 16384}
	fs := newFlags("rope plan", "rope plan --head-dim 64 --base 10000 --train-len 2048 --target-len 16384 [--new-base B] [--json] [--plot FILE]")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	r, err := rope.Plan(cfg.HeadDim, cfg.Base, cfg.TrainLen, cfg.TargetLen, cfg.NewBase)
	if err != nil {
		return usagef("%v", err)
	}
	if cfg.Plot != "" {
		if err := storage.WriteWith(context.Background(), cfg.Plot, func(w io.Writer) error { return rope.PlotWavelengths(w, r) }); err != nil {
			return fmt.Errorf("plot %s: %w", cfg.Plot, err)
		}
	}
	if cfg.JSON {
		if err := ropeWriteJSON(os.Stdout, r); err != nil {
			return err
		}
	} else {
		rope.WritePlan(os.Stdout, r)
	}
	if r.NewBase < r.MenLowerBound {
		fn := rope.FirstNegative(r.HeadDim, r.NewBase, r.TargetLen)
		fmt.Fprintf(os.Stderr, "longctx rope plan: warning: base %s is below the Men et al. lower bound %s for %d tokens "+
			"(the score turns negative at distance %d); long context may be superficial: check retrieval, not only perplexity\n",
			rope.FormatBase(r.NewBase), rope.FormatBase(r.MenLowerBound), r.TargetLen, fn)
	}
	if cfg.Plot != "" {
		fmt.Fprintf(os.Stderr, "longctx rope plan: wrote %s\n", cfg.Plot)
	}
	return nil
}

// ropeExtendConfig holds the flags of "rope extend".
type ropeExtendConfig struct {
	Config       string  `yaml:"config" help:"HF config.json to read"`
	Base         float64 `yaml:"base" help:"new rope_theta"`
	MaxPositions int     `yaml:"max-positions" help:"new max_position_embeddings"`
	Out          string  `yaml:"out" help:"config.json to write (atomically; may equal --config)"`
}

func ropeExtend(args []string) error {
	var cfg ropeExtendConfig
	fs := newFlags("rope extend", "rope extend --config in.json --base 273000 --max-positions 16384 --out out.json")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if cfg.Config == "" || cfg.Out == "" || cfg.Base == 0 || cfg.MaxPositions == 0 {
		fs.Usage()
		return usagef("need --config, --base, --max-positions and --out")
	}
	data, err := os.ReadFile(cfg.Config)
	if err != nil {
		return err
	}
	old, err := rope.ParseHFConfig(data)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Config, err)
	}
	out, err := rope.ExtendHFConfig(data, cfg.Base, cfg.MaxPositions)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Config, err)
	}
	if err := storage.WriteFile(context.Background(), cfg.Out, out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "longctx rope extend: %s -> %s: rope_theta %s -> %s, max_position_embeddings %d -> %d\n",
		cfg.Config, cfg.Out, rope.FormatBase(old.Base), rope.FormatBase(cfg.Base), old.MaxPositions, cfg.MaxPositions)
	return nil
}

func ropeWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
