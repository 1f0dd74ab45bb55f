package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"longctx/shards"
)

func init() {
	register(&command{
		name:    "shards",
		summary: "inspect, verify, summarize or export packed shards",
		run: func(args []string) error {
			return dispatch("shards", args, map[string]subcommand{
				"inspect": {"print a shard directory's manifest: lineage, mixture, packing, shards", shardsInspect},
				"verify":  {"check every checksum and index invariant; non-zero exit on corruption", shardsVerify},
				"stats":   {"read every sequence and report fill, boundaries and piece lengths", shardsStats},
				"export":  {"write the shards as nanotron .ds or Megatron .bin/.idx files", shardsExport},
			})
		},
	})
}

func oneDir(fs *flag.FlagSet) (string, error) {
	if fs.NArg() != 1 {
		return "", usagef("want exactly one shard directory, got %d arguments", fs.NArg())
	}
	return fs.Arg(0), nil
}

func shardsInspect(args []string) error {
	fs := newFlags("shards inspect", "shards inspect [--json] DIR")
	asJSON := fs.Bool("json", false, "print the manifest as JSON")
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	dir, err := oneDir(fs)
	if err != nil {
		return err
	}
	m, err := shards.ReadManifest(context.Background(), dir)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := m.Encode()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("mixture %s: seq_len %d, seed %d, %d shards, %d sequences\n", m.Name, m.SeqLen, m.Seed, len(m.Shards), m.Sequences())
	fmt.Printf("lineage: mixture config %s, tokenizer %s, prepare manifest %s\n", short(m.MixtureConfigHash), short(m.TokenizerHash), short(m.PrepareManifestHash))
	fmt.Printf("packing: fill %.4f%%, %d real + %d pad tokens, %d pieces, %d split documents\n\n",
		100*m.Packing.Fill(), m.Packing.Real, m.Packing.Pad, m.Packing.Pieces, m.SplitDocs)
	fmt.Fprintln(w, "source\tweight\ttarget\trealized\tavailable\trepeats\t")
	for _, s := range m.Sources {
		fmt.Fprintf(w, "%s\t%.3f\t%d\t%d\t%d\t%.3f\t\n", s.Source, s.Weight, s.TargetTokens, s.RealizedTokens, s.AvailableTokens, s.Repeats)
	}
	w.Flush()
	for _, s := range m.Sources {
		if s.Warning != "" {
			fmt.Printf("warning: %s: %s\n", s.Source, s.Warning)
		}
	}
	fmt.Println()
	fmt.Fprintln(w, "shard\tsequences\tchunks\tbytes\tsha256\t")
	for _, s := range m.Shards {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t\n", s.Path, s.Sequences, s.Chunks, s.Bytes, short(s.SHA256))
	}
	return w.Flush()
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}

func shardsVerify(args []string) error {
	fs := newFlags("shards verify", "shards verify DIR")
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	dir, err := oneDir(fs)
	if err != nil {
		return err
	}
	rep, err := shards.Verify(context.Background(), dir)
	for _, p := range rep.Problems {
		fmt.Fprintln(os.Stderr, "corrupt:", p)
	}
	if err != nil {
		return err
	}
	fmt.Printf("ok: %s: %d shards, %d chunks, %d sequences; every checksum and count matches the manifest\n", dir, rep.Shards, rep.Chunks, rep.Sequences)
	return nil
}

func shardsStats(args []string) error {
	fs := newFlags("shards stats", "shards stats [--json] DIR")
	asJSON := fs.Bool("json", false, "print the statistics as JSON")
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	dir, err := oneDir(fs)
	if err != nil {
		return err
	}
	st, err := shards.ComputeStats(context.Background(), dir)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	fmt.Print(st.Markdown())
	return nil
}

func shardsExport(args []string) error {
	fs := newFlags("shards export", "shards export --format nanotron|megatron --out DIR [flags] SHARD_DIR")
	opt := shards.ExportOptions{TokenSize: 2, EOS: -1}
	fs.StringVar(&opt.Format, "format", "", "nanotron (.ds, .ds.index, .ds.metadata) or megatron (.bin, .idx)")
	out := fs.String("out", "", "output directory (local or gs://)")
	fs.StringVar(&opt.Tokenizer, "tokenizer", "HuggingFaceTB/SmolLM2-135M", "tokenizer id written to .ds.metadata (nanotron loads it with AutoTokenizer)")
	fs.IntVar(&opt.TokenSize, "token-size", opt.TokenSize, "bytes per token: 2 (uint16, vocab <= 65536) or 4")
	fs.Int64Var(&opt.EOS, "eos", opt.EOS, "token id appended after every document piece; -1 when documents already end with EOS")
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	dir, err := oneDir(fs)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if opt.Format != "nanotron" && opt.Format != "megatron" {
		return usagef("--format must be nanotron or megatron, got %q", opt.Format)
	}
	files, err := shards.Export(context.Background(), dir, *out, opt)
	if err != nil {
		return err
	}
	fmt.Printf("exported %d files to %s (%s): %s\n", len(files), *out, opt.Format, strings.Join(files, ", "))
	return nil
}
