package eval

import (
	"fmt"
	"math"
)

// Perplexity by position: each document is scored in one window (truncated
// to the window length), and the loss of predicting token t+1 is credited to
// position t+1. Buckets report mean loss and perplexity; a fine curve shows
// the shape.

// PPLConfig sets a perplexity-by-position run.
type PPLConfig struct {
	// Data are the documents: .txt files (one document each) or JSON Lines
	// with a "text" field.
	Data []string `yaml:"data" help:"document files: .txt (one document each) or .jsonl with a text field"`
	// Caches are token caches written by prepare: documents already
	// tokenized (with the model's tokenizer).
	Caches []string `yaml:"caches" help:"token cache files from prepare (already tokenized documents)"`
	// Window is the number of tokens scored per document (documents are
	// truncated to it; shorter ones are scored whole).
	Window int `yaml:"window" help:"tokens scored per document (truncated to this)"`
	// Buckets are the upper bounds of the position buckets; positions past
	// the last bound are not reported.
	Buckets []int `yaml:"buckets" help:"upper bounds of position buckets, e.g. 2048,4096,8192,16384"`
	// CurvePoints is the number of equal-width bins in the PNG curve.
	CurvePoints int `yaml:"curve_points" help:"bins of the loss-by-position curve"`
	// MinTokens drops documents shorter than this (counted, reported).
	MinTokens int `yaml:"min_tokens" help:"skip documents shorter than this many tokens (counted in the report)"`
	// MaxDocs bounds how many documents are scored (0 = all).
	MaxDocs int `yaml:"max_docs" help:"score at most this many documents (0 = all)"`
}

// DefaultPPL buckets a 16k window like the context-extension literature.
func DefaultPPL() PPLConfig {
	return PPLConfig{Window: 16384, Buckets: []int{2048, 4096, 8192, 16384}, CurvePoints: 64, MinTokens: 2}
}

// PositionLosses accumulates per-position loss sums over documents.
type PositionLosses struct {
	Sum   []float64 // Sum[p]: total loss of predicting the token at position p
	Count []int
	Docs  int
}

// Add credits one document's losses (losses[t] predicts token t+1).
func (pl *PositionLosses) Add(losses []float32) {
	need := len(losses) + 1
	for len(pl.Sum) < need {
		pl.Sum = append(pl.Sum, 0)
		pl.Count = append(pl.Count, 0)
	}
	for t, l := range losses {
		pl.Sum[t+1] += float64(l)
		pl.Count[t+1]++
	}
	pl.Docs++
}

// Bucket is the mean loss over positions [Lo, Hi).
type Bucket struct {
	Lo, Hi int
	Loss   float64
	Tokens int
}

// PPL is exp(loss).
func (b Bucket) PPL() float64 { return math.Exp(b.Loss) }

// Buckets returns mean loss per bucket with upper bounds bounds (positions
// from 1, since position 0 has no prediction). Empty buckets have Tokens 0.
func (pl *PositionLosses) Buckets(bounds []int) []Bucket {
	out := make([]Bucket, 0, len(bounds))
	lo := 1
	for _, hi := range bounds {
		b := Bucket{Lo: lo, Hi: hi}
		var s float64
		for p := lo; p < hi && p < len(pl.Sum); p++ {
			s += pl.Sum[p]
			b.Tokens += pl.Count[p]
		}
		if b.Tokens > 0 {
			b.Loss = s / float64(b.Tokens)
		}
		out = append(out, b)
		lo = hi
	}
	return out
}

// Curve returns n equal-width buckets over positions [1, maxPos].
func (pl *PositionLosses) Curve(n, maxPos int) []Bucket {
	maxPos = min(maxPos, len(pl.Sum)-1)
	if maxPos < 1 || n < 1 {
		return nil
	}
	n = min(n, maxPos)
	bounds := make([]int, n)
	for i := range bounds {
		bounds[i] = 1 + (i+1)*maxPos/n
	}
	return pl.Buckets(bounds)
}

// PPLResult is the outcome of RunPPL.
type PPLResult struct {
	Losses PositionLosses
	// DocLosses are each scored document's token losses and DocIndex its
	// index in the input, for paired comparisons over documents.
	DocLosses [][]float32
	DocIndex  []int
	Scored    int
	Skipped   int // shorter than MinTokens
}

// RunPPL scores each tokenised document. docs are token ids; each is
// truncated to min(cfg.Window, lm.MaxPositions()).
func RunPPL(lm LM, docs [][]uint32, cfg PPLConfig, progress func(done int)) (PPLResult, error) {
	var res PPLResult
	window := cfg.Window
	if window <= 0 || window > lm.MaxPositions() {
		window = lm.MaxPositions()
	}
	for i, ids := range docs {
		if cfg.MaxDocs > 0 && res.Scored >= cfg.MaxDocs {
			break
		}
		if len(ids) < max(cfg.MinTokens, 2) {
			res.Skipped++
			continue
		}
		ids = ids[:min(len(ids), window)]
		l, err := lm.TokenLosses(ids)
		if err != nil {
			return res, fmt.Errorf("ppl: document %d: %w", i, err)
		}
		if len(l) != len(ids)-1 {
			return res, fmt.Errorf("ppl: document %d: %d losses for %d tokens", i, len(l), len(ids))
		}
		res.Losses.Add(l)
		res.DocLosses = append(res.DocLosses, l)
		res.DocIndex = append(res.DocIndex, i)
		res.Scored++
		if progress != nil {
			progress(i + 1)
		}
	}
	return res, nil
}

// PPLMetrics gives the loss per bucket ("loss@lo-hi") and overall
// ("loss"), lower being better.
func PPLMetrics(res PPLResult, bounds []int) map[string]Metric {
	m := map[string]Metric{}
	var s float64
	var n int
	for p := range res.Losses.Sum {
		s += res.Losses.Sum[p]
		n += res.Losses.Count[p]
	}
	if n > 0 {
		m["loss"] = Metric{Value: s / float64(n)}
	}
	for _, b := range res.Losses.Buckets(bounds) {
		if b.Tokens > 0 {
			m[fmt.Sprintf("loss@%d-%d", b.Lo, b.Hi)] = Metric{Value: b.Loss}
		}
	}
	return m
}

// PPLTable renders buckets for the Markdown report.
func PPLTable(bs []Bucket) Table {
	t := Table{Title: "Loss by position", Header: []string{"positions", "tokens", "mean loss", "perplexity"}}
	for _, b := range bs {
		if b.Tokens == 0 {
			t.Rows = append(t.Rows, []string{fmt.Sprintf("%d-%d", b.Lo, b.Hi), "0", "-", "-"})
			continue
		}
		t.Rows = append(t.Rows, []string{fmt.Sprintf("%d-%d", b.Lo, b.Hi), fmt.Sprint(b.Tokens), fmt.Sprintf("%.4f", b.Loss), fmt.Sprintf("%.3f", b.PPL())})
	}
	return t
}
