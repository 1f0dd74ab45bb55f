package recipe

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/corpus"
	"longctx/eval"
	"longctx/mixture"
	"longctx/pipelines"
	"longctx/shards"
	"longctx/storage"
	"longctx/trainer"
)

const testTokenizer = "../tokenizer/testdata/tokenizer.json"

// prepareDemo generates the demo corpus and prepares it with the pure-Go
// path of the prepare stage (no runner), returning the manifest path.
func prepareDemo(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(dir, "corpus")
	if _, err := corpus.GenerateDemo(ctx, root, 1); err != nil {
		t.Fatal(err)
	}
	cfg := pipelines.DefaultPrepareConfig()
	cfg.Output, cfg.Tokenizer = filepath.Join(dir, "prepared"), testTokenizer
	cfg.Sources = []pipelines.SourceConfig{
		{Name: "books", Format: "dolma", Inputs: []string{root + "/dolma/books/*.json.gz"}},
		{Name: "web", Format: "fineweb-edu", Inputs: []string{root + "/fineweb-edu/**/*.parquet"}},
		{Name: "math", Format: "finemath", Inputs: []string{root + "/finemath/**/*.parquet"}},
	}
	tok, err := pipelines.LoadTokenizer(ctx, cfg.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := pipelines.ListTasks(ctx, cfg, tok.Hash())
	if err != nil {
		t.Fatal(err)
	}
	var files []pipelines.FileResult
	for _, task := range tasks {
		r, err := pipelines.PrepareFile(ctx, task, tok, 2)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, r)
	}
	cfgHash, err := pipelines.PrepareConfigHash(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipelines.BuildManifest(tok.Hash(), cfgHash, cfg.Sources, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipelines.WriteOutputs(ctx, cfg.Output, m, files); err != nil {
		t.Fatal(err)
	}
	return storage.Join(cfg.Output, "manifest.json")
}

func tinySweep(t *testing.T, dir, prepare string) SweepConfig {
	model := filepath.Join(dir, "model.yaml")
	os.WriteFile(model, []byte("vocab_size: 8192\nhidden_size: 32\nintermediate_size: 64\nnum_hidden_layers: 1\n"+
		"num_attention_heads: 2\nnum_key_value_heads: 1\nrope_theta: 10000\nmax_position_embeddings: 256\n"+
		"rms_norm_eps: 1.0e-5\ntie_word_embeddings: true\ninitializer_range: 0.02\nbos_token_id: 0\neos_token_id: 0\n"), 0o644)
	train, test, err := eval.GenerateGSM8kSplits(3, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	eval.WriteGSM8kJSONL(filepath.Join(dir, "gsm-train.jsonl"), train)
	eval.WriteGSM8kJSONL(filepath.Join(dir, "gsm-test.jsonl"), test)
	doc := strings.Repeat("The river ran past the mill and the miller counted his sacks of flour. ", 20)
	os.WriteFile(filepath.Join(dir, "ppl.jsonl"), []byte(`{"text":"`+doc+`"}`+"\n"+`{"text":"`+doc+doc+`"}`+"\n"), 0o644)

	c := DefaultSweep()
	c.Name, c.Prepare, c.Out, c.Tokenizer, c.Workers = "math", prepare, filepath.Join(dir, "sweep"), testTokenizer, 2
	c.Mixture = mixture.Spec{Name: "t", TotalTokens: 20000, SeqLen: 128, Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 100,
		Sources: []mixture.Source{{Name: "books", Weight: 0.5}, {Name: "web", Weight: 0.3}, {Name: "math", Weight: 0.2}}}
	c.Grid = Grid{Source: "math", Weights: []float64{0, 0.2, 0.4}}
	c.Train = trainer.DefaultTrainConfig()
	c.Train.ModelConfig, c.Train.BatchSize, c.Train.Steps, c.Train.AttentionBlock = model, 2, 4, 64
	c.Train.CheckpointEvery, c.Train.LogEvery, c.Train.ExportDType = 0, 2, "F32"
	c.Train.Optimizer.LR, c.Train.Optimizer.WarmupSteps = 1e-2, 1
	c.Eval = eval.DefaultSuite()
	c.Eval.Evals = []string{"gsm8k", "ppl"}
	c.Eval.GSM8k.Train, c.Eval.GSM8k.Test = filepath.Join(dir, "gsm-train.jsonl"), filepath.Join(dir, "gsm-test.jsonl")
	c.Eval.GSM8k.Shots, c.Eval.GSM8k.MaxNew = 1, 4
	c.Eval.PPL.Data, c.Eval.PPL.Window, c.Eval.PPL.Buckets, c.Eval.PPL.MaxDocs = []string{filepath.Join(dir, "ppl.jsonl")}, 64, []int{32, 64}, 2
	return c
}

func TestGridPoints(t *testing.T) {
	c := DefaultSweep()
	c.Mixture = mixture.Spec{Name: "m", TotalTokens: 100, SeqLen: 8, Seed: 1, Upsample: mixture.UpsampleRepeat,
		Sources: []mixture.Source{{Name: "a", Weight: 0.6}, {Name: "b", Weight: 0.2}, {Name: "math", Weight: 0.2}}}
	c.Grid = Grid{Source: "math", Weights: []float64{0, 0.3}}
	pts, err := c.Points()
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[1].Name != "math30" {
		t.Fatalf("points %+v", pts)
	}
	w := map[string]float64{}
	for _, s := range pts[1].Mixture.Sources {
		w[s.Name] = s.Weight
	}
	if d := w["a"] - 0.525; d*d > 1e-18 || w["math"] != 0.3 {
		t.Fatalf("weights %v, want a 0.525 b 0.175 math 0.3", w)
	}
	for _, bad := range []Grid{{Source: "nope", Weights: []float64{0.1}}, {Source: "math", Weights: []float64{1.2}}} {
		c.Grid = bad
		if _, err := c.Points(); err == nil {
			t.Errorf("grid %+v accepted", bad)
		}
	}
}

// TestSweepOverDemoCorpus runs a 3-point math-weight sweep end to end (mix ->
// train -> eval per point), checks the table, JSON and plots, then reruns it
// and checks every point is skipped with identical results.
func TestSweepOverDemoCorpus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := tinySweep(t, dir, prepareDemo(t, dir))
	var log bytes.Buffer
	env := Env{Prepare: c.Prepare, Tokenizer: c.Tokenizer, Workers: 2, Log: &log}
	res, err := RunSweep(ctx, c, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(res.Points) != 3 || len(res.Varying) == 0 {
		t.Fatalf("points %d, varying %v", len(res.Points), res.Varying)
	}
	for i, want := range []float64{0, 0.2, 0.4} {
		p := res.Points[i]
		if d := p.Weights["math"] - want; d*d > 1e-12 {
			t.Errorf("point %s math weight %g, want %g", p.Name, p.Weights["math"], want)
		}
		if p.Train.Steps != 4 || p.Metrics["gsm8k_flexible"].N != 4 || p.Lineage.ShardsHash == "" || p.Lineage.CheckpointHash == "" {
			t.Errorf("point %s: steps %d, metrics %v, lineage %+v", p.Name, p.Train.Steps, p.Metrics, p.Lineage)
		}
		var realized int64
		for _, s := range p.Sources {
			realized += s.Realized
		}
		if realized < 19900 || realized > 20100 {
			t.Errorf("point %s realized %d tokens of 20000", p.Name, realized)
		}
	}
	if res.Points[0].Lineage.ShardsHash == res.Points[1].Lineage.ShardsHash {
		t.Error("different mixtures gave the same shards")
	}
	md, err := os.ReadFile(filepath.Join(c.Out, "sweep.md"))
	if err != nil || !strings.Contains(string(md), "| math20 |") || !strings.Contains(string(md), "w(math)") {
		t.Fatalf("sweep.md: %v\n%s", err, md)
	}
	if len(res.Files) == 0 {
		t.Fatal("no plots")
	}
	for _, f := range res.Files {
		b, err := os.ReadFile(filepath.Join(c.Out, f))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("plot %s: %v", f, err)
		}
	}
	if _, err := shards.ReadManifest(ctx, filepath.Join(c.Out, "math40", "shards")); err != nil {
		t.Fatal(err)
	}

	// Rerun: every point is found finished and skipped.
	again, err := RunSweep(ctx, c, env)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range again.Points {
		if !p.Skipped || p.Lineage.CheckpointHash != res.Points[i].Lineage.CheckpointHash {
			t.Errorf("rerun point %s: skipped=%v", p.Name, p.Skipped)
		}
	}
	// Checkpoints left by other settings are not resumed: the point trains
	// from its own start (steps counted from 0).
	stale := c
	stale.Train.Steps = 3
	if r, err := RunPoint(ctx, env, mustPoints(t, stale)[0], filepath.Join(c.Out, "math00")); err != nil || r.Train.ResumedFrom != 0 || r.Train.Steps != 3 {
		t.Fatalf("stale checkpoints: resumed from %d, steps %d, err %v", r.Train.ResumedFrom, r.Train.Steps, err)
	}
	// An edited model config reruns the points.
	cfgBytes, _ := os.ReadFile(c.Train.ModelConfig)
	os.WriteFile(c.Train.ModelConfig, append(cfgBytes, []byte("# edited\n")...), 0o644)
	if r, err := RunPoint(ctx, env, mustPoints(t, c)[1], filepath.Join(c.Out, "math20")); err != nil || r.Skipped {
		t.Fatalf("point with an edited model config: skipped=%v err=%v", r.Skipped, err)
	}
	// A changed setting reruns the points.
	c.Train.Steps = 5
	pts, _ := c.Points()
	r, err := RunPoint(ctx, env, pts[0], filepath.Join(c.Out, pts[0].Name))
	if err != nil || r.Skipped || r.Train.Steps != 5 {
		t.Fatalf("changed point: skipped=%v steps=%d err=%v", r.Skipped, r.Train.Steps, err)
	}
}

func mustPoints(t *testing.T, c SweepConfig) []Point {
	t.Helper()
	pts, err := c.Points()
	if err != nil {
		t.Fatal(err)
	}
	return pts
}
