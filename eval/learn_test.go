package eval_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"longctx/config"
	"longctx/eval"
	"longctx/trainer"
)

// chanceAccuracy is the score of always answering the most frequent train
// answer: what a model that learnt the format but no arithmetic gets.
func chanceAccuracy(train, test []eval.GSM8kExample) float64 {
	counts := map[string]int{}
	best := ""
	for _, ex := range train {
		g := eval.GSM8kGold(ex.Answer)
		counts[g]++
		if counts[g] > counts[best] {
			best = g
		}
	}
	hit := 0
	for _, ex := range test {
		if eval.GSM8kGold(ex.Answer) == best {
			hit++
		}
	}
	return 100 * float64(hit) / float64(len(test))
}

// A tiny byte-level model trained with the trainer's own loop on generated
// GSM8k-format problems answers held-out ones better than chance under the
// harness protocol (prompt layout, greedy KV-cache decoding, stop at
// "Question:", strict "#### N" match). Chance is the best constant answer,
// the score of a model that learnt the format but not the arithmetic.
// Measured: 600 steps, loss 5.50 -> 0.15, strict 26% vs chance 15% (300
// steps reached loss 0.23 but 15-22% strict, too close to chance to pass
// whatever float rounding the trajectory took).
func TestTinyModelLearnsGSM8kFormat(t *testing.T) {
	start := time.Now()
	gen := eval.GSM8kGen{Seed: 11, MaxOperand: 3, Steps: 1}
	train, test, err := gen.GenerateSplits(3000, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Training text is the few-shot layout itself: examples joined by blank
	// lines, one continuous document (no EOS, so no document boundaries).
	tok := eval.Bytes{}
	tokens := tok.Encode(eval.GSM8kDocuments(train, 1)[0].Text)

	dir := t.TempDir()
	mc := trainer.ModelConfig{
		VocabSize: 256, HiddenSize: 64, IntermediateSize: 160, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RopeTheta: 10000, MaxPositionEmbeddings: 1024,
		RMSNormEps: 1e-5, TieWordEmbeddings: true, InitializerRange: 0.02, EOSTokenID: 0,
	}
	data, err := config.Marshal(mc)
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(dir, "model.yaml")
	if err := os.WriteFile(mp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DefaultTrainConfig()
	cfg.ModelConfig, cfg.Out, cfg.Seed = mp, filepath.Join(dir, "train"), 1
	cfg.SeqLen, cfg.BatchSize, cfg.GradAccum, cfg.Steps = 192, 8, 1, trainSteps
	cfg.MaxPositions = 1024
	cfg.AttentionBlock, cfg.Recompute = 192, false
	cfg.Optimizer.LR, cfg.Optimizer.MinLR, cfg.Optimizer.WarmupSteps, cfg.Optimizer.Schedule = 1e-2, 1e-3, 10, "cosine"
	cfg.CheckpointEvery, cfg.KeepCheckpoints, cfg.LogEvery, cfg.ExportDType = 0, 1, 25, "F32"
	cfg.Documents.Mask, cfg.Documents.ResetPositions = false, false
	// These settings were found with one lane; lanes change the rounding and
	// with it where 600 steps of this tiny model end up.
	cfg.Lanes = 1
	src, err := trainer.NewTokenStream(tokens, cfg.SeqLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := trainer.Train(context.Background(), cfg, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	trained := time.Since(start)

	backend, err := trainer.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	g, err := trainer.NewGenerator(backend, res.Weights)
	if err != nil {
		t.Fatal(err)
	}
	// Zero shots: the model only ever saw 192-token windows, and a prompt
	// plus its answer must stay inside the positions it was trained on.
	ecfg := eval.DefaultGSM8k()
	ecfg.Shots, ecfg.MaxNew, ecfg.BatchSize = 0, 80, 25
	recs, err := eval.RunGSM8k(g, tok, train, test, ecfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := eval.GSM8kMetrics(recs)
	chance := chanceAccuracy(train, test)
	t.Logf("loss %.3f -> %.3f in %d steps (%s); strict %.1f%%, flexible %.1f%%, chance %.1f%%; total %s",
		res.FirstLoss, res.FinalLoss, res.Steps, trained.Round(time.Second), m["gsm8k_strict"].Value, m["gsm8k_flexible"].Value, chance, time.Since(start).Round(time.Second))
	for _, r := range recs[:3] {
		t.Logf("output %q gold %s", r.Output, r.Gold)
	}
	if m["gsm8k_strict"].Value <= chance {
		t.Fatalf("strict accuracy %.1f%% is not above chance %.1f%%", m["gsm8k_strict"].Value, chance)
	}
}

const trainSteps = 600
