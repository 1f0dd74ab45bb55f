package trainer

import (
	"bytes"
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
	return readStepLines(path, upTo, func(m StepMetrics) int { return m.Step })
}

// readStepLines reads a JSON Lines file of per-step records (metrics.jsonl,
// evals.jsonl) and keeps those with step <= upTo (all when upTo < 0). A
// missing file is no records. A crash can cut only the last line short: that
// line is dropped; a bad line anywhere else is an error naming it.
func readStepLines[T any](path string, upTo int, step func(T) int) ([]T, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	var out []T
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		var r T
		if err := json.Unmarshal(l, &r); err != nil {
			if i == len(lines)-1 && !bytes.HasSuffix(data, []byte("\n")) {
				break // the line a crash cut short
			}
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if upTo < 0 || step(r) <= upTo {
			out = append(out, r)
		}
	}
	return out, nil
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
