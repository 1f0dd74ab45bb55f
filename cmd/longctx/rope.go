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
	config.BindFlags(fs, "", &cfg)
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

// ropeFreqsConfig holds the flags of "rope freqs"; the scaling flags mirror
// the rope_scaling keys of an HF config.json.
type ropeFreqsConfig struct {
	Config              string    `yaml:"config" help:"HF config.json to read the settings from (flags given override it)"`
	HeadDim             int       `yaml:"head-dim" help:"rotary dimension per head"`
	Base                float64   `yaml:"base" help:"RoPE base (rope_theta)"`
	MaxPositions        int       `yaml:"max-positions" help:"max_position_embeddings (L0 fallback for dynamic, yarn, longrope)"`
	PartialRotaryFactor float64   `yaml:"partial-rotary-factor" help:"fraction of head_dim rotated (0 = all)"`
	Type                string    `yaml:"type" help:"scaling: default, linear, dynamic, yarn, llama3, longrope"`
	Factor              float64   `yaml:"factor" help:"scaling factor s"`
	OriginalMax         int       `yaml:"original-max" help:"original_max_position_embeddings L0"`
	LowFreqFactor       float64   `yaml:"low-freq-factor" help:"llama3 low_freq_factor"`
	HighFreqFactor      float64   `yaml:"high-freq-factor" help:"llama3 high_freq_factor"`
	BetaFast            float64   `yaml:"beta-fast" help:"yarn beta_fast (0 = 32)"`
	BetaSlow            float64   `yaml:"beta-slow" help:"yarn beta_slow (0 = 1)"`
	AttentionFactor     float64   `yaml:"attention-factor" help:"attention factor (0 = derive as HF does)"`
	MScale              float64   `yaml:"mscale" help:"yarn mscale"`
	MScaleAllDim        float64   `yaml:"mscale-all-dim" help:"yarn mscale_all_dim"`
	NoTruncate          bool      `yaml:"no-truncate" help:"yarn truncate=false"`
	ShortFactor         []float64 `yaml:"short-factor" help:"longrope short_factor, comma-separated"`
	LongFactor          []float64 `yaml:"long-factor" help:"longrope long_factor, comma-separated"`
	SeqLen              int       `yaml:"seq-len" help:"current sequence length (dynamic, longrope)"`
	Float64             bool      `yaml:"float64" help:"compute in float64 instead of HF's float32"`
	JSON                bool      `yaml:"json" help:"print {\"inv_freq\":[...],\"attention_factor\":x}"`
}

func ropeFreqsDefaults(p rope.Params) ropeFreqsConfig {
	s := p.Scaling
	return ropeFreqsConfig{HeadDim: p.HeadDim, Base: p.Base, MaxPositions: p.MaxPositions, PartialRotaryFactor: p.PartialRotaryFactor,
		Type: s.Type, Factor: s.Factor, OriginalMax: s.OriginalMaxPositions, LowFreqFactor: s.LowFreqFactor,
		HighFreqFactor: s.HighFreqFactor, BetaFast: s.BetaFast, BetaSlow: s.BetaSlow, AttentionFactor: s.AttentionFactor,
		MScale: s.MScale, MScaleAllDim: s.MScaleAllDim, NoTruncate: s.NoTruncate, ShortFactor: s.ShortFactor, LongFactor: s.LongFactor}
}

func ropeFreqs(args []string) error {
	var cfg ropeFreqsConfig
	// The HF config, when given, supplies the defaults; explicit flags win.
	if path := config.ConfigPath(args); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p, err := rope.ParseHFConfig(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		cfg = ropeFreqsDefaults(p)
		cfg.Config = path
	}
	fs := newFlags("rope freqs", "rope freqs --head-dim D --base B [--type T --factor F --original-max N ...] [--config config.json] [--json]")
	config.BindFlags(fs, "", &cfg)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if cfg.HeadDim == 0 || cfg.Base == 0 {
		return usagef("need --head-dim and --base, or --config")
	}
	p := rope.Params{Base: cfg.Base, HeadDim: cfg.HeadDim, MaxPositions: cfg.MaxPositions, PartialRotaryFactor: cfg.PartialRotaryFactor,
		Scaling: rope.Scaling{Type: cfg.Type, Factor: cfg.Factor, OriginalMaxPositions: cfg.OriginalMax,
			LowFreqFactor: cfg.LowFreqFactor, HighFreqFactor: cfg.HighFreqFactor, BetaFast: cfg.BetaFast, BetaSlow: cfg.BetaSlow,
			AttentionFactor: cfg.AttentionFactor, MScale: cfg.MScale, MScaleAllDim: cfg.MScaleAllDim, NoTruncate: cfg.NoTruncate,
			ShortFactor: cfg.ShortFactor, LongFactor: cfg.LongFactor}}
	var inv []float64
	var att float64
	var out any
	if cfg.Float64 {
		f, a, err := p.InvFreq64(cfg.SeqLen)
		if err != nil {
			return usagef("%v", err)
		}
		inv, att = f, a
		out = struct {
			InvFreq         []float64 `json:"inv_freq"`
			AttentionFactor float64   `json:"attention_factor"`
		}{f, a}
	} else {
		f, a, err := p.InvFreq(cfg.SeqLen)
		if err != nil {
			return usagef("%v", err)
		}
		inv = make([]float64, len(f))
		for i, v := range f {
			inv[i] = float64(v)
		}
		att = float64(a)
		out = struct {
			InvFreq         []float32 `json:"inv_freq"`
			AttentionFactor float32   `json:"attention_factor"`
		}{f, a}
	}
	if cfg.JSON {
		return ropeWriteJSON(os.Stdout, out)
	}
	prec := "float32"
	if cfg.Float64 {
		prec = "float64"
	}
	return rope.WriteFreqs(os.Stdout, p, inv, att, prec)
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
	config.BindFlags(fs, "", &cfg)
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
