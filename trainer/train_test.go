package trainer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/config"
)

// patternTokens is a learnable stream: documents of 1..9 ending in EOS 0.
func patternTokens(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i % 10)
	}
	return out
}

func tinyTrainConfig(t *testing.T, out string) TrainConfig {
	t.Helper()
	mc := tinyConfig()
	data, err := config.Marshal(mc)
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(t.TempDir(), "tiny.yaml")
	if err := os.WriteFile(mp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultTrainConfig()
	cfg.ModelConfig, cfg.Out = mp, out
	cfg.SeqLen, cfg.BatchSize, cfg.GradAccum, cfg.Steps = 16, 2, 2, 6
	cfg.AttentionBlock, cfg.CheckpointEvery, cfg.KeepCheckpoints, cfg.LogEvery = 4, 2, 2, 1
	cfg.Optimizer.LR, cfg.Optimizer.MinLR, cfg.Optimizer.WarmupSteps = 1e-2, 1e-3, 2
	cfg.ExportDType, cfg.RopeTheta, cfg.Seed = "F32", 273000, 3
	return cfg
}

// cancelAt cancels a run when its progress reaches a step.
type cancelAt struct {
	step   string
	cancel func()
}

func (c cancelAt) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), "step "+c.step+"/") {
		c.cancel()
	}
	return len(p), nil
}

func TestTrainResumeBitIdentical(t *testing.T) {
	tokens := patternTokens(400)
	dirA := filepath.Join(t.TempDir(), "a")
	src, _ := NewTokenStream(tokens, 16, 0)
	resA, err := Train(context.Background(), tinyTrainConfig(t, dirA), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !(resA.FinalLoss < resA.FirstLoss) {
		t.Errorf("loss did not fall: %g -> %g", resA.FirstLoss, resA.FinalLoss)
	}

	// Run B is interrupted after step 5 (checkpoint at 4), then resumed.
	dirB := filepath.Join(t.TempDir(), "b")
	ctx, cancel := context.WithCancel(context.Background())
	src, _ = NewTokenStream(tokens, 16, 0)
	_, err = Train(ctx, tinyTrainConfig(t, dirB), src, cancelAt{"5", cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err %v, want context.Canceled", err)
	}
	cfg := tinyTrainConfig(t, dirB)
	cfg.Resume = true
	src, _ = NewTokenStream(tokens, 16, 0) // a fresh process: the source starts at 0
	var log bytes.Buffer
	resB, err := Train(context.Background(), cfg, src, &log)
	if err != nil {
		t.Fatal(err)
	}
	if resB.ResumedFrom != 4 {
		t.Fatalf("resumed from step %d, want 4; log:\n%s", resB.ResumedFrom, log.String())
	}
	for _, f := range []string{"final/model.safetensors", "checkpoints/step-00000006/optimizer.safetensors", "checkpoints/step-00000006/model.safetensors"} {
		a, err := os.ReadFile(filepath.Join(dirA, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dirB, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	ma, _ := readMetrics(filepath.Join(dirA, "metrics.jsonl"), 1<<30)
	mb, _ := readMetrics(filepath.Join(dirB, "metrics.jsonl"), 1<<30)
	if len(ma) != 6 || len(mb) != 6 {
		t.Fatalf("metrics lines %d and %d, want 6", len(ma), len(mb))
	}
	for i := range ma {
		if ma[i].Loss != mb[i].Loss || ma[i].GradNorm != mb[i].GradNorm {
			t.Errorf("step %d: loss %v/%v gnorm %v/%v", i+1, ma[i].Loss, mb[i].Loss, ma[i].GradNorm, mb[i].GradNorm)
		}
	}
	// Old checkpoints are pruned to keep_checkpoints; the export has the new base.
	entries, _ := os.ReadDir(filepath.Join(dirA, "checkpoints"))
	if len(entries) != 3 { // two step dirs + latest
		t.Errorf("checkpoints dir has %d entries", len(entries))
	}
	w, err := LoadHF(filepath.Join(dirA, "final"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Config.RopeTheta != 273000 {
		t.Errorf("export rope_theta %g", w.Config.RopeTheta)
	}
	if _, err := os.Stat(filepath.Join(dirA, "loss.png")); err != nil {
		t.Error(err)
	}
}

func TestLRSchedule(t *testing.T) {
	o := DefaultOptimizer()
	o.LR, o.MinLR, o.WarmupSteps = 1, 0.1, 2
	for _, tc := range []struct {
		sched string
		step  int
		want  float64
	}{
		{"cosine", 0, 0.5}, {"cosine", 1, 1}, {"cosine", 2, 1}, {"cosine", 11, 0.1}, {"linear", 11, 0.1},
		{"linear", 6, 0.6}, {"constant", 11, 1}, {"constant", 0, 0.5},
	} {
		o.Schedule = tc.sched
		if got := o.LRAt(tc.step, 12); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%s step %d: lr %g, want %g", tc.sched, tc.step, got, tc.want)
		}
	}
}

// bf16 linear layers (f32 master weights) train on the Go backend too.
func TestTrainBF16Compute(t *testing.T) {
	cfg := tinyTrainConfig(t, filepath.Join(t.TempDir(), "bf16"))
	cfg.ComputeDType, cfg.Steps, cfg.GradAccum, cfg.CheckpointEvery = "bfloat16", 4, 1, 0
	src, _ := NewTokenStream(patternTokens(400), 16, 0)
	res, err := Train(context.Background(), cfg, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.FinalLoss < res.FirstLoss) {
		t.Errorf("bf16 loss did not fall: %g -> %g", res.FirstLoss, res.FinalLoss)
	}
}
