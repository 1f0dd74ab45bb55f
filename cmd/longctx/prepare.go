package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	// Runners and the gs filesystem register themselves; --runner picks one.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"longctx/config"
	"longctx/pipelines"
)

// defaultRunner is the local runner when --runner is not given: direct.
// Measured (benchmarks/prepare, 287 MB of the five formats, 218M tokens,
// 2 shared cores): direct 53.4 s wall, 19.0 s CPU, 285 MB peak RSS; prism
// 59.3 s, 21.0 s CPU, 621 MB. With one element per input file the runners do
// the same work, and prism adds its in-process job service and keeps every
// collection in memory. direct is deprecated upstream in favour of prism,
// so --runner=prism stays one flag away, tested to give identical outputs.
const defaultRunner = "direct"

func init() {
	register(&command{name: "prepare", summary: "tokenize sources into token caches + statistics (Beam pipeline)", run: runPrepare})
	beamWorker = func(args []string) {
		for _, a := range args {
			if a == "--worker" || a == "-worker" || strings.HasPrefix(a, "--worker=") || strings.HasPrefix(a, "-worker=") {
				flag.CommandLine.Parse(args)
				beam.Init() // runs the harness and exits
				os.Exit(0)
			}
		}
	}
}

func runPrepare(args []string) error {
	cfg := pipelines.DefaultPrepareConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("prepare", "prepare --config FILE [flags] [Beam flags: --runner, --endpoint, --project, ...]")
	fs.String("config", "", "YAML config file (sources, tokenizer, output)")
	config.BindFlags(fs, "", &cfg)
	fs.BoolVar(&cfg.SkipUnreadable, "skip-unreadable", cfg.SkipUnreadable, "same as -skip_unreadable")
	// Beam keeps its options (--runner, --endpoint, --environment_type,
	// --project, --region, --staging_location, --worker_binary, --dry_run,
	// ...) on flag.CommandLine; share them so one command line sets both.
	// --help lists ours in full and Beam's by name.
	own := newFlags("prepare", "")
	fs.VisitAll(func(f *flag.Flag) { own.Var(f.Value, f.Name, f.Usage) })
	var beamFlags []string
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.Var(f.Value, f.Name, f.Usage)
			beamFlags = append(beamFlags, "--"+f.Name)
		}
	})
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: longctx prepare --config FILE [flags] [Beam flags]\n\nFlags:\n")
		own.SetOutput(w)
		own.PrintDefaults()
		fmt.Fprintf(w, "\nBeam flags (Beam's own documentation): %s\n", strings.Join(beamFlags, " "))
		fmt.Fprintf(w, "\nRunners: --runner=direct (default), prism, universal --endpoint=HOST:PORT --environment_type=LOOPBACK|DOCKER|EXTERNAL,\n"+
			"flink, spark, dataflow --project=P --region=R --staging_location=gs://... [--worker_binary=FILE] [--dry_run]\n")
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if r := flag.Lookup("runner"); r != nil && !flagSet(fs, "runner") {
		r.Value.Set(defaultRunner)
	}
	beam.Init()
	runner := flag.Lookup("runner").Value.String()
	dryRun := flag.Lookup("dry_run") != nil && flag.Lookup("dry_run").Value.String() == "true"
	if runner == "dataflow" {
		// Remote workers cannot see this machine's disk.
		for _, p := range append([]string{cfg.Output, cfg.Tokenizer}, inputsOf(cfg)...) {
			if !strings.HasPrefix(p, "gs://") {
				return usagef("--runner=dataflow needs gs:// paths for output, tokenizer and inputs; got %q", p)
			}
		}
	}
	// Beam logs its execution plan at info; keep the CLI readable unless
	// LONGCTX_LOG=debug asks for everything (or a dry run prints its job).
	if os.Getenv("LONGCTX_LOG") != "debug" && !dryRun {
		beamlog.SetLogger(beamLogger{min: beamlog.SevWarn})
	}

	ctx := context.Background()
	plan, err := pipelines.PlanPrepare(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "prepare: %d input files (%.1f MB) in %d sources, runner %s, output %s\n",
		len(plan.Tasks), float64(plan.InputBytes)/1e6, len(cfg.Sources), runner, cfg.Output)
	start := time.Now()
	stop := plan.StartProgress()
	err = plan.Run(ctx) // one line naming the file and cause; the full error in the debug log
	stop()
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if dryRun {
		fmt.Fprintln(os.Stderr, "prepare: dry run, nothing written")
		return nil
	}
	m, err := pipelines.ReadManifest(ctx, cfg.Output)
	if err != nil {
		return fmt.Errorf("pipeline finished but its manifest is missing: %w", err)
	}
	el := time.Since(start)
	fmt.Printf("prepare: done in %s: %.1f MB in, %.2f MB/s\n", el.Round(time.Millisecond), float64(plan.InputBytes)/1e6,
		float64(plan.InputBytes)/1e6/el.Seconds())
	for _, s := range m.Sources {
		fmt.Printf("  %-12s files %4d  read %8d  written %8d  dropped %6d  tokens %12d\n", s.Name, s.Stats.Files,
			s.Stats.Read, s.Stats.Written, s.Stats.Dropped(), s.Stats.Tokens)
	}
	fmt.Printf("manifest %s, report %s, dead letters %s (under %s)\n", "manifest.json", m.Report, m.DeadLetters, cfg.Output)
	return nil
}

// beamLogger forwards Beam's log lines at or above min to slog.
type beamLogger struct{ min beamlog.Severity }

func (l beamLogger) Log(ctx context.Context, sev beamlog.Severity, _ int, msg string) {
	if sev < l.min {
		return
	}
	level := slog.LevelWarn
	if sev >= beamlog.SevError {
		level = slog.LevelError
	}
	slog.Log(ctx, level, "beam: "+msg)
}

func inputsOf(cfg pipelines.PrepareConfig) []string {
	var in []string
	for _, s := range cfg.Sources {
		in = append(in, s.Inputs...)
	}
	return in
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
