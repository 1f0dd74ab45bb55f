package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/parquet-go/parquet-go"

	"longctx/storage"
)

// GSM8kExample is one record of openai/gsm8k: a question and its worked
// answer ending in "#### N".
type GSM8kExample struct {
	Question string `json:"question" parquet:"question"`
	Answer   string `json:"answer" parquet:"answer"`
}

// GSM8k protocol constants, from lm-evaluation-harness tasks/gsm8k/gsm8k.yaml
// (task version 3.0).
const (
	GSM8kShots       = 5
	GSM8kFewshotSeed = 1234
	GSM8kMaxNew      = 256
	gsm8kTargetDelim = " "
	gsm8kShotDelim   = "\n\n"
	Invalid          = "[invalid]"
)

// GSM8kStops are the harness's stop sequences (the "until" list).
var GSM8kStops = []string{"Question:", "</s>", "<|im_end|>"}

// ReadGSM8k reads a GSM8k split from a JSON Lines file (.jsonl, .json) or a
// parquet file (.parquet), the two forms the HF dataset ships in; local or
// gs:// paths. Records
// missing a question or an answer are errors naming the file and record.
func ReadGSM8k(path string) ([]GSM8kExample, error) {
	var exs []GSM8kExample
	var err error
	if strings.HasSuffix(path, ".parquet") {
		exs, err = readGSM8kParquet(path)
	} else {
		f, ferr := storage.Open(context.Background(), path)
		if ferr != nil {
			return nil, ferr
		}
		defer f.Close()
		exs, err = readGSM8kJSONL(f, path)
	}
	if err != nil {
		return nil, err
	}
	for i, ex := range exs {
		if strings.TrimSpace(ex.Question) == "" || strings.TrimSpace(ex.Answer) == "" {
			return nil, fmt.Errorf("%s: record %d: empty question or answer", path, i+1)
		}
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return exs, nil
}

func readGSM8kJSONL(r io.Reader, name string) ([]GSM8kExample, error) {
	var exs []GSM8kExample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var ex GSM8kExample
		if err := json.Unmarshal(b, &ex); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		exs = append(exs, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return exs, nil
}

func readGSM8kParquet(path string) ([]GSM8kExample, error) {
	r, err := storage.OpenReaderAt(context.Background(), path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	exs, err := parquet.Read[GSM8kExample](r, r.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return exs, nil
}

// WriteGSM8kJSONL writes examples as JSON Lines in the HF layout.
func WriteGSM8kJSONL(path string, exs []GSM8kExample) error {
	var b strings.Builder
	for _, ex := range exs {
		line, err := json.Marshal(ex)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return writeFileAtomic(path, []byte(b.String()))
}

// GSM8kPrompts builds the harness prompt for every test example: shots
// examples drawn from train with random.Random(seed).sample, one draw per
// test example in order (the harness shares one generator across the task),
// each "Question: q\nAnswer: a", joined by blank lines, then the test
// question ending "Answer:".
func GSM8kPrompts(train, test []GSM8kExample, shots int, seed uint64) ([]string, error) {
	if shots > len(train) {
		return nil, fmt.Errorf("gsm8k: %d shots but only %d train examples", shots, len(train))
	}
	rnd := newPyRandom(seed)
	prompts := make([]string, len(test))
	for i, ex := range test {
		var b strings.Builder
		if shots > 0 {
			for _, j := range rnd.sample(len(train), shots) {
				b.WriteString(gsm8kQuestion(train[j]))
				b.WriteString(gsm8kTargetDelim)
				b.WriteString(train[j].Answer)
				b.WriteString(gsm8kShotDelim)
			}
		}
		b.WriteString(gsm8kQuestion(ex))
		prompts[i] = b.String()
	}
	return prompts, nil
}

func gsm8kQuestion(ex GSM8kExample) string { return "Question: " + ex.Question + "\nAnswer:" }

// CutAtStop returns text up to the first occurrence of any stop string, as
// the harness does with generated text.
func CutAtStop(text string, stops []string) string {
	cut := len(text)
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && i < cut {
			cut = i
		}
	}
	return text[:cut]
}

var (
	strictRe   = regexp.MustCompile(`#### (\-?[0-9\.\,]+)`)
	flexibleRe = regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`)
)

// ExtractStrict is the harness's "strict-match" filter: the first "#### N".
func ExtractStrict(output string) string {
	m := strictRe.FindStringSubmatch(output)
	if m == nil {
		return Invalid
	}
	return strings.TrimSpace(m[1])
}

// ExtractFlexible is the harness's "flexible-extract" filter: the last
// number-like match, taking its first non-empty group.
func ExtractFlexible(output string) string {
	ms := flexibleRe.FindAllStringSubmatch(output, -1)
	if len(ms) == 0 {
		return Invalid
	}
	last := ms[len(ms)-1]
	for _, g := range last[1:] {
		if g != "" {
			return strings.TrimSpace(g)
		}
	}
	return Invalid
}

var (
	normCommaRe   = regexp.MustCompile(`,`)
	normDollarRe  = regexp.MustCompile(`\$`)
	normHashesRe  = regexp.MustCompile(`(?s).*#### `)
	normTrailDot  = regexp.MustCompile(`\.(\n?)\z`) // Python's `\.$` also matches before a final newline
	normDollarEnd = "$1"
)

// NormalizeGSM8k applies the harness exact_match settings used by GSM8k:
// regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"] in that order, then
// ignore_case. Gold answers go through the same function.
func NormalizeGSM8k(s string) string {
	s = normCommaRe.ReplaceAllString(s, "")
	s = normDollarRe.ReplaceAllString(s, "")
	s = normHashesRe.ReplaceAllString(s, "")
	s = normTrailDot.ReplaceAllString(s, normDollarEnd)
	return strings.ToLower(s)
}

// GSM8kGold is the normalised gold answer (the number after "####").
func GSM8kGold(answer string) string { return NormalizeGSM8k(answer) }

// GSM8kRecord is one scored question, written as one JSON line.
type GSM8kRecord struct {
	Index           int    `json:"index"`
	Prompt          string `json:"prompt"`
	Output          string `json:"output"`
	ExtractedStrict string `json:"extracted_strict"`
	ExtractedFlex   string `json:"extracted_flexible"`
	Gold            string `json:"gold"`
	CorrectStrict   bool   `json:"correct_strict"`
	CorrectFlex     bool   `json:"correct_flexible"`
	PromptTokens    int    `json:"prompt_tokens"`
	OutputTokens    int    `json:"output_tokens"`
}

// ScoreGSM8k scores one generated output (already cut at the stops) against
// the gold answer with both filters.
func ScoreGSM8k(output, goldAnswer string) (strict, flex string, okStrict, okFlex bool) {
	gold := GSM8kGold(goldAnswer)
	strict = ExtractStrict(output)
	flex = ExtractFlexible(output)
	okStrict = NormalizeGSM8k(strict) == gold
	okFlex = NormalizeGSM8k(flex) == gold
	return
}

// GSM8kConfig sets a GSM8k run. Zero values mean the harness defaults.
type GSM8kConfig struct {
	Train     string `yaml:"train" help:"GSM8k train split (JSONL or parquet), the few-shot pool"`
	Test      string `yaml:"test" help:"GSM8k test split (JSONL or parquet)"`
	Limit     int    `yaml:"limit" help:"evaluate only the first N test questions (0 = all)"`
	Shots     int    `yaml:"shots" help:"few-shot examples per question"`
	Seed      uint64 `yaml:"seed" help:"few-shot sampling seed (harness: 1234)"`
	MaxNew    int    `yaml:"max_new" help:"maximum new tokens per answer (harness: 256)"`
	BatchSize int    `yaml:"batch_size" help:"prompts generated together"`
}

// DefaultGSM8k returns the lm-evaluation-harness settings.
func DefaultGSM8k() GSM8kConfig {
	return GSM8kConfig{Shots: GSM8kShots, Seed: GSM8kFewshotSeed, MaxNew: GSM8kMaxNew, BatchSize: 8}
}

// RunGSM8k generates an answer for every test question and scores it. The
// progress callback (may be nil) is told how many questions are done.
func RunGSM8k(lm LM, tok Tokenizer, train, test []GSM8kExample, cfg GSM8kConfig, progress func(done int)) ([]GSM8kRecord, error) {
	if cfg.Limit > 0 && cfg.Limit < len(test) {
		test = test[:cfg.Limit]
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1
	}
	prompts, err := GSM8kPrompts(train, test, cfg.Shots, cfg.Seed)
	if err != nil {
		return nil, err
	}
	recs := make([]GSM8kRecord, len(test))
	for start := 0; start < len(test); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(test))
		ids := make([][]uint32, end-start)
		for i := range ids {
			ids[i] = tok.Encode(prompts[start+i])
			if room := lm.MaxPositions() - len(ids[i]); room < cfg.MaxNew {
				// The harness left-truncates the context to fit; keep the tail.
				keep := lm.MaxPositions() - cfg.MaxNew
				if keep <= 0 {
					return nil, fmt.Errorf("gsm8k: max_new %d does not fit in %d positions", cfg.MaxNew, lm.MaxPositions())
				}
				ids[i] = ids[i][len(ids[i])-keep:]
			}
		}
		outs, err := lm.Generate(ids, cfg.MaxNew, stopAtText(tok, GSM8kStops))
		if err != nil {
			return nil, fmt.Errorf("gsm8k: questions %d..%d: %w", start, end-1, err)
		}
		for i, out := range outs {
			k := start + i
			text := CutAtStop(tok.Decode(out), GSM8kStops)
			s, f, okS, okF := ScoreGSM8k(text, test[k].Answer)
			recs[k] = GSM8kRecord{
				Index: k, Prompt: prompts[k], Output: text,
				ExtractedStrict: s, ExtractedFlex: f, Gold: GSM8kGold(test[k].Answer),
				CorrectStrict: okS, CorrectFlex: okF,
				PromptTokens: len(ids[i]), OutputTokens: len(out),
			}
		}
		if progress != nil {
			progress(end)
		}
	}
	return recs, nil
}

// stopAtText finishes a prompt once its decoded continuation contains one of
// the stop strings. Only the tail is decoded, so the check stays cheap.
func stopAtText(tok Tokenizer, stops []string) func(int, []uint32) bool {
	longest := 0
	for _, s := range stops {
		longest = max(longest, len(s))
	}
	return func(_ int, out []uint32) bool {
		// A token spans at least one byte, so the last `longest` tokens cover
		// any stop string that ends in the newest token.
		tail := out[max(0, len(out)-longest):]
		text := tok.Decode(tail)
		for _, s := range stops {
			if strings.Contains(text, s) {
				return true
			}
		}
		return false
	}
}

// GSM8kMetrics summarises records as the two harness metrics (percent).
func GSM8kMetrics(recs []GSM8kRecord) map[string]Metric {
	var s, f int
	for _, r := range recs {
		if r.CorrectStrict {
			s++
		}
		if r.CorrectFlex {
			f++
		}
	}
	return map[string]Metric{
		"gsm8k_strict":   Proportion(s, len(recs)),
		"gsm8k_flexible": Proportion(f, len(recs)),
	}
}

// WriteJSONL writes records as JSON Lines atomically.
func WriteJSONL[T any](path string, recs []T) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return writeFileAtomic(path, []byte(b.String()))
}
