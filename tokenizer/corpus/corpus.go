// Package corpus builds deterministic mixed-text corpora for the tokenizer's
// golden tests and benchmark, from text every Go machine has (the Go tree,
// license texts, Debian docs and man pages when present) plus generated edge
// cases: whitespace runs, numerals of many scripts, emoji, CJK, combining
// marks, special-token strings, control and invalid bytes, very long words.
//
// The same options on the same machine give the same documents in the same
// order.
package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Options sizes a corpus.
type Options struct {
	// Bytes is the total text size to reach (machine text fills what the
	// generated documents leave).
	Bytes int
	// Generated is the number of generated edge-case documents.
	Generated int
	// MaxDoc splits machine files into documents of at most this many bytes
	// (at line ends); 0 means 16 KiB.
	MaxDoc int
	// Seed picks files and drives the generator.
	Seed uint64
}

// Stats says where the documents came from.
type Stats struct {
	Files, FileDocs, GeneratedDocs int
	FileBytes, GeneratedBytes      int
	Roots                          []string // roots that existed and were read
}

func (s Stats) String() string {
	return fmt.Sprintf("%d docs (%d from %d files, %.1f MB; %d generated, %.1f MB) from %s",
		s.FileDocs+s.GeneratedDocs, s.FileDocs, s.Files, float64(s.FileBytes)/1e6,
		s.GeneratedDocs, float64(s.GeneratedBytes)/1e6, strings.Join(s.Roots, ", "))
}

// Build returns the documents: generated ones interleaved with machine text,
// in a fixed order.
func Build(o Options) ([]string, Stats, error) {
	if o.MaxDoc <= 0 {
		o.MaxDoc = 16 << 10
	}
	var st Stats
	gen := Generate(o.Generated, o.Seed)
	genBytes := 0
	for _, d := range gen {
		genBytes += len(d)
	}
	st.GeneratedDocs, st.GeneratedBytes = len(gen), genBytes

	files, roots, err := machineFiles()
	if err != nil {
		return nil, st, err
	}
	st.Roots = roots
	// Visit files in an order fixed by the seed (hash of path), so a small
	// corpus still spans many directories.
	sort.Slice(files, func(i, j int) bool {
		hi, hj := pathHash(files[i], o.Seed), pathHash(files[j], o.Seed)
		if hi != hj {
			return hi < hj
		}
		return files[i] < files[j]
	})
	var machine []string
	budget := o.Bytes - genBytes
	for _, f := range files {
		if st.FileBytes >= budget {
			break
		}
		text, ok, err := readText(f)
		if err != nil {
			return nil, st, err
		}
		if !ok {
			continue
		}
		st.Files++
		for _, d := range splitDoc(text, o.MaxDoc) {
			machine = append(machine, d)
			st.FileBytes += len(d)
		}
	}
	st.FileDocs = len(machine)
	// Interleave: one generated document after every k machine documents.
	docs := make([]string, 0, len(machine)+len(gen))
	k := 1
	if len(gen) > 0 {
		k = max(1, len(machine)/len(gen))
	}
	g := 0
	for i, d := range machine {
		docs = append(docs, d)
		if (i+1)%k == 0 && g < len(gen) {
			docs = append(docs, gen[g])
			g++
		}
	}
	docs = append(docs, gen[g:]...)
	return docs, st, nil
}

func pathHash(p string, seed uint64) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, p)
	return h.Sum64()
}

// machineFiles lists candidate text files, sorted.
func machineFiles() (files, roots []string, err error) {
	goroot := runtime.GOROOT()
	if goroot == "" {
		return nil, nil, fmt.Errorf("corpus: GOROOT unknown")
	}
	candidates := []string{
		filepath.Join(goroot, "src"), filepath.Join(goroot, "test"), filepath.Join(goroot, "doc"),
		filepath.Join(goroot, "misc"), filepath.Join(goroot, "lib"),
		"/usr/share/common-licenses", "/usr/share/doc", "/usr/share/man",
	}
	for _, root := range candidates {
		if _, err := os.Stat(root); err != nil {
			continue
		}
		roots = append(roots, root)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable entries are not text we need
			}
			if d.Type().IsRegular() {
				if info, err := d.Info(); err == nil && info.Size() > 0 && info.Size() < 4<<20 {
					files = append(files, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(roots) == 0 || !strings.HasPrefix(roots[0], goroot) {
		return nil, nil, fmt.Errorf("corpus: %s/src not found", goroot)
	}
	sort.Strings(files)
	return files, roots, nil
}

// readText returns a file's text (gunzipped for .gz); ok is false for binary
// files (a NUL byte in the first 8 KiB) or unreadable ones.
func readText(p string) (string, bool, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", false, nil
	}
	if strings.HasSuffix(p, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return "", false, nil
		}
		data, err = io.ReadAll(io.LimitReader(zr, 4<<20))
		if err != nil {
			return "", false, nil
		}
	}
	if bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0 {
		return "", false, nil
	}
	return string(data), true, nil
}

// splitDoc cuts text into documents of at most max bytes at line ends (a
// single longer line stays whole).
func splitDoc(text string, maxDoc int) []string {
	var out []string
	for len(text) > maxDoc {
		cut := strings.LastIndexByte(text[:maxDoc], '\n')
		if cut <= 0 {
			cut = strings.IndexByte(text[maxDoc:], '\n')
			if cut < 0 {
				break
			}
			cut += maxDoc
		}
		out = append(out, text[:cut+1])
		text = text[cut+1:]
	}
	if len(text) > 0 {
		out = append(out, text)
	}
	return out
}

// WriteDocs writes documents in the format golden.js reads: u32 count, then
// per document u32 length + bytes (little-endian).
func WriteDocs(w io.Writer, docs []string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var b [4]byte
	put := func(n int) {
		b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
		bw.Write(b[:])
	}
	put(len(docs))
	for _, d := range docs {
		put(len(d))
		bw.WriteString(d)
	}
	return bw.Flush()
}

// ReadIDs reads golden.js output: per document u32 count + ids.
func ReadIDs(r io.Reader, docs int) ([][]uint32, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var b [4]byte
	get := func() (uint32, error) {
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, err
		}
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
	}
	out := make([][]uint32, docs)
	for i := range out {
		n, err := get()
		if err != nil {
			return nil, fmt.Errorf("ids for document %d: %w", i, err)
		}
		ids := make([]uint32, n)
		for k := range ids {
			if ids[k], err = get(); err != nil {
				return nil, fmt.Errorf("ids for document %d: %w", i, err)
			}
		}
		out[i] = ids
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("ids: data after document %d", docs)
	}
	return out, nil
}

// rng returns the generator for a seed.
func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }
