package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"longctx/config"
	"longctx/mixture"
	"longctx/pipelines"
)

// mixConfig is `longctx mix`'s configuration: where the token caches are,
// where the shards go, how to run, and the mixture itself.
type mixConfig struct {
	Prepare      string       `yaml:"prepare" help:"prepare manifest written by 'longctx prepare' (local or gs://)"`
	Output       string       `yaml:"output" help:"shard directory (local or gs://); sweep points go to OUTPUT/<mixture>-<point>"`
	Runner       string       `yaml:"runner" help:"local (in-process) or a Beam runner: prism, direct, universal, dataflow"`
	Workers      int          `yaml:"workers" help:"in-process workers (0 = all CPUs)"`
	GroupTokens  int64        `yaml:"group_tokens" help:"tokens per packing group and shard; bounds a packing step's memory"`
	ChunkTokens  int          `yaml:"chunk_tokens" help:"tokens per independently readable shard chunk"`
	MemoryTokens int64        `yaml:"memory_tokens" help:"above this budget the in-process executor spills pieces to local temp files per group"`
	Mixture      mixture.Spec `yaml:"mixture"`
}

func defaultMixConfig() mixConfig {
	return mixConfig{Runner: "local", GroupTokens: 64 << 20, ChunkTokens: 1 << 16, MemoryTokens: 512 << 20,
		Mixture: mixture.Spec{Name: "mix", SeqLen: 16384, Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 4}}
}

func init() {
	register(&command{
		name:    "mix",
		summary: "sample, upsample and pack token caches into a mixture of fixed-length shards",
		run:     runMix,
	})
}

func runMix(args []string) error {
	cfg := defaultMixConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("mix", "mix --config FILE [flags] [Beam flags: --endpoint, --project, --region, ...]")
	fs.String("config", "", "YAML config file (mixture sources, weights and sweep points come from it)")
	if err := config.BindFlags(fs, "", &cfg); err != nil {
		return err
	}
	// Beam keeps its runner options on flag.CommandLine; share them (our
	// -runner comes from the config and wins) so one command line sets both.
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if cfg.Runner == "dataflow" {
		// Remote workers cannot see this machine's disk.
		for _, p := range []string{cfg.Prepare, cfg.Output} {
			if !strings.HasPrefix(p, "gs://") {
				return usagef("runner dataflow needs gs:// paths for prepare and output; got %q", p)
			}
		}
	}
	if cfg.Prepare == "" || cfg.Output == "" {
		return usagef("prepare and output are required (in --config or as -prepare/-output)")
	}
	if err := cfg.Mixture.Validate(); err != nil {
		return err
	}
	start := time.Now()
	res, err := pipelines.MixSweep(context.Background(), pipelines.MixOptions{
		Spec: cfg.Mixture, Prepare: cfg.Prepare, Output: cfg.Output, GroupTokens: cfg.GroupTokens,
		ChunkTokens: cfg.ChunkTokens, MemoryTokens: cfg.MemoryTokens, Workers: cfg.Workers, Runner: cfg.Runner,
	})
	if err != nil {
		return err
	}
	for _, r := range res {
		m := r.Manifest
		fmt.Printf("mixture %s -> %s\n", m.Name, r.Output)
		fmt.Printf("  %-10s %8s %14s %14s %10s %8s\n", "source", "weight", "target", "realized", "available", "repeats")
		for _, s := range m.Sources {
			fmt.Printf("  %-10s %8.3f %14d %14d %10d %8.3f\n", s.Source, s.Weight, s.TargetTokens, s.RealizedTokens, s.AvailableTokens, s.Repeats)
		}
		for _, w := range r.Plan.Warnings {
			fmt.Fprintf(os.Stderr, "  warning: %s\n", w)
		}
		fmt.Printf("  packing: %d sequences of %d in %d shards, fill %.3f%% (%d pad tokens), %d documents split, %d pieces cut to fill gaps\n",
			m.Packing.Sequences, m.SeqLen, len(m.Shards), 100*m.Packing.Fill(), m.Packing.Pad, m.SplitDocs, m.Packing.Cuts)
		fmt.Printf("  report: %s, %s, %s\n", r.Report.Markdown, r.Report.JSON, r.Report.PNG)
	}
	fmt.Printf("mix done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
