package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"longctx/storage"
)

// PrepareManifest is what the prepare stage hands to mix: for every source,
// the token caches it wrote and where they came from. Mix reads this, never a
// directory listing.
type PrepareManifest struct {
	Version       int              `json:"version"`
	TokenizerHash string           `json:"tokenizer_hash"`
	ConfigHash    string           `json:"config_hash"`
	Sources       []PreparedSource `json:"sources"` // sorted by Name
	// DeadLetters is the JSONL file of every dropped record (relative to the
	// manifest's directory); Report the Markdown summary.
	DeadLetters string `json:"dead_letters,omitempty"`
	Report      string `json:"report,omitempty"`
}

// PreparedSource is one mixture source's token caches.
type PreparedSource struct {
	Name       string       `json:"name"`
	Format     string       `json:"format,omitempty"` // reader used (dolma, stack, ...)
	Docs       int64        `json:"docs"`             // documents written to caches
	Tokens     int64        `json:"tokens"`           // tokens written to caches
	Stats      PrepareStats `json:"stats"`            // sum over Caches
	Caches     []CacheRef   `json:"caches"`           // sorted by Path
	Unreadable []Unreadable `json:"unreadable,omitempty"`
}

// Unreadable is an input file skipped with --skip-unreadable.
type Unreadable struct {
	Input InputRef `json:"input"`
	Error string   `json:"error"`
}

// CacheRef is one token cache and the input file it was made from.
type CacheRef struct {
	Path   string   `json:"path"` // relative to the manifest's directory, or absolute/gs://
	Input  InputRef `json:"input"`
	Docs   int64    `json:"docs"`
	Tokens int64    `json:"tokens"`
	XXH64  string   `json:"xxh64"` // CacheSummary.XXH64
	// Stats accounts for every record of the input file; DeadLetters is the
	// file's dropped records (relative path, "" when none were dropped).
	Stats       PrepareStats `json:"stats"`
	DeadLetters string       `json:"dead_letters,omitempty"`
}

// LengthEdges are the exclusive upper bounds, in tokens, of the document
// length histogram buckets; the last bucket is open-ended.
var LengthEdges = [...]int64{512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072}

// LengthHistogram counts documents and their tokens by length bucket
// (bucket i holds lengths < LengthEdges[i]; the last holds the rest).
type LengthHistogram struct {
	Docs   [len(LengthEdges) + 1]int64 `json:"docs"`
	Tokens [len(LengthEdges) + 1]int64 `json:"tokens"`
}

// Observe adds one document of n tokens.
func (h *LengthHistogram) Observe(n int) {
	i := 0
	for i < len(LengthEdges) && int64(n) >= LengthEdges[i] {
		i++
	}
	h.Docs[i]++
	h.Tokens[i] += int64(n)
}

// BucketLabel names bucket i, e.g. "2k-4k" or ">=128k".
func BucketLabel(i int) string {
	k := func(v int64) string {
		if v%1024 == 0 {
			return fmt.Sprintf("%dk", v/1024)
		}
		return fmt.Sprint(v)
	}
	switch {
	case i == 0:
		return "<" + k(LengthEdges[0])
	case i == len(LengthEdges):
		return ">=" + k(LengthEdges[i-1])
	}
	return k(LengthEdges[i-1]) + "-" + k(LengthEdges[i])
}

// PrepareStats accounts for what prepare did with the records of one input
// file, or of a whole source. Read is counted by the reader (lines or rows
// it saw), Written by the token cache, Drops by the steps that dropped
// records; Check holds them to read = written + dropped.
type PrepareStats struct {
	Files         int64            `json:"files"`
	Read          int64            `json:"read"`            // records the readers saw (lines, rows)
	Written       int64            `json:"written"`         // documents in the token caches
	Tokens        int64            `json:"tokens"`          // tokens written, EOS included
	TextBytes     int64            `json:"text_bytes"`      // UTF-8 bytes of the written documents
	InvalidUTF8   int64            `json:"invalid_utf8"`    // ill-formed UTF-8 sequences replaced by U+FFFD
	Drops         map[string]int64 `json:"drops,omitempty"` // dropped records by reason
	DroppedTokens int64            `json:"dropped_tokens"`  // tokens of documents dropped by length filters
	Lengths       LengthHistogram  `json:"lengths"`         // written documents by length
	Steps         []StepStats      `json:"steps,omitempty"` // per step of the prepare chain, in order
}

// StepStats is what one prepare step did: documents in, passed on, dropped
// by reason, and the step's own measures (invalid_utf8, tokens, ...).
type StepStats struct {
	Name   string           `json:"name"`
	In     int64            `json:"in"`
	Out    int64            `json:"out"`
	Drops  map[string]int64 `json:"drops,omitempty"`
	Counts map[string]int64 `json:"counts,omitempty"`
}

