package trainer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// readMetrics returns the metrics lines with step <= upTo (a resumed run
// drops what came after its checkpoint). A missing file is empty.
func readMetrics(path string, upTo int) ([]StepMetrics, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []StepMetrics
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		var m StepMetrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			// A crash can cut the last line short: it is after the checkpoint, so dropped.
			continue
		}
		if m.Step <= upTo {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func rewriteMetrics(path string, ms []StepMetrics) error {
	var data []byte
	for _, m := range ms {
		line, _ := json.Marshal(m)
		data = append(append(data, line...), '\n')
	}
	return writeFileAtomic(path, data)
}

// PlotLoss draws training loss against step as a PNG.
func PlotLoss(path string, ms []StepMetrics) error {
	if len(ms) == 0 {
		return fmt.Errorf("no metrics to plot")
	}
	p := plot.New()
	p.Title.Text = "training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "cross-entropy (nats/token)"
	pts := make(plotter.XYs, len(ms))
	for i, m := range ms {
		pts[i].X, pts[i].Y = float64(m.Step), m.Loss
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	p.Add(line, plotter.NewGrid())
	wt, err := p.WriterTo(8*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { _, err := wt.WriteTo(w); return err })
}
