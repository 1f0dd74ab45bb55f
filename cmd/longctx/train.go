package main

import (
	"context"
	"os"
	"os/signal"

	"longctx/config"
	"longctx/trainer"
)

func init() {
	register(&command{
		name:    "train",
		summary: "continued pretraining with checkpoints, exact resume and HF export",
		run:     runTrain,
	})
}

func runTrain(args []string) error {
	cfg := trainer.DefaultTrainConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("train", "train --config FILE [--resume] [--FIELD value ...]")
	fs.String("config", "", "YAML training config (configs/train/*.yaml)")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if cfg.Data == "" {
		return usagef("data is required (a shard directory from 'longctx mix', or a flat uint32 token file)")
	}
	eos, err := trainer.DataEOS(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	src, closeSrc, err := trainer.OpenData(ctx, cfg, eos)
	if err != nil {
		return err
	}
	defer closeSrc()
	_, err = trainer.Train(ctx, cfg, src, os.Stderr)
	return err
}
