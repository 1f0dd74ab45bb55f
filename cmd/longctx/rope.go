package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"longctx/config"
	"longctx/rope"
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
		if err := ropeWriteAtomic(cfg.Plot, func(w io.Writer) error { return ropePlotWavelengths(w, r) }); err != nil {
			return fmt.Errorf("plot %s: %w", cfg.Plot, err)
		}
	}
	if cfg.JSON {
		if err := ropeWriteJSON(os.Stdout, r); err != nil {
			return err
		}
	} else {
		ropePrintPlan(os.Stdout, r)
	}
	if r.NewBase < r.MenLowerBound {
		fn := rope.FirstNegative(r.HeadDim, r.NewBase, r.TargetLen)
		fmt.Fprintf(os.Stderr, "longctx rope plan: warning: base %s is below the Men et al. lower bound %s for %d tokens "+
			"(the score turns negative at distance %d); long context may be superficial: check retrieval, not only perplexity\n",
			ropeFmtBase(r.NewBase), ropeFmtBase(r.MenLowerBound), r.TargetLen, fn)
	}
	if cfg.Plot != "" {
		fmt.Fprintf(os.Stderr, "longctx rope plan: wrote %s\n", cfg.Plot)
	}
	return nil
}

func ropeFmtBase(b float64) string {
	if b == math.Trunc(b) {
		return fmt.Sprintf("%.0f", b)
	}
	return fmt.Sprintf("%.1f", b)
}

func ropePrintPlan(w io.Writer, r rope.PlanResult) {
	fmt.Fprintf(w, "RoPE plan: head_dim %d, base %s, %d -> %d tokens\n\n", r.HeadDim, ropeFmtBase(r.Base), r.TrainLen, r.TargetLen)
	fmt.Fprintf(w, "critical dimension (Liu et al.)   %d of %d (pairs 0-%d complete a period within %d)\n",
		r.CriticalDimension, r.HeadDim, r.CriticalDimension/2-1, r.TrainLen)
	fmt.Fprintf(w, "critical base beta0               %s\n", ropeFmtBase(r.CriticalBase))
	fmt.Fprintf(w, "critical base, ceil form          %s\n", ropeFmtBase(r.CriticalBaseCeil))
	fmt.Fprintf(w, "new base                          %s\n", ropeFmtBase(r.NewBase))
	fmt.Fprintf(w, "extrapolation bound at new base   %.0f tokens (critical dimension %d)\n", r.ExtrapolationBound, r.ExtrapolationCriticalDimension)
	fmt.Fprintf(w, "Men et al. lower bound b*         %s for %d tokens (%s for %d)\n\n",
		ropeFmtBase(r.MenLowerBound), r.TargetLen, ropeFmtBase(r.MenLowerBoundTrain), r.TrainLen)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "base\tvalue\textrapolation bound\tcritical dim\tscore first < 0 at\tmeets Men\t")
	for _, b := range r.Bases {
		fn := "never"
		if b.FirstNegative >= 0 {
			fn = fmt.Sprint(b.FirstNegative)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%s\t%v\t\n", b.Label, ropeFmtBase(b.Base), b.ExtrapolationBound, b.CriticalDimension, fn, b.MeetsMenBound)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nwavelength per pair (tokens); * = full period within %d, + = within %d\n", r.TrainLen, r.TargetLen)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "pair\t")
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "%s\t", m.Method)
	}
	fmt.Fprintln(tw)
	for i := range r.HeadDim / 2 {
		fmt.Fprintf(tw, "%d\t", i)
		for _, m := range r.Methods {
			wl := m.Wavelengths[i]
			mark := " "
			switch {
			case wl <= float64(r.TrainLen):
				mark = "*"
			case wl <= float64(r.TargetLen):
				mark = "+"
			}
			fmt.Fprintf(tw, "%s%s\t", ropeFmtWavelength(wl), mark)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "within train\t")
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "%d \t", m.PairsWithinTrain)
	}
	fmt.Fprint(tw, "\nwithin target\t")
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "%d \t", m.PairsWithinTarget)
	}
	fmt.Fprint(tw, "\nattention factor\t")
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "%.4f \t", m.AttentionFactor)
	}
	fmt.Fprintln(tw)
	tw.Flush()
	fmt.Fprintln(w)
	for _, m := range r.Methods {
		fmt.Fprintf(w, "  %-10s %s\n", m.Method, m.Note)
	}
}

