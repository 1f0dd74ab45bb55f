// Package mixture holds the mixture spec (token budget, sequence length,
// per-source weights, upsampling policy) and the budget maths that turn it
// into a deterministic per-document selection.
//
// Every selection decision is a pure function of (seed, source, document id,
// repetition) and of the source's document set — never of the order documents
// arrive in or of how many workers read them.
package mixture

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Upsampling policies: what to do when a source holds fewer tokens than its
// target.
const (
	// UpsampleRepeat repeats the source as whole passes plus a deterministic
	// fraction of one more pass, so it reaches its target.
	UpsampleRepeat = "repeat"
	// UpsampleNone takes every document once and reports the shortfall.
	UpsampleNone = "none"
)

// Dedup policies: which duplicates the mix leaves out. A repeated document id
// within a source is always reduced to its first occurrence (cache files in
// prepare-manifest order, documents in file order).
const (
	// DedupID (the default, also "") drops repeated ids only.
	DedupID = "id"
	// DedupCount also hashes every document's tokens and counts documents
	// whose content repeats an earlier one under another id, keeping them.
	DedupCount = "count"
	// DedupExact counts them as DedupCount does and drops them.
	DedupExact = "exact"
)

// Spec is one mixture: how many tokens, of what, in sequences of what length.
type Spec struct {
	Name        string  `yaml:"name" help:"mixture name (reports, output naming)"`
	TotalTokens int64   `yaml:"total_tokens" help:"token budget of the whole mixture (real tokens, before padding)"`
	SeqLen      int     `yaml:"seq_len" help:"tokens per packed training sequence"`
	Seed        uint64  `yaml:"seed" help:"seed of every sampling, grouping and ordering decision"`
	Upsample    string  `yaml:"upsample" help:"repeat|none: what to do with a source smaller than its target"`
	MaxRepeats  float64 `yaml:"max_repeats" help:"warn when a source would be repeated more than this many times"`
	// Dedup is "" or "id", "count" or "exact" (see DedupID). The JSON name
	// and omitempty keep the mixture config hash of specs without it.
	Dedup   string   `yaml:"dedup" json:"Dedup,omitempty" help:"id|count|exact: drop repeated ids (always); count, or also drop, repeated content under other ids"`
	Sources []Source `yaml:"sources"`
	// Sweep lists alternative weight vectors over the same sources; each
	// point is mixed to its own output from the same token caches.
	Sweep []SweepPoint `yaml:"sweep"`
}

// Source is one mixture component, named as in the prepare manifest.
type Source struct {
	Name   string  `yaml:"name"`
	Weight float64 `yaml:"weight"` // token fraction; weights are normalized
}

// SweepPoint is a named weight vector (source name -> weight).
type SweepPoint struct {
	Name    string             `yaml:"name"`
	Weights map[string]float64 `yaml:"weights"`
}

// Validate checks the spec and names the bad field.
func (s Spec) Validate() error {
	if s.TotalTokens <= 0 {
		return fmt.Errorf("mixture %q: total_tokens must be > 0, got %d", s.Name, s.TotalTokens)
	}
	if s.SeqLen <= 0 {
		return fmt.Errorf("mixture %q: seq_len must be > 0, got %d", s.Name, s.SeqLen)
	}
	if s.Upsample != UpsampleRepeat && s.Upsample != UpsampleNone {
		return fmt.Errorf("mixture %q: upsample must be %q or %q, got %q", s.Name, UpsampleRepeat, UpsampleNone, s.Upsample)
	}
	switch s.Dedup {
	case "", DedupID, DedupCount, DedupExact:
	default:
		return fmt.Errorf("mixture %q: dedup must be %q, %q or %q, got %q", s.Name, DedupID, DedupCount, DedupExact, s.Dedup)
	}
	if s.MaxRepeats < 0 {
		return fmt.Errorf("mixture %q: max_repeats must be >= 0", s.Name)
	}
	if len(s.Sources) == 0 {
		return fmt.Errorf("mixture %q: no sources", s.Name)
	}
	seen := map[string]bool{}
	var sum float64
	for i, src := range s.Sources {
		if src.Name == "" {
			return fmt.Errorf("mixture %q: source %d has no name", s.Name, i)
		}
		if seen[src.Name] {
			return fmt.Errorf("mixture %q: source %q listed twice", s.Name, src.Name)
		}
		seen[src.Name] = true
		if src.Weight < 0 || math.IsNaN(src.Weight) || math.IsInf(src.Weight, 0) {
			return fmt.Errorf("mixture %q: source %q has weight %v", s.Name, src.Name, src.Weight)
		}
		sum += src.Weight
	}
	if sum <= 0 {
		return fmt.Errorf("mixture %q: weights sum to %v", s.Name, sum)
	}
	for _, p := range s.Sweep {
		if p.Name == "" {
			return fmt.Errorf("mixture %q: sweep point without a name", s.Name)
		}
		for name := range p.Weights {
			if !seen[name] {
				return fmt.Errorf("mixture %q: sweep point %q weights unknown source %q", s.Name, p.Name, name)
			}
		}
	}
	return nil
}

// Points expands the spec into the mixtures to build: the spec itself when it
// has no sweep, else one spec per sweep point (named "<name>-<point>", with
// the point's weights; sources it omits get weight 0).
func (s Spec) Points() []Spec {
	if len(s.Sweep) == 0 {
		return []Spec{s}
	}
	out := make([]Spec, 0, len(s.Sweep))
	for _, p := range s.Sweep {
		q := s
		q.Sweep = nil
		q.Name = s.Name + "-" + p.Name
		q.Sources = make([]Source, len(s.Sources))
		for i, src := range s.Sources {
			q.Sources[i] = Source{Name: src.Name, Weight: p.Weights[src.Name]}
		}
		out = append(out, q)
	}
	return out
}

// Targets splits TotalTokens over the sources in proportion to their weights,
// by largest remainder so the targets sum to TotalTokens exactly.
func (s Spec) Targets() map[string]int64 {
	var sum float64
	for _, src := range s.Sources {
		sum += src.Weight
	}
	type rem struct {
		name string
		frac float64
	}
	out := make(map[string]int64, len(s.Sources))
	rems := make([]rem, 0, len(s.Sources))
	var given int64
	for _, src := range s.Sources {
		exact := float64(s.TotalTokens) * src.Weight / sum
		floor := math.Floor(exact)
		out[src.Name] = int64(floor)
		given += int64(floor)
		if src.Weight > 0 {
			rems = append(rems, rem{src.Name, exact - floor})
		}
	}
	sort.SliceStable(rems, func(i, j int) bool {
		if rems[i].frac != rems[j].frac {
			return rems[i].frac > rems[j].frac
		}
		return strings.Compare(rems[i].name, rems[j].name) < 0
	})
	for i := 0; given < s.TotalTokens && len(rems) > 0; i = (i + 1) % len(rems) {
		out[rems[i].name]++
		given++
	}
	return out
}
