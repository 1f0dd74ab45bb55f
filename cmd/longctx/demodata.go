package main

import (
	"context"
	"fmt"

	"longctx/corpus"
)

func init() {
	register(&command{name: "demo-data", summary: "write a small sample corpus in the five real source layouts", run: runDemoData})
}

func runDemoData(args []string) error {
	fs := newFlags("demo-data", "demo-data --out DIR [--seed N]")
	out := fs.String("out", "", "output directory (local or gs://)")
	seed := fs.Uint64("seed", 1, "generator seed (same seed, same bytes)")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	files, err := corpus.GenerateDemo(context.Background(), *out, *seed)
	if err != nil {
		return err
	}
	var total, mal, bytes int
	for _, f := range files {
		fmt.Printf("%-12s %-90s %4d records (%d malformed) %8d bytes\n", f.Format, f.Path, f.Records, f.Malformed, f.Bytes)
		total += f.Records
		mal += f.Malformed
		bytes += f.Bytes
	}
	fmt.Printf("demo-data: %d files, %d records (%d deliberately malformed), %.2f MB under %s\n", len(files), total, mal, float64(bytes)/1e6, *out)
	return nil
}
