package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"longctx/config"
	"longctx/pipelines"
	"longctx/recipe"
)

func init() {
	register(&command{name: "demo", summary: "the whole recipe at toy scale on a generated corpus, with a report",
		run: func(args []string) error { return runDemo("demo", "", args) }})
	register(&command{name: "evidence", summary: "the experiments with statistics (base raised vs kept, Liu et al., math share) at toy scale",
		run: func(args []string) error { return runDemo("evidence", "configs/evidence.yaml", args) }})
}

// runDemo runs recipe.Demo as `longctx NAME`; defaultConfig is loaded when
// no --config is given.
func runDemo(name, defaultConfig string, args []string) error {
	cfg := recipe.DefaultDemoConfig()
	cfg.Name = name
	p := config.ConfigPath(args)
	var missingDefault error
	if p == "" && defaultConfig != "" {
		// The default config is relative to the repository root; --help and
		// flag errors still work elsewhere, a run does not.
		if _, err := os.Stat(defaultConfig); err != nil {
			missingDefault = fmt.Errorf("no --config given and %s not found (run from the repository root): %w", defaultConfig, err)
		} else {
			p = defaultConfig
		}
	}
	if p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags(name, name+" [--config configs/"+name+".yaml] [--FIELD value ...]")
	fs.String("config", "", "YAML config (configs/"+name+".yaml)")
	publish := fs.String("publish", "", "after the run, copy REPORT.md, REPORT.json and the PNGs it links to into this directory (docs/evidence)")
	publishOnly := fs.Bool("publish-only", false, "with --publish: copy the report already under out without running anything")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if missingDefault != nil {
		return missingDefault
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
	if *publishOnly && *publish == "" {
		return usagef("--publish-only needs --publish DIR")
	}
	if !*publishOnly {
		if _, err := recipe.Demo(ctx, cfg, strings.Join(os.Args, " "), os.Stdout, os.Stderr); err != nil {
			return err
		}
	}
	if *publish != "" {
		files, missing, err := recipe.PublishReport(ctx, cfg.Out, *publish)
		if err != nil {
			return err
		}
		fmt.Printf("%s: published %d files to %s\n", name, len(files), *publish)
		if len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "%s: warning: the report links to %d plots no longer under %s, not published: %s\n",
				name, len(missing), cfg.Out, strings.Join(missing, ", "))
		}
	}
	fmt.Printf("%s done in %s; report: %s\n", name, time.Since(start).Round(time.Second), filepath.Join(cfg.Out, "REPORT.md"))
	return nil
}
