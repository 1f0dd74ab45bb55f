package main

import (
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