func ropeFmtWavelength(wl float64) string {
	switch {
	case wl < 100:
		return fmt.Sprintf("%.2f", wl)
	case wl < 1e7:
		return fmt.Sprintf("%.0f", wl)
	}
	return fmt.Sprintf("%.3g", wl)
}

var ropePalette = []color.Color{
	color.RGBA{A: 255},                 // default: black
	color.RGBA{G: 150, B: 60, A: 255},  // abf: green
	color.RGBA{B: 220, A: 255},         // linear: blue
	color.RGBA{R: 240, G: 140, A: 255}, // ntk-static: orange
	color.RGBA{R: 140, B: 180, A: 255}, // dynamic: purple
	color.RGBA{R: 220, A: 255},         // yarn: red
	color.RGBA{G: 170, B: 190, A: 255}, // llama3: teal
}

// ropePlotWavelengths draws each method's per-pair wavelength on a log scale
// with the training and target lengths as horizontal lines.
func ropePlotWavelengths(w io.Writer, r rope.PlanResult) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("RoPE wavelengths, d=%d, base %s -> %s, %d -> %d tokens",
		r.HeadDim, ropeFmtBase(r.Base), ropeFmtBase(r.NewBase), r.TrainLen, r.TargetLen)
	p.X.Label.Text = "rotation pair i"
	p.Y.Label.Text = "wavelength 2π/θ_i (tokens, log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	// Bottom right is empty: long wavelengths sit at high pair indices.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(8)
	p.Legend.YOffs = vg.Points(8)
	n := r.HeadDim / 2
	for k, m := range r.Methods {
		pts := make(plotter.XYs, n)
		for i := range n {
			pts[i] = plotter.XY{X: float64(i), Y: m.Wavelengths[i]}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = ropePalette[k%len(ropePalette)]
		l.Width = vg.Points(1.5)
		if m.Method == "abf" {
			l.Width = vg.Points(3) // the recipe's method
		}
		p.Add(l)
		p.Legend.Add(m.Method, l)
	}
	for _, ref := range []struct {
		label string
		y     int
		c     color.Color
	}{{fmt.Sprintf("train %d", r.TrainLen), r.TrainLen, color.Gray{Y: 60}}, {fmt.Sprintf("target %d", r.TargetLen), r.TargetLen, color.Gray{Y: 140}}} {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: float64(ref.y)}, {X: float64(n - 1), Y: float64(ref.y)}})
		if err != nil {
			return err
		}
		l.Color = ref.c
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		l.Width = vg.Points(1)
		p.Add(l)
		p.Legend.Add(ref.label, l)
	}
	p.Add(plotter.NewGrid())
	wt, err := p.WriterTo(9*vg.Inch, 5.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
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
	fmt.Fprintf(os.Stdout, "RoPE %s, head_dim %d (rotary %d), base %s, %s; attention factor %.9g\n",
		p.ScalingType(), p.HeadDim, p.Dim(), ropeFmtBase(p.Base), prec, att)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tinv_freq\twavelength\t")
	for i, v := range inv {
		fmt.Fprintf(tw, "%d\t%.9g\t%.6g\t\n", i, v, 2*math.Pi/v)
	}
	return tw.Flush()
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
	if err := ropeWriteAtomic(cfg.Out, func(w io.Writer) error { _, err := w.Write(out); return err }); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "longctx rope extend: %s -> %s: rope_theta %s -> %s, max_position_embeddings %d -> %d\n",
		cfg.Config, cfg.Out, ropeFmtBase(old.Base), ropeFmtBase(cfg.Base), old.MaxPositions, cfg.MaxPositions)
	return nil
}

func ropeWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ropeWriteAtomic writes path through a temporary file in the same directory
// and renames it into place, so readers never see a partial file.
func ropeWriteAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	err = write(f)
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
