package pipelines

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
	"longctx/storage/gcstest"
)

// fixtureDoc is one document of an explicit fixture.
type fixtureDoc struct {
	id     string
	tokens []uint32
}

// writeDocs writes one token cache per files[source][i] and a prepare
// manifest, and returns the manifest path.
func writeDocs(t testing.TB, dir string, sources []string, files map[string][][]fixtureDoc) string {
	t.Helper()
	ctx := context.Background()
	pm := &shards.PrepareManifest{Version: 1, TokenizerHash: "tok-hash-test", ConfigHash: "prep-config-test"}
	for _, name := range sources {
		ps := shards.PreparedSource{Name: name}
		for f, docs := range files[name] {
			rel := fmt.Sprintf("%s/%s-%03d.tokcache", name, name, f)
			cw, err := shards.CreateCache(ctx, filepath.Join(dir, rel), shards.CacheHeader{Source: name, Input: rel})
			if err != nil {
				t.Fatal(err)
			}
			ref := shards.CacheRef{Path: rel, Input: shards.InputRef{Path: rel}}
			for _, d := range docs {
				if err := cw.Add(d.id, d.tokens); err != nil {
					t.Fatal(err)
				}
				ref.Docs++
				ref.Tokens += int64(len(d.tokens))
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
	path := filepath.Join(dir, "prepare-manifest.json")
	if err := shards.WritePrepareManifest(ctx, path, pm); err != nil {
		t.Fatal(err)
	}
	return path
}

// The spread-out planner gives the reference planner's plan, field for field,
// and the same shard bytes, however many partitions and however crowded the
// key buckets, in-process and as Beam transforms; over partial passes,
// repeats, exact multiples and upsample=none.
func TestPlannerMatchesReference(t *testing.T) {
	keepBeamFlags(t)
	ctx := context.Background()
	tmp := t.TempDir()
	srcs := []fixtureSource{
		{name: "books", docs: 40, lo: 500, hi: 3000, files: 3},
		{name: "web", docs: 3000, lo: 0, hi: 60, files: 4}, // some empty documents
		{name: "math", docs: 90, lo: 10, hi: 100, files: 2},
	}
	prep := writeFixture(t, tmp, srcs)
	pm, _ := shards.ReadPrepareManifest(ctx, prep)
	avail := map[string]int64{}
	for _, s := range pm.Sources {
		avail[s.Name] = s.Tokens
	}
	base := mixture.Spec{Name: "p", SeqLen: 256, Seed: 9, Upsample: mixture.UpsampleRepeat, MaxRepeats: 2,
		Sources: []mixture.Source{{Name: "books", Weight: 0.3}, {Name: "web", Weight: 0.5}, {Name: "math", Weight: 0.2}}}
	specs := map[string]mixture.Spec{}
	for _, total := range []int64{1_000, 37_777, 90_000, 150_001} {
		s := base
		s.TotalTokens = total
		specs[fmt.Sprint("total-", total)] = s
	}
	exact := base // math's target is exactly 3 passes: no partial pass
	exact.Sources = []mixture.Source{{Name: "math", Weight: 1}}
	exact.TotalTokens = 3 * avail["math"]
	specs["exact-multiple"] = exact
	none := base
	none.Upsample, none.TotalTokens = mixture.UpsampleNone, 150_000
	specs["upsample-none"] = none
	zero := base
	zero.Sources = []mixture.Source{{Name: "books", Weight: 0}, {Name: "web", Weight: 1}, {Name: "math", Weight: 0}}
	zero.TotalTokens = 20_000
	specs["zero-weight"] = zero
	whole := base // web's target is all of it: the boundary is its last ranked document
	whole.Sources = []mixture.Source{{Name: "web", Weight: 1}}
	whole.TotalTokens = avail["web"]
	specs["whole-source"] = whole
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			out := func(s string) string { return filepath.Join(tmp, name, s) }
			o := MixOptions{Spec: spec, Prepare: prep, GroupTokens: 20_000, ChunkTokens: 1024, Workers: 2, Quiet: true}
			ro := o
			ro.ReferencePlanner, ro.Output = true, out("reference")
			ref, err := Mix(ctx, ro)
			if err != nil {
				t.Fatal(err)
			}
			refTree := readTree(t, ro.Output)
			// In-process, then the plan as Beam transforms (direct, prism).
			for _, v := range []struct {
				runner      string
				parts, bits int
			}{{"local", 0, 0}, {"local", 7, 0}, {"local", 500, 2}, {"local", 1 << 30, 1}, {"direct", 500, 2}, {"prism", 7, 1}} {
				no := o
				no.Runner, no.partitionDocs, no.bucketBits = v.runner, v.parts, v.bits
				no.Output = out(fmt.Sprintf("%s-p%d-b%d", v.runner, v.parts, v.bits))
				got, err := Mix(ctx, no)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Plan, ref.Plan) {
					t.Fatalf("%s, partitions of %d docs, %d bucket bits: plan\n%+v\nreference\n%+v", v.runner, v.parts, v.bits, got.Plan, ref.Plan)
				}
				sameTree(t, fmt.Sprintf("%s: %s, %d docs/partition, %d bits vs reference", name, v.runner, v.parts, v.bits), refTree, readTree(t, no.Output))
			}
		})
	}
}

