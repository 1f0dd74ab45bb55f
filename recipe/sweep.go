package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"longctx/eval"
	"longctx/mixture"
	"longctx/storage"
	"longctx/trainer"
)

// SweepConfig is `longctx sweep`'s configuration: one mixture with several
// weight vectors (explicit points or a grid over one source's weight), one
// training config and one eval suite, all run over the same token caches.
type SweepConfig struct {
	Name        string              `yaml:"name" help:"sweep name (reports)"`
	Prepare     string              `yaml:"prepare" help:"prepare manifest the mixtures draw from"`
	Out         string              `yaml:"out" help:"output directory: one folder per point, sweep.md/json/png"`
	Tokenizer   string              `yaml:"tokenizer" help:"tokenizer.json for the evals"`
	Backend     string              `yaml:"backend" help:"GoMLX backend (default $GOMLX_BACKEND or the pure Go backend)"`
	Workers     int                 `yaml:"workers" help:"mix workers (0 = all CPUs)"`
	GroupTokens int64               `yaml:"group_tokens" help:"mix: tokens per packing group (0 = default)"`
	ChunkTokens int                 `yaml:"chunk_tokens" help:"mix: tokens per shard chunk (0 = default)"`
	Mixture     mixture.Spec        `yaml:"mixture"`
	Grid        Grid                `yaml:"grid"`
	Train       trainer.TrainConfig `yaml:"train"`
	Eval        eval.SuiteConfig    `yaml:"eval"`
}

// Grid sweeps one source's weight; the other sources share the rest in
// proportion to their weights in the mixture.
type Grid struct {
	Source  string    `yaml:"source" help:"source whose weight is swept (e.g. math)"`
	Weights []float64 `yaml:"weights" help:"weights of that source, e.g. 0,0.1,0.2,0.3"`
}

// DefaultSweep has the trainer's and evals' defaults.
func DefaultSweep() SweepConfig {
	return SweepConfig{Name: "sweep", Out: "sweep-out", Train: trainer.DefaultTrainConfig(), Eval: eval.DefaultSuite(),
		Mixture: mixture.Spec{Name: "sweep", Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 4}}
}

// Points expands the config into its points: the grid, else the mixture's
// sweep list, else the mixture itself.
func (c SweepConfig) Points() ([]Point, error) {
	base := c.Mixture
	base.Sweep = nil
	var pts []mixture.SweepPoint
	switch {
	case len(c.Grid.Weights) > 0 && len(c.Mixture.Sweep) > 0:
		return nil, fmt.Errorf("sweep %s: give either grid or mixture.sweep, not both", c.Name)
	case len(c.Grid.Weights) > 0:
		var rest float64
		found := false
		for _, s := range base.Sources {
			if s.Name == c.Grid.Source {
				found = true
			} else {
				rest += s.Weight
			}
		}
		if !found {
			return nil, fmt.Errorf("sweep %s: grid source %q is not in the mixture", c.Name, c.Grid.Source)
		}
		if rest <= 0 {
			return nil, fmt.Errorf("sweep %s: the sources other than %q have no weight to rescale", c.Name, c.Grid.Source)
		}
		for _, g := range c.Grid.Weights {
			if g < 0 || g >= 1 {
				return nil, fmt.Errorf("sweep %s: grid weight %g of %s must be in [0, 1)", c.Name, g, c.Grid.Source)
			}
			w := map[string]float64{}
			for _, s := range base.Sources {
				if s.Name == c.Grid.Source {
					w[s.Name] = g
				} else {
					w[s.Name] = (1 - g) * s.Weight / rest
				}
			}
			pts = append(pts, mixture.SweepPoint{Name: fmt.Sprintf("%s%02.0f", c.Grid.Source, 100*g), Weights: w})
		}
	case len(c.Mixture.Sweep) > 0:
		pts = c.Mixture.Sweep
	default:
		pts = []mixture.SweepPoint{{Name: base.Name}}
	}
	var out []Point
	seen := map[string]bool{}
	for _, sp := range pts {
		if seen[sp.Name] || sp.Name == "" || strings.ContainsAny(sp.Name, "/\\") {
			return nil, fmt.Errorf("sweep %s: point name %q is empty, repeated or has a slash", c.Name, sp.Name)
		}
		seen[sp.Name] = true
		spec := base
		spec.Name = base.Name + "-" + sp.Name
		if sp.Weights != nil {
			spec.Sources = nil
			for _, s := range base.Sources {
				w, ok := sp.Weights[s.Name]
				if !ok {
					return nil, fmt.Errorf("sweep %s: point %s has no weight for source %s", c.Name, sp.Name, s.Name)
				}
				spec.Sources = append(spec.Sources, mixture.Source{Name: s.Name, Weight: w})
			}
			for name := range sp.Weights {
				if !hasSource(base.Sources, name) {
					return nil, fmt.Errorf("sweep %s: point %s weights unknown source %s", c.Name, sp.Name, name)
				}
			}
		}
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("sweep %s: point %s: %w", c.Name, sp.Name, err)
		}
		out = append(out, Point{Name: sp.Name, Mixture: spec, Train: c.Train, Eval: c.Eval})
	}
	if len(out) == 0 {
		return nil, errNoPoints
	}
	return out, nil
}

func hasSource(ss []mixture.Source, name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}

// SweepResult is the comparison over all points.
type SweepResult struct {
	Name    string        `json:"name"`
	Points  []PointResult `json:"points"`
	Varying []string      `json:"varying_sources"` // sources whose weight differs between points
	Files   []string      `json:"files"`
}

