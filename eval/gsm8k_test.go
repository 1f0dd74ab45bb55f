package eval

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// The expected values were produced by the harness's own filter and
// exact_match logic (Python re) on the same strings.
func TestScoreGSM8kHarnessCases(t *testing.T) {
	cases := []struct {
		output, gold, strict, flex string
		okStrict, okFlex           bool
	}{
		{"The total is $1,234.", "x\n#### 1234", "[invalid]", "$1,234.", false, true},
		{"She pays $1,234. So\n#### $1,234", "x\n#### 1234", "[invalid]", "$1,234", false, true},
		{"The temperature drops to -5 degrees.\n#### -5", "x\n#### -5", "-5", "-5", true, true},
		{"He ends with -5 dollars.", "x\n#### -5", "[invalid]", "-5", false, true},
		{"No number here.", "x\n#### 3", "[invalid]", "[invalid]", false, false},
		{"First 12, then 7, finally 42.", "x\n#### 42", "[invalid]", "42.", false, true},
		{"#### 42\n#### 7", "x\n#### 42", "42", "7", true, false},
		{"#### 42.", "x\n#### 42", "42.", "42.", true, true},
		{"It costs 3.50 each, so 7.00 in total. #### 7.00", "x\n#### 7", "7.00", "7.00", false, false},
		{"answer: 18.\n", "x\n#### 18", "[invalid]", "18.", false, true},
		{"5+6=11 apples. #### 11", "a <<5+6=11>>11\n#### 11", "11", "11", true, true},
		{"$5", "x\n#### 5", "[invalid]", "$5", false, true},
		{"7", "x\n#### 7", "[invalid]", "7", false, true},
		{"The answer is 1,000,000 dollars", "x\n#### 1000000", "[invalid]", "1,000,000", false, true},
		{"It is 8.", "x\n#### 8.", "[invalid]", "8.", false, true},
		{"####42", "x\n#### 42", "[invalid]", "42", false, true},
		{"#### -3,5", "x\n#### -35", "-3,5", "-3,5", true, true},
		{"the answer is . and ,", "x\n#### 1", "[invalid]", "[invalid]", false, false},
	}
	for _, c := range cases {
		s, f, okS, okF := ScoreGSM8k(c.output, c.gold)
		if s != c.strict || f != c.flex || okS != c.okStrict || okF != c.okFlex {
			t.Errorf("ScoreGSM8k(%q, %q) = %q %q %v %v, want %q %q %v %v",
				c.output, c.gold, s, f, okS, okF, c.strict, c.flex, c.okStrict, c.okFlex)
		}
	}
}

// Golden draws from CPython: random.Random(seed).sample(range(n), k).
func TestPyRandomSampleMatchesCPython(t *testing.T) {
	r := newPyRandom(1234)
	want := [][]int{{6374, 3610, 957, 61, 742}, {7462, 6610, 4769, 286, 5501}, {5677, 687, 806, 6279, 2905}}
	for i, w := range want {
		if got := r.sample(7473, 5); !reflect.DeepEqual(got, w) {
			t.Errorf("draw %d from 7473: got %v, want %v", i, got, w)
		}
	}
	r = newPyRandom(1234)
	for i, w := range [][]int{{7, 1, 0, 9, 4}, {0, 1, 8, 6, 2}} { // pool algorithm (small population)
		if got := r.sample(10, 5); !reflect.DeepEqual(got, w) {
			t.Errorf("draw %d from 10: got %v, want %v", i, got, w)
		}
	}
	r = newPyRandom(1<<40 + 7) // two-word seed, k > 5
	if got, w := r.sample(100000, 8), []int{80439, 97953, 83823, 74762, 92483, 62380, 32878, 80686}; !reflect.DeepEqual(got, w) {
		t.Errorf("two-word seed: got %v, want %v", got, w)
	}
	if got, w := r.sample(50, 10), []int{8, 33, 24, 48, 23, 25, 28, 43, 45, 14}; !reflect.DeepEqual(got, w) {
		t.Errorf("k=10 of 50: got %v, want %v", got, w)
	}
}

func TestGSM8kPromptsHarnessLayout(t *testing.T) {
	train := make([]GSM8kExample, 10)
	for i := range train {
		train[i] = GSM8kExample{Question: "q" + strconv.Itoa(i), Answer: "a" + strconv.Itoa(i) + "\n#### " + strconv.Itoa(i)}
	}
	test := []GSM8kExample{{Question: "Q0", Answer: "#### 1"}, {Question: "Q1", Answer: "#### 2"}}
	prompts, err := GSM8kPrompts(train, test, 5, 1234)
	if err != nil {
		t.Fatal(err)
	}
	// Shots follow random.Random(1234).sample(range(10), 5) twice: [7 1 0 9 4], [0 1 8 6 2].
	shot := func(i int) string {
		return "Question: q" + strconv.Itoa(i) + "\nAnswer: a" + strconv.Itoa(i) + "\n#### " + strconv.Itoa(i) + "\n\n"
	}
	want0 := shot(7) + shot(1) + shot(0) + shot(9) + shot(4) + "Question: Q0\nAnswer:"
	want1 := shot(0) + shot(1) + shot(8) + shot(6) + shot(2) + "Question: Q1\nAnswer:"
	if prompts[0] != want0 {
		t.Errorf("prompt 0:\n%q\nwant\n%q", prompts[0], want0)
	}
	if prompts[1] != want1 {
		t.Errorf("prompt 1:\n%q\nwant\n%q", prompts[1], want1)
	}
	zero, _ := GSM8kPrompts(train, test, 0, 1234)
	if zero[0] != "Question: Q0\nAnswer:" {
		t.Errorf("0-shot prompt %q", zero[0])
	}
	if _, err := GSM8kPrompts(train[:3], test, 5, 1234); err == nil {
		t.Error("5 shots from 3 train examples: want error")
	}
}

