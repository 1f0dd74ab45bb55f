package rope

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// FormatBase prints a base as an integer when it is one, else to one decimal.
func FormatBase(b float64) string {
	if b == math.Trunc(b) {
		return fmt.Sprintf("%.0f", b)
	}
	return fmt.Sprintf("%.1f", b)
}

// WritePlan prints the plan as the text `longctx rope plan` shows: the bounds,
// the candidate bases and every method's wavelength per rotation pair.
func WritePlan(w io.Writer, r PlanResult) {
	fmt.Fprintf(w, "RoPE plan: head_dim %d, base %s, %d -> %d tokens\n\n", r.HeadDim, FormatBase(r.Base), r.TrainLen, r.TargetLen)
	fmt.Fprintf(w, "critical dimension (Liu et al.)   %d of %d (pairs 0-%d complete a period within %d)\n",
		r.CriticalDimension, r.HeadDim, r.CriticalDimension/2-1, r.TrainLen)
	fmt.Fprintf(w, "critical base beta0               %s\n", FormatBase(r.CriticalBase))
	fmt.Fprintf(w, "critical base, ceil form          %s\n", FormatBase(r.CriticalBaseCeil))
	fmt.Fprintf(w, "new base                          %s\n", FormatBase(r.NewBase))
	fmt.Fprintf(w, "extrapolation bound at new base   %.0f tokens (critical dimension %d)\n", r.ExtrapolationBound, r.ExtrapolationCriticalDimension)
	fmt.Fprintf(w, "Men et al. lower bound b*         %s for %d tokens (%s for %d)\n\n",
		FormatBase(r.MenLowerBound), r.TargetLen, FormatBase(r.MenLowerBoundTrain), r.TrainLen)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "base\tvalue\textrapolation bound\tcritical dim\tscore first < 0 at\tmeets Men\t")
	for _, b := range r.Bases {
		fn := "never"
		if b.FirstNegative >= 0 {
			fn = fmt.Sprint(b.FirstNegative)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%s\t%v\t\n", b.Label, FormatBase(b.Base), b.ExtrapolationBound, b.CriticalDimension, fn, b.MeetsMenBound)
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
			fmt.Fprintf(tw, "%s%s\t", formatWavelength(wl), mark)
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

func formatWavelength(wl float64) string {
	switch {
	case wl < 100:
		return fmt.Sprintf("%.2f", wl)
	case wl < 1e7:
		return fmt.Sprintf("%.0f", wl)
	}
	return fmt.Sprintf("%.3g", wl)
}

// WriteFreqs prints inverse frequencies and wavelengths per rotation pair, as
// `longctx rope freqs` shows them; precision names the float width used.
func WriteFreqs(w io.Writer, p Params, inv []float64, att float64, precision string) error {
	fmt.Fprintf(w, "RoPE %s, head_dim %d (rotary %d), base %s, %s; attention factor %.9g\n",
		p.ScalingType(), p.HeadDim, p.Dim(), FormatBase(p.Base), precision, att)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tinv_freq\twavelength\t")
	for i, v := range inv {
		fmt.Fprintf(tw, "%d\t%.9g\t%.6g\t\n", i, v, 2*math.Pi/v)
	}
	return tw.Flush()
}

var palette = []color.Color{
	color.RGBA{A: 255},                 // default: black
	color.RGBA{G: 150, B: 60, A: 255},  // abf: green
	color.RGBA{B: 220, A: 255},         // linear: blue
	color.RGBA{R: 240, G: 140, A: 255}, // ntk-static: orange
	color.RGBA{R: 140, B: 180, A: 255}, // dynamic: purple
	color.RGBA{R: 220, A: 255},         // yarn: red
	color.RGBA{G: 170, B: 190, A: 255}, // llama3: teal
}

// PlotWavelengths draws each method's per-pair wavelength on a log scale
// with the training and target lengths as horizontal lines, as a PNG.
func PlotWavelengths(w io.Writer, r PlanResult) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("RoPE wavelengths, d=%d, base %s -> %s, %d -> %d tokens",
		r.HeadDim, FormatBase(r.Base), FormatBase(r.NewBase), r.TrainLen, r.TargetLen)
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
		l.Color = palette[k%len(palette)]
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
