package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"longctx/config"
	"longctx/eval"
	"longctx/rope"
)

// TestContinueSmolLM2With135MConfig writes a checkpoint with SmolLM2-135M's
// released config.json (one layer instead of 30 so the test is fast; every
// other key and value as released), continues it with the base planned from
// that config, and checks the export.
func TestContinueSmolLM2With135MConfig(t *testing.T) {
	released, err := os.ReadFile("../rope/testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	cj := bytes.Replace(released, []byte(`"num_hidden_layers": 30`), []byte(`"num_hidden_layers": 1`), 1)
	if bytes.Equal(cj, released) {
		t.Fatal("layer count not found in the released config")
	}
	mc, err := ParseHFConfig(cj)
	if err != nil {
		t.Fatal(err)
	}
	start, err := InitWeights(mc, 5)
	if err != nil {
		t.Fatal(err)
	}
	start.SourceConfig = cj
	initDir := filepath.Join(t.TempDir(), "smollm2-135m")
	if err := SaveHF(initDir, start, "BF16"); err != nil {
		t.Fatal(err)
	}
	if eos, err := DataEOS(TrainConfig{Init: initDir}); err != nil || eos != 0 {
		t.Fatalf("data EOS %d (%v), want the checkpoint's 0", eos, err)
	}

	out := filepath.Join(t.TempDir(), "cpt")
	cfg := DefaultTrainConfig()
	cfg.Init, cfg.Out = initDir, out
	cfg.Rope = RopePlan{Plan: "critical", TargetLen: 16384}
	cfg.SeqLen, cfg.BatchSize, cfg.Steps, cfg.AttentionBlock, cfg.CheckpointEvery, cfg.LogEvery = 32, 1, 2, 32, 0, 1
	cfg.ExportDType, cfg.Recompute = "F32", false
	src, _ := NewTokenStream(patternTokens(200), cfg.SeqLen, 0)
	var log bytes.Buffer
	res, err := Train(context.Background(), cfg, src, &log)
	if err != nil {
		t.Fatal(err)
	}
	wantBase := rope.CriticalBase(100000, 8192, 16384)
	if !strings.Contains(log.String(), "critical base β0") || !strings.Contains(log.String(), "Men et al. b*") {
		t.Errorf("plan not printed:\n%s", log.String())
	}

	exported, err := os.ReadFile(filepath.Join(res.Export, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var src0, got map[string]any
	if err := json.Unmarshal(cj, &src0); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(exported, &got); err != nil {
		t.Fatal(err)
	}
	if th := got["rope_theta"].(float64); math.Abs(th-wantBase) > 1e-6*wantBase {
		t.Errorf("exported rope_theta %v, planned %v", th, wantBase)
	}
	if mp := got["max_position_embeddings"].(float64); mp != 16384 {
		t.Errorf("exported max_position_embeddings %v, want 16384", mp)
	}
	for k, v := range src0 {
		if k == "rope_theta" || k == "max_position_embeddings" {
			continue
		}
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("config.json key %s: exported %v, released %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := src0[k]; !ok && k != "rope_parameters" {
			t.Errorf("exported config.json adds key %s", k)
		}
	}
	back, err := LoadHF(res.Export)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range mc.ParamSpecs() {
		if !reflect.DeepEqual(back.Data[i], res.Weights.Data[i]) {
			t.Errorf("tensor %s does not round-trip through the export", s.Name)
		}
	}
}

func TestLoadHFTiedLMHeadCompared(t *testing.T) {
	mc := tinyConfig()
	w := tinyWeights(t, mc)
	dir := t.TempDir()
	if err := SaveHF(dir, w, "F32"); err != nil {
		t.Fatal(err)
	}
	specs := mc.ParamSpecs()
	ts := make([]Tensor, 0, len(specs)+1)
	for i, s := range specs {
		ts = append(ts, Tensor{Name: s.Name, Shape: s.Shape, Data: w.Data[i]})
	}
	head := append([]float32(nil), w.Data[0]...)
	ts = append(ts, Tensor{Name: "lm_head.weight", Shape: specs[0].Shape, Data: head})
	st := filepath.Join(dir, "model.safetensors")
	if err := WriteSafetensors(st, ts, "F32", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHF(dir); err != nil {
		t.Fatalf("an identical lm_head copy is accepted: %v", err)
	}
	head[5] += 1
	if err := WriteSafetensors(st, ts, "F32", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHF(dir); err == nil || !strings.Contains(err.Error(), "lm_head.weight differs") {
		t.Fatalf("a different lm_head with tied embeddings: err %v", err)
	}
}

func TestParseHFConfigDefaults(t *testing.T) {
	cj := []byte(`{"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
		"num_hidden_layers": 2, "num_attention_heads": 4, "eos_token_id": [7, 8]}`)
	c, err := ParseHFConfig(cj)
	if err != nil {
		t.Fatal(err)
	}
	if c.TieWordEmbeddings || c.EOSTokenID != 7 || c.BOSTokenID != 1 || c.RMSNormEps != 1e-6 || c.RopeTheta != 10000 || c.NumKeyValueHeads != 4 {
		t.Errorf("HF defaults not applied: %+v", c)
	}
}

func TestTrainGuards(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cfg := tinyTrainConfig(t, out)
	cfg.Steps = 2
	src, _ := NewTokenStream(patternTokens(400), 16, 0)
	if _, err := Train(context.Background(), cfg, src, nil); err != nil {
		t.Fatal(err)
	}
	src, _ = NewTokenStream(patternTokens(400), 16, 0)
	if _, err := Train(context.Background(), cfg, src, nil); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Fatalf("second run into the same out: %v", err)
	}
	cfg.Force = true
	src, _ = NewTokenStream(patternTokens(400), 16, 0)
	if _, err := Train(context.Background(), cfg, src, nil); err != nil {
		t.Fatalf("--force: %v", err)
	}

	// A learning rate that overflows the weights: the run stops with an
	// error naming the step instead of writing NaN.
	cfg = tinyTrainConfig(t, filepath.Join(t.TempDir(), "nan"))
	cfg.Optimizer.LR, cfg.Optimizer.MinLR, cfg.Optimizer.WarmupSteps, cfg.Optimizer.ClipNorm = 1e38, 1e38, 0, 0
	src, _ = NewTokenStream(patternTokens(400), 16, 0)
	_, err := Train(context.Background(), cfg, src, nil)
	if err == nil || !strings.Contains(err.Error(), "non-finite") || !strings.Contains(err.Error(), "step ") {
		t.Fatalf("overflowing run: err %v", err)
	}
}

// evalTrainConfig trains the tiny model on the pattern 0 1 2 ... 9 with a
// loss eval on the reversed pattern (bytes 9 8 ... 1), which training makes
// worse.
func evalTrainConfig(t *testing.T, out, onRegression string) TrainConfig {
	t.Helper()
	doc := strings.Repeat("\x09\x08\x07\x06\x05\x04\x03\x02\x01", 6)
	docs := filepath.Join(t.TempDir(), "docs.jsonl")
	var b strings.Builder
	for i := range 4 {
		line, _ := json.Marshal(map[string]string{"text": doc[i:]})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(docs, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	suite := eval.DefaultSuite()
	suite.Evals = []string{"ppl"}
	suite.PPL = eval.PPLConfig{Data: []string{docs}, Window: 64, Buckets: []int{32, 64}, CurvePoints: 8, MinTokens: 2}
	suite.Select.MaxDrop = map[string]string{"loss": "0"}
	sy, err := config.Marshal(suite)
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(t.TempDir(), "suite.yaml")
	if err := os.WriteFile(sp, sy, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tinyTrainConfig(t, out)
	cfg.Steps, cfg.Optimizer.LR, cfg.Optimizer.MinLR = 20, 3e-2, 3e-2
	cfg.Eval = EvalSchedule{Every: 10, Suite: sp, OnRegression: onRegression, Tokenizer: "bytes"}
	return cfg
}

func TestTrainEvalsWarnWritesCurves(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cfg := evalTrainConfig(t, out, "warn")
	src, _ := NewTokenStream(patternTokens(400), 16, 0)
	var log bytes.Buffer
	res, err := Train(context.Background(), cfg, src, &log)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := ReadEvalPoints(filepath.Join(out, "evals.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, p := range pts {
		steps = append(steps, p.Step)
		if _, ok := p.Metrics["loss"]; !ok {
			t.Errorf("step %d: no loss metric", p.Step)
		}
	}
	if !reflect.DeepEqual(steps, []int{0, 10, 20}) {
		t.Fatalf("eval steps %v, want 0 10 20", steps)
	}
	if l0, l6 := pts[0].Metrics["loss"].Value, pts[2].Metrics["loss"].Value; !(l6 > l0) {
		t.Fatalf("held-out loss did not rise (%g -> %g): the gate test needs it to", l0, l6)
	}
	if !strings.Contains(log.String(), "WARNING regression against step 0: loss dropped") || !strings.Contains(log.String(), "eval step 0/20") {
		t.Errorf("log lacks the eval lines or the warning:\n%s", log.String())
	}
	if res.EvalPoints != 3 || res.EvalSeconds <= 0 {
		t.Errorf("eval time not reported: %d points, %g s", res.EvalPoints, res.EvalSeconds)
	}
	if _, err := os.Stat(filepath.Join(out, "evals-loss.png")); err != nil {
		t.Error(err)
	}
	if g := pts[2].Gate; len(g) == 0 || g[0].Metric != "loss" || !g[0].Fail || g[0].Method != "paired: bootstrap over documents" {
		t.Errorf("gate at step 6: %+v", g)
	}
}

func TestTrainEvalsStopOnRegression(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cfg := evalTrainConfig(t, out, "stop")
	src, _ := NewTokenStream(patternTokens(400), 16, 0)
	_, err := Train(context.Background(), cfg, src, nil)
	if err == nil {
		t.Fatal("a regression with on_regression: stop did not stop the run")
	}
	for _, want := range []string{"loss dropped", "at step 10", "95% CI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestTrainConfigsLoad checks every configs/train file decodes strictly and
// validates, and that the 135M CPT config plans 304,202 from the released
// config.json.
func TestTrainConfigsLoad(t *testing.T) {
	paths, _ := filepath.Glob("../configs/train/*.yaml")
	if len(paths) < 5 {
		t.Fatalf("found %d train configs", len(paths))
	}
	for _, p := range paths {
		cfg := DefaultTrainConfig()
		if err := config.Load(p, &cfg); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	cfg := DefaultTrainConfig()
	if err := config.Load("../configs/train/smollm2-135m-cpt-16k.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	cj, err := os.ReadFile("../rope/testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := ParseHFConfig(cj)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyRopePlan(cfg.Rope, &mc, io.Discard); err != nil {
		t.Fatal(err)
	}
	if math.Abs(mc.RopeTheta-304201.7) > 0.1 || mc.MaxPositionEmbeddings != 16384 {
		t.Errorf("planned base %.1f at %d, want 304201.7 at 16384", mc.RopeTheta, mc.MaxPositionEmbeddings)
	}
}
