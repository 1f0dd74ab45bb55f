package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"longctx/corpus"
	"longctx/shards"
	"longctx/storage"
	"longctx/storage/gcstest"
)

// Pipeline tests run on the direct runner by default (fast); the
// determinism test also runs prism, and the universal test a separately
// started prism job server.
func TestMain(m *testing.M) { ptest.MainWithDefault(m, "direct") }

const testTokenizer = "../tokenizer/testdata/tokenizer.json"

// demoConfig generates the demo corpus under root/corpus and returns a
// config over it writing to root/out.
func demoConfig(t *testing.T, root string) (PrepareConfig, []corpus.DemoFile) {
	t.Helper()
	files, err := corpus.GenerateDemo(context.Background(), storage.Join(root, "corpus"), 1)
	if err != nil {
		t.Fatal(err)
	}
	c := func(p string) string { return storage.Join(root, "corpus", p) }
	cfg := DefaultPrepareConfig()
	cfg.Output = storage.Join(root, "out")
	cfg.Tokenizer = testTokenizer
	cfg.Sources = []SourceConfig{
		{Name: "books", Format: "dolma", Inputs: []string{c("dolma/books/*.json.gz")}},
		{Name: "code", Format: "stack", Inputs: []string{c("the-stack-dedup/data/**/*.parquet")}, MinTokens: 8192},
		{Name: "fineweb-edu", Format: "fineweb-edu", Inputs: []string{c("fineweb-edu/sample/10BT/*.parquet")}},
		{Name: "dclm", Format: "dclm", Inputs: []string{c("dclm-baseline-1.0/**/*.jsonl.zstd")}},
		{Name: "math", Format: "finemath", Inputs: []string{c("finemath/finemath-4plus/*.parquet")}},
	}
	return cfg, files
}

func runPrepare(t *testing.T, cfg PrepareConfig, runner string) *PreparePlan {
	t.Helper()
	plan, err := PlanPrepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = runWith(plan, runner); err != nil {
		t.Fatalf("run prepare (%s): %v", runner, err)
	}
	return plan
}

// runWith runs plan on the named runner ("" = the test default).
func runWith(plan *PreparePlan, runner string) (beam.PipelineResult, error) {
	if runner == "" {
		return nil, ptest.Run(plan.Pipeline)
	}
	return beam.Run(context.Background(), runner, plan.Pipeline)
}

