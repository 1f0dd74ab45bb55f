package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Steps int     `yaml:"steps" help:"optimizer steps"`
	LR    float64 `yaml:"lr" help:"learning rate"`
}

type sample struct {
	Name    string        `yaml:"name" help:"run name"`
	Seed    uint64        `yaml:"seed" help:"seed"`
	Verbose bool          `yaml:"verbose" help:"verbose"`
	Every   time.Duration `yaml:"every" help:"interval"`
	Lens    []int         `yaml:"lens" help:"lengths"`
	Train   inner         `yaml:"train"`
}

func defaults() sample {
	return sample{Name: "demo", Seed: 1, Every: time.Second, Train: inner{Steps: 10, LR: 1e-3}}
}

func TestDecodeErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "name: x\nbogus: 3\n", "line 2: field bogus not found"},
		{"nested unknown", "train:\n  steps: 3\n  lrr: 1\n", "line 3: field lrr not found"},
		{"wrong type", "seed: 1\ntrain:\n  steps: many\n", "line 3: cannot unmarshal !!str `many` into int"},
		{"fractional int", "train:\n  steps: 1.5\n", "line 2: train.steps: 1.5 is not an integer"},
		{"fractional uint", "seed: 2.0\n", "line 1: seed: 2.0 is not an integer"},
		{"fractional in list", "lens: [1, 2.5]\n", "line 1: lens: 2.5 is not an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults()
			err := Decode([]byte(tc.yaml), &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	cfg := defaults()
	if err := Decode([]byte("train:\n  steps: 7\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Steps != 7 || cfg.Train.LR != 1e-3 || cfg.Name != "demo" {
		t.Fatalf("got %+v", cfg)
	}
	empty := defaults()
	if err := Decode(nil, &empty); err != nil || empty.Name != "demo" {
		t.Fatalf("empty file: %v %+v", err, empty)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("nope: 1\n"), 0o644)
	cfg := defaults()
	err := Load(p, &cfg)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Load error = %v", err)
	}
}

func TestBindFlags(t *testing.T) {
	cfg := defaults()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	if err := BindFlags(fs, "", &cfg); err != nil {
		t.Fatal(err)
	}
	if err := BindFlags(fs, "", cfg); err == nil {
		t.Fatal("binding to a struct value (not a pointer) accepted")
	}
	if err := fs.Parse([]string{"-name=x", "-train.steps", "5", "-verbose", "-every=3s", "-lens=1,2,3", "-seed=9"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "x" || cfg.Train.Steps != 5 || !cfg.Verbose || cfg.Every != 3*time.Second || len(cfg.Lens) != 3 || cfg.Seed != 9 {
		t.Fatalf("got %+v", cfg)
	}
	if f := fs.Lookup("train.lr"); f == nil || f.DefValue != "0.001" || f.Usage != "learning rate" {
		t.Fatalf("train.lr flag = %+v", f)
	}
	if err := fs.Parse([]string{"-train.steps=abc"}); err == nil {
		t.Fatal("bad int accepted")
	}
}

func TestConfigPath(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "a.yaml"}, "a.yaml"},
		{[]string{"-x", "1", "-config=b.yaml"}, "b.yaml"},
		{[]string{"-x", "1"}, ""},
	} {
		if got := ConfigPath(tc.args); got != tc.want {
			t.Errorf("ConfigPath(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func mustHash(t *testing.T, v any) string {
	t.Helper()
	h, err := Hash(v)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashStable(t *testing.T) {
	a, b := defaults(), defaults()
	if mustHash(t, a) != mustHash(t, b) {
		t.Fatal("hash differs for equal configs")
	}
	b.Seed = 2
	if mustHash(t, a) == mustHash(t, b) {
		t.Fatal("hash equal for different configs")
	}
	if _, err := Hash(struct{ F func() }{func() {}}); err == nil {
		t.Fatal("hash of an unencodable value returned no error")
	}
}
