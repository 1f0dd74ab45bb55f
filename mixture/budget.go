package mixture

// The same selection as MakePlan, computed from small summaries so that no
// machine ever holds every document of a source:
//
//  1. totals: the tokens and documents of each source (summed per cache file);
//  2. Budget: full passes and the tokens the partial pass must take;
//  3. histogram: per source, the tokens of the partial pass's documents by
//     bucket of their Key's top BucketBits bits (summed per file or per
//     partition, then added up);
//  4. Crossing: the bucket where the cumulative tokens reach the partial
//     target; only the documents of that one bucket are ranked exactly
//     (Boundary), which fixes the threshold and the boundary document.
//
// Keys order the buckets, so the documents before the crossing bucket are
// exactly the documents MakePlan's sort would put before it: the result is the
// same SourcePlan, field for field.

import (
	"fmt"
	"math"
	"sort"
)

// Budget is a source's plan before its partial pass is ranked: everything
// MakePlan decides from the source's totals alone.
type Budget struct {
	Plan SourcePlan
	// Rep is the repetition of the partial pass, Remaining the tokens it
	// takes; Remaining == 0 means no ranking is needed.
	Rep       int
	Remaining int64
}

// SourceTotals are the tokens and documents a source holds.
type SourceTotals struct {
	Tokens int64
	Docs   int64
}

// Budgets computes every source's Budget from the spec and each source's
// totals, with MakePlan's rules and errors.
func Budgets(spec Spec, totals map[string]SourceTotals) ([]Budget, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	targets := spec.Targets()
	var wsum float64
	for _, s := range spec.Sources {
		wsum += s.Weight
	}
	out := make([]Budget, 0, len(spec.Sources))
	for _, src := range spec.Sources {
		t := totals[src.Name]
		target := targets[src.Name]
		sp := SourcePlan{Source: src.Name, Weight: src.Weight / wsum, Target: target, Docs: t.Docs, Available: t.Tokens}
		b := Budget{}
		switch {
		case target == 0:
		case sp.Available == 0:
			return nil, fmt.Errorf("source %q: target %d tokens but its caches hold no tokens", src.Name, target)
		case sp.Available < target && spec.Upsample == UpsampleNone:
			sp.FullPasses = 1
			sp.Realized = sp.Available
			sp.Repeats = 1
			sp.Warning = fmt.Sprintf("holds %d tokens, %.1f%% of its target %d; upsample=none keeps the shortfall",
				sp.Available, 100*float64(sp.Available)/float64(target), target)
		default:
			remaining := target
			if sp.Available < target {
				sp.FullPasses = int(target / sp.Available)
				remaining = target - int64(sp.FullPasses)*sp.Available
			}
			sp.PartialTokens = remaining
			b.Rep, b.Remaining = sp.FullPasses, remaining
			if remaining > 0 {
				sp.Threshold = math.MaxUint64
			}
			sp.Realized = target
			sp.Repeats = float64(target) / float64(sp.Available)
			if spec.MaxRepeats > 0 && sp.Repeats > spec.MaxRepeats {
				sp.Warning = fmt.Sprintf("repeats %.2f times (more than max_repeats %.2f): %d tokens available for a target of %d",
					sp.Repeats, spec.MaxRepeats, sp.Available, target)
			}
		}
		b.Plan = sp
		out = append(out, b)
	}
	return out, nil
}

// Bucket is the histogram bucket of a key: its top bits bits.
func Bucket(key uint64, bits int) int {
	if bits <= 0 {
		return 0
	}
	return int(key >> (64 - bits))
}

// Crossing returns the first bucket at which the cumulative tokens of hist
// reach remaining, and the tokens of the buckets before it. remaining must be
// > 0 and at most the histogram's total.
func Crossing(hist []int64, remaining int64) (bucket int, before int64, err error) {
	var cum int64
	for b, t := range hist {
		if cum+t >= remaining {
			return b, cum, nil
		}
		cum += t
	}
	return 0, 0, fmt.Errorf("histogram holds %d tokens, fewer than the %d to take", cum, remaining)
}

// Ranked is one document of the crossing bucket with its Key.
type Ranked struct {
	Key    uint64
	ID     string
	Tokens int64
}

// Boundary ranks the crossing bucket's documents exactly and sets the plan's
// threshold and boundary document: the partial pass takes remaining tokens in
// (Key, id) order, where the buckets before this one gave before tokens.
func Boundary(sp *SourcePlan, docs []Ranked, remaining, before int64) error {
	sort.Slice(docs, func(i, j int) bool { return less(docs[i].Key, docs[i].ID, docs[j].Key, docs[j].ID) })
	cum := before
	for _, r := range docs {
		if r.Tokens == 0 {
			continue
		}
		if cum+r.Tokens <= remaining {
			cum += r.Tokens
			if cum == remaining {
				sp.Threshold, sp.BoundaryID, sp.BoundaryTokens = r.Key, r.ID, r.Tokens
				return nil
			}
			continue
		}
		sp.Threshold, sp.BoundaryID = r.Key, r.ID
		sp.BoundaryTokens = remaining - cum
		sp.Truncated = r.Tokens - sp.BoundaryTokens
		return nil
	}
	return fmt.Errorf("source %q: the crossing bucket's %d documents reach %d of %d tokens", sp.Source, len(docs), cum, remaining)
}
