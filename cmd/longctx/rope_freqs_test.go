package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRopeFreqsCLI(t *testing.T) {
	run := func(args ...string) ropeFreqsOut {
		t.Helper()
		code, stdout, stderr := ropeRun(t, append([]string{"rope", "freqs"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var o ropeFreqsOut
		if err := json.Unmarshal([]byte(stdout), &o); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stdout)
		}
		return o
	}
	o := run("--head-dim", "64", "--base", "10000", "--json")
	if len(o.InvFreq) != 32 || float32(o.InvFreq[1]) != 0.749894202 || float32(o.InvFreq[31]) != 1.3335215e-04 || o.AttentionFactor != 1 {
		t.Errorf("default: %v", o)
	}
	o = run("--head-dim", "64", "--base", "10000", "--type", "yarn", "--factor", "8", "--original-max", "2048", "--json")
	if float32(o.AttentionFactor) != float32(1.2079441541679836) || math.Abs(o.InvFreq[31]/1.6669017902041553e-05-1) > 1e-6 {
		t.Errorf("yarn: %v", o)
	}
	o = run("--head-dim", "64", "--base", "10000", "--type", "dynamic", "--factor", "8", "--max-positions", "2048", "--seq-len", "16384", "--float64", "--json")
	if math.Abs(o.InvFreq[1]/0.65820151202458044-1) > 1e-12 {
		t.Errorf("dynamic float64 at 16384: inv[1] = %v", o.InvFreq[1])
	}

	cfg := filepath.Join(t.TempDir(), "config.json")
	smol, err := os.ReadFile("../../rope/testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, smol, 0o644); err != nil {
		t.Fatal(err)
	}
	o = run("--config", cfg, "--json")
	if len(o.InvFreq) != 32 || float32(o.InvFreq[1]) != 0.697830558 {
		t.Errorf("from config (base 100000): %v", o.InvFreq[:2])
	}
	o = run("--config="+cfg, "--base", "273000", "--json") // flags override the file
	if float32(o.InvFreq[1]) != 0.67626965 {
		t.Errorf("config + --base 273000: %v", o.InvFreq[:2])
	}
	code, stdout, _ := ropeRun(t, "rope", "freqs", "--head-dim", "64", "--base", "10000")
	if code != 0 || !strings.Contains(stdout, "wavelength") || !strings.Contains(stdout, "47117.2") {
		t.Errorf("table output (exit %d):\n%s", code, stdout)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--json"}, 2}, // no head_dim/base
		{[]string{"--head-dim", "64", "--base", "10000", "--type", "magic"}, 2},  // unknown type
		{[]string{"--head-dim", "64", "--base", "10000", "--type", "linear"}, 2}, // no factor
		{[]string{"--config", filepath.Join(t.TempDir(), "missing.json")}, 1},
	} {
		if code, _, _ := ropeRun(t, append([]string{"rope", "freqs"}, c.args...)...); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
	}
}
