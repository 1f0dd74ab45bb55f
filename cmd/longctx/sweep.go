package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"longctx/config"
	"longctx/recipe"
)

func init() {
	register(&command{
		name:    "sweep",
		summary: "mixture ablations: mix -> train -> eval per point, one comparison table and plots",
		run:     runSweep,
	})
}

func runSweep(args []string) error {
	cfg := recipe.DefaultSweep()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("sweep", "sweep --config FILE [--FIELD value ...]")
	fs.String("config", "", "YAML sweep config (configs/sweeps/*.yaml)")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if cfg.Prepare == "" || cfg.Out == "" {
		return usagef("prepare and out are required (in --config or as -prepare/-out)")
	}
	pts, err := cfg.Points()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "sweep %s: %d points -> %s\n", cfg.Name, len(pts), cfg.Out)
	res, err := recipe.RunSweep(ctx, cfg, recipe.Env{
		Prepare: cfg.Prepare, Tokenizer: cfg.Tokenizer, Backend: cfg.Backend, Workers: cfg.Workers,
		GroupTokens: cfg.GroupTokens, ChunkTokens: cfg.ChunkTokens, Log: os.Stderr,
	})
	if err != nil {
		return err
	}
	skipped := 0
	for _, p := range res.Points {
		if p.Skipped {
			skipped++
		}
	}
	fmt.Print(res.Table())
	fmt.Printf("sweep %s: %d points (%d finished earlier, skipped); report %s\n", cfg.Name, len(res.Points), skipped,
		filepath.Join(cfg.Out, "sweep.md"))
	return nil
}
