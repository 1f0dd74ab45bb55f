package main

import (
	"fmt"
	"os"

	"longctx/config"
	"longctx/rope"
)

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
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
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
