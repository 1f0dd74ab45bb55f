package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/eval"
)

func writeReport(t *testing.T, dir string, strict, flex, n int, loss float64) string {
	t.Helper()
	r := &eval.Report{Eval: "gsm8k", Model: dir, ModelHash: "h", Metrics: map[string]eval.Metric{
		"gsm8k_strict":   eval.Proportion(strict, n),
		"gsm8k_flexible": eval.Proportion(flex, n),
	}}
	if err := r.Write(dir, "gsm8k"); err != nil {
		t.Fatal(err)
	}
	p := &eval.Report{Eval: "ppl", Model: dir, ModelHash: "h", Metrics: map[string]eval.Metric{"loss": {Value: loss}}}
	if err := p.Write(dir, "ppl"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "gsm8k.json")
}

// The gate exits 1 on a synthetic regression, naming the metric, and 0
// otherwise; bad usage exits 2.
func TestEvalCompareExitCodes(t *testing.T) {
	dir := t.TempDir()
	base := writeReport(t, filepath.Join(dir, "base"), 400, 420, 1319, 2.0)
	same := writeReport(t, filepath.Join(dir, "same"), 395, 421, 1319, 2.01)
	worse := writeReport(t, filepath.Join(dir, "worse"), 340, 420, 1319, 2.0)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"within", []string{"--baseline", base, "--candidate", same, "--max-drop", "gsm8k=2.0"}, 0, ""},
		{"regression", []string{"--baseline", base, "--candidate", worse, "--max-drop", "gsm8k=2.0"}, 1, "gsm8k_strict dropped 4.55"},
		{"regression in s.e.", []string{"--baseline", base, "--candidate", worse, "--max-drop", "gsm8k_strict=2se"}, 1, "gsm8k_strict"},
		{"directories", []string{"--baseline", filepath.Join(dir, "base"), "--candidate", filepath.Join(dir, "same"), "--max-drop", "gsm8k=2,loss=0.05"}, 0, ""},
		{"loss regression", []string{"--baseline", filepath.Join(dir, "base"), "--candidate", filepath.Join(dir, "same"), "--max-drop", "loss=0.001"}, 1, "loss dropped"},
		{"unknown metric", []string{"--baseline", base, "--candidate", same, "--max-drop", "mmlu=1"}, 1, "no such metric"},
		{"no max-drop", []string{"--baseline", base, "--candidate", same}, 2, ""},
		{"bad max-drop", []string{"--baseline", base, "--candidate", same, "--max-drop", "gsm8k"}, 2, ""},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := runMain(append([]string{"eval", "compare"}, c.args...), &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", c.name, code, c.code, errb.String(), c.msg)
		}
	}
}

func TestEvalSelectWritesRanking(t *testing.T) {
	dir := t.TempDir()
	writeReport(t, filepath.Join(dir, "step-100"), 30, 31, 100, 2.0)
	writeReport(t, filepath.Join(dir, "step-200"), 35, 36, 100, 1.9)
	cfg := filepath.Join(dir, "select.yaml")
	os.WriteFile(cfg, []byte("checkpoints: ["+filepath.Join(dir, "step-100")+", "+filepath.Join(dir, "step-200")+"]\nout: "+
		filepath.Join(dir, "sel")+"\nselect:\n  weights: {gsm8k_strict: 1, loss: 1}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := runMain([]string{"eval", "select", "--config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "sel", "selection.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| 1 | step-200 |") {
		t.Fatalf("selection.md:\n%s", md)
	}
}

func TestEvalSelectReadsInTrainingEvals(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "cpt")
	os.MkdirAll(run, 0o755)
	lines := `{"step":0,"tokens":0,"seconds":1,"metrics":{"gsm8k_strict":{"value":20,"n":100,"higher_is_better":true,"stderr":4},"loss":{"value":2.5,"higher_is_better":false}},"dir":"evals/step-00000000"}
{"step":50,"tokens":100,"seconds":1,"metrics":{"gsm8k_strict":{"value":24,"n":100,"higher_is_better":true,"stderr":4.3},"loss":{"value":2.2,"higher_is_better":false}},"dir":"evals/step-00000050"}
{"step":100,"tokens":200,"seconds":1,"metrics":{"gsm8k_strict":{"value":12,"n":100,"higher_is_better":true,"stderr":3.2},"loss":{"value":2.1,"higher_is_better":false}},"dir":"evals/step-00000100"}
`
	os.WriteFile(filepath.Join(run, "evals.jsonl"), []byte(lines), 0o644)
	cfg := filepath.Join(dir, "select.yaml")
	os.WriteFile(cfg, []byte("evals: ["+filepath.Join(run, "evals.jsonl")+"]\nout: "+filepath.Join(dir, "sel")+
		"\nselect:\n  weights: {gsm8k_strict: 1, loss: 1}\n  reference: cpt@0\n  max_drop: {gsm8k_strict: \"5\"}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := runMain([]string{"eval", "select", "--config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "sel", "selection.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Step 100 has the lowest loss but drops GSM8k by 8 > 5 points: it
	// ranks last; step 50 is best.
	if !strings.Contains(string(md), "| 1 | cpt@50 |") || !strings.Contains(string(md), "| 3 | cpt@100 |") {
		t.Fatalf("selection.md:\n%s", md)
	}
}
