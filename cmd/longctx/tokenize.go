package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"longctx/storage"
	"longctx/tokenizer"
)

func init() {
	register(&command{
		name:    "tokenize",
		summary: "encode JSONL documents ({\"text\": ...}) with a tokenizer.json",
		run:     runTokenize,
	})
}

func runTokenize(args []string) error {
	fs := newFlags("tokenize", "tokenize --tokenizer PATH [--in FILE] [--out FILE] [--add-eos] [--count] [--workers N] [--specials-as-text]")
	tokPath := fs.String("tokenizer", "", "tokenizer.json to load (required)")
	in := fs.String("in", "", "JSONL input with a \"text\" field per line (default stdin)")
	out := fs.String("out", "", "output file, written atomically (default stdout)")
	addEOS := fs.Bool("add-eos", false, "append the EOS id to each document")
	count := fs.Bool("count", false, "write {\"count\":N} instead of the ids")
	workers := fs.Int("workers", 0, "encoding goroutines (0: GOMAXPROCS)")
	specialsAsText := fs.Bool("specials-as-text", false,
		"encode special-token strings in the text (e.g. <|endoftext|>) as plain text instead of their ids")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *tokPath == "" {
		fs.Usage()
		return usagef("--tokenizer is required")
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	if *specialsAsText {
		tok = tok.WithSpecialsAsText()
	}
	r := io.Reader(os.Stdin)
	name := "stdin"
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, *in
	}
	if *out == "" {
		w := bufio.NewWriterSize(os.Stdout, 1<<20)
		if _, err := tokenizer.EncodeJSONL(tok, r, w, name, *addEOS, *count, *workers); err != nil {
			return err
		}
		return w.Flush()
	}
	var n int
	err = storage.WriteWith(context.Background(), *out, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 1<<20)
		var err error
		if n, err = tokenizer.EncodeJSONL(tok, r, w, name, *addEOS, *count, *workers); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "tokenize: %d documents -> %s\n", n, *out)
	return nil
}
