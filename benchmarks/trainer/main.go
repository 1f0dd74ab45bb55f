// Command trainer benchmarks training throughput on the current backend:
// tokens/s of the SmolLM2-135M shape at 2k and 16k tokens, peak RSS, and the
// FLOP-limit ratio (achieved training FLOP/s over the FLOP/s of one large
// f32 matmul measured in the same run).
//
//	go run ./benchmarks/trainer [-model configs/model/smollm2-135m.yaml] [-seq 2048,16384] [-steps 2]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/config"
	"longctx/trainer"
)

func main() {
	model := flag.String("model", "configs/model/smollm2-135m.yaml", "model config")
	seqs := flag.String("seq", "2048,16384", "sequence lengths")
	steps := flag.Int("steps", 2, "optimizer steps per length (the first compiles and is not timed)")
	block := flag.Int("block", 512, "attention block")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile")
	layers := flag.Int("layers", 0, "override num_hidden_layers (0 = the config's); tokens/s scales about as 1/layers")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	backend, err := trainer.NewBackend("")
	if err != nil {
		fail(err)
	}
	mm := matmulFLOPs(backend, 2048, 576, 1536)
	fmt.Printf("backend %s\nmatmul 2048x576x1536 f32: %.1f GFLOP/s\n", backend.Name(), mm/1e9)
	mc, err := trainer.LoadModelConfig(*model)
	if err != nil {
		fail(err)
	}
	if *layers > 0 {
		mc.NumHiddenLayers = *layers
		data, err := config.Marshal(mc)
		if err != nil {
			fail(err)
		}
		*model = filepath.Join(os.TempDir(), fmt.Sprintf("longctx-bench-model-%dl.yaml", *layers))
		if err := os.WriteFile(*model, data, 0o644); err != nil {
			fail(err)
		}
	}
	fmt.Printf("model %s: %.1fM parameters, %d layers\n", *model, float64(mc.NumParams())/1e6, mc.NumHiddenLayers)
	fmt.Printf("%-8s %12s %14s %12s %10s %12s\n", "seq", "tokens/s", "train GFLOP/s", "FLOP ratio", "s/step", "peak RSS")
	for _, s := range strings.Split(*seqs, ",") {
		S, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		tokens := make([]uint32, S*(*steps+1))
		for i := range tokens {
			tokens[i] = uint32((i*7919 + i/97) % mc.VocabSize)
		}
		src, err := trainer.NewTokenStream(tokens, S, uint32(mc.EOSTokenID))
		if err != nil {
			fail(err)
		}
		cfg := trainer.DefaultTrainConfig()
		cfg.ModelConfig, cfg.SeqLen, cfg.Steps, cfg.AttentionBlock = *model, S, *steps, *block
		cfg.Out = filepath.Join(os.TempDir(), fmt.Sprintf("longctx-bench-%d", S))
		cfg.CheckpointEvery, cfg.LogEvery, cfg.ExportDType = 0, 1, "F32"
		res, err := trainer.Train(context.Background(), cfg, src, os.Stderr)
		os.RemoveAll(cfg.Out)
		if err != nil {
			fail(err)
		}
		fmt.Printf("%-8d %12.1f %14.2f %12.3f %10.1f %9.0f MiB\n", S, res.TokensPerS, res.FLOPsPerS/1e9, res.FLOPsPerS/mm,
			float64(S)/res.TokensPerS, peakRSSMiB())
	}
}

// matmulFLOPs times an [m,k]x[k,n] f32 matmul (best of 5 after a warmup).
func matmulFLOPs(backend compute.Backend, m, k, n int) float64 {
	exec, err := NewExec(backend, func(a, b *Node) *Node { return MatMul(a, b) })
	if err != nil {
		fail(err)
	}
	a := tensors.FromShape(shapes.Make(dtypes.Float32, m, k))
	b := tensors.FromShape(shapes.Make(dtypes.Float32, k, n))
	best := time.Duration(1 << 62)
	for i := range 6 {
		t0 := time.Now()
		out, err := exec.Exec(a, b)
		if err != nil {
			fail(err)
		}
		out[0].MustConstFlatData(func(any) {})
		if d := time.Since(t0); i > 0 && d < best {
			best = d
		}
	}
	return 2 * float64(m*k*n) / best.Seconds()
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchmark:", err)
	os.Exit(1)
}
