package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"longctx/config"
	"longctx/recipe"
)

// TestDemoConfigRunsInTrainingEvals checks configs/demo.yaml loads and its
// CPT points evaluate during training (the report's metric-vs-step curves).
func TestDemoConfigRunsInTrainingEvals(t *testing.T) {
	cfg := recipe.DefaultDemoConfig()
	if err := config.Load("../../configs/demo.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.CPT.Eval.Every <= 0 || cfg.CPT.Eval.Every >= cfg.CPT.Steps || cfg.CPT.Eval.OnRegression != "warn" {
		t.Fatalf("cpt.eval = %+v with %d steps: want evals during the CPT points", cfg.CPT.Eval, cfg.CPT.Steps)
	}
}

// TestEvidenceAndDemoConfigsCompareLikeForLike checks both configs load and
// keep what the experiments need: every CPT-like point on the same token
// budget (CPT at the long length vs short-length tuning), evals at 1x..8x
// the pretraining length, and the retrieval and GSM8k sets big enough for
// the report's targets in the evidence config.
func TestEvidenceAndDemoConfigsCompareLikeForLike(t *testing.T) {
	for _, path := range []string{"../../configs/demo.yaml", "../../configs/evidence.yaml"} {
		cfg := recipe.DefaultDemoConfig()
		if err := config.Load(path, &cfg); err != nil {
			t.Fatal(err)
		}
		cpt := cfg.CPT.Steps * cfg.CPT.BatchSize * cfg.CPT.GradAccum * cfg.LongLen
		short := cfg.Short.Steps * cfg.Short.BatchSize * cfg.Short.GradAccum * cfg.ShortLen
		if cfg.Short.Steps == 0 || cpt != short {
			t.Errorf("%s: CPT trains %d tokens, short tuning %d: want the same budget", path, cpt, short)
		}
		want := []int{cfg.ShortLen, 2 * cfg.ShortLen, 4 * cfg.ShortLen, 8 * cfg.ShortLen}
		if fmt.Sprint(cfg.Eval.KV.Lengths) != fmt.Sprint(want) || !slices.Contains(cfg.Eval.Evals, "kv") {
			t.Errorf("%s: kv lengths %v, want %v", path, cfg.Eval.KV.Lengths, want)
		}
		if strings.Contains(path, "evidence") {
			if n := len(cfg.Eval.KV.Depths) * cfg.Eval.KV.Samples; n < 100 || cfg.GSM8kTest < 200 {
				t.Errorf("%s: %d retrieval items per length, %d GSM8k items: want >= 100 and >= 200", path, n, cfg.GSM8kTest)
			}
		}
	}
}
