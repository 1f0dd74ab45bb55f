package pipelines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"longctx/corpus"
	"longctx/storage"
	"longctx/tokenizer"
)

// TestTokenizeOrderedFailingSink: a sink that fails must end the run with
// its error, not leave a batch that no worker will finish (the reader sent
// it for ordering, then saw the cancellation before handing it to a worker).
func TestTokenizeOrderedFailingSink(t *testing.T) {
	tok, err := loadTokenizer(context.Background(), testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("a sentence that takes the tokenizer a little while. ", 40)
	read := func(e Emit) (int64, error) {
		for i := range 20000 {
			if err := e.Doc(Document{ID: fmt.Sprint(i), Text: text}); err != nil {
				return int64(i), err
			}
		}
		return 20000, nil
	}
	steps := []Step{sanitiseStep(), tokenizeStep(tok)}
	boom := errors.New("disk full")
	for _, workers := range []int{1, 2, 4} {
		for _, failAt := range []int{0, 700, 3000} {
			n := 0
			done := make(chan error, 1)
			go func() {
				_, err := runChain(context.Background(), read, steps, workers, func(*Doc) error {
					if n == failAt {
						return boom
					}
					n++
					return nil
				})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, boom) {
					t.Fatalf("workers %d, fail at %d: got %v, want the sink's error", workers, failAt, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("workers %d, fail at %d: hung after the sink failed", workers, failAt)
			}
		}
	}
}

// smallTask writes a plain JSON Lines dolma file with n documents (and the
// given extra raw lines) and returns a task for it writing under out.
func smallTask(t *testing.T, dir string, n int, extra ...string) (FileTask, *tokenizer.Tokenizer) {
	t.Helper()
	tok, err := loadTokenizer(context.Background(), testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		b.Write(corpus.JSONLine(map[string]any{"id": fmt.Sprintf("doc-%03d", i), "text": strings.Repeat("word ", 5+i)}))
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	in := filepath.Join(dir, "in", "books.jsonl")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultPrepareConfig()
	cfg.Output, cfg.Tokenizer = filepath.Join(dir, "out"), testTokenizer
	cfg.Sources = []SourceConfig{{Name: "books", Format: "dolma", Inputs: []string{filepath.Join(dir, "in", "*.jsonl")}}}
	tasks, err := ListTasks(context.Background(), cfg, tok.Hash())
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks %v, %v", tasks, err)
	}
	return tasks[0], tok
}

// TestPrepareAccountingCanFail: a step that loses a document (drops it but
// accounts for no record) fails the file with an accounting error instead
// of writing a cache that silently lacks it.
func TestPrepareAccountingCanFail(t *testing.T) {
	task, tok := smallTask(t, t.TempDir(), 30)
	lossy := Step{Name: "lossy", Run: func(d *Doc, c Counts) error {
		if d.ID == "doc-007" {
			d.Drop = &Malformed{Reason: "lost", Records: 0}
		}
		return nil
	}}
	_, err := prepareFile(context.Background(), task, tok, 2, []Step{lossy})
	if err == nil || !strings.Contains(err.Error(), "accounting") || !strings.Contains(err.Error(), task.Input) {
		t.Fatalf("err = %v, want an accounting error naming %s", err, task.Input)
	}
	if ok, _ := storage.Exists(context.Background(), filepath.Join(task.Output, sidecarName(task.Cache))); ok {
		t.Error("a file that failed its accounting has a sidecar (would be reused)")
	}
	// Without the lossy step the same file passes, and the reader's count
	// is what the steps account for.
	res, err := PrepareFile(context.Background(), task, tok, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Read != 30 || res.Stats.Written != 30 || len(res.Stats.Steps) != 5 || res.Stats.Steps[0].In != 30 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

// TestPrepareFilterDeadLetters: documents under min_tokens are counted per
// file in one dead letter with a bounded sample of ids.
func TestPrepareFilterDeadLetters(t *testing.T) {
	task, tok := smallTask(t, t.TempDir(), 200, `{"id": "broken", "text": `)
	task.MinTokens = 100
	res, err := PrepareFile(context.Background(), task, tok, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Drops[ReasonTooShort] == 0 || res.Stats.Drops[ReasonBadJSON] != 1 || res.Stats.Read != 201 {
		t.Fatalf("stats %+v", res.Stats)
	}
	b, err := os.ReadFile(filepath.Join(task.Output, res.DeadLetters))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d dead letters, want 2 (the bad line, one too_short summary):\n%s", len(lines), b)
	}
	var m Malformed
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Reason != ReasonTooShort || m.Records != res.Stats.Drops[ReasonTooShort] || len(m.Sample) != deadSample ||
		m.Sample[0] != "doc-000" || m.Limit != 100 || m.Tokens != int(res.Stats.DroppedTokens) {
		t.Fatalf("too_short letter %+v, stats %+v", m, res.Stats)
	}
}

// TestPrepareReuseChecksCache: a flipped byte in a token cache makes the
// file be redone, not reused.
func TestPrepareReuseChecksCache(t *testing.T) {
	ctx := context.Background()
	task, tok := smallTask(t, t.TempDir(), 20)
	first, err := PrepareFile(ctx, task, tok, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := UpToDate(ctx, task); !ok {
		t.Fatal("an intact cache is not reused")
	}
	path := filepath.Join(task.Output, task.Cache)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := UpToDate(ctx, task); ok {
		t.Fatal("a cache with a flipped byte is reused")
	}
	again, err := PrepareFile(ctx, task, tok, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Cache.XXH64 != first.Cache.XXH64 {
		t.Fatal("redone cache differs from the first")
	}
	if _, ok := UpToDate(ctx, task); !ok {
		t.Fatal("the redone cache is not reused")
	}
}

// TestPrepareSymlinks: a file behind a link is versioned by its target (a
// change behind the link is redone), and a linked directory under ** is
// listed.
func TestPrepareSymlinks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	real := filepath.Join(dir, "elsewhere")
	os.MkdirAll(filepath.Join(real, "sub"), 0o755)
	write := func(p, text string) {
		if err := os.WriteFile(p, corpus.JSONLine(map[string]any{"id": "x", "text": text}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(real, "a.jsonl"), "first version")
	write(filepath.Join(real, "sub", "b.jsonl"), "in a linked directory")
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	if err := os.Symlink(filepath.Join(real, "a.jsonl"), filepath.Join(in, "a.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "sub"), filepath.Join(in, "linked")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultPrepareConfig()
	cfg.Output, cfg.Tokenizer = filepath.Join(dir, "out"), testTokenizer
	cfg.Sources = []SourceConfig{{Name: "books", Format: "dolma", Inputs: []string{filepath.Join(in, "**", "*.jsonl")}}}
	tok, err := loadTokenizer(ctx, testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := ListTasks(ctx, cfg, tok.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].Input != filepath.Join(in, "a.jsonl") || tasks[1].Input != filepath.Join(in, "linked", "b.jsonl") {
		t.Fatalf("tasks %+v, want the linked file and the file in the linked directory", tasks)
	}
	if tasks[0].Size <= 0 || tasks[0].Size != int64(len(corpus.JSONLine(map[string]any{"id": "x", "text": "first version"}))) {
		t.Fatalf("linked file listed with size %d, want its target's", tasks[0].Size)
	}
	for _, task := range tasks {
		if _, err := PrepareFile(ctx, task, tok, 1); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(real, "a.jsonl"), "the second version, longer")
	tasks2, err := ListTasks(ctx, cfg, tok.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := UpToDate(ctx, tasks2[0]); ok {
		t.Fatal("a file changed behind its link is reused")
	}
	if _, ok := UpToDate(ctx, tasks2[1]); !ok {
		t.Fatal("the unchanged file in the linked directory is not reused")
	}
}

// TestPrepareRemovesTempFiles: a killed prepare leaves temp files; the next
// run's plan removes them.
func TestPrepareRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	task, _ := smallTask(t, dir, 3)
	stale := []string{filepath.Join(task.Output, "books", ".x.tokcache.tmp-123"),
		filepath.Join(task.Output, "dead_letters", "books", ".x.jsonl.tmp-9")}
	for _, p := range stale {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultPrepareConfig()
	cfg.Output, cfg.Tokenizer = task.Output, testTokenizer
	cfg.Sources = []SourceConfig{{Name: "books", Format: "dolma", Inputs: []string{task.Input}}}
	if _, err := PlanPrepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the next run's start", p)
		}
	}
}

// TestPrepareJSONLinesInvalidUTF8: raw invalid bytes inside a JSON string
// are counted and replaced per maximal ill-formed subsequence, as for
// parquet; before, encoding/json replaced them byte by byte uncounted.
func TestPrepareJSONLinesInvalidUTF8(t *testing.T) {
	line := "{\"id\": \"bad\", \"text\": \"Caf\xe9 au lait \xe2\x82 costs \xff\xfe more \\u00e9\\ud83d\\ude00.\"}"
	task, tok := smallTask(t, t.TempDir(), 2, line)
	f, _ := LookupFormat("dolma")
	var docs []Document
	rc, _ := os.Open(task.Input)
	n, err := CountJSONLines(rc, f, task.Input, "books", Emit{Doc: func(d Document) error { docs = append(docs, d); return nil },
		Bad: func(m Malformed) error { t.Errorf("bad: %v", m); return nil }})
	rc.Close()
	if err != nil || n != 3 || len(docs) != 3 {
		t.Fatalf("records %d docs %d err %v", n, len(docs), err)
	}
	text, replaced := SanitizeUTF8(docs[2].Text)
	// \xe9 (1), \xe2\x82 (one maximal subpart), \xff (1), \xfe (1).
	if want := "Caf\uFFFD au lait \uFFFD costs \uFFFD\uFFFD more \u00e9\U0001F600."; text != want || replaced != 4 {
		t.Fatalf("text %q (%d replaced), want %q (4)", text, replaced, want)
	}
	res, err := PrepareFile(context.Background(), task, tok, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.InvalidUTF8 != 4 {
		t.Fatalf("invalid_utf8 = %d, want 4", res.Stats.InvalidUTF8)
	}
}

// TestFastJSONMatchesEncodingJSON: on valid UTF-8 the fast path gives the
// same documents and dead letters as encoding/json, including escapes,
// case-folded keys, duplicates and wrong types.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	lines := []string{
		`{"id": "a", "text": "plain"}`,
		`{"text": "esc \" \\ \/ \b\f\n\r\t \u0041\u00e9\u4e2d \ud83d\ude00 lone \ud800 x", "id": "b"}`,
		`{"id": "c", "Text": "folded key"}`,
		`{"id": "d", "text": "first", "text": "second"}`,
		`{"id": "e", "text": null}`,
		`{"id": "f", "text": 12}`,
		`{"id": "g", "text": "  "}`,
		`{"id": {"nested": [1, "x"]}, "text": "object id", "source": "s", "metadata": {"k": "v"}}`,
		` { "text" : "spaces" , "id" : "h" } `,
		`{"i\u0064": "escaped key", "text": "t"}`,
		// Invalid JSON must reach encoding/json and keep its wording.
		"{\"id\": \"c1\", \"text\": \"control \x01 char\"}",
		`{"id": "e1", "text": "bad \q escape"}`,
		`{"id": "e2", "text": "short \u12"}`,
		`{"id": , "text": "x"}`,
		`{"text": "x"} trailing`,
		`{"id": "u", "text": "unterminated}`,
		`{"id": "a", "text": "ok", "metadata": {"k": [1, 2}}`,
		`{"text": "x", "text": nul}`,
		`{"id": "z", "text": "x",}`,
	}
	f, _ := LookupFormat("dolma")
	for _, l := range lines {
		fast, fbad := parseJSONLine([]byte(l), f.JSON, "f", "s", 1)
		slow, sbad := parseJSONLineSlow([]byte(l), f.JSON, "f", "s", 1)
		a, _ := json.Marshal([]any{fast, fbad})
		b, _ := json.Marshal([]any{slow, sbad})
		if string(a) != string(b) {
			t.Errorf("%s:\nfast %s\nslow %s", l, a, b)
		}
	}
}
