package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Items are one metric's per-item scores, kept so that two reports over the
// same items (a baseline and a candidate answering the same questions) can
// be compared pair by pair instead of as independent samples.
type Items struct {
	IDs []string `json:"ids"`
	// Score is 1 or 0 (correct or not) for an accuracy; for a loss, the
	// document's summed loss over the metric's positions.
	Score []float64 `json:"score"`
	// Count is, for a loss, the document's number of scored tokens (the
	// metric is ΣScore/ΣCount); nil for an accuracy (100·mean(Score)).
	Count []float64 `json:"count,omitempty"`
}

// IsLoss reports whether the items are a ratio of sums (a loss).
func (it Items) IsLoss() bool { return it.Count != nil }

func (it *Items) add(id string, score float64) {
	it.IDs = append(it.IDs, id)
	it.Score = append(it.Score, score)
}

func boolScore(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// BootstrapResamples and BootstrapSeed fix the paired bootstrap, so a gate
// gives the same interval on every run.
const (
	BootstrapResamples = 4000
	BootstrapSeed      = 20240917
)

// PairedDrop is the paired comparison of one metric: the drop (positive =
// candidate worse, in the metric's units), its standard error and 95%
// interval, and a two-sided p-value for "no difference".
type PairedDrop struct {
	Drop, SE, Lo, Hi, P float64
	Method              string
	// Discordant counts for McNemar: items only the baseline got right (B)
	// and items only the candidate got right (C).
	B, C int
}

// ComparePaired compares a candidate's items with the baseline's, item by
// item. The two must list the same items in the same order. Accuracies get
// McNemar's exact test for p and a paired bootstrap of the mean difference
// for the interval; losses get a bootstrap over documents of the
// difference of ratios (both sides resampled with the same documents).
func ComparePaired(base, cand Items, higherIsBetter bool) (PairedDrop, error) {
	if len(base.IDs) != len(cand.IDs) || len(base.Score) != len(base.IDs) || len(cand.Score) != len(cand.IDs) {
		return PairedDrop{}, fmt.Errorf("paired items: baseline has %d, candidate %d", len(base.IDs), len(cand.IDs))
	}
	if !slices.Equal(base.IDs, cand.IDs) {
		return PairedDrop{}, fmt.Errorf("paired items: baseline and candidate list different items")
	}
	if base.IsLoss() != cand.IsLoss() || (base.IsLoss() && (len(base.Count) != len(base.IDs) || len(cand.Count) != len(cand.IDs))) {
		return PairedDrop{}, fmt.Errorf("paired items: one side is a loss, the other not, or counts are missing")
	}
	n := len(base.IDs)
	if n == 0 {
		return PairedDrop{}, fmt.Errorf("paired items: none")
	}
	sign := 1.0 // drop = base - cand when higher is better
	if !higherIsBetter {
		sign = -1
	}
	rng := rand.New(rand.NewPCG(BootstrapSeed, uint64(n)))
	boot := make([]float64, BootstrapResamples)
	idx := make([]int, n)
	if !base.IsLoss() {
		d := make([]float64, n)
		var r PairedDrop
		for i := range d {
			d[i] = sign * 100 * (base.Score[i] - cand.Score[i])
			switch {
			case base.Score[i] > cand.Score[i]:
				r.B++
			case base.Score[i] < cand.Score[i]:
				r.C++
			}
		}
		r.Drop = stat.Mean(d, nil)
		if n > 1 {
			r.SE = stat.StdDev(d, nil) / math.Sqrt(float64(n))
		}
		for k := range boot {
			var s float64
			for range n {
				s += d[rng.IntN(n)]
			}
			boot[k] = s / float64(n)
		}
		r.P = McNemarExact(r.B, r.C)
		r.Lo, r.Hi = percentileInterval(boot)
		r.Method = "paired: McNemar exact p, bootstrap interval"
		return r, nil
	}
	ratio := func(it Items, idx []int) float64 {
		var s, c float64
		for _, i := range idx {
			s += it.Score[i]
			c += it.Count[i]
		}
		if c == 0 {
			return 0
		}
		return s / c
	}
	for i := range idx {
		idx[i] = i
	}
	r := PairedDrop{Drop: sign * (ratio(base, idx) - ratio(cand, idx)), Method: "paired: bootstrap over documents"}
	below, above := 0, 0
	for k := range boot {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		boot[k] = sign * (ratio(base, idx) - ratio(cand, idx))
		if boot[k] <= 0 {
			below++
		}
		if boot[k] >= 0 {
			above++
		}
	}
	r.SE = stat.StdDev(boot, nil)
	r.Lo, r.Hi = percentileInterval(boot)
	// Two-sided bootstrap p-value: how often the resampled drop lands on
	// the other side of zero, doubled.
	r.P = math.Min(1, 2*float64(min(below, above))/float64(len(boot)))
	return r, nil
}

// McNemarExact is the two-sided exact McNemar test on b and c discordant
// pairs: 2·P(X ≤ min(b, c)) for X ~ Binomial(b+c, 1/2), at most 1.
func McNemarExact(b, c int) float64 {
	if b+c == 0 {
		return 1
	}
	d := distuv.Binomial{N: float64(b + c), P: 0.5}
	return math.Min(1, 2*d.CDF(float64(min(b, c))))
}

// percentileInterval is the 2.5% and 97.5% quantiles of xs (sorted in place).
func percentileInterval(xs []float64) (lo, hi float64) {
	slices.Sort(xs)
	return stat.Quantile(0.025, stat.Empirical, xs, nil), stat.Quantile(0.975, stat.Empirical, xs, nil)
}

// unpairedP is the two-sided normal p-value of drop with standard error se;
// -1 when se is unknown.
func unpairedP(drop, se float64) float64 {
	if se <= 0 {
		return -1
	}
	return 2 * distuv.UnitNormal.Survival(math.Abs(drop)/se)
}

// MergeItems joins the per-item scores of several reports of one checkpoint.
func MergeItems(reps ...*Report) map[string]Items {
	m := map[string]Items{}
	for _, r := range reps {
		for k, v := range r.Items {
			m[k] = v
		}
	}
	return m
}

// GSM8kItems are the per-question scores behind gsm8k_strict and
// gsm8k_flexible.
func GSM8kItems(recs []GSM8kRecord) map[string]Items {
	var s, f Items
	for _, r := range recs {
		id := strconv.Itoa(r.Index)
		s.add(id, boolScore(r.CorrectStrict))
		f.add(id, boolScore(r.CorrectFlex))
	}
	return map[string]Items{"gsm8k_strict": s, "gsm8k_flexible": f}
}

// PasskeyItems are the per-prompt scores behind <task>_acc and
// <task>_acc@<length>; a prompt is named by length, depth and sample.
func PasskeyItems(task string, recs []PasskeyRecord) map[string]Items {
	m := map[string]Items{}
	for i, r := range recs {
		id := fmt.Sprintf("%d/%g/%d", r.Length, r.Depth, i)
		all := m[task+"_acc"]
		all.add(id, boolScore(r.Correct))
		m[task+"_acc"] = all
		k := fmt.Sprintf("%s_acc@%d", task, r.Length)
		byLen := m[k]
		byLen.add(id, boolScore(r.Correct))
		m[k] = byLen
	}
	return m
}

// PPLItems are the per-document loss sums and token counts behind "loss"
// and each "loss@lo-hi" bucket (a document with no token in a bucket is left
// out of that bucket's items).
func PPLItems(res PPLResult, bounds []int) map[string]Items {
	m := map[string]Items{}
	put := func(key, id string, s float64, c int) {
		if c == 0 {
			return
		}
		it := m[key]
		it.add(id, s)
		it.Count = append(it.Count, float64(c))
		m[key] = it
	}
	for d, losses := range res.DocLosses {
		id := strconv.Itoa(res.DocIndex[d])
		var s float64
		for _, l := range losses {
			s += float64(l)
		}
		put("loss", id, s, len(losses))
		lo := 1 // positions from 1; losses[t] predicts position t+1
		for _, hi := range bounds {
			var bs float64
			var bc int
			for p := lo; p < hi && p-1 < len(losses); p++ {
				bs += float64(losses[p-1])
				bc++
			}
			put(fmt.Sprintf("loss@%d-%d", lo, hi), id, bs, bc)
			lo = hi
		}
	}
	return m
}

// BootstrapSE is the standard error of a loss (ΣScore/ΣCount) by a
// bootstrap over documents, so "2se" on a loss means something.
func BootstrapSE(it Items) float64 {
	n := len(it.Score)
	if n < 2 || !it.IsLoss() {
		return 0
	}
	rng := rand.New(rand.NewPCG(BootstrapSeed, uint64(n)))
	boot := make([]float64, BootstrapResamples)
	for k := range boot {
		var s, c float64
		for range n {
			i := rng.IntN(n)
			s += it.Score[i]
			c += it.Count[i]
		}
		if c > 0 {
			boot[k] = s / c
		}
	}
	return stat.StdDev(boot, nil)
}