func TestCutAtStop(t *testing.T) {
	cases := []struct{ in, want string }{
		{" 3+4=7\n#### 7\n\nQuestion: next", " 3+4=7\n#### 7\n\n"},
		{" 7</s>junk", " 7"},
		{" 7<|im_end|>Question:", " 7"},
		{"no stop", "no stop"},
		{"Question: at start", ""},
	}
	for _, c := range cases {
		if got := CutAtStop(c.in, GSM8kStops); got != c.want {
			t.Errorf("CutAtStop(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizeGSM8kTrailingDotBeforeNewline(t *testing.T) {
	// Python's `\.$` also matches before a final newline; the newline stays.
	if got := NormalizeGSM8k("18.\n"); got != "18\n" {
		t.Errorf("got %q", got)
	}
	if got := NormalizeGSM8k("Step <<2*3=6>>6\n#### 1,200"); got != "1200" {
		t.Errorf("gold: got %q", got)
	}
}

func TestReadGSM8kJSONLAndParquet(t *testing.T) {
	dir := t.TempDir()
	exs := GenerateGSM8kFormat(3, 25)
	jl := filepath.Join(dir, "test.jsonl")
	if err := WriteGSM8kJSONL(jl, exs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadGSM8k(jl)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exs) {
		t.Fatal("JSONL round trip differs")
	}
	pq := filepath.Join(dir, "test-00000-of-00001.parquet")
	if err := parquet.WriteFile(pq, exs); err != nil {
		t.Fatal(err)
	}
	got, err = ReadGSM8k(pq)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exs) {
		t.Fatal("parquet round trip differs")
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"question":"a","answer":"#### 1"}`+"\n{oops\n"), 0o644)
	if _, err := ReadGSM8k(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("bad JSON line: err = %v, want file:line", err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, []byte(`{"question":"a"}`+"\n"), 0o644)
	if _, err := ReadGSM8k(empty); err == nil || !strings.Contains(err.Error(), "record 1") {
		t.Errorf("missing answer: err = %v", err)
	}
}

var annotRe = regexp.MustCompile(`<<(\d+)([-+*])(\d+)=(\d+)>>`)

func TestGenerateGSM8kFormatDeterministicAndCorrect(t *testing.T) {
	a := GenerateGSM8kFormat(7, 200)
	b := GenerateGSM8kFormat(7, 200)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different problems")
	}
	if !reflect.DeepEqual(GenerateGSM8kFormat(7, 50), a[:50]) {
		t.Fatal("prefix of a longer run differs")
	}
	if reflect.DeepEqual(GenerateGSM8kFormat(8, 50), a[:50]) {
		t.Fatal("different seeds, same problems")
	}
	for i, ex := range a {
		// Every annotation is right and the last result is the #### answer.
		ms := annotRe.FindAllStringSubmatch(ex.Answer, -1)
		if len(ms) == 0 {
			t.Fatalf("problem %d has no working: %q", i, ex.Answer)
		}
		var last int
		for _, m := range ms {
			x, _ := strconv.Atoi(m[1])
			y, _ := strconv.Atoi(m[3])
			z, _ := strconv.Atoi(m[4])
			want := map[string]int{"+": x + y, "-": x - y, "*": x * y}[m[2]]
			if z != want {
				t.Fatalf("problem %d: wrong working %s", i, m[0])
			}
			last = z
		}
		if ExtractStrict(ex.Answer) != strconv.Itoa(last) {
			t.Fatalf("problem %d: #### %s, working ends at %d", i, ExtractStrict(ex.Answer), last)
		}
		if !strings.HasPrefix(GSM8kGold(ex.Answer), strconv.Itoa(last)) {
			t.Fatalf("problem %d: gold %q", i, GSM8kGold(ex.Answer))
		}
	}
	train, test, err := GenerateGSM8kSplits(7, 300, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ex := range train {
		seen[ex.Question] = true
	}
	for _, ex := range test {
		if seen[ex.Question] {
			t.Fatalf("test question also in train: %q", ex.Question)
		}
	}
	if len(test) != 100 {
		t.Fatalf("got %d test problems", len(test))
	}
}
