// Command longctx-train is the trainer alone, for accelerator machines: the
// same training loop and config as `longctx train`, without the data
// pipelines (no Beam), plus the XLA backend so GOMLX_BACKEND can point at a
// PJRT plugin: GOMLX_BACKEND=xla:/abs/path/pjrt_c_api_gpu_plugin.so.
// Nothing is downloaded at run time: the plugin must be given by path.
//
//	longctx-train --config configs/train/smollm2-360m-16k.yaml --data TOKENS.bin
//	longctx-train --config ... --synthetic_tokens 1000000   (throughput check on random documents)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"

	_ "github.com/gomlx/go-xla/compute/xla" // registers "xla"; no auto-install

	"longctx/config"
	"longctx/trainer"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "longctx-train:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := trainer.DefaultTrainConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("longctx-train", flag.ContinueOnError)
	fs.String("config", "", "YAML training config")
	synthetic := fs.Int("synthetic_tokens", 0, "train on this many pseudo-random tokens in random-length documents (throughput checks only)")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var tokens []uint32
	eos, err := trainer.DataEOS(cfg)
	if err != nil {
		return err
	}
	switch {
	case *synthetic > 0:
		rng := rand.New(rand.NewPCG(cfg.Seed, 1))
		tokens = make([]uint32, *synthetic)
		for i := range tokens {
			tokens[i] = 1 + uint32(rng.IntN(49151))
			if rng.IntN(3000) == 0 { // documents of ~3k tokens on average
				tokens[i] = eos
			}
		}
	case cfg.Data == "":
		return fmt.Errorf("give --data SHARD_DIR|TOKENS.bin or --synthetic_tokens N")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var src trainer.SequenceSource
	if tokens != nil {
		s, err := trainer.NewTokenStream(tokens, cfg.SeqLen, eos)
		if err != nil {
			return err
		}
		src = s
	} else {
		s, closeSrc, err := trainer.OpenData(ctx, cfg, eos)
		if err != nil {
			return err
		}
		defer closeSrc()
		src = s
	}
	res, err := trainer.Train(ctx, cfg, src, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("RESULT tokens_per_s=%.1f train_tflops=%.2f mfu=%.4f first_loss=%.4f final_loss=%.4f steps=%d\n",
		res.TokensPerS, res.FLOPsPerS/1e12, res.MFU, res.FirstLoss, res.FinalLoss, res.Steps)
	return nil
}