// Duplicates: a repeated id anywhere in a source is dropped (the first
// occurrence in manifest and file order wins) and counted; repeated content
// under another id is counted with dedup count and dropped with exact; the
// plan equals the reference planner's on the de-duplicated documents.
func TestMixDuplicates(t *testing.T) {
	keepBeamFlags(t)
	ctx := context.Background()
	tmp := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	doc := func(id string, n int) fixtureDoc {
		toks := make([]uint32, n)
		for i := range toks {
			toks[i] = r.Uint32() >> 4
		}
		return fixtureDoc{id, toks}
	}
	var web [][]fixtureDoc
	for f := range 3 {
		var docs []fixtureDoc
		for d := range 200 {
			docs = append(docs, doc(fmt.Sprintf("w-%d-%d", f, d), 5+r.IntN(60)))
		}
		web = append(web, docs)
	}
	// Repeated ids: within a file, across files; the later copies have
	// other tokens (only the first may be packed).
	web[0] = append(web[0], doc("w-0-3", 40))
	web[2] = append(web[2], doc("w-0-7", 33), doc("w-1-9", 12), doc("w-1-9", 50))
	// Repeated content under new ids: 2 copies of w-1-5, 1 of w-2-0.
	web[1] = append(web[1], fixtureDoc{"copy-a", web[1][5].tokens})
	web[2] = append(web[2], fixtureDoc{"copy-b", web[1][5].tokens}, fixtureDoc{"copy-c", web[2][0].tokens})
	books := [][]fixtureDoc{{doc("b-1", 900), doc("b-2", 700), doc("b-1", 300)}}
	prep := writeDocs(t, tmp, []string{"books", "web"}, map[string][][]fixtureDoc{"web": web, "books": books})

	// The reference: the de-duplicated documents with unique ids.
	dedup := func(content bool) map[string][]mixture.Doc {
		out := map[string][]mixture.Doc{}
		for name, files := range map[string][][]fixtureDoc{"web": web, "books": books} {
			seen, seenContent := map[string]bool{}, map[string]bool{}
			for _, docs := range files {
				for _, d := range docs {
					key := fmt.Sprint(d.tokens)
					if seen[d.id] || content && seenContent[key] {
						continue
					}
					seen[d.id], seenContent[key] = true, true
					out[name] = append(out[name], mixture.Doc{ID: d.id, Tokens: int64(len(d.tokens))})
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		dedup                   string
		content, contentDropped int64
	}{{"", 0, 0}, {mixture.DedupCount, 3, 0}, {mixture.DedupExact, 3, 3}} {
		t.Run("dedup="+tc.dedup, func(t *testing.T) {
			spec := mixture.Spec{Name: "d", TotalTokens: 9_000, SeqLen: 128, Seed: 2, Upsample: mixture.UpsampleRepeat, Dedup: tc.dedup,
				Sources: []mixture.Source{{Name: "books", Weight: 0.2}, {Name: "web", Weight: 0.8}}}
			o := MixOptions{Spec: spec, Prepare: prep, Output: filepath.Join(tmp, "out-"+tc.dedup), GroupTokens: 4_000, Quiet: true, partitionDocs: 100}
			res, err := Mix(ctx, o)
			if err != nil {
				t.Fatalf("a mix over repeated ids failed: %v", err)
			}
			want, err := mixture.MakePlan(spec, dedup(tc.dedup == mixture.DedupExact))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Plan, want) {
				t.Errorf("plan\n%+v\nreference on the de-duplicated documents\n%+v", res.Plan, want)
			}
			m := res.Manifest
			if b, w := m.Sources[0], m.Sources[1]; b.DuplicateIDs != 1 || w.DuplicateIDs != 4 || w.DuplicateContent != tc.content || w.DroppedContent != tc.contentDropped {
				t.Errorf("duplicate counts: books %+v web %+v", b, w)
			}
			if _, err := shards.Verify(ctx, o.Output); err != nil {
				t.Fatal(err)
			}
			report, _ := os.ReadFile(res.Report.JSON)
			if !strings.Contains(string(report), `"duplicate_id": 4`) {
				t.Errorf("report.json does not count duplicate ids: %s", report)
			}
			md, _ := os.ReadFile(res.Report.Markdown)
			if want := fmt.Sprintf("web: 4 repeated ids dropped (first occurrence kept); %d documents repeat", tc.content); !strings.Contains(string(md), want) {
				t.Errorf("report.md lacks %q:\n%s", want, md)
			}
			// No dropped copy reached the shards: the later "w-1-9" has 50
			// tokens, the first 12; books takes b-1 (900 tokens) whole once.
			for _, s := range m.Sources {
				if s.RealizedTokens != s.TargetTokens {
					t.Errorf("%s realized %d of %d", s.Source, s.RealizedTokens, s.TargetTokens)
				}
			}
			// The Beam plan (de-duplication by GroupByKey over partitions,
			// drop lists written by workers) gives the same plan and bytes.
			for _, runner := range []string{"direct", "prism"} {
				bo := o
				bo.Runner, bo.bucketBits, bo.Output = runner, 3, o.Output+"-"+runner
				got, err := Mix(ctx, bo)
				if err != nil {
					t.Fatalf("%s: %v", runner, err)
				}
				if !reflect.DeepEqual(got.Plan, res.Plan) {
					t.Errorf("%s plan\n%+v\nlocal\n%+v", runner, got.Plan, res.Plan)
				}
				sameTree(t, runner+" vs local", readTree(t, o.Output), readTree(t, bo.Output))
			}
		})
	}
	// The reference planner still refuses repeated ids.
	_, err := Mix(ctx, MixOptions{Spec: mixture.Spec{Name: "d", TotalTokens: 1000, SeqLen: 128, Upsample: mixture.UpsampleRepeat,
		Sources: []mixture.Source{{Name: "books", Weight: 1}}}, Prepare: prep, Output: filepath.Join(tmp, "ref"), Quiet: true, ReferencePlanner: true})
	if err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("reference planner on repeated ids: %v", err)
	}
}

// Select decodes only the blocks that hold a selected document.
func TestSelectSkipsBlocks(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	// One file of 4.2M tokens: four blocks of about 1Mi tokens.
	var docs []fixtureDoc
	toks := make([]uint32, 2000)
	for i := range toks {
		toks[i] = uint32(i)
	}
	for d := range 2100 {
		docs = append(docs, fixtureDoc{fmt.Sprint("d", d), toks})
	}
	prep := writeDocs(t, tmp, []string{"web"}, map[string][][]fixtureDoc{"web": {docs}})
	spec := mixture.Spec{Name: "s", TotalTokens: 3000, SeqLen: 1024, Seed: 1, Upsample: mixture.UpsampleRepeat,
		Sources: []mixture.Source{{Name: "web", Weight: 1}}}
	res, err := Mix(ctx, MixOptions{Spec: spec, Prepare: prep, Output: filepath.Join(tmp, "o"), Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlocksRead+res.BlocksSkipped != 4 || res.BlocksRead > 2 || res.BlocksSkipped < 2 {
		t.Errorf("blocks read %d, skipped %d; two documents need at most two of four", res.BlocksRead, res.BlocksSkipped)
	}
	if res.Manifest.Packing.Real != 3000 {
		t.Errorf("packed %d tokens", res.Manifest.Packing.Real)
	}
}

// A reused output directory keeps no shard of an earlier mix.
func TestMixClearsOldShards(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources)
	out := filepath.Join(tmp, "o")
	os.MkdirAll(out, 0o755)
	stale := filepath.Join(out, ShardName(999))
	os.WriteFile(stale, []byte("old shard"), 0o644)
	res, err := Mix(ctx, MixOptions{Spec: demoSpec(), Prepare: prep, Output: out, GroupTokens: 16_000, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("old shard %s is still there (%v)", stale, err)
	}
	if _, err := shards.Verify(ctx, res.Output); err != nil {
		t.Fatal(err)
	}
}

// Kill -9 during a spilling mix: the next run to the same output removes the
// spill the killed one left, and leaves nothing behind itself.
func TestMixKilledLeavesNoSpill(t *testing.T) {
	if os.Getenv("LONGCTX_MIX_CHILD") != "" {
		return
	}
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, []fixtureSource{{name: "web", docs: 40_000, lo: 100, hi: 400, files: 4}})
	out := filepath.Join(tmp, "out")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMixChild$", "-test.v")
	cmd.Env = append(os.Environ(), "LONGCTX_MIX_CHILD=1", "MIX_PREP="+prep, "MIX_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	spill := filepath.Join(mixTempDir(out), "point-000", "spill")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if es, _ := os.ReadDir(spill); len(es) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the child mix never spilled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	if es, _ := os.ReadDir(spill); len(es) == 0 {
		t.Fatal("the killed mix left no spill: the test did not kill it mid-run")
	}
	if _, err := Mix(ctx, childOptions(prep, out)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mixTempDir(out)); !os.IsNotExist(err) {
		t.Errorf("temp area %s still exists after the next run (%v)", mixTempDir(out), err)
	}
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "longctx-mix-*"))
	for _, l := range left {
		if strings.Contains(l, "spill") {
			t.Errorf("spill in the system temp dir: %s", l)
		}
	}
	if _, err := shards.Verify(ctx, out); err != nil {
		t.Fatal(err)
	}
}

