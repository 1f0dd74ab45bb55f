package tokenizer

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"longctx/tokenizer/corpus"
)

var update = flag.Bool("update", false, "regenerate testdata/golden_small.jsonl with the reference (node)")

const (
	testTokenizer = "testdata/tokenizer.json"
	goldenSmall   = "testdata/golden_small.jsonl"
	genDir        = "testdata/gen"
	installHint   = "install the reference encoder: (cd tokenizer/testdata/gen && npm ci)"
)

func loadTest(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := Load(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reference runs golden.js (npm tokenizers 0.23.2) on docs and returns its ids.
func reference(t testing.TB, docs []string) [][]uint32 {
	t.Helper()
	return referenceWith(t, testTokenizer, docs)
}

func referenceWith(t testing.TB, tokPath string, docs []string) [][]uint32 {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v); %s", err, installHint)
	}
	if _, err := os.Stat(filepath.Join(genDir, "node_modules", "tokenizers", "package.json")); err != nil {
		t.Fatalf("npm module tokenizers missing (%v); %s", err, installHint)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "docs.bin"), filepath.Join(dir, "ids.bin")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := corpus.WriteDocs(f, docs); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(genDir, "golden.js"), tokPath, in, out, "--threads", "2")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("golden.js: %v\n%s\n%s", err, msg, installHint)
	}
	f, err = os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := corpus.ReadIDs(f, len(docs))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// compare reports every document whose ids differ (the first few in detail).
func compare(t *testing.T, tok *Tokenizer, docs []string, want, got [][]uint32) {
	t.Helper()
	bad := 0
	for i := range docs {
		k := firstDiff(want[i], got[i])
		if k < 0 {
			continue
		}
		bad++
		if bad <= 5 {
			lo := max(0, k-3)
			t.Errorf("doc %d (%d bytes) differs at id %d of %d/%d:\n  want %v (%q)\n  got  %v (%q)\n  doc %q",
				i, len(docs[i]), k, len(want[i]), len(got[i]),
				want[i][lo:min(len(want[i]), k+4)], tok.Decode(want[i][lo:min(len(want[i]), k+4)]),
				got[i][lo:min(len(got[i]), k+4)], tok.Decode(got[i][lo:min(len(got[i]), k+4)]),
				clip(docs[i], 300))
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d documents differ from the reference", bad, len(docs))
	}
}

func firstDiff(a, b []uint32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

type goldenCase struct {
	Text string   `json:"text,omitempty"`
	B64  string   `json:"b64,omitempty"` // raw bytes when not valid UTF-8
	IDs  []uint32 `json:"ids"`
}

func (c goldenCase) doc() string {
	if c.B64 != "" {
		b, _ := base64.StdEncoding.DecodeString(c.B64)
		return string(b)
	}
	return c.Text
}

// TestGoldenSmall checks the committed reference ids of the hard cases (no
// node needed). go test ./tokenizer -run TestGoldenSmall -update regenerates
// them with node.
func TestGoldenSmall(t *testing.T) {
	tok := loadTest(t)
	if *update {
		docs := corpus.Generate(320, 7)
		ids := reference(t, docs)
		var b strings.Builder
		for i, d := range docs {
			c := goldenCase{IDs: ids[i]}
			if utf8.ValidString(d) {
				c.Text = d
			} else {
				c.B64 = base64.StdEncoding.EncodeToString([]byte(d))
			}
			line, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(goldenSmall, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(goldenSmall)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []string
	var want [][]uint32
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c goldenCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s:%d: %v", goldenSmall, len(docs)+1, err)
		}
		docs = append(docs, c.doc())
		want = append(want, c.IDs)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(docs) < 300 {
		t.Fatalf("%s has %d cases, want >= 300", goldenSmall, len(docs))
	}
	got := make([][]uint32, len(docs))
	for i, d := range docs {
		got[i] = tok.Encode(d)
	}
	compare(t, tok, docs, want, got)
}

// TestGoldenCorpus compares every id of a >= 10,000-document, >= 10M-token
// mixed corpus against npm tokenizers, run live.
func TestGoldenCorpus(t *testing.T) {
	tok := loadTest(t)
	start := time.Now()
	docs, st, err := corpus.Build(corpus.Options{Bytes: 21 << 20, Generated: 4000, MaxDoc: 2 << 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("corpus: %v (%v)", st, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	want := reference(t, docs)
	t.Logf("reference: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	got := tok.EncodeBatch(docs, false, 0)
	t.Logf("longctx: %v", time.Since(start).Round(time.Millisecond))
	tokens := 0
	for _, ids := range want {
		tokens += len(ids)
	}
	t.Logf("%d documents, %d reference tokens", len(docs), tokens)
	if len(docs) < 10000 || tokens < 10_000_000 {
		t.Errorf("corpus too small: %d documents, %d tokens; want >= 10,000 and >= 10M", len(docs), tokens)
	}
	compare(t, tok, docs, want, got)
	for i, d := range docs[:2000] {
		if n := tok.Count(d); n != len(got[i]) {
			t.Fatalf("doc %d: Count %d, len(Encode) %d", i, n, len(got[i]))
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}

// TestGoldenVariants checks the other pre-tokenizer forms Load accepts
// against the reference: Digits without individual_digits, no Digits at all
// (GPT-2), and an explicit Split step before ByteLevel(use_regex=false).
func TestGoldenVariants(t *testing.T) {
	data, err := os.ReadFile(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	split := map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2Pattern}, "behavior": "Isolated", "invert": false}
	byteLevel := func(useRegex bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
	}
	variants := map[string]any{
		"digits-runs": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": false}, byteLevel(true)}},
		"gpt2": byteLevel(true),
		"split": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true}, split, byteLevel(false)}},
	}
	docs := corpus.Generate(800, 13)
	for name, pre := range variants {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		m["pre_tokenizer"] = pre
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := referenceWith(t, path, docs)
		got := tok.EncodeBatch(docs, false, 0)
		t.Run(name, func(t *testing.T) { compare(t, tok, docs, want, got) })
	}
}

// TestGoldenSpecialsAsText: WithSpecialsAsText must encode like the reference
// given the same file without the special added tokens (their strings are
// then plain text to it).
func TestGoldenSpecialsAsText(t *testing.T) {
	data, err := os.ReadFile(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["added_tokens"] = []any{}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nospecial.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tok := loadTest(t).WithSpecialsAsText()
	var docs []string
	for _, d := range corpus.Generate(1500, 17) {
		if strings.Contains(d, "<") {
			docs = append(docs, d)
		}
	}
	if len(docs) < 100 {
		t.Fatalf("only %d documents with '<'", len(docs))
	}
	want := referenceWith(t, path, docs)
	got := tok.EncodeBatch(docs, false, 0)
	compare(t, tok, docs, want, got)
	if ids := tok.Encode("<|endoftext|>"); len(ids) < 2 {
		t.Errorf("WithSpecialsAsText encodes <|endoftext|> as %v", ids)
	}
	if ids := loadTest(t).Encode("<|endoftext|>"); len(ids) != 1 || ids[0] != 0 {
		t.Errorf("default encodes <|endoftext|> as %v; want [0]", ids)
	}
}
