package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

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
	// beamx defines the --runner flag (and registers the dot runner).
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

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
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
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
		beamlog.SetLogger(pipelines.BeamLogger{Min: beamlog.SevWarn})
	}
	_, err := pipelines.RunPrepare(context.Background(), cfg, runner, dryRun, os.Stdout, os.Stderr)
	return err
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
