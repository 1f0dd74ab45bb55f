package eval

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// SelectConfig weighs metrics into one score for ranking checkpoints.
type SelectConfig struct {
	// Weights per metric (or metric prefix, as in the gate).
	Weights map[string]float64 `yaml:"weights" help:"metric (or prefix) -> weight"`
	// Random is a metric's chance-level score; accuracies are normalised
	// as (s - random) / (100 - random) * 100, clipped at 0 (Open LLM
	// Leaderboard v2). Metrics where lower is better (losses) enter as
	// their negative.
	Random map[string]float64 `yaml:"random" help:"metric (or prefix) -> chance-level score for normalisation"`
	// Reference names the checkpoint the gates compare against, and
	// MaxDrop the allowed drops (as for `eval compare`); a checkpoint that
	// fails a gate ranks below every one that passes.
	Reference string            `yaml:"reference" help:"checkpoint name the gates compare against"`
	MaxDrop   map[string]string `yaml:"max_drop" help:"metric (or prefix) -> allowed drop vs reference, e.g. 2.0 or 2se"`
}

// Candidate is one checkpoint's metrics.
type Candidate struct {
	Name    string
	Metrics map[string]Metric
}

// Ranked is a candidate with its score.
type Ranked struct {
	Candidate
	Score  float64
	Parts  map[string]float64 // normalised metric values that entered the score
	Failed []string           // gates failed
}

func lookup(m map[string]float64, metric string) (float64, bool) {
	// The longest matching key wins, so "gsm8k_strict" overrides "gsm8k".
	best, val, ok := -1, 0.0, false
	for k, v := range m {
		if covers(k, metric) && len(k) > best {
			best, val, ok = len(k), v, true
		}
	}
	return val, ok
}

// Rank scores every candidate and sorts best first (ties by name). Every
// candidate must have every weighted metric.
func Rank(cands []Candidate, cfg SelectConfig) ([]Ranked, error) {
	if len(cfg.Weights) == 0 {
		return nil, fmt.Errorf("select: no weights")
	}
	var gates map[string]Allowance
	var ref map[string]Metric
	if len(cfg.MaxDrop) > 0 {
		var items []string
		for _, k := range sortedKeys(cfg.MaxDrop) {
			items = append(items, k+"="+cfg.MaxDrop[k])
		}
		var err error
		if gates, err = ParseMaxDrops(items); err != nil {
			return nil, fmt.Errorf("select: %w", err)
		}
		for _, c := range cands {
			if c.Name == cfg.Reference {
				ref = c.Metrics
			}
		}
		if ref == nil {
			return nil, fmt.Errorf("select: reference checkpoint %q not among the candidates", cfg.Reference)
		}
	}
	out := make([]Ranked, 0, len(cands))
	for _, c := range cands {
		r := Ranked{Candidate: c, Parts: map[string]float64{}}
		var wsum float64
		for _, key := range sortedKeys(cfg.Weights) {
			w := cfg.Weights[key]
			names := selectMetrics(key, c.Metrics)
			for _, name := range names {
				m := c.Metrics[name]
				v := m.Value
				if !m.HigherIsBetter {
					v = -v
				} else if rnd, ok := lookup(cfg.Random, name); ok && rnd < 100 {
					v = math.Max(0, (v-rnd)/(100-rnd)*100)
				}
				r.Parts[name] = v
				r.Score += w * v
				wsum += w
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("select: checkpoint %s has no metric %s", c.Name, key)
			}
		}
		if wsum > 0 {
			r.Score /= wsum
		}
		if gates != nil {
			cmps, err := CompareMetrics(ref, c.Metrics, gates, false)
			if err != nil {
				return nil, fmt.Errorf("select: checkpoint %s: %w", c.Name, err)
			}
			for _, cmp := range cmps {
				if cmp.Fail {
					r.Failed = append(r.Failed, fmt.Sprintf("%s drop %.3g > %.3g", cmp.Metric, cmp.Drop, cmp.Limit))
				}
			}
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (len(a.Failed) == 0) != (len(b.Failed) == 0) {
			return len(a.Failed) == 0
		}
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		return a.Name < b.Name
	})
	return out, nil
}

// RankTable renders the ranking as Markdown: rank, checkpoint, score, each
// weighted metric, gate result.
func RankTable(rs []Ranked) Table {
	var cols []string
	seen := map[string]bool{}
	for _, r := range rs {
		for k := range r.Parts {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	sort.Strings(cols)
	t := Table{Title: "Checkpoint ranking", Header: append(append([]string{"rank", "checkpoint", "score"}, cols...), "gates")}
	for i, r := range rs {
		row := []string{fmt.Sprint(i + 1), r.Name, fmt.Sprintf("%.3f", r.Score)}
		for _, c := range cols {
			if m, ok := r.Metrics[c]; ok {
				row = append(row, fmt.Sprintf("%.4g", m.Value))
			} else {
				row = append(row, "-")
			}
		}
		if len(r.Failed) == 0 {
			row = append(row, "pass")
		} else {
			row = append(row, "FAIL: "+strings.Join(r.Failed, "; "))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}
