package eval

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// heatGrid adapts a PasskeyGrid to plotter.GridXYZ: columns are lengths,
// rows depths, both at index coordinates (labelled by ticks).
type heatGrid struct{ g PasskeyGrid }

func (h heatGrid) Dims() (c, r int)   { return len(h.g.Lengths), len(h.g.Depths) }
func (h heatGrid) Z(c, r int) float64 { return h.g.Acc[c][r] }
func (h heatGrid) X(c int) float64    { return float64(c) }
func (h heatGrid) Y(r int) float64    { return float64(r) }
func (h heatGrid) Min() float64       { return 0 }
func (h heatGrid) Max() float64       { return 100 }
func (h heatGrid) String() string     { return fmt.Sprint(h.g.Acc) }
func (h heatGrid) lengthTicks() []plot.Tick {
	t := make([]plot.Tick, len(h.g.Lengths))
	for i, l := range h.g.Lengths {
		t[i] = plot.Tick{Value: float64(i), Label: fmt.Sprint(l)}
	}
	return t
}

// PasskeyHeatmap writes the accuracy grid (length x depth) as a PNG.
func PasskeyHeatmap(path, title string, g PasskeyGrid) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "context length (tokens)"
	p.Y.Label.Text = "needle depth"
	pal := moreland.SmoothBlueRed()
	pal.SetMin(0)
	pal.SetMax(100)
	hg := heatGrid{g}
	hm := plotter.NewHeatMap(hg, pal.Palette(64))
	hm.Min, hm.Max = 0, 100
	p.Add(hm)
	p.X.Tick.Marker = plot.ConstantTicks(hg.lengthTicks())
	dt := make([]plot.Tick, len(g.Depths))
	for j, d := range g.Depths {
		dt[j] = plot.Tick{Value: float64(j), Label: fmt.Sprintf("%.0f%%", 100*d)}
	}
	p.Y.Tick.Marker = plot.ConstantTicks(dt)
	// Cell values as text, so the plot reads without a colour bar.
	var xys plotter.XYs
	var labels []string
	for i := range g.Lengths {
		for j := range g.Depths {
			xys = append(xys, plotter.XY{X: float64(i), Y: float64(j)})
			labels = append(labels, fmt.Sprintf("%.0f", g.Acc[i][j]))
		}
	}
	if len(xys) > 0 {
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return err
		}
		p.Add(l)
	}
	return savePNG(p, path, 6*vg.Inch, 4*vg.Inch)
}

// LossCurve writes mean loss per position bucket as a PNG line plot.
func LossCurve(path, title string, bs []Bucket) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "position (tokens)"
	p.Y.Label.Text = "mean loss (nats)"
	var xys plotter.XYs
	for _, b := range bs {
		if b.Tokens > 0 {
			xys = append(xys, plotter.XY{X: float64(b.Lo+b.Hi) / 2, Y: b.Loss})
		}
	}
	if len(xys) == 0 {
		return fmt.Errorf("loss curve %s: no scored positions", path)
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	points.Radius = vg.Points(1.5)
	p.Add(line, points, plotter.NewGrid())
	return savePNG(p, path, 6*vg.Inch, 4*vg.Inch)
}

func savePNG(p *plot.Plot, path string, w, h vg.Length) error {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// Series is one metric over training steps (the in-training evals).
type Series struct {
	Metric         string
	HigherIsBetter bool
	Steps          []int
	Values         []float64
	StdErrs        []float64
}

// EvalCurveFiles are the PNGs PlotEvalCurves writes: accuracies (%) and
// losses, each against the training step with 95% intervals.
var EvalCurveFiles = []string{"evals-accuracy.png", "evals-loss.png"}

// PlotEvalCurves draws every series against the step into dir: higher-is-
// better metrics (accuracies) in evals-accuracy.png, the others (losses) in
// evals-loss.png, each point with its 95% interval (±1.96 s.e.). A group
// without series is not drawn.
func PlotEvalCurves(dir string, series []Series) error {
	for i, higher := range []bool{true, false} {
		p := plot.New()
		p.Title.Text = "in-training evals"
		p.X.Label.Text = "step"
		p.Y.Label.Text = "accuracy (%)"
		if !higher {
			p.Y.Label.Text = "mean loss (nats)"
		}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		var sorted []Series
		for _, s := range series {
			if s.HigherIsBetter == higher {
				sorted = append(sorted, s)
			}
		}
		sort.Slice(sorted, func(a, b int) bool { return sorted[a].Metric < sorted[b].Metric })
		if err := addSeries(p, sorted); err != nil {
			return err
		}
		if len(sorted) == 0 {
			continue
		}
		if err := savePNG(p, filepath.Join(dir, EvalCurveFiles[i]), 7*vg.Inch, 4.5*vg.Inch); err != nil {
			return err
		}
	}
	return nil
}

// addSeries draws each series (x = Steps) as a line with points and 95%
// error bars (±1.96 s.e.), in its own colour, with a legend entry.
func addSeries(p *plot.Plot, series []Series) error {
	for k, s := range series {
		xys := make(plotter.XYs, len(s.Steps))
		errs := make(plotter.YErrors, len(s.Steps))
		for j := range s.Steps {
			xys[j] = plotter.XY{X: float64(s.Steps[j]), Y: s.Values[j]}
			errs[j].Low, errs[j].High = z95*s.StdErrs[j], z95*s.StdErrs[j]
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("series %s: %w", s.Metric, err)
		}
		c := plotutil.Color(k)
		line.Color, pts.Color = c, c
		line.Dashes = plotutil.Dashes(k)
		pts.Radius = vg.Points(2)
		pts.Shape = plotutil.Shape(k)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{xys, errs})
		if err != nil {
			return fmt.Errorf("series %s: %w", s.Metric, err)
		}
		bars.Color = c
		p.Add(line, pts, bars)
		p.Legend.Add(s.Metric, line, pts)
	}
	return nil
}

// PlotSeries draws several series against a shared x axis (Steps holds the
// x values: training steps, context lengths) with 95% error bars, one
// legend entry per series (its Metric field names it). With logX the x
// axis is log2-spaced and ticked at the x values (lengths 256..2048).
func PlotSeries(path, title, xLabel, yLabel string, series []Series, logX bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	if logX {
		p.X.Scale = plot.LogScale{}
		var ticks []plot.Tick
		seen := map[int]bool{}
		for _, s := range series {
			for _, x := range s.Steps {
				if !seen[x] {
					seen[x] = true
					ticks = append(ticks, plot.Tick{Value: float64(x), Label: fmt.Sprint(x)})
				}
			}
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	if err := addSeries(p, series); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return savePNG(p, path, 7*vg.Inch, 4.5*vg.Inch)
}
