package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"longctx/config"
	"longctx/pipelines"
	"longctx/recipe"
)

func init() {
	register(&command{name: "demo", summary: "the whole recipe at toy scale on a generated corpus, with a report", run: runDemo})
}

func runDemo(args []string) error {
	cfg := recipe.DefaultDemoConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("demo", "demo [--config configs/demo.yaml] [--FIELD value ...]")
	fs.String("config", "", "YAML demo config (configs/demo.yaml)")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// Prepare logs every file and Beam its execution plan at info level; keep
	// the demo readable unless the user asked for a log level.
	if os.Getenv("LONGCTX_LOG") == "" {
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		defer slog.SetDefault(prev)
	}
	if os.Getenv("LONGCTX_LOG") != "debug" {
		beamlog.SetLogger(pipelines.BeamLogger{Min: beamlog.SevWarn})
	}
	start := time.Now()
	if _, err := recipe.Demo(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		return err
	}
	fmt.Printf("demo done in %s; report: %s\n", time.Since(start).Round(time.Second), filepath.Join(cfg.Out, "REPORT.md"))
	return nil
}
