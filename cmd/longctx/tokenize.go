package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

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
		if _, err := tokenizeJSONL(tok, r, w, name, *addEOS, *count, *workers); err != nil {
			return err
		}
		return w.Flush()
	}
	// Atomic: write a temp file next to the output, rename when complete.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	n, err := tokenizeJSONL(tok, r, w, name, *addEOS, *count, *workers)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "tokenize: %d documents -> %s\n", n, *out)
	return nil
}

// tokenizeJSONL encodes each line's "text" in batches and writes one JSON line
// per input line, in order. It returns the number of documents.
func tokenizeJSONL(tok *tokenizer.Tokenizer, r io.Reader, w io.Writer, name string, addEOS, count bool, workers int) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	const batchBytes = 16 << 20
	var texts []string
	size, line, done := 0, 0, 0
	var buf []byte
	flush := func() error {
		if len(texts) == 0 {
			return nil
		}
		res := tok.EncodeBatch(texts, addEOS, workers)
		for _, ids := range res {
			buf = buf[:0]
			if count {
				buf = append(buf, `{"count":`...)
				buf = strconv.AppendInt(buf, int64(len(ids)), 10)
			} else {
				buf = append(buf, `{"ids":[`...)
				for k, id := range ids {
					if k > 0 {
						buf = append(buf, ',')
					}
					buf = strconv.AppendUint(buf, uint64(id), 10)
				}
				buf = append(buf, ']')
			}
			buf = append(buf, "}\n"...)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		done += len(texts)
		texts, size = texts[:0], 0
		return nil
	}
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			line++
			var doc struct {
				Text *string `json:"text"`
			}
			if jerr := json.Unmarshal(raw, &doc); jerr != nil {
				return done, fmt.Errorf("%s line %d: bad JSON: %v", name, line, jerr)
			}
			if doc.Text == nil {
				return done, fmt.Errorf("%s line %d: no \"text\" string field", name, line)
			}
			texts = append(texts, *doc.Text)
			size += len(*doc.Text)
			if size >= batchBytes {
				if err := flush(); err != nil {
					return done, err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return done, fmt.Errorf("%s line %d: %w", name, line+1, err)
		}
	}
	return done, flush()
}
