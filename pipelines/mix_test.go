package pipelines

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
	"longctx/storage/gcstest"
)

// fixtureSource is one synthetic source: docs documents of length drawn
// uniformly from [lo, hi], split over files caches.
type fixtureSource struct {
	name         string
	docs, lo, hi int
	files        int
}

// writeFixture writes real token caches and a prepare manifest under dir and
// returns the manifest path. Token values encode (source, doc, position) so
// tests can check which tokens were packed.
func writeFixture(t testing.TB, dir string, srcs []fixtureSource) string {
	t.Helper()
	ctx := context.Background()
	pm := &shards.PrepareManifest{Version: 1, TokenizerHash: "tok-hash-test", ConfigHash: "prep-config-test"}
	for si, src := range srcs {
		r := rand.New(rand.NewPCG(uint64(si), 99))
		ps := shards.PreparedSource{Name: src.name}
		per := (src.docs + src.files - 1) / src.files
		for f := 0; f < src.files; f++ {
			rel := fmt.Sprintf("%s/%s-%03d.tokcache", src.name, src.name, f)
			cw, err := shards.CreateCache(ctx, filepath.Join(dir, rel), shards.CacheHeader{Source: src.name, Input: rel, TokenizerHash: pm.TokenizerHash})
			if err != nil {
				t.Fatal(err)
			}
			ref := shards.CacheRef{Path: rel, Input: shards.InputRef{Path: rel}}
			for d := f * per; d < min((f+1)*per, src.docs); d++ {
				n := src.lo + r.IntN(src.hi-src.lo+1)
				toks := make([]uint32, n)
				for i := range toks {
					toks[i] = uint32(si)<<28 | uint32(d)<<14 | uint32(i%(1<<14))
				}
				if err := cw.Add(fmt.Sprintf("%s-%d", src.name, d), toks); err != nil {
					t.Fatal(err)
				}
				ref.Docs++
				ref.Tokens += int64(n)
			}
			sum, err := cw.Close()
			if err != nil {
				t.Fatal(err)
			}
			ref.XXH64 = sum.XXH64
			ps.Caches = append(ps.Caches, ref)
			ps.Docs += ref.Docs
			ps.Tokens += ref.Tokens
		}
		pm.Sources = append(pm.Sources, ps)
	}
	sort.Slice(pm.Sources, func(i, j int) bool { return pm.Sources[i].Name < pm.Sources[j].Name })
	path := filepath.Join(dir, "prepare-manifest.json")
	if err := shards.WritePrepareManifest(ctx, path, pm); err != nil {
		t.Fatal(err)
	}
	return path
}

var demoSources = []fixtureSource{
	{name: "books", docs: 12, lo: 1500, hi: 4000, files: 2},
	{name: "web", docs: 600, lo: 20, hi: 400, files: 3},
	{name: "math", docs: 60, lo: 30, hi: 200, files: 1}, // ≈7k tokens: upsampled
}

func demoSpec() mixture.Spec {
	return mixture.Spec{Name: "t", TotalTokens: 60_000, SeqLen: 512, Seed: 5, Upsample: mixture.UpsampleRepeat, MaxRepeats: 4,
		Sources: []mixture.Source{{Name: "books", Weight: 0.3}, {Name: "web", Weight: 0.4}, {Name: "math", Weight: 0.3}}}
}

// readTree returns every file under dir (relative path -> bytes).
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !info.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = b
		}
		return nil
	})
	return out
}

func sameTree(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d files vs %d", what, len(a), len(b))
	}
	for name, x := range a {
		if !bytes.Equal(x, b[name]) {
			t.Errorf("%s: %s differs", what, name)
		}
	}
}

func TestMixDeterministicAcrossWorkers(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources)
	var trees []map[string][]byte
	for i, o := range []MixOptions{
		{Workers: 1},
		{Workers: 3},
		{Workers: 2, MemoryTokens: 20_000}, // pieces spilled to disk
	} {
		o.Spec, o.Prepare, o.Output, o.GroupTokens, o.ChunkTokens, o.Quiet = demoSpec(), prep, filepath.Join(tmp, fmt.Sprint("out", i)), 16_000, 2048, true
		res, err := Mix(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			checkMix(t, res, prep)
		}
		trees = append(trees, readTree(t, o.Output))
	}
	sameTree(t, "workers 1 vs 3", trees[0], trees[1])
	sameTree(t, "in memory vs spilled", trees[0], trees[2])
}