func readManifest(t *testing.T, out string) *shards.PrepareManifest {
	t.Helper()
	m, err := ReadManifest(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPrepareDemoCorpus runs the whole pipeline over the five formats and
// checks accounting against what the generator wrote, the dead letters,
// and every cache against the reader + tokenizer directly.
func TestPrepareDemoCorpus(t *testing.T) {
	root := t.TempDir()
	cfg, demo := demoConfig(t, root)
	plan, err := PlanPrepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	passert.Count(plan.Pipeline.Root(), plan.Outputs.Files, "files", len(demo))
	passert.Count(plan.Pipeline.Root(), plan.Outputs.PerSource, "sources", len(cfg.Sources))
	if err := ptest.Run(plan.Pipeline); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, cfg.Output)

	// Per file: records the generator wrote = records read, except the
	// truncated DCLM shard whose last frame is lost (counted once).
	byInput := map[string]shards.CacheRef{}
	for _, s := range m.Sources {
		if err := s.Stats.Check(); err != nil {
			t.Errorf("source %s: %v", s.Name, err)
		}
		for _, c := range s.Caches {
			byInput[c.Input.Path] = c
		}
	}
	for _, f := range demo {
		c, ok := byInput[storage.Join(root, "corpus", f.Path)]
		if !ok {
			t.Fatalf("%s: not in manifest", f.Path)
		}
		malformed := c.Stats.Dropped() - c.Stats.Drops[ReasonTooShort]
		if strings.Contains(f.Path, "shard_00000001") {
			// How many records the cut loses depends on the content; at
			// least the last one is not written.
			if c.Stats.Drops[ReasonTruncatedStream] != 1 || c.Stats.Read > int64(f.Records) || c.Stats.Written >= int64(f.Records) {
				t.Errorf("%s: truncated shard stats %+v", f.Path, c.Stats)
			}
			continue
		}
		if c.Stats.Read != int64(f.Records) || malformed != int64(f.Malformed) {
			t.Errorf("%s: read %d malformed %d, generator wrote %d with %d malformed (%v)", f.Path, c.Stats.Read, malformed, f.Records, f.Malformed, c.Stats.Drops)
		}
	}
	code := m.Source("code")
	if code.Stats.Drops[ReasonTooShort] == 0 || code.Stats.Written == 0 {
		t.Errorf("code: want documents both above and below 8192 tokens, got %+v", code.Stats)
	}
	for i, n := range code.Stats.Lengths.Docs {
		if n > 0 && i < 5 { // buckets below 8k
			t.Errorf("code kept %d documents under 8k tokens", n)
		}
	}
	if fw := m.Source("fineweb-edu"); fw.Stats.InvalidUTF8 == 0 {
		t.Errorf("fineweb-edu: invalid UTF-8 not counted")
	}

	// Dead letters: one line per dropped record entry, each with a reason.
	dl, err := os.ReadFile(filepath.Join(cfg.Output, m.DeadLetters))
	if err != nil {
		t.Fatal(err)
	}
	var dropped int64
	for _, s := range m.Sources {
		dropped += s.Stats.Dropped()
	}
	var fromDL int64
	for _, line := range bytes.Split(bytes.TrimSpace(dl), []byte("\n")) {
		var mf Malformed
		if err := json.Unmarshal(line, &mf); err != nil || mf.Reason == "" || mf.File == "" {
			t.Fatalf("bad dead letter %q: %v", line, err)
		}
		fromDL += mf.Records
	}
	if fromDL != dropped {
		t.Errorf("dead letters cover %d records, manifest drops %d", fromDL, dropped)
	}
	report, _ := os.ReadFile(filepath.Join(cfg.Output, "report.md"))
	if !bytes.Contains(report, []byte("missing_column")) || bytes.Contains(report, []byte("MISMATCH")) {
		t.Errorf("report:\n%s", report)
	}

	// Every cache holds exactly the kept documents, in input order, with the
	// tokenizer's ids.
	tok, err := LoadTokenizer(context.Background(), testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range plan.Tasks {
		ref := byInput[task.Input]
		cache, err := shards.OpenCache(context.Background(), filepath.Join(cfg.Output, ref.Path))
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.Verify(); err != nil {
			t.Fatal(err)
		}
		var want []Document
		f, _ := LookupFormat(task.Format)
		data, _ := os.ReadFile(task.Input)
		emit := Emit{Doc: func(d Document) error { want = append(want, d); return nil }, Bad: func(Malformed) error { return nil }}
		if f.Parquet != nil {
			ReadParquet(bytes.NewReader(data), int64(len(data)), f, task.Input, task.Source, emit)
		} else {
			ReadJSONLines(bytes.NewReader(data), f, task.Input, task.Source, emit)
		}
		i := 0
		err = cache.ForEach(func(_ int, e shards.CacheEntry, toks []uint32) error {
			for i < len(want) {
				d := want[i]
				i++
				text, _ := sanitizeUTF8(d.Text)
				ids := tok.EncodeDoc(text)
				if task.MinTokens > 0 && len(ids) < task.MinTokens {
					continue
				}
				if d.ID != e.ID || !equalIDs(ids, toks) {
					t.Errorf("%s: cache doc %s (%d tokens) != reader doc %s (%d tokens)", task.Input, e.ID, len(toks), d.ID, len(ids))
				}
				return nil
			}
			t.Errorf("%s: cache has extra document %s", task.Input, e.ID)
			return nil
		})
		cache.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dirFiles returns every file under dir (relative path -> bytes), skipping
// the per-cache sidecars, which name the output directory.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() || strings.HasSuffix(p, ".tokcache.json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return nil
	})
	return out
}

func sameFiles(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%s: %d vs %d files", what, len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Errorf("%s: %s differs", what, k)
		}
	}
}

// TestPrepareDeterministic: 1 vs 2 tokenizer workers, direct vs prism
// runner: byte-identical caches, dead letters, manifest and report.
func TestPrepareDeterministic(t *testing.T) {
	root := t.TempDir()
	cfg, _ := demoConfig(t, root)
	outs := map[string]string{}
	for _, run := range []struct {
		name, runner string
		workers      int
	}{{"direct-1", "direct", 1}, {"direct-2", "direct", 2}, {"prism-2", "prism", 2}} {
		c := cfg
		c.Workers = run.workers
		c.Output = filepath.Join(root, run.name)
		runPrepare(t, c, run.runner)
		outs[run.name] = c.Output
	}
	base := dirFiles(t, outs["direct-1"])
	sameFiles(t, "1 vs 2 workers", base, dirFiles(t, outs["direct-2"]))
	sameFiles(t, "direct vs prism", base, dirFiles(t, outs["prism-2"]))
}

