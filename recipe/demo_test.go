package recipe

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/eval"
	"longctx/mixture"
	"longctx/rope"
	"longctx/shards"
	"longctx/trainer"
)

// tinyDemo is configs/demo.yaml shrunk to seconds: a 1-layer model, 128 -> 256
// tokens, a few steps, a handful of eval items.
func tinyDemo(t *testing.T, dir string) DemoConfig {
	t.Helper()
	corpus := filepath.Join(dir, "out", "corpus")
	prep := "output: " + filepath.Join(dir, "out", "prepared") + "\ntokenizer: " + testTokenizer + "\nworkers: 2\nsources:\n"
	for _, s := range [][3]string{{"books", "dolma", "dolma/books/*.json.gz"}, {"code", "stack", "the-stack-dedup/data/**/*.parquet"},
		{"fineweb-edu", "fineweb-edu", "fineweb-edu/sample/10BT/*.parquet"}, {"dclm", "dclm", "dclm-baseline-1.0/**/*.jsonl.zstd"},
		{"math", "finemath", "finemath/finemath-4plus/*.parquet"}} {
		prep += "  - {name: " + s[0] + ", format: " + s[1] + ", inputs: [\"" + filepath.Join(corpus, s[2]) + "\"]}\n"
	}
	model := filepath.Join(dir, "model.yaml")
	if err := os.WriteFile(filepath.Join(dir, "prepare.yaml"), []byte(prep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, []byte("vocab_size: 8192\nhidden_size: 32\nintermediate_size: 64\nnum_hidden_layers: 1\n"+
		"num_attention_heads: 2\nnum_key_value_heads: 1\nrope_theta: 10000\nmax_position_embeddings: 128\n"+
		"rms_norm_eps: 1.0e-5\ntie_word_embeddings: true\ninitializer_range: 0.02\nbos_token_id: 0\neos_token_id: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultDemoConfig()
	c.Out, c.Prepare, c.Corpus, c.Tokenizer = filepath.Join(dir, "out"), filepath.Join(dir, "prepare.yaml"), corpus, testTokenizer
	c.ShortLen, c.LongLen, c.PretrainTokens, c.CPTTokens, c.GSM8kTrain, c.GSM8kTest = 128, 256, 6000, 3000, 20, 2
	c.Mixture.Sources = []mixture.Source{{Name: "books", Weight: 0.2}, {Name: "code", Weight: 0.2}, {Name: "fineweb-edu", Weight: 0.2},
		{Name: "dclm", Weight: 0.2}, {Name: "math", Weight: 0.2}}
	train := func(steps, batch int) trainer.TrainConfig {
		tc := trainer.DefaultTrainConfig()
		tc.BatchSize, tc.Steps, tc.AttentionBlock, tc.CheckpointEvery, tc.LogEvery, tc.ExportDType = batch, steps, 64, 0, 1, "F32"
		tc.Optimizer.LR, tc.Optimizer.WarmupSteps = 1e-2, 1
		return tc
	}
	c.Pretrain, c.CPT, c.Short = train(3, 2), train(1, 1), train(1, 2)
	c.ShortTokens = 3000
	c.Pretrain.ModelConfig = model
	c.Eval.Evals = []string{"gsm8k", "passkey", "ppl"}
	c.Eval.GSM8k.Shots, c.Eval.GSM8k.MaxNew = 1, 4
	c.Eval.Passkey.Lengths, c.Eval.Passkey.Depths, c.Eval.Passkey.Samples = []int{128, 256}, []float64{0.5}, 1
	c.Eval.PPL.Window, c.Eval.PPL.Buckets, c.Eval.PPL.MaxDocs = 256, []int{128, 256}, 1
	return c
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDemo runs the whole demo at tiny scale through the library entry point
// and checks that the report says what the points and the plan say, then
// reruns it: every point is reused and the shards stay byte-identical.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four tiny models")
	}
	dir := t.TempDir()
	c := tinyDemo(t, dir)
	var out, log bytes.Buffer
	res, err := Demo(context.Background(), c, "go test", &out, &log)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, log.String())
	}

	// The plan is rope.Plan's for the model's head_dim, and CPT used its
	// critical base; the kept-base experiment kept the pretraining base.
	want, err := rope.Plan(16, c.Base, c.ShortLen, c.LongLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.CriticalBase != want.CriticalBase || res.NewBase != math.Round(want.CriticalBase) || res.NewBase <= c.Base {
		t.Errorf("plan: critical base %v, new base %v; want %v", res.Plan.CriticalBase, res.NewBase, want.CriticalBase)
	}
	thetas := map[string]float64{"pretrain": c.Base, "cpt-raised": res.NewBase, "cpt-kept": c.Base, "cpt-nomath": res.NewBase,
		"short-raised": res.NewBase, "short-kept": c.Base}
	seqLens := map[string]int{"pretrain": c.ShortLen, "short-raised": c.ShortLen, "short-kept": c.ShortLen}
	for _, name := range DemoPoints {
		p, ok := res.Points[name]
		if !ok {
			t.Fatalf("point %s missing", name)
		}
		if p.RopeTheta != thetas[name] {
			t.Errorf("%s: rope_theta %v, want %v", name, p.RopeTheta, thetas[name])
		}
		if want := cmp.Or(seqLens[name], c.LongLen); p.SeqLen != want {
			t.Errorf("%s: seq_len %d, want %d", name, p.SeqLen, want)
		}
		if p.Lineage.ShardsHash != sha(t, filepath.Join(p.Dir, "shards", shards.ManifestName)) {
			t.Errorf("%s: shards hash does not match its manifest", name)
		}
		if _, ok := p.Metrics["gsm8k_flexible"]; !ok {
			t.Errorf("%s: no gsm8k metric: %v", name, p.Metrics)
		}
	}
	if w, ok := res.Points["cpt-nomath"].Weights["math"]; ok {
		t.Errorf("cpt-nomath mixes math at weight %v", w)
	}
	if w := res.Points["cpt-raised"].Weights["math"]; math.Abs(w-0.2) > 1e-12 {
		t.Errorf("cpt-raised math weight %v, want 0.2", w)
	}
	if !strings.Contains(out.String(), "critical base beta0") || !strings.Contains(out.String(), "prepare: done") {
		t.Errorf("stdout lacks the prepare summary or the RoPE plan:\n%s", out.String())
	}

	// The report names the figures the run produced.
	md, err := os.ReadFile(filepath.Join(c.Out, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("| %d of 16 |", res.Plan.CriticalDimension), "Continued pretraining used base " + rope.FormatBase(res.NewBase), res.Points["cpt-kept"].Lineage.ShardsHash[:12]} {
		if !bytes.Contains(md, []byte(s)) {
			t.Errorf("REPORT.md lacks %q", s)
		}
	}
	// Every experiment's paired comparisons are in the report, each with n.
	for _, s := range []string{"### Experiment 1", "### Experiment 2 (Liu et al.)", "### Experiment 3", "In words:", "| passkey_acc@256 | 1 |", "## 6. The pretrained model's skills"} {
		if !bytes.Contains(md, []byte(s)) {
			t.Errorf("REPORT.md lacks %q", s)
		}
	}
	var js struct {
		PrepareHash string                 `json:"prepare_hash"`
		Points      map[string]PointResult `json:"points"`
		Evidence    struct {
			Comparisons []Diff                            `json:"comparisons"`
			Metrics     map[string]map[string]eval.Metric `json:"metrics"`
			Run         RunInfo                           `json:"run"`
		} `json:"evidence"`
	}
	b, err := os.ReadFile(filepath.Join(c.Out, "REPORT.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if ph, err := res.Prepare.Hash(); err != nil || js.PrepareHash != ph || len(js.Points) != len(DemoPoints) {
		t.Errorf("REPORT.json: prepare hash %s (want %s, %v), %d points", js.PrepareHash, ph, err, len(js.Points))
	}
	if len(js.Evidence.Comparisons) == 0 || js.Evidence.Run.Command != "go test" || js.Evidence.Metrics["pretrain"]["gsm8k_strict"].N != c.GSM8kTest {
		t.Errorf("REPORT.json evidence: %d comparisons, run %+v, pretrain gsm8k_strict %+v", len(js.Evidence.Comparisons), js.Evidence.Run, js.Evidence.Metrics["pretrain"]["gsm8k_strict"])
	}
	for _, d := range js.Evidence.Comparisons {
		if d.N == 0 || d.Lo > d.Diff || d.Hi < d.Diff {
			t.Errorf("comparison %+v: no items or the interval misses the difference", d)
		}
	}
	for name, p := range js.Points {
		if p.Metrics["gsm8k_flexible"] != res.Points[name].Metrics["gsm8k_flexible"] || p.Train.FinalLoss != res.Points[name].Train.FinalLoss {
			t.Errorf("REPORT.json %s differs from the run", name)
		}
	}

	// Publishing copies the report and every plot it links to.
	pub := filepath.Join(dir, "published")
	files, missing, err := PublishReport(context.Background(), c.Out, pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 || len(missing) > 0 || sha(t, filepath.Join(pub, "REPORT.md")) != sha(t, filepath.Join(c.Out, "REPORT.md")) {
		t.Errorf("published %d files: %v", len(files), files)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(pub, f)); err != nil {
			t.Errorf("published report lacks %s: %v", f, err)
		}
	}

	// A rerun reuses the corpus, prepare and every point.
	shardHashes := map[string]string{}
	for _, name := range DemoPoints {
		shardHashes[name] = sha(t, filepath.Join(res.Points[name].Dir, "shards", shards.ManifestName))
	}
	log.Reset()
	again, err := Demo(context.Background(), c, "go test", &out, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "corpus generated earlier") {
		t.Errorf("rerun regenerated the corpus")
	}
	if md, err := os.ReadFile(filepath.Join(c.Out, "REPORT.md")); err != nil || !bytes.Contains(md, []byte("finished by an earlier run and reused")) {
		t.Errorf("the rerun's report does not say its points were reused (%v)", err)
	}
	for _, name := range DemoPoints {
		p := again.Points[name]
		if !p.Skipped || p.Lineage.ShardsHash != res.Points[name].Lineage.ShardsHash || p.Lineage.CheckpointHash != res.Points[name].Lineage.CheckpointHash {
			t.Errorf("rerun: %s not reused (skipped %v)", name, p.Skipped)
		}
		if h := sha(t, filepath.Join(p.Dir, "shards", shards.ManifestName)); h != shardHashes[name] {
			t.Errorf("rerun: %s shards changed", name)
		}
	}
}
