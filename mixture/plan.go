package mixture

import (
	"fmt"
	"math"
	"sort"
)

// Doc is what the budget maths needs to know about a document: its id
// (unique within its source) and its token count.
type Doc struct {
	ID     string
	Tokens int64
}

// Key is the rank of one repetition of one document: documents of a partial
// pass are taken in increasing Key order until the budget is met. It depends
// only on (seed, source, id, repetition).
func Key(seed uint64, source, id string, rep int) uint64 {
	return Hash(seed, "sample", source, id, rep)
}

// Hash is the project's stable 64-bit hash of a seed, a purpose, a source, a
// document id and a repetition (FNV-1a, then a splitmix64 finalizer so close
// inputs land far apart). Fields are length-prefixed so no two field lists
// collide by concatenation.
func Hash(seed uint64, purpose, source, id string, rep int) uint64 {
	// FNV-1a written out (hash/fnv's result, without its allocations: this
	// runs for every document in the plan and select steps).
	const offset64, prime64 = 14695981039346656037, 1099511628211
	x := uint64(offset64)
	word := func(v uint64) {
		for i := 0; i < 8; i++ {
			x ^= v & 0xff
			x *= prime64
			v >>= 8
		}
	}
	str := func(s string) {
		word(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			x ^= uint64(s[i])
			x *= prime64
		}
	}
	word(seed)
	str(purpose)
	str(source)
	str(id)
	word(uint64(rep))
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SourcePlan is the budget of one source and the rule that selects its
// documents. It is small (no document list), so every worker can hold all of
// them.
type SourcePlan struct {
	Source    string  `json:"source"`
	Weight    float64 `json:"weight"` // normalized
	Target    int64   `json:"target_tokens"`
	Available int64   `json:"available_tokens"` // tokens in the source's caches
	Docs      int64   `json:"available_docs"`
	// Full passes take every document; the pass numbered FullPasses (if
	// PartialTokens > 0) takes documents whose Key is below Threshold whole,
	// plus the first BoundaryTokens tokens of document BoundaryID.
	FullPasses     int     `json:"full_passes"`
	PartialTokens  int64   `json:"partial_tokens"` // tokens taken from the partial pass
	Threshold      uint64  `json:"threshold"`
	BoundaryID     string  `json:"boundary_id,omitempty"`
	BoundaryTokens int64   `json:"boundary_tokens,omitempty"`
	Realized       int64   `json:"realized_tokens"`
	Truncated      int64   `json:"truncated_tokens"` // tokens of the boundary document left out
	Repeats        float64 `json:"repeats"`          // realized / available: 0.1 = a tenth, 2.5 = two and a half passes
	Warning        string  `json:"warning,omitempty"`
}

// Plan is the whole mixture's budget.
type Plan struct {
	Name     string       `json:"name"`
	Seed     uint64       `json:"seed"`
	SeqLen   int          `json:"seq_len"`
	Total    int64        `json:"total_tokens"`
	Sources  []SourcePlan `json:"sources"`
	Warnings []string     `json:"warnings,omitempty"`
}

// Take is one repetition of one document to put in the mixture: its first
// Tokens tokens (all of them unless it is the boundary document).
type Take struct {
	Rep    int
	Tokens int64
}

// MakePlan computes every source's budget from the spec and the documents
// each source holds (docs[source]). The input order of documents does not
// matter. A source with weight > 0 and no tokens is an error.
func MakePlan(spec Spec, docs map[string][]Doc) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, err
	}
	targets := spec.Targets()
	var wsum float64
	for _, s := range spec.Sources {
		wsum += s.Weight
	}
	plan := Plan{Name: spec.Name, Seed: spec.Seed, SeqLen: spec.SeqLen, Total: spec.TotalTokens}
	for _, src := range spec.Sources {
		sp, err := planSource(spec, src.Name, src.Weight/wsum, targets[src.Name], docs[src.Name])
		if err != nil {
			return Plan{}, err
		}
		if sp.Warning != "" {
			plan.Warnings = append(plan.Warnings, sp.Source+": "+sp.Warning)
		}
		plan.Sources = append(plan.Sources, sp)
	}
	return plan, nil
}

