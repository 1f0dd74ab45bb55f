// Command eval benchmarks greedy generation at long context on CPU: tokens
// per second with the KV cache (prefill once, then one-token steps) against
// full recomputation of the whole sequence for every new token, side by side
// on the same model and prompt.
//
//	go run ./benchmarks/eval [--config configs/model/tiny.yaml] [--context 2048] [--new 32]
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"time"

	"longctx/trainer"
)

func main() {
	cfgPath := flag.String("config", "configs/model/tiny.yaml", "model config YAML")
	modelDir := flag.String("model", "", "model directory (HF layout); overrides --config")
	context := flag.Int("context", 2048, "total context: prompt + new tokens")
	newTok := flag.Int("new", 32, "new tokens per run")
	batch := flag.Int("batch", 1, "prompts per run")
	backendSpec := flag.String("backend", "", "GoMLX backend")
	flag.Parse()
	if err := run(*cfgPath, *modelDir, *context, *newTok, *batch, *backendSpec); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark eval:", err)
		os.Exit(1)
	}
}

func run(cfgPath, modelDir string, context, newTok, batch int, backendSpec string) error {
	var w *trainer.Weights
	var err error
	if modelDir != "" {
		w, err = trainer.LoadHF(modelDir)
	} else {
		var c trainer.ModelConfig
		if c, err = trainer.LoadModelConfig(cfgPath); err == nil {
			c.MaxPositionEmbeddings = max(c.MaxPositionEmbeddings, context)
			w, err = trainer.InitWeights(c, 1)
		}
	}
	if err != nil {
		return err
	}
	c := w.Config
	backend, err := trainer.NewBackend(backendSpec)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prompts := make([][]uint32, batch)
	for i := range prompts {
		prompts[i] = make([]uint32, context-newTok+1)
		for j := range prompts[i] {
			prompts[i][j] = uint32(rng.IntN(c.VocabSize))
		}
	}
	fmt.Printf("model: %d layers, hidden %d, vocab %d (%d params); backend %s\n",
		c.NumHiddenLayers, c.HiddenSize, c.VocabSize, c.NumParams(), backend.Name())
	fmt.Printf("prompt %d tokens x %d, %d new tokens (context %d)\n", len(prompts[0]), batch, newTok, context)

	type result struct {
		out             [][]uint32
		warm, first, tp time.Duration
	}
	measure := func(noCache bool) (result, error) {
		g, err := trainer.NewGenerator(backend, w)
		if err != nil {
			return result{}, err
		}
		g.EOS = -1
		g.NoCache = noCache
		// First call compiles the graphs; time the second.
		t0 := time.Now()
		if _, err := g.Generate(prompts, 2, nil); err != nil {
			return result{}, err
		}
		warm := time.Since(t0)
		// The first token alone: prefill (or one full forward).
		t0 = time.Now()
		if _, err := g.Generate(prompts, 1, nil); err != nil {
			return result{}, err
		}
		first := time.Since(t0)
		t0 = time.Now()
		out, err := g.Generate(prompts, newTok, nil)
		if err != nil {
			return result{}, err
		}
		return result{out, warm, first, time.Since(t0)}, nil
	}
	cached, err := measure(false)
	if err != nil {
		return err
	}
	full, err := measure(true)
	if err != nil {
		return err
	}
	same := reflect.DeepEqual(cached.out, full.out)
	tps := func(d time.Duration) float64 { return float64(newTok*batch) / d.Seconds() }
	// Tokens after the first, per second: the steady decoding rate.
	steady := func(r result) float64 { return float64((newTok-1)*batch) / (r.tp - r.first).Seconds() }
	fmt.Printf("%-16s %10s %12s %14s %16s %14s\n", "", "total", "first token", "new tokens/s", "steady tokens/s", "compile+2tok")
	for _, x := range []struct {
		name string
		r    result
	}{{"KV cache", cached}, {"full recompute", full}} {
		fmt.Printf("%-16s %10s %12s %14.2f %16.2f %14s\n", x.name, x.r.tp.Round(time.Millisecond), x.r.first.Round(time.Millisecond),
			tps(x.r.tp), steady(x.r), x.r.warm.Round(time.Millisecond))
	}
	fmt.Printf("speed-up KV cache / recompute: end to end %.1fx, steady decoding %.1fx; identical tokens: %v\n",
		tps(cached.tp)/tps(full.tp), steady(cached)/steady(full), same)
	if !same {
		return fmt.Errorf("KV-cache tokens differ from full recomputation")
	}
	return nil
}
