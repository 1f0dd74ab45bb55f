package trainer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
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

// Lanes split each micro-batch into pieces run at once; the sum of their
// gradients is the whole batch's, so runs with 1 and 2 lanes agree to
// float32 rounding, and the same lanes give the same bits twice.
func TestTrainLanesAgree(t *testing.T) {
	tokens := patternTokens(400)
	run := func(lanes int) []StepMetrics {
		cfg := tinyTrainConfig(t, filepath.Join(t.TempDir(), "out"))
		cfg.Lanes = lanes
		var log bytes.Buffer
		src, _ := NewTokenStream(tokens, 16, 0)
		if _, err := Train(context.Background(), cfg, src, &log); err != nil {
			t.Fatal(err)
		}
		if lanes > 1 && !strings.Contains(log.String(), fmt.Sprintf("lanes: %d", lanes)) {
			t.Errorf("log does not say lanes %d:\n%s", lanes, log.String())
		}
		m, err := readMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), 1<<30)
		if err != nil || len(m) != cfg.Steps {
			t.Fatalf("metrics: %d lines, %v", len(m), err)
		}
		return m
	}
	one, two, again := run(1), run(2), run(2)
	for i := range one {
		if d := math.Abs(one[i].Loss - two[i].Loss); d > 1e-5*math.Abs(one[i].Loss) {
			t.Errorf("step %d: loss %v with 1 lane, %v with 2", i+1, one[i].Loss, two[i].Loss)
		}
		if d := math.Abs(one[i].GradNorm - two[i].GradNorm); d > 1e-4*one[i].GradNorm {
			t.Errorf("step %d: gradient norm %v with 1 lane, %v with 2", i+1, one[i].GradNorm, two[i].GradNorm)
		}
		if two[i].Loss != again[i].Loss || two[i].GradNorm != again[i].GradNorm {
			t.Errorf("step %d: two runs with 2 lanes differ: %v/%v", i+1, two[i], again[i])
		}
	}
}

func TestLanesRule(t *testing.T) {
	for _, c := range []struct {
		lanes, batch int
		goBackend    bool
		want         int
	}{
		{0, 8, true, 2}, {0, 6, true, 2}, {0, 1, true, 1}, {0, 7, true, 1},
		{0, 8, false, 1}, {4, 8, true, 4}, {1, 8, true, 1},
	} {
		cfg := DefaultTrainConfig()
		cfg.Lanes, cfg.BatchSize = c.lanes, c.batch
		if got := lanes(cfg, c.goBackend); got != c.want {
			t.Errorf("lanes %d, batch %d, go %v: got %d, want %d", c.lanes, c.batch, c.goBackend, got, c.want)
		}
	}
	cfg := DefaultTrainConfig()
	cfg.Lanes, cfg.BatchSize = 3, 8
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "lanes") {
		t.Errorf("lanes 3 with batch 8: err %v", err)
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

// TestScheduleBitIdentical: the Go backend's parallel schedule runs the same
// ops in another order, so every loss, gradient norm and exported weight
// must equal the sequential run's bit for bit.
func TestScheduleBitIdentical(t *testing.T) {
	tokens := patternTokens(400)
	run := func(schedule string) ([]StepMetrics, []byte) {
		cfg := tinyTrainConfig(t, filepath.Join(t.TempDir(), "out"))
		cfg.Lanes, cfg.Recompute, cfg.Schedule = 1, false, schedule
		var log bytes.Buffer
		src, _ := NewTokenStream(tokens, 16, 0)
		if _, err := Train(context.Background(), cfg, src, &log); err != nil {
			t.Fatal(err)
		}
		if want := "schedule: " + schedule + " (set)"; !strings.Contains(log.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, log.String())
		}
		m, err := readMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), 1<<30)
		if err != nil || len(m) != cfg.Steps {
			t.Fatalf("metrics: %d lines, %v", len(m), err)
		}
		w, err := os.ReadFile(filepath.Join(cfg.Out, "final", "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return m, w
	}
	seqM, seqW := run("sequential")
	parM, parW := run("parallel")
	for i := range seqM {
		if seqM[i].Loss != parM[i].Loss || seqM[i].GradNorm != parM[i].GradNorm {
			t.Errorf("step %d: sequential %v/%v, parallel %v/%v", i+1, seqM[i].Loss, seqM[i].GradNorm, parM[i].Loss, parM[i].GradNorm)
		}
	}
	if !bytes.Equal(seqW, parW) {
		t.Error("exported weights differ between the sequential and the parallel schedule")
	}
}

func TestScheduleRule(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	for _, c := range []struct {
		name                string
		schedule            string
		batch, lanes, seq   int
		recompute           bool
		backend, wantPrefix string
	}{
		{"one sequence at 2k", "", 1, 0, 2048, false, "", "parallel"},
		{"two lanes", "", 2, 0, 2048, false, "", "sequential"},
		{"one lane of two", "auto", 2, 1, 2048, false, "", "parallel"},
		{"recompute", "", 1, 0, 2048, true, "", "sequential"},
		{"16k", "", 1, 0, 16384, false, "", "sequential"},
		{"set parallel", "parallel", 1, 0, 16384, true, "", "parallel"},
		{"set sequential", "sequential", 1, 0, 256, false, "", "sequential"},
		{"explicit backend", "", 1, 0, 256, false, "go", ""},
	} {
		cfg := DefaultTrainConfig()
		cfg.Schedule, cfg.BatchSize, cfg.Lanes, cfg.SeqLen, cfg.Recompute, cfg.Backend = c.schedule, c.batch, c.lanes, c.seq, c.recompute, c.backend
		spec, desc := trainBackendSpec(cfg)
		if !strings.HasPrefix(desc, c.wantPrefix) || (c.wantPrefix == "") != (desc == "") {
			t.Errorf("%s: schedule %q", c.name, desc)
		}
		want := map[string]string{"parallel": ParallelBackend, "sequential": DefaultBackend, "": c.backend}[c.wantPrefix]
		if spec != want {
			t.Errorf("%s: backend %q, want %q", c.name, spec, want)
		}
	}
	cfg := DefaultTrainConfig()
	cfg.Schedule = "fast"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "schedule") {
		t.Errorf("schedule fast: err %v", err)
	}
}
