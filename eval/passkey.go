package eval

import (
	"fmt"

	"hash/fnv"
	"longctx/corpus"
	"math/rand/v2"
	"regexp"
	"strings"
)

// Passkey retrieval in the Landmark Attention format (epfml/landmark-attention
// llama/run_test.py), with the length given in tokens of the target
// tokenizer, and a needle-in-a-haystack variant (EasyContext style: a 7-digit
// "special magic number" for one city, optionally with distractor cities).

const (
	passkeyTask     = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there."
	passkeyFiller   = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
	passkeyQuestion = "What is the pass key? The pass key is"
	// PasskeyMaxNew is the generation budget: the answer is one number.
	PasskeyMaxNew = 10
)

var niahCities = []string{"Singapore", "Lisbon", "Nairobi", "Montreal", "Osaka", "Quito", "Tbilisi"}

// PasskeyConfig sets a passkey or NIAH grid.
type PasskeyConfig struct {
	// Task is "passkey" (Landmark format), "niah" (magic number) or "kv"
	// (key-value lookup: one object's code in filler, the corpus's recall
	// phrasing).
	Task    string    `yaml:"task" help:"passkey (Landmark Attention format), niah (magic-number needle) or kv (an object's code, the corpus's recall phrasing)"`
	Lengths []int     `yaml:"lengths" help:"prompt lengths in tokens"`
	Depths  []float64 `yaml:"depths" help:"needle depths as a fraction of the filler (0 = start, 1 = end)"`
	Samples int       `yaml:"samples" help:"prompts per (length, depth) cell"`
	Seed    uint64    `yaml:"seed" help:"seed for the keys"`
	// Distractors is the number of other cities' numbers in a NIAH haystack.
	Distractors int `yaml:"distractors" help:"niah: distractor needles (other cities), 0-6"`
	// Haystack is an optional text file used as filler instead of the
	// Landmark sentence (e.g. essays); it is repeated as needed.
	Haystack  string `yaml:"haystack" help:"optional filler text file (default: the Landmark filler sentence)"`
	BatchSize int    `yaml:"batch_size" help:"prompts generated together"`
}

// DefaultPasskey is a 1k..16k grid at five depths.
func DefaultPasskey() PasskeyConfig {
	return PasskeyConfig{
		Task:      "passkey",
		Lengths:   []int{1024, 2048, 4096, 8192, 16384},
		Depths:    []float64{0, 0.25, 0.5, 0.75, 1},
		Samples:   5,
		Seed:      24242424,
		BatchSize: 1,
	}
}

// PasskeyPrompt is one generated test.
type PasskeyPrompt struct {
	Length int     `json:"length"`
	Depth  float64 `json:"depth"`
	Sample int     `json:"sample"`
	Text   string  `json:"-"`
	Answer string  `json:"answer"`
	Tokens int     `json:"tokens"`
}

// PasskeyRecord is a scored test.
type PasskeyRecord struct {
	PasskeyPrompt
	Output  string `json:"output"`
	Correct bool   `json:"correct"`
	// Beyond marks a prompt longer than the model's positions: not run,
	// scored wrong.
	Beyond bool `json:"beyond,omitempty"`
}

// cellRand gives each (length, depth, sample) cell its own generator, so a
// cell's key does not depend on which other cells are in the grid.
func cellRand(seed uint64, length int, depth float64, sample int) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%g/%d", length, depth, sample)
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// placeRand places distractors; it is separate from the key stream so a
// retry at a smaller size puts them at the same relative places.
func placeRand(seed uint64, length int, depth float64, sample int) *rand.Rand {
	return cellRand(^seed, length, depth, sample)
}

// needle returns the needle sentence, the question tail and the answer.
func (c PasskeyConfig) needle(r *rand.Rand) (needle []string, question, answer string) {
	if c.Task == "kv" {
		// The corpus's recall phrasing (corpus.FactStatement): a coloured
		// object's 4-digit code; distractors are other objects' codes.
		keys := r.Perm(len(corpus.FactKeys))
		v := fmt.Sprint(1000 + r.IntN(9000))
		key := corpus.FactKeys[keys[0]]
		needle = []string{corpus.FactStatement(key, v)}
		for i := 1; i <= min(c.Distractors, len(keys)-1); i++ {
			needle = append(needle, corpus.FactStatement(corpus.FactKeys[keys[i]], fmt.Sprint(1000+r.IntN(9000))))
		}
		return needle, corpus.FactQuestionPrefix(key), v
	}
	if c.Task == "niah" {
		num := fmt.Sprint(1000000 + r.IntN(9000000))
		needle = []string{fmt.Sprintf("The special magic %s number is: %s.", niahCities[0], num)}
		for i := 1; i <= min(c.Distractors, len(niahCities)-1); i++ {
			needle = append(needle, fmt.Sprintf("The special magic %s number is: %d.", niahCities[i], 1000000+r.IntN(9000000)))
		}
		return needle, fmt.Sprintf("What is the special magic %s number? The special magic %s number is:", niahCities[0], niahCities[0]), num
	}
	k := fmt.Sprint(1 + r.IntN(50000))
	return []string{fmt.Sprintf("The pass key is %s. Remember it. %s is the pass key.", k, k)}, passkeyQuestion, k
}