// Dropped is the sum of the step's drops.
func (s StepStats) Dropped() int64 {
	var n int64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// Drop counts n records dropped for reason.
func (s *PrepareStats) Drop(reason string, n int64) {
	if s.Drops == nil {
		s.Drops = map[string]int64{}
	}
	s.Drops[reason] += n
}

// Dropped is the sum of Drops.
func (s PrepareStats) Dropped() int64 {
	var n int64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

func addMap(dst *map[string]int64, src map[string]int64) {
	for k, n := range src {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		(*dst)[k] += n
	}
}

// Merge adds o into s (statistics are sums, so merging is order-free).
// Steps are matched by name; a step only one side has is appended.
func (s *PrepareStats) Merge(o PrepareStats) {
	s.Files += o.Files
	s.Read += o.Read
	s.Written += o.Written
	s.Tokens += o.Tokens
	s.TextBytes += o.TextBytes
	s.InvalidUTF8 += o.InvalidUTF8
	s.DroppedTokens += o.DroppedTokens
	addMap(&s.Drops, o.Drops)
	for i := range s.Lengths.Docs {
		s.Lengths.Docs[i] += o.Lengths.Docs[i]
		s.Lengths.Tokens[i] += o.Lengths.Tokens[i]
	}
	for _, os := range o.Steps {
		i := 0
		for i < len(s.Steps) && s.Steps[i].Name != os.Name {
			i++
		}
		if i == len(s.Steps) {
			s.Steps = append(s.Steps, StepStats{Name: os.Name})
		}
		st := &s.Steps[i]
		st.In += os.In
		st.Out += os.Out
		addMap(&st.Drops, os.Drops)
		addMap(&st.Counts, os.Counts)
	}
}

// Check verifies the accounting identities: what the readers counted equals
// what the caches hold plus what was dropped; the histogram covers exactly
// the written documents and tokens; and, where per-step counts exist, every
// step passes on what it did not drop, each step receives what the previous
// one passed on, the first receives what was read and the last's output is
// what was written.
func (s PrepareStats) Check() error {
	if d := s.Dropped(); s.Read != s.Written+d {
		return fmt.Errorf("read %d != written %d + dropped %d", s.Read, s.Written, d)
	}
	var docs, toks int64
	for i := range s.Lengths.Docs {
		docs += s.Lengths.Docs[i]
		toks += s.Lengths.Tokens[i]
	}
	if docs != s.Written || toks != s.Tokens {
		return fmt.Errorf("length histogram has %d docs / %d tokens, want %d / %d", docs, toks, s.Written, s.Tokens)
	}
	if len(s.Steps) == 0 {
		return nil
	}
	var dropped int64
	for i, st := range s.Steps {
		if st.In != st.Out+st.Dropped() {
			return fmt.Errorf("step %s: in %d != out %d + dropped %d", st.Name, st.In, st.Out, st.Dropped())
		}
		want := s.Read
		if i > 0 {
			want = s.Steps[i-1].Out
		}
		if st.In != want {
			return fmt.Errorf("step %s: in %d, but %d came to it", st.Name, st.In, want)
		}
		dropped += st.Dropped()
	}
	if last := s.Steps[len(s.Steps)-1]; last.Out != s.Written {
		return fmt.Errorf("step %s passed on %d documents, caches hold %d", last.Name, last.Out, s.Written)
	}
	if dropped != s.Dropped() {
		return fmt.Errorf("steps dropped %d records, drops total %d", dropped, s.Dropped())
	}
	return nil
}

// InputRef identifies an input file's content.
type InputRef struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

// Source returns the named source, or nil.
func (m *PrepareManifest) Source(name string) *PreparedSource {
	for i := range m.Sources {
		if m.Sources[i].Name == name {
			return &m.Sources[i]
		}
	}
	return nil
}

// Encode renders the manifest as indented JSON (deterministic).
func (m *PrepareManifest) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Hash returns the sha256 of the encoded manifest, for lineage.
func (m *PrepareManifest) Hash() (string, error) {
	b, err := m.Encode()
	if err != nil {
		return "", fmt.Errorf("prepare manifest hash: %w", err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// WritePrepareManifest writes m to path atomically.
func WritePrepareManifest(ctx context.Context, path string, m *PrepareManifest) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("prepare manifest %s: %w", path, err)
	}
	return storage.WriteFile(ctx, path, b)
}

// ReadPrepareManifest reads a manifest written by WritePrepareManifest.
func ReadPrepareManifest(ctx context.Context, path string) (*PrepareManifest, error) {
	b, err := storage.ReadFile(ctx, path)
	if err != nil {
		return nil, err
	}
	var m PrepareManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("prepare manifest %s: %w", path, err)
	}
	return &m, nil
}

// CachePath resolves a cache reference against the manifest's location.
func CachePath(manifestPath string, ref CacheRef) string {
	if storage.IsGCS(ref.Path) || len(ref.Path) > 0 && ref.Path[0] == '/' {
		return ref.Path
	}
	return storage.Join(storage.Dir(manifestPath), ref.Path)
}