// TestPrepareRerun: a second run reuses every cache (same manifest); a
// changed input is redone; --force redoes everything.
func TestPrepareRerun(t *testing.T) {
	root := t.TempDir()
	cfg, _ := demoConfig(t, root)
	runPrepare(t, cfg, "")
	first := dirFiles(t, cfg.Output)

	plan := runPrepare(t, cfg, "")
	report, _ := os.ReadFile(filepath.Join(cfg.Output, "report.md"))
	if n := bytes.Count(report, []byte("| up to date |")); n != len(plan.Tasks) {
		t.Errorf("rerun reused %d of %d files", n, len(plan.Tasks))
	}
	second := dirFiles(t, cfg.Output)
	delete(first, "report.md")
	delete(second, "report.md")
	sameFiles(t, "rerun", first, second)

	// Change one input: only it is redone.
	books := filepath.Join(root, "corpus/dolma/books/books-0001.json.gz")
	var b bytes.Buffer
	corpus.WriteGzipMembers(&b, [][]byte{corpus.JSONLine(map[string]any{"id": "new", "text": "A new short book."})})
	if err := os.WriteFile(books, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	runPrepare(t, cfg, "")
	report, _ = os.ReadFile(filepath.Join(cfg.Output, "report.md"))
	if n := bytes.Count(report, []byte("| up to date |")); n != len(plan.Tasks)-1 {
		t.Errorf("after one change, reused %d, want %d", n, len(plan.Tasks)-1)
	}
	m := readManifest(t, cfg.Output)
	if s := m.Source("books"); s.Stats.Written != 5 {
		t.Errorf("books written = %d after replacing a file with one book, want 5", s.Stats.Written)
	}
}

// TestPrepareUnreadable: a file that is not parquet fails the job, naming
// the file, unless skip_unreadable is set; then it is listed in the
// manifest and the run goes on.
func TestPrepareUnreadable(t *testing.T) {
	root := t.TempDir()
	cfg, _ := demoConfig(t, root)
	bad := filepath.Join(root, "corpus/finemath/finemath-4plus/train-00009-of-00010.parquet")
	if err := os.WriteFile(bad, []byte("<html>rate limited</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := PlanPrepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A person reads one line naming the file and the cause; the runner's
	// full account goes to the debug log.
	err = plan.RunWith(context.Background(), "direct")
	var pe *PipelineError
	if err == nil || !errors.As(err, &pe) || !strings.Contains(pe.Cause, "unreadable input "+bad) ||
		!strings.Contains(pe.Cause, "open parquet") || strings.Contains(err.Error(), "\n") || len(pe.Cause) > 300 {
		t.Fatalf("err = %v, want one line naming the unreadable file and the cause", err)
	}
	t.Logf("the line a person reads: %v", err)
	// The files prepared alongside it (same group) were cancelled and
	// aborted: nothing half-written is left.
	filepath.WalkDir(cfg.Output, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temp file left by the failed run: %s", p)
		}
		return nil
	})
	dump, rerr := os.ReadFile(filepath.Join(cfg.Output, "debug.log"))
	if rerr != nil || len(dump) <= len(pe.Cause) || !strings.Contains(string(dump), "train-00009-of-00010.parquet") {
		t.Fatalf("debug log (%v): %s", rerr, dump)
	}
	cfg.SkipUnreadable = true
	runPrepare(t, cfg, "")
	m := readManifest(t, cfg.Output)
	u := m.Source("math").Unreadable
	if len(u) != 1 || u[0].Input.Path != bad || u[0].Error == "" {
		t.Fatalf("unreadable = %+v", u)
	}
}

// TestPrepareGCS reads inputs from and writes outputs to gs:// through an
// in-process fake GCS, and gets the same caches as a local run.
func TestPrepareGCS(t *testing.T) {
	root := t.TempDir()
	cfg, demo := demoConfig(t, root)
	runPrepare(t, cfg, "")
	local := readManifest(t, cfg.Output)

	gcstest.Start(t, "corpus")
	ctx := context.Background()
	for _, f := range demo {
		data, err := os.ReadFile(filepath.Join(root, "corpus", f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if err := storage.WriteFile(ctx, "gs://corpus/in/"+f.Path, data); err != nil {
			t.Fatal(err)
		}
	}
	tokData, _ := os.ReadFile(testTokenizer)
	storage.WriteFile(ctx, "gs://corpus/tokenizer.json", tokData)
	g := cfg
	g.Output = "gs://corpus/out"
	g.Tokenizer = "gs://corpus/tokenizer.json"
	g.Sources = nil
	for _, s := range cfg.Sources {
		s.Inputs = []string{strings.Replace(s.Inputs[0], storage.Join(root, "corpus"), "gs://corpus/in", 1)}
		g.Sources = append(g.Sources, s)
	}
	runPrepare(t, g, "")
	remote := readManifest(t, g.Output)
	for _, s := range local.Sources {
		r := remote.Source(s.Name)
		if r == nil || len(r.Caches) != len(s.Caches) || r.Tokens != s.Tokens || r.Docs != s.Docs {
			t.Fatalf("source %s: gs:// run differs: %+v vs %+v", s.Name, r, s)
		}
		// Headers name the inputs (so hashes differ); contents must not.
		for i := range s.Caches {
			a, _ := json.Marshal(s.Caches[i].Stats)
			b, _ := json.Marshal(r.Caches[i].Stats)
			if !bytes.Equal(a, b) || s.Caches[i].Docs != r.Caches[i].Docs || s.Caches[i].Tokens != r.Caches[i].Tokens {
				t.Errorf("%s: local and gs:// caches differ: %s vs %s", s.Caches[i].Path, a, b)
			}
		}
	}
	if _, err := shards.OpenCache(ctx, storage.Join(g.Output, remote.Sources[0].Caches[0].Path)); err != nil {
		t.Fatal(err)
	}
}

func setFlags(t *testing.T, kv map[string]string) {
	t.Helper()
	for k, v := range kv {
		f := flag.Lookup(k)
		if f == nil {
			t.Fatalf("no flag %s", k)
		}
		old := f.Value.String()
		if err := flag.Set(k, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { flag.Set(k, old) })
	}
}
