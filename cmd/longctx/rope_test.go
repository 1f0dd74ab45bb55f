package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ropeRun runs the CLI in-process, capturing what the command writes to
// os.Stdout and os.Stderr.
func ropeRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code = runMain(args, out, errf)
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return code, string(o), string(e)
}

func TestRopePlanCLI(t *testing.T) {
	code, stdout, stderr := ropeRun(t, "rope", "plan", "--head-dim", "64", "--base", "10000", "--train-len", "2048", "--target-len", "16384", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		CriticalDimension  int     `json:"critical_dimension"`
		CriticalBase       float64 `json:"critical_base"`
		MenLowerBound      float64 `json:"men_lower_bound"`
		ExtrapolationBound float64 `json:"extrapolation_bound"`
		Methods            []struct {
			Method      string    `json:"method"`
			Wavelengths []float64 `json:"wavelengths"`
		} `json:"methods"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, stdout)
	}
	if r.CriticalDimension != 42 || math.Abs(r.CriticalBase-273768.4) > 1 || math.Abs(r.MenLowerBound-1359000) > 500 || r.ExtrapolationBound != 16384 {
		t.Errorf("plan --json: %+v", r)
	}
	if len(r.Methods) < 6 || len(r.Methods[0].Wavelengths) != 32 {
		t.Errorf("plan --json: %d methods", len(r.Methods))
	}
	// β0 is far below Men et al.'s bound for head_dim 64: warn.
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "Men et al.") {
		t.Errorf("no Men warning on stderr: %q", stderr)
	}

	png := filepath.Join(t.TempDir(), "wavelengths.png")
	code, stdout, stderr = ropeRun(t, "rope", "plan", "--new-base", "2000000", "--plot", png)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("base 2e6 >= Men bound, but warned: %s", stderr)
	}
	for _, want := range []string{"critical base beta0               273768.4", "Men et al. lower bound", "abf", "yarn", "llama3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan table lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG\r\n")) || len(data) < 10000 {
		t.Errorf("plot: %d bytes, err %v", len(data), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(png), ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	for _, args := range [][]string{
		{"rope", "plan", "--target-len", "1000"},
		{"rope", "plan", "--bogus"},
		{"rope", "plan", "extra"},
		{"rope"},
		{"rope", "nosuchverb"},
	} {
		if code, _, _ := ropeRun(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// The plot's directory cannot be made: a regular file stands in its way.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ropeRun(t, "rope", "plan", "--plot", filepath.Join(blocker, "x.png")); code != 1 {
		t.Errorf("unwritable plot: exit %d, want 1", code)
	}
}

type ropeFreqsOut struct {
	InvFreq         []float64 `json:"inv_freq"`
	AttentionFactor float64   `json:"attention_factor"`
}

func TestRopeExtendCLI(t *testing.T) {
	dir := t.TempDir()
	smol, err := os.ReadFile("../../rope/testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.json")
	out := filepath.Join(dir, "out.json")
	if err := os.WriteFile(in, smol, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := ropeRun(t, "rope", "extend", "--config", in, "--base", "273000", "--max-positions", "16384", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(smol), `"rope_theta": 100000,`, `"rope_theta": 273000.0,`, 1)
	want = strings.Replace(want, `"max_position_embeddings": 8192,`, `"max_position_embeddings": 16384,`, 1)
	if string(got) != want {
		t.Errorf("extended config:\n%s", got)
	}
	if !strings.Contains(stderr, "rope_theta 100000 -> 273000") {
		t.Errorf("summary: %q", stderr)
	}
	// The written config feeds freqs.
	code, stdout, _ := ropeRun(t, "rope", "freqs", "--config", out, "--json")
	var o ropeFreqsOut
	if code != 0 || json.Unmarshal([]byte(stdout), &o) != nil || float32(o.InvFreq[1]) != 0.67626965 {
		t.Errorf("freqs on the extended config: exit %d %s", code, stdout)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries, want in.json and out.json only", len(entries))
	}

	yarn := filepath.Join(dir, "yarn.json")
	os.WriteFile(yarn, []byte(`{"head_dim": 64, "rope_theta": 10000, "rope_scaling": {"rope_type": "yarn", "factor": 4}, "max_position_embeddings": 2048}`), 0o644)
	// An output whose directory cannot be made: a regular file stands in its way.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--config", in, "--base", "273000", "--out", out}, 2}, // no --max-positions
		{[]string{"--config", yarn, "--base", "273000", "--max-positions", "16384", "--out", out}, 1},
		{[]string{"--config", in, "--base", "273000", "--max-positions", "16384", "--out", filepath.Join(blocker, "dir.json")}, 1},
		{[]string{"--config", filepath.Join(dir, "missing.json"), "--base", "273000", "--max-positions", "16384", "--out", out}, 1},
	} {
		if code, _, _ := ropeRun(t, append([]string{"rope", "extend"}, c.args...)...); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
	}
}