// checkMix checks a mix result against its plan and the shard files.
func checkMix(t *testing.T, res MixResult, prep string) {
	t.Helper()
	ctx := context.Background()
	m := res.Manifest
	if len(m.Shards) < 2 {
		t.Errorf("%d shards; the test wants several groups", len(m.Shards))
	}
	for _, s := range m.Sources {
		if s.RealizedTokens != s.TargetTokens {
			t.Errorf("%s: realized %d, target %d", s.Source, s.RealizedTokens, s.TargetTokens)
		}
	}
	math := m.Sources[2]
	if math.Source != "math" || math.FullPasses < 2 || math.Repeats < 2 {
		t.Errorf("math should repeat: %+v", math)
	}
	if m.TokenizerHash != "tok-hash-test" || m.PrepareManifestHash == "" || m.MixtureConfigHash == "" {
		t.Errorf("lineage missing: %+v", m)
	}
	if _, err := shards.Verify(ctx, res.Output); err != nil {
		t.Fatal(err)
	}
	// Within one repetition no token is lost or duplicated: count each
	// (token value) against the plan's takes.
	want := map[uint32]int{}
	var total int64
	for _, sp := range res.Plan.Sources {
		total += sp.Realized
	}
	got := map[uint32]int{}
	l, err := shards.OpenLoader(ctx, res.Output, 1, shards.LoaderState{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var real int64
	for i := int64(0); i < l.Len(); i++ {
		s, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Tokens) != 512 {
			t.Fatalf("sequence of %d tokens", len(s.Tokens))
		}
		for _, tok := range s.Tokens[:512-int(s.Pad)] {
			got[tok]++
			real++
		}
	}
	if real != total {
		t.Errorf("loader saw %d real tokens, plan realized %d", real, total)
	}
	// Expected multiset: every take of every document, read from the caches.
	pm, err := shards.ReadPrepareManifest(ctx, prep)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range pm.Sources {
		sp, _ := res.Plan.Source(ps.Name)
		for _, ref := range ps.Caches {
			c, err := shards.OpenCache(ctx, shards.CachePath(prep, ref))
			if err != nil {
				t.Fatal(err)
			}
			c.ForEach(func(_ int, e shards.CacheEntry, toks []uint32) error {
				for _, tk := range sp.Takes(res.Plan.Seed, e.ID, int64(e.Tokens)) {
					for _, v := range toks[:tk.Tokens] {
						want[v]++
					}
				}
				return nil
			})
			c.Close()
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct tokens packed, %d expected", len(got), len(want))
	}
	for v, n := range want {
		if got[v] != n {
			t.Fatalf("token %x packed %d times, the plan takes it %d times", v, got[v], n)
		}
	}
	if m.Packing.Fill() < 0.95 {
		t.Errorf("fill %.4f", m.Packing.Fill())
	}
	md, err := os.ReadFile(res.Report.Markdown)
	if err != nil || !strings.Contains(string(md), "| math |") {
		t.Errorf("report.md: %v %q", err, md)
	}
	png, err := os.ReadFile(res.Report.PNG)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("mixture.png: %v", err)
	}
}

// keepBeamFlags: in-process prism sets the global endpoint and environment
// flags; put them back so later tests (e.g. a Dataflow dry run) see them
// unset.
func keepBeamFlags(t *testing.T) {
	for _, name := range []string{"endpoint", "environment_type"} {
		if f := flag.Lookup(name); f != nil {
			old := f.Value.String()
			t.Cleanup(func() { flag.Set(name, old) })
		}
	}
}

// The Beam pipeline (plan, select, pack) writes the same bytes as the
// in-process executor.
func TestMixBeamMatchesLocal(t *testing.T) {
	keepBeamFlags(t)
	ctx := context.Background()
	tmp := t.TempDir()
	// 8 cache files: select must spread over more than one bundle.
	srcs := append([]fixtureSource(nil), demoSources...)
	srcs[1].files = 5
	prep := writeFixture(t, tmp, srcs)
	var trees []map[string][]byte
	for _, runner := range []string{"local", "direct", "prism"} {
		o := MixOptions{Spec: demoSpec(), Prepare: prep, Output: filepath.Join(tmp, runner), GroupTokens: 16_000, ChunkTokens: 2048, Runner: runner, Quiet: true}
		res, err := Mix(ctx, o)
		if err != nil {
			t.Fatalf("runner %s: %v", runner, err)
		}
		if runner == "prism" {
			checkMix(t, res, prep)
			t.Logf("prism: select ran in %d bundles over 8 files", res.SelectBundles)
			if res.SelectBundles < 2 {
				t.Errorf("prism ran select in %d bundle(s): the file list is not spread", res.SelectBundles)
			}
		}
		trees = append(trees, readTree(t, o.Output))
	}
	sameTree(t, "local vs direct", trees[0], trees[1])
	sameTree(t, "local vs prism", trees[0], trees[2])
}

func TestMixSweep(t *testing.T) {
	keepBeamFlags(t)
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources)
	spec := demoSpec()
	spec.Sweep = []mixture.SweepPoint{
		{Name: "math10", Weights: map[string]float64{"books": 0.4, "web": 0.5, "math": 0.1}},
		{Name: "math40", Weights: map[string]float64{"books": 0.3, "web": 0.3, "math": 0.4}},
	}
	out := filepath.Join(tmp, "sweep")
	rs, err := MixSweep(ctx, MixOptions{Spec: spec, Prepare: prep, Output: out, GroupTokens: 30_000, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Output != filepath.Join(out, "t-math10") || rs[1].Output != filepath.Join(out, "t-math40") {
		t.Fatalf("sweep outputs %+v", rs)
	}
	for i, want := range []int64{6_000, 24_000} {
		m, err := shards.ReadManifest(ctx, rs[i].Output)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Sources[2].RealizedTokens; m.Sources[2].Source != "math" || got != want {
			t.Errorf("point %d: math realized %d, want %d", i, got, want)
		}
		if _, err := shards.Verify(ctx, rs[i].Output); err != nil {
			t.Error(err)
		}
	}
	if rs[0].Manifest.MixtureConfigHash == rs[1].Manifest.MixtureConfigHash {
		t.Error("sweep points share a mixture config hash")
	}
	// On Beam every point is planned, selected and packed in one pipeline
	// that scans and de-duplicates once.
	beamOut := filepath.Join(tmp, "sweep-prism")
	brs, err := MixSweep(ctx, MixOptions{Spec: spec, Prepare: prep, Output: beamOut, GroupTokens: 30_000, Quiet: true, Runner: "prism"})
	if err != nil {
		t.Fatal(err)
	}
	if len(brs) != 2 {
		t.Fatalf("prism sweep gave %d results", len(brs))
	}
	for i := range brs {
		if !reflect.DeepEqual(brs[i].Plan, rs[i].Plan) {
			t.Errorf("point %d: prism plan %+v, local %+v", i, brs[i].Plan, rs[i].Plan)
		}
		sameTree(t, fmt.Sprintf("sweep point %d prism vs local", i), readTree(t, rs[i].Output), readTree(t, brs[i].Output))
	}
	if _, err := Mix(ctx, MixOptions{Spec: spec, Prepare: prep, Output: out}); err == nil {
		t.Error("Mix accepted a spec with sweep points")
	}
}

func TestMixErrors(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources[:1])
	spec := demoSpec()
	_, err := Mix(ctx, MixOptions{Spec: spec, Prepare: prep, Output: filepath.Join(tmp, "o"), Quiet: true})
	if err == nil || !strings.Contains(err.Error(), `source "web" is not in prepare manifest`) {
		t.Errorf("missing source: %v", err)
	}
}

func TestPieceRecord(t *testing.T) {
	p := shards.Piece{Source: "books", DocID: "b-1", Rep: 2, Offset: 16384, Order: 1<<63 + 5, Tokens: []uint32{1, 70000, 3}}
	got, err := decodePiece(encodePiece(p))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(p) {
		t.Fatalf("round trip %+v, %v", got, err)
	}
	if _, err := decodePiece(encodePiece(p)[:10]); err == nil {
		t.Error("truncated record accepted")
	}
}

// Mix writes to gs:// and the loader reads it back.
func TestMixToGCS(t *testing.T) {
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	prep := writeFixture(t, t.TempDir(), demoSources)
	res, err := Mix(ctx, MixOptions{Spec: demoSpec(), Prepare: prep, Output: "gs://bkt/mixes/t", GroupTokens: 30_000, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shards.Verify(ctx, res.Output); err != nil {
		t.Fatal(err)
	}
	l, err := shards.OpenLoader(ctx, res.Output, 1, shards.LoaderState{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := storage.Exists(ctx, "gs://bkt/mixes/t/mixture.png"); !ok {
		t.Error("no mixture.png on gs://")
	}
}

// A failure inside the Beam plan step comes back as one line naming the
// cache and the cause.
func TestMixBeamPlanError(t *testing.T) {
	keepBeamFlags(t)
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources)
	pm, err := shards.ReadPrepareManifest(ctx, prep)
	if err != nil {
		t.Fatal(err)
	}
	pm.Sources[1].Caches[0].Docs++ // the cache no longer matches the manifest
	if err := shards.WritePrepareManifest(ctx, prep, pm); err != nil {
		t.Fatal(err)
	}
	for _, runner := range []string{"direct", "prism"} {
		_, err := Mix(ctx, MixOptions{Spec: demoSpec(), Prepare: prep, Output: filepath.Join(tmp, runner), Runner: runner, Quiet: true})
		if err == nil {
			t.Fatalf("%s: a cache that does not match the manifest passed", runner)
		}
		msg := err.Error()
		t.Logf("%s: %s", runner, msg)
		if !strings.Contains(msg, "the prepare manifest says") || !strings.Contains(msg, pm.Sources[1].Caches[0].Path) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error is not one line naming the cache and the cause: %q", runner, msg)
		}
	}
}
