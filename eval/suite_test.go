package eval_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/eval"
	"longctx/shards"
	"longctx/tokenizer"
	"longctx/trainer"
)

func byteModel(t *testing.T, dir string, seed uint64) {
	t.Helper()
	c := trainer.ModelConfig{
		VocabSize: 256, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RopeTheta: 10000, MaxPositionEmbeddings: 1024,
		RMSNormEps: 1e-5, TieWordEmbeddings: true, InitializerRange: 0.02, EOSTokenID: 0,
	}
	w, err := trainer.InitWeights(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := trainer.SaveHF(dir, w, "F32"); err != nil {
		t.Fatal(err)
	}
}

func loadByteModel(dir string) (eval.Subject, error) {
	w, err := trainer.LoadHF(dir)
	if err != nil {
		return eval.Subject{}, err
	}
	b, err := trainer.NewBackend("")
	if err != nil {
		return eval.Subject{}, err
	}
	g, err := trainer.NewGenerator(b, w)
	if err != nil {
		return eval.Subject{}, err
	}
	h, err := eval.HashDir(dir)
	if err != nil {
		return eval.Subject{}, err
	}
	return eval.Subject{LM: g, Tok: eval.Bytes{}, Name: filepath.Base(dir), Hash: h}, nil
}

// A suite over two real (random) checkpoints writes every report, ranks
// them, and gives byte-identical files when run again.
func TestSuiteEndToEndDeterministic(t *testing.T) {
	dir := t.TempDir()
	byteModel(t, filepath.Join(dir, "ckpt-a"), 1)
	byteModel(t, filepath.Join(dir, "ckpt-b"), 2)
	train, test, err := eval.GenerateGSM8kSplits(5, 20, 4)
	if err != nil {
		t.Fatal(err)
	}
	eval.WriteGSM8kJSONL(filepath.Join(dir, "train.jsonl"), train)
	eval.WriteGSM8kJSONL(filepath.Join(dir, "test.jsonl"), test)
	os.WriteFile(filepath.Join(dir, "doc.txt"), []byte(strings.Repeat("The grass is green. ", 40)), 0o644)

	run := func(out string) *eval.SuiteResult {
		cfg := eval.DefaultSuite()
		cfg.Checkpoints = []string{filepath.Join(dir, "ckpt-a"), filepath.Join(dir, "ckpt-b")}
		cfg.Evals = []string{"gsm8k", "passkey", "niah", "ppl"}
		cfg.Out = out
		cfg.GSM8k.Train, cfg.GSM8k.Test = filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "test.jsonl")
		cfg.GSM8k.Shots, cfg.GSM8k.MaxNew, cfg.GSM8k.BatchSize = 2, 6, 3
		cfg.Passkey.Lengths, cfg.Passkey.Depths, cfg.Passkey.Samples = []int{256, 512, 2048}, []float64{0, 1}, 1
		cfg.NIAH.Lengths, cfg.NIAH.Depths, cfg.NIAH.Samples, cfg.NIAH.Distractors = []int{512}, []float64{0.5}, 2, 2
		cfg.PPL.Data, cfg.PPL.Window, cfg.PPL.Buckets = []string{filepath.Join(dir, "doc.txt")}, 512, []int{128, 512}
		cfg.Select = eval.SelectConfig{Weights: map[string]float64{"gsm8k_flexible": 1, "passkey_acc": 1, "loss": 1}}
		res, err := eval.RunSuite(cfg, loadByteModel, func(string, ...any) {})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := run(filepath.Join(dir, "out1"))
	if len(res.Ranking) != 2 {
		t.Fatalf("ranking %v", res.Ranking)
	}
	want := []string{
		"selection.md", "selection.json",
		"ckpt-a/gsm8k.json", "ckpt-a/gsm8k.md", "ckpt-a/gsm8k.jsonl",
		"ckpt-a/passkey.json", "ckpt-a/passkey.png", "ckpt-a/passkey.jsonl",
		"ckpt-a/niah.json", "ckpt-a/niah.png", "ckpt-b/ppl.json", "ckpt-b/ppl.png", "ckpt-b/ppl.md",
	}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(dir, "out1", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	// Reports name what they were made from.
	r, err := eval.ReadReport(filepath.Join(dir, "out1", "ckpt-a", "gsm8k.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := eval.HashDir(filepath.Join(dir, "ckpt-a"))
	dh, _ := eval.HashFiles(filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "test.jsonl"))
	if r.ModelHash != h || r.DataHash != dh || r.Metrics["gsm8k_strict"].N != 4 {
		t.Errorf("report lineage: %+v", r)
	}
	recs, _ := os.ReadFile(filepath.Join(dir, "out1", "ckpt-a", "gsm8k.jsonl"))
	if n := bytes.Count(recs, []byte("\n")); n != 4 || !bytes.Contains(recs, []byte(`"extracted_flexible"`)) {
		t.Errorf("gsm8k.jsonl: %d records", n)
	}

	// 2048-token prompts exceed the model's 1024 positions: not run, scored
	// wrong, reported.
	pk, _ := os.ReadFile(filepath.Join(dir, "out1", "ckpt-a", "passkey.jsonl"))
	if n := bytes.Count(pk, []byte(`"beyond":true`)); n != 2 {
		t.Errorf("%d prompts marked beyond, want 2", n)
	}
	pmd, _ := os.ReadFile(filepath.Join(dir, "out1", "ckpt-a", "passkey.md"))
	if !bytes.Contains(pmd, []byte("| 2 | 1024 |")) {
		t.Errorf("passkey.md does not report the prompts not run:\n%s", pmd)
	}

	run(filepath.Join(dir, "out2"))
	err = filepath.Walk(filepath.Join(dir, "out1"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(dir, "out1"), p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(dir, "out2", rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s differs between runs", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Perplexity reads token caches written by prepare, counts the documents
// too short, and refuses a cache made with another tokenizer.
func TestPPLFromTokenCache(t *testing.T) {
	dir := t.TempDir()
	byteModel(t, filepath.Join(dir, "m"), 3)
	s, err := loadByteModel(filepath.Join(dir, "m"))
	if err != nil {
		t.Fatal(err)
	}
	cachePath := filepath.Join(dir, "books.cache")
	cw, err := shards.CreateCache(context.Background(), cachePath, shards.CacheHeader{Source: "books", TokenizerHash: "not-the-model-tokenizer"})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{300, 5, 2000, 700} {
		if err := cw.Add(fmt.Sprintf("doc-%d", i), eval.Bytes{}.Encode(strings.Repeat("abc ", n/4+1)[:n])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := eval.DefaultPPL()
	cfg.Caches, cfg.Window, cfg.Buckets, cfg.MinTokens = []string{cachePath}, 512, []int{256, 512}, 64
	r, err := eval.RunPPLEval(s, cfg, filepath.Join(dir, "out"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics["loss@256-512"].Value <= 0 {
		t.Errorf("metrics %+v", r.Metrics)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "out", "ppl.md"))
	if !bytes.Contains(md, []byte("| 3 | 1 |")) {
		t.Errorf("want 3 scored, 1 too short:\n%s", md)
	}
	tok, err := tokenizer.Load(filepath.Join("..", "tokenizer", "testdata", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.Tok = tok
	if _, err := eval.RunPPLEval(s, cfg, filepath.Join(dir, "out2"), nil); err == nil || !strings.Contains(err.Error(), "books.cache: token cache made with tokenizer") {
		t.Errorf("tokenizer mismatch: err = %v", err)
	}
}