// build lays out a prompt with nFiller characters of filler and the needle
// at depth. The passkey layout is the Landmark one: task line, prefix,
// needle line, suffix, question, joined by newlines.
func (c PasskeyConfig) build(filler string, nFiller int, depth float64, needles []string, question string, r *rand.Rand) string {
	body := strings.Repeat(filler+" ", nFiller/(len(filler)+1)+1)[:nFiller]
	cut := int(depth * float64(nFiller))
	if c.Task == "niah" || c.Task == "kv" {
		// Insert at a sentence boundary, so the needle never splits a word.
		if i := strings.LastIndex(body[:cut], ". "); i >= 0 {
			cut = i + 2
		} else {
			cut = 0
		}
		// Distractors go at their own random boundaries; the target needle
		// stays at the requested depth.
		text := body[:cut] + needles[0] + " " + body[cut:]
		for _, d := range needles[1:] {
			pos := r.IntN(len(text) + 1)
			if i := strings.LastIndex(text[:pos], ". "); i >= 0 {
				pos = i + 2
			} else {
				pos = 0
			}
			text = text[:pos] + d + " " + text[pos:]
		}
		if c.Task == "kv" {
			return text + " " + question
		}
		return "There is a special magic number hidden inside a lot of irrelevant text. Find it and memorize it.\n" + text + "\n" + question
	}
	return strings.Join([]string{passkeyTask, body[:cut], needles[0], body[cut:], question}, "\n")
}