// RunSweep runs every point (skipping finished ones) and writes the
// comparison: OUT/sweep.md, OUT/sweep.json and one PNG per metric.
func RunSweep(ctx context.Context, c SweepConfig, env Env) (*SweepResult, error) {
	pts, err := c.Points()
	if err != nil {
		return nil, err
	}
	res := &SweepResult{Name: c.Name}
	for i, p := range pts {
		if env.Log != nil {
			fmt.Fprintf(env.Log, "sweep %s: point %d/%d: %s\n", c.Name, i+1, len(pts), p.Name)
		}
		r, err := RunPoint(ctx, env, p, filepath.Join(c.Out, p.Name))
		if err != nil {
			return nil, err
		}
		res.Points = append(res.Points, r)
	}
	res.Varying = varyingSources(res.Points)
	// Plot against the swept source when there is one.
	for i, s := range res.Varying {
		if s == c.Grid.Source && i > 0 {
			res.Varying = append([]string{s}, append(res.Varying[:i:i], res.Varying[i+1:]...)...)
		}
	}
	if err := writeSweep(ctx, c.Out, res); err != nil {
		return nil, err
	}
	return res, nil
}

func varyingSources(ps []PointResult) []string {
	var out []string
	if len(ps) == 0 {
		return nil
	}
	for src := range ps[0].Weights {
		for _, p := range ps[1:] {
			if math.Abs(p.Weights[src]-ps[0].Weights[src]) > 1e-9 {
				out = append(out, src)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// metricNames are the metrics every point has, sorted.
func metricNames(ps []PointResult) []string {
	count := map[string]int{}
	for _, p := range ps {
		for k := range p.Metrics {
			count[k]++
		}
	}
	var out []string
	for k, n := range count {
		if n == len(ps) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Table renders the comparison as Markdown.
func (r *SweepResult) Table() string {
	var b strings.Builder
	metrics := metricNames(r.Points)
	head := []string{"point"}
	for _, s := range r.Varying {
		head = append(head, "w("+s+")")
	}
	head = append(head, "fill", "loss first→final")
	head = append(head, metrics...)
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n")
	for _, p := range r.Points {
		row := []string{p.Name}
		for _, s := range r.Varying {
			row = append(row, fmt.Sprintf("%.3f", p.Weights[s]))
		}
		row = append(row, fmt.Sprintf("%.2f%%", 100*p.Fill), fmt.Sprintf("%.3f→%.3f", p.Train.FirstLoss, p.Train.FinalLoss))
		for _, m := range metrics {
			mv := p.Metrics[m]
			if mv.StdErr > 0 {
				row = append(row, fmt.Sprintf("%.4g ± %.2g", mv.Value, mv.StdErr))
			} else {
				row = append(row, fmt.Sprintf("%.4g", mv.Value))
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

func writeSweep(ctx context.Context, out string, r *SweepResult) error {
	// Plots: each metric against the weight of the first varying source.
	if len(r.Varying) > 0 && len(r.Points) > 1 {
		src := r.Varying[0]
		for _, m := range metricNames(r.Points) {
			name := "sweep-" + strings.NewReplacer("/", "_", " ", "_").Replace(m) + ".png"
			if err := plotMetric(filepath.Join(out, name), r, src, m); err != nil {
				return err
			}
			r.Files = append(r.Files, name)
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Sweep %s\n\n%d points over the same token caches; varying: %s.\n\n", r.Name, len(r.Points), strings.Join(r.Varying, ", "))
	md.WriteString(r.Table())
	md.WriteString("\n## Lineage\n\n| point | prepare | mixture | shards | checkpoint |\n|---|---|---|---|---|\n")
	for _, p := range r.Points {
		l := p.Lineage
		fmt.Fprintf(&md, "| %s | `%.12s` | `%.12s` | `%.12s` | `%.12s` |\n", p.Name, l.PrepareHash, l.MixtureHash, l.ShardsHash, l.CheckpointHash)
	}
	for _, f := range r.Files {
		fmt.Fprintf(&md, "\n![%s](%s)\n", f, f)
	}
	if err := storage.WriteFile(ctx, filepath.Join(out, "sweep.md"), []byte(md.String())); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFile(ctx, filepath.Join(out, "sweep.json"), append(js, '\n'))
}

func plotMetric(path string, r *SweepResult, src, metric string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s vs weight of %s", metric, src)
	p.X.Label.Text = "weight of " + src
	p.Y.Label.Text = metric
	sorted := append([]PointResult(nil), r.Points...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Weights[src] < sorted[j].Weights[src] })
	pts := make(plotter.XYs, 0, len(sorted))
	errs := make(plotter.YErrors, 0, len(sorted))
	for _, pt := range sorted {
		m := pt.Metrics[metric]
		pts = append(pts, plotter.XY{X: pt.Weights[src], Y: m.Value})
		errs = append(errs, struct{ Low, High float64 }{m.StdErr, m.StdErr})
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	p.Add(line, points, plotter.NewGrid())
	if eb, err := plotter.NewYErrorBars(struct {
		plotter.XYer
		plotter.YErrorer
	}{pts, errs}); err == nil {
		p.Add(eb)
	}
	w, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	sw, err := storage.Create(context.Background(), path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(sw); err != nil {
		sw.Abort()
		return err
	}
	return sw.Close()
}
