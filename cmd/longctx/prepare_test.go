package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrepareCLI builds the longctx binary and runs the documented demo
// commands, then checks that `longctx --worker ...` (how Dataflow, Flink
// and Docker environments start a pipeline binary) enters the Beam worker
// harness: it dials the control endpoint it is given.
func TestPrepareCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "longctx")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("longctx %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	corpus, out := filepath.Join(dir, "corpus"), filepath.Join(dir, "prepared")
	run("demo-data", "--out", corpus)
	// The demo config's paths are relative to the repository root; point
	// it at this test's corpus with a copy.
	cfg, err := os.ReadFile("../../configs/sources/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "demo.yaml")
	os.WriteFile(cfgPath, bytes.ReplaceAll(cfg, []byte("demo-out/corpus"), []byte(corpus)), 0o644)
	got := run("prepare", "--config", cfgPath, "--output", out)
	for _, want := range []string{"books", "code", "dclm", "fineweb-edu", "math", "manifest"} {
		if !strings.Contains(got, want) {
			t.Errorf("prepare output lacks %q:\n%s", want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	if got := run("prepare", "--config", cfgPath, "--output", out, "--runner=prism"); !strings.Contains(got, "math") {
		t.Errorf("prism run output:\n%s", got)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := exec.Command(bin, "--worker", "--id=test-worker", "--control_endpoint="+l.Addr().String(),
		"--logging_endpoint="+l.Addr().String(), `--options={"options":{}}`)
	var werr bytes.Buffer
	w.Stderr = &werr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Kill(); w.Wait() }()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker never dialled its endpoints; stderr:\n%s", werr.String())
	}
}