func planSource(spec Spec, name string, weight float64, target int64, docs []Doc) (SourcePlan, error) {
	sp := SourcePlan{Source: name, Weight: weight, Target: target, Docs: int64(len(docs))}
	seen := make(map[string]bool, len(docs))
	for _, d := range docs {
		if d.Tokens < 0 {
			return sp, fmt.Errorf("source %q: document %q has %d tokens", name, d.ID, d.Tokens)
		}
		if seen[d.ID] {
			return sp, fmt.Errorf("source %q: document id %q appears twice; ids must be unique within a source", name, d.ID)
		}
		seen[d.ID] = true
		sp.Available += d.Tokens
	}
	if target == 0 {
		return sp, nil
	}
	if sp.Available == 0 {
		return sp, fmt.Errorf("source %q: target %d tokens but its caches hold no tokens", name, target)
	}
	remaining := target
	if sp.Available < target {
		if spec.Upsample == UpsampleNone {
			sp.FullPasses = 1
			sp.Realized = sp.Available
			sp.Repeats = 1
			sp.Warning = fmt.Sprintf("holds %d tokens, %.1f%% of its target %d; upsample=none keeps the shortfall",
				sp.Available, 100*float64(sp.Available)/float64(target), target)
			return sp, nil
		}
		sp.FullPasses = int(target / sp.Available)
		remaining = target - int64(sp.FullPasses)*sp.Available
	}
	sp.PartialTokens = remaining
	if remaining > 0 {
		rep := sp.FullPasses
		type ranked struct {
			key uint64
			doc Doc
		}
		rs := make([]ranked, len(docs))
		for i, d := range docs {
			rs[i] = ranked{Key(spec.Seed, name, d.ID, rep), d}
		}
		sort.Slice(rs, func(i, j int) bool { return less(rs[i].key, rs[i].doc.ID, rs[j].key, rs[j].doc.ID) })
		var cum int64
		sp.Threshold = math.MaxUint64
		for _, r := range rs {
			if r.doc.Tokens == 0 {
				continue
			}
			if cum+r.doc.Tokens <= remaining {
				cum += r.doc.Tokens
				if cum == remaining {
					// The next ranked document starts the excluded part.
					sp.Threshold = r.key
					sp.BoundaryID = r.doc.ID
					sp.BoundaryTokens = r.doc.Tokens
					break
				}
				continue
			}
			sp.Threshold = r.key
			sp.BoundaryID = r.doc.ID
			sp.BoundaryTokens = remaining - cum
			sp.Truncated = r.doc.Tokens - sp.BoundaryTokens
			cum = remaining
			break
		}
	}
	sp.Realized = target
	sp.Repeats = float64(target) / float64(sp.Available)
	if spec.MaxRepeats > 0 && sp.Repeats > spec.MaxRepeats {
		sp.Warning = fmt.Sprintf("repeats %.2f times (more than max_repeats %.2f): %d tokens available for a target of %d",
			sp.Repeats, spec.MaxRepeats, sp.Available, target)
	}
	return sp, nil
}

// less orders (key, id) pairs; the id breaks the (unlikely) key ties so the
// ranking is total.
func less(ka uint64, ida string, kb uint64, idb string) bool {
	if ka != kb {
		return ka < kb
	}
	return ida < idb
}

// Takes returns the repetitions of document id (with tokens tokens) that the
// mixture holds, in repetition order. It needs only the plan, the seed and
// the document, so each worker decides alone.
func (sp SourcePlan) Takes(seed uint64, id string, tokens int64) []Take {
	if tokens <= 0 || sp.Target == 0 {
		return nil
	}
	var out []Take
	for r := 0; r < sp.FullPasses; r++ {
		out = append(out, Take{Rep: r, Tokens: tokens})
	}
	if sp.PartialTokens > 0 {
		rep := sp.FullPasses
		k := Key(seed, sp.Source, id, rep)
		switch {
		case id == sp.BoundaryID:
			out = append(out, Take{Rep: rep, Tokens: sp.BoundaryTokens})
		case less(k, id, sp.Threshold, sp.BoundaryID):
			out = append(out, Take{Rep: rep, Tokens: tokens})
		}
	}
	return out
}

// Source returns the plan of the named source.
func (p Plan) Source(name string) (SourcePlan, bool) {
	for _, s := range p.Sources {
		if s.Source == name {
			return s, true
		}
	}
	return SourcePlan{}, false
}
