package trainer

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperTrainProcess is the child of TestResumeAfterKill9: it trains
// until killed. It does nothing unless the parent set LONGCTX_TRAIN_CHILD.
func TestHelperTrainProcess(t *testing.T) {
	out := os.Getenv("LONGCTX_TRAIN_CHILD")
	if out == "" {
		return
	}
	cfg := tinyTrainConfig(t, out)
	cfg.Steps, cfg.CheckpointEvery = 40, 3
	src, _ := NewTokenStream(patternTokens(400), 16, 0)
	if _, err := Train(context.Background(), cfg, src, nil); err != nil {
		t.Fatal(err)
	}
}

// A run killed with SIGKILL mid-training and resumed ends bit-identical to
// an uninterrupted run.
func TestResumeAfterKill9(t *testing.T) {
	tokens := patternTokens(400)
	dirA := filepath.Join(t.TempDir(), "a")
	cfg := tinyTrainConfig(t, dirA)
	cfg.Steps, cfg.CheckpointEvery = 40, 3
	src, _ := NewTokenStream(tokens, 16, 0)
	if _, err := Train(context.Background(), cfg, src, nil); err != nil {
		t.Fatal(err)
	}

	dirB := filepath.Join(t.TempDir(), "b")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperTrainProcess$", "-test.count=1")
	// The child dies by SIGKILL and never removes its own temp dirs: give
	// it one inside ours.
	child.Env = append(os.Environ(), "LONGCTX_TRAIN_CHILD="+dirB, "TMPDIR="+t.TempDir())
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	killed := false
	for time.Now().Before(deadline) {
		latest, _ := os.ReadFile(filepath.Join(dirB, "checkpoints", "latest"))
		if s := strings.TrimSpace(string(latest)); s != "" && s >= "step-00000006" {
			child.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	child.Wait()
	if !killed {
		t.Fatal("child never reached step 6")
	}
	cfgB := tinyTrainConfig(t, dirB)
	cfgB.Steps, cfgB.CheckpointEvery, cfgB.Resume = 40, 3, true
	src, _ = NewTokenStream(tokens, 16, 0)
	res, err := Train(context.Background(), cfgB, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom >= 40 || res.ResumedFrom < 6 {
		t.Fatalf("resumed from step %d: the kill came too late to test anything", res.ResumedFrom)
	}
	t.Logf("killed, resumed from step %d", res.ResumedFrom)
	a, _ := os.ReadFile(filepath.Join(dirA, "final", "model.safetensors"))
	b, err := os.ReadFile(filepath.Join(dirB, "final", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("weights after kill -9 and resume differ from the uninterrupted run")
	}
}
