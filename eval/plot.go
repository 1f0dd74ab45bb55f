package eval

import (
	"bytes"
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
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