// PasskeyPrompts builds the grid. For each length the filler is sized so the
// prompt plus PasskeyMaxNew tokens fit in `length` tokens of tok; lengths
// that cannot hold even the bare prompt are an error.
func PasskeyPrompts(tok Tokenizer, cfg PasskeyConfig, filler string) ([]PasskeyPrompt, error) {
	if filler == "" {
		filler = passkeyFiller
	}
	if cfg.Task != "passkey" && cfg.Task != "niah" && cfg.Task != "kv" {
		return nil, fmt.Errorf("passkey: unknown task %q (want passkey, niah or kv)", cfg.Task)
	}
	var out []PasskeyPrompt
	for _, L := range cfg.Lengths {
		budget := L - PasskeyMaxNew
		// Largest filler size (characters) whose prompt fits, found once per
		// length on a reference cell by bisection; cells then shrink on
		// their own if tokenisation at their needle makes them longer.
		r0 := cellRand(cfg.Seed, L, 0.5, 0)
		nd, q, _ := cfg.needle(r0)
		fits := func(n int) bool {
			return len(tok.Encode(cfg.build(filler, n, 0.5, nd, q, placeRand(cfg.Seed, L, 0.5, 0)))) <= budget
		}
		if !fits(0) {
			return nil, fmt.Errorf("passkey: length %d tokens cannot hold the bare prompt", L)
		}
		lo, hi := 0, 1
		for fits(hi) {
			lo, hi = hi, hi*2
		}
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if fits(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		for _, d := range cfg.Depths {
			if d < 0 || d > 1 {
				return nil, fmt.Errorf("passkey: depth %g outside [0, 1]", d)
			}
			for s := range cfg.Samples {
				r := cellRand(cfg.Seed, L, d, s)
				needles, question, answer := cfg.needle(r)
				n := lo
				var text string
				var ntok int
				for {
					text = cfg.build(filler, n, d, needles, question, placeRand(cfg.Seed, L, d, s))
					ntok = len(tok.Encode(text))
					if ntok <= budget || n == 0 {
						break
					}
					n -= max(1, (ntok-budget)*2)
					n = max(n, 0)
				}
				out = append(out, PasskeyPrompt{Length: L, Depth: d, Sample: s, Text: text, Answer: answer, Tokens: ntok})
			}
		}
	}
	return out, nil
}

var firstNumberRe = regexp.MustCompile(`\d+`)

// ScorePasskey is Landmark's rule: the first run of digits in the output
// equals the key.
func ScorePasskey(output, answer string) bool {
	return firstNumberRe.FindString(output) == answer
}

// RunPasskey generates and scores every prompt of the grid. A prompt that
// does not fit in the model's positions is not run and scores as wrong
// (marked Beyond): a model that cannot take L tokens cannot retrieve at L.
func RunPasskey(lm LM, tok Tokenizer, prompts []PasskeyPrompt, batch int, progress func(done int)) ([]PasskeyRecord, error) {
	batch = max(batch, 1)
	recs := make([]PasskeyRecord, len(prompts))
	var run []int // indices of prompts that fit
	ids := make([][]uint32, len(prompts))
	for i, p := range prompts {
		ids[i] = tok.Encode(p.Text)
		recs[i] = PasskeyRecord{PasskeyPrompt: p}
		if len(ids[i])+PasskeyMaxNew > lm.MaxPositions() {
			recs[i].Beyond = true
			continue
		}
		run = append(run, i)
	}
	for start := 0; start < len(run); start += batch {
		end := min(start+batch, len(run))
		in := make([][]uint32, end-start)
		for j := range in {
			in[j] = ids[run[start+j]]
		}
		outs, err := lm.Generate(in, PasskeyMaxNew, nil)
		if err != nil {
			return nil, fmt.Errorf("passkey: prompts %d..%d: %w", run[start], run[end-1], err)
		}
		for j, o := range outs {
			r := &recs[run[start+j]]
			r.Output = tok.Decode(o)
			r.Correct = ScorePasskey(r.Output, r.Answer)
		}
		if progress != nil {
			progress(end)
		}
	}
	return recs, nil
}

// PasskeyGrid is accuracy per (length, depth) cell, in percent.
type PasskeyGrid struct {
	Lengths []int
	Depths  []float64
	// Acc[i][j] is the accuracy at Lengths[i], Depths[j].
	Acc [][]float64
	N   [][]int
}

// PasskeyTable aggregates records into the grid, in the order of cfg.
func PasskeyTable(recs []PasskeyRecord, lengths []int, depths []float64) PasskeyGrid {
	g := PasskeyGrid{Lengths: lengths, Depths: depths, Acc: make([][]float64, len(lengths)), N: make([][]int, len(lengths))}
	li := map[int]int{}
	for i, l := range lengths {
		li[l] = i
		g.Acc[i] = make([]float64, len(depths))
		g.N[i] = make([]int, len(depths))
	}
	di := map[float64]int{}
	for j, d := range depths {
		di[d] = j
	}
	correct := make([][]int, len(lengths))
	for i := range correct {
		correct[i] = make([]int, len(depths))
	}
	for _, r := range recs {
		i, j := li[r.Length], di[r.Depth]
		g.N[i][j]++
		if r.Correct {
			correct[i][j]++
		}
	}
	for i := range g.Acc {
		for j := range g.Acc[i] {
			if g.N[i][j] > 0 {
				g.Acc[i][j] = 100 * float64(correct[i][j]) / float64(g.N[i][j])
			}
		}
	}
	return g
}

// Table renders the grid as a report table (rows = lengths).
func (g PasskeyGrid) Table(title string) Table {
	t := Table{Title: title, Header: []string{"length \\ depth"}}
	for _, d := range g.Depths {
		t.Header = append(t.Header, fmt.Sprintf("%.0f%%", 100*d))
	}
	t.Header = append(t.Header, "mean")
	for i, l := range g.Lengths {
		row := []string{fmt.Sprint(l)}
		var sum float64
		for j := range g.Depths {
			row = append(row, fmt.Sprintf("%.0f", g.Acc[i][j]))
			sum += g.Acc[i][j]
		}
		row = append(row, fmt.Sprintf("%.1f", sum/float64(max(1, len(g.Depths)))))
		t.Rows = append(t.Rows, row)
	}
	return t
}

// PasskeyMetrics gives the overall accuracy and one per length
// ("<task>_acc", "<task>_acc@<length>").
func PasskeyMetrics(task string, recs []PasskeyRecord) map[string]Metric {
	m := map[string]Metric{}
	byLen := map[int][2]int{}
	var c int
	for _, r := range recs {
		x := byLen[r.Length]
		x[1]++
		if r.Correct {
			c++
			x[0]++
		}
		byLen[r.Length] = x
	}
	m[task+"_acc"] = Proportion(c, len(recs))
	for l, x := range byLen {
		m[fmt.Sprintf("%s_acc@%d", task, l)] = Proportion(x[0], x[1])
	}
	return m
}