func childOptions(prep, out string) MixOptions {
	spec := mixture.Spec{Name: "k", TotalTokens: 9_000_000, SeqLen: 1024, Seed: 1, Upsample: mixture.UpsampleRepeat,
		Sources: []mixture.Source{{Name: "web", Weight: 1}}}
	return MixOptions{Spec: spec, Prepare: prep, Output: out, MemoryTokens: 1 << 16, GroupTokens: 1 << 20, Workers: 1, Quiet: true}
}

// TestMixChild is the process TestMixKilledLeavesNoSpill kills.
func TestMixChild(t *testing.T) {
	if os.Getenv("LONGCTX_MIX_CHILD") == "" {
		t.Skip("run by TestMixKilledLeavesNoSpill")
	}
	Mix(context.Background(), childOptions(os.Getenv("MIX_PREP"), os.Getenv("MIX_OUT")))
}

// On Beam with a gs:// output the workers read the file list and the drop
// lists from next to the output: repeated ids are dropped there too, and the
// shards equal the local mix's.
func TestMixBeamGCSDuplicates(t *testing.T) {
	keepBeamFlags(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	tmp := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	var files [][]fixtureDoc
	for f := range 3 {
		var docs []fixtureDoc
		for d := range 150 {
			toks := make([]uint32, 10+r.IntN(80))
			for i := range toks {
				toks[i] = r.Uint32() >> 4
			}
			docs = append(docs, fixtureDoc{fmt.Sprintf("w-%d", (f*150+d)%400), toks}) // ids 0-49 repeat
		}
		files = append(files, docs)
	}
	prep := writeDocs(t, tmp, []string{"web"}, map[string][][]fixtureDoc{"web": files})
	spec := mixture.Spec{Name: "g", TotalTokens: 12_000, SeqLen: 256, Seed: 3, Upsample: mixture.UpsampleRepeat,
		Sources: []mixture.Source{{Name: "web", Weight: 1}}}
	local, err := Mix(ctx, MixOptions{Spec: spec, Prepare: prep, Output: filepath.Join(tmp, "local"), GroupTokens: 5_000, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := Mix(ctx, MixOptions{Spec: spec, Prepare: prep, Output: "gs://bkt/mix/g", GroupTokens: 5_000, Runner: "prism", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if local.Manifest.Sources[0].DuplicateIDs != 50 {
		t.Errorf("duplicate ids %d, want 50", local.Manifest.Sources[0].DuplicateIDs)
	}
	a, _ := local.Manifest.Encode()
	b, _ := remote.Manifest.Encode()
	if !bytes.Equal(a, b) {
		t.Errorf("prism to gs:// differs from the local mix:\n%s\n%s", a, b)
	}
	if left, _ := storage.List(ctx, "gs://bkt/mix/g/_mix-tmp/**"); len(left) > 0 {
		t.Errorf("temp objects left next to the output: %v", left)
	}
}
