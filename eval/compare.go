package eval

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// z95 is the two-sided 95% normal quantile.
const z95 = 1.959963984540054

// Allowance is how far a metric may drop: a fixed amount in the metric's
// units (points for accuracies) or a multiple of the standard error of the
// difference ("2se").
type Allowance struct {
	Amount float64
	InSE   bool
}

func (a Allowance) String() string {
	if a.InSE {
		return strconv.FormatFloat(a.Amount, 'g', -1, 64) + "se"
	}
	return strconv.FormatFloat(a.Amount, 'g', -1, 64)
}

// ParseMaxDrops parses "metric=2.0" or "metric=2se" items. A metric name
// also covers the metrics it prefixes: "gsm8k" covers "gsm8k_strict" and
// "gsm8k_flexible".
func ParseMaxDrops(items []string) (map[string]Allowance, error) {
	out := map[string]Allowance{}
	for _, it := range items {
		for _, part := range strings.Split(it, ",") {
			if part == "" {
				continue
			}
			name, val, ok := strings.Cut(part, "=")
			if !ok || name == "" {
				return nil, fmt.Errorf("max-drop %q: want metric=amount", part)
			}
			a := Allowance{}
			if v, found := strings.CutSuffix(val, "se"); found {
				a.InSE, val = true, v
			}
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("max-drop %q: amount must be a number >= 0 (optionally with suffix se)", part)
			}
			a.Amount = f
			out[name] = a
		}
	}
	return out, nil
}

// Comparison is one metric of a candidate against the baseline.
type Comparison struct {
	Metric    string
	Base      float64
	Candidate float64
	// Drop is how much worse the candidate is (positive = worse), in the
	// metric's units, whatever its direction.
	Drop float64
	// SE is the standard error of the difference: paired when both sides
	// carry per-item scores for the metric, else from the two standard
	// errors as independent samples; DropLo/DropHi the 95% interval of
	// Drop and P the two-sided p-value of "no difference" (-1: unknown).
	SE             float64
	DropLo, DropHi float64
	P              float64
	Method         string
	Allowed        Allowance
	Limit          float64 // the allowance in metric units
	Fail           bool
}

func covers(key, metric string) bool {
	return metric == key || strings.HasPrefix(metric, key+"_") || strings.HasPrefix(metric, key+"@")
}

// selectMetrics returns the metrics a key names: the metric of that exact
// name when there is one ("passkey_acc" is the overall accuracy, not also
// each passkey_acc@length), else every metric it prefixes ("gsm8k" is
// gsm8k_strict and gsm8k_flexible).
func selectMetrics[V any](key string, ms map[string]V) []string {
	if _, ok := ms[key]; ok {
		return []string{key}
	}
	var out []string
	for _, name := range sortedKeys(ms) {
		if covers(key, name) {
			out = append(out, name)
		}
	}
	return out
}

// CompareMetrics checks every metric named by maxDrop. With significant, a
// metric fails only when the whole 95% interval of its drop exceeds the
// limit; otherwise the point estimate decides. A key that matches no
// baseline metric, or a metric the candidate lacks, is an error.
func CompareMetrics(base, cand map[string]Metric, maxDrop map[string]Allowance, significant bool) ([]Comparison, error) {
	return CompareWithItems(base, cand, nil, nil, maxDrop, significant)
}

// CompareWithItems is CompareMetrics with per-item scores: a metric whose
// items both sides carry is compared pair by pair (ComparePaired).
func CompareWithItems(base, cand map[string]Metric, baseItems, candItems map[string]Items, maxDrop map[string]Allowance, significant bool) ([]Comparison, error) {
	var out []Comparison
	for _, key := range sortedKeys(maxDrop) {
		a := maxDrop[key]
		names := selectMetrics(key, base)
		for _, name := range names {
			b := base[name]
			c, ok := cand[name]
			if !ok {
				return nil, fmt.Errorf("metric %s: in the baseline but not in the candidate", name)
			}
			cmp := Comparison{Metric: name, Base: b.Value, Candidate: c.Value, Allowed: a}
			if b.HigherIsBetter {
				cmp.Drop = b.Value - c.Value
			} else {
				cmp.Drop = c.Value - b.Value
			}
			bi, okB := baseItems[name]
			ci, okC := candItems[name]
			if okB && okC {
				pd, err := ComparePaired(bi, ci, b.HigherIsBetter)
				if err != nil {
					return nil, fmt.Errorf("metric %s: %w", name, err)
				}
				cmp.SE, cmp.DropLo, cmp.DropHi, cmp.P, cmp.Method = pd.SE, pd.Lo, pd.Hi, pd.P, pd.Method
			} else {
				cmp.SE = math.Hypot(b.StdErr, c.StdErr)
				cmp.DropLo, cmp.DropHi = cmp.Drop-z95*cmp.SE, cmp.Drop+z95*cmp.SE
				cmp.P, cmp.Method = unpairedP(cmp.Drop, cmp.SE), "unpaired: normal"
			}
			cmp.Limit = a.Amount
			if a.InSE {
				cmp.Limit = a.Amount * cmp.SE
			}
			if significant {
				cmp.Fail = cmp.DropLo > cmp.Limit
			} else {
				cmp.Fail = cmp.Drop > cmp.Limit
			}
			out = append(out, cmp)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("max-drop %s: no such metric in the baseline (have %s)", key, strings.Join(sortedKeys(base), ", "))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return out, nil
}

// String is one line for the gate's output.
func (c Comparison) String() string {
	verdict := "ok"
	if c.Fail {
		verdict = "REGRESSION"
	}
	ci := ""
	if c.SE > 0 {
		p := ""
		if c.P >= 0 {
			p = fmt.Sprintf(", p %.3g", c.P)
		}
		ci = fmt.Sprintf(" (95%% CI of drop %+.4g..%+.4g, s.e. %.3g%s; %s)", c.DropLo, c.DropHi, c.SE, p, c.Method)
	}
	return fmt.Sprintf("%-10s %s: baseline %.4g, candidate %.4g, drop %+.4g%s, allowed %.4g (%s)",
		verdict, c.Metric, c.Base, c.Candidate, c.Drop, ci, c.Limit, c.Allowed)
}

// MergeMetrics joins the metrics of several reports of one checkpoint; a
// metric in two reports is an error.
func MergeMetrics(reps ...*Report) (map[string]Metric, error) {
	m := map[string]Metric{}
	for _, r := range reps {
		for k, v := range r.Metrics {
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("metric %s appears in two reports (second: %s of %s)", k, r.Eval, r.Model)
			}
			m[k] = v
		}
	}
	return m, nil
}
