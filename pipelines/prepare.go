package pipelines

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"longctx/config"
	"longctx/shards"
	"longctx/storage"
)

// SourceConfig is one source of the mixture: where its files are, how to
// read them and which documents to keep.
type SourceConfig struct {
	Name      string   `yaml:"name" help:"source name used in the mixture (books, code, ...)"`
	Format    string   `yaml:"format" help:"reader: dolma, stack, fineweb-edu, dclm or finemath"`
	Inputs    []string `yaml:"inputs" help:"file globs, local or gs:// (** matches across directories)"`
	MinTokens int      `yaml:"min_tokens" help:"drop documents with fewer tokens (EOS included); 0 keeps all"`
	MaxTokens int      `yaml:"max_tokens" help:"drop documents with more tokens; 0 keeps all"`
}

// PrepareConfig configures `longctx prepare`.
type PrepareConfig struct {
	Output         string         `yaml:"output" help:"output directory (local or gs://): token caches, manifest, report, dead letters"`
	Tokenizer      string         `yaml:"tokenizer" help:"tokenizer.json (local or gs://)"`
	Sources        []SourceConfig `yaml:"sources" help:"sources (YAML only)"`
	SkipUnreadable bool           `yaml:"skip_unreadable" help:"record input files that cannot be opened and go on, instead of failing the job"`
	Workers        int            `yaml:"workers" help:"tokenizer goroutines per input file (outputs do not depend on it)"`
	Force          bool           `yaml:"force" help:"redo every file even if its token cache is up to date"`
	CacheCodec     string         `yaml:"cache_codec" help:"token cache blocks: raw (default: 2 bytes a token, nothing to encode or decode), s2 (2.5-4x fewer bytes for ~12% more prepare CPU: remote storage, tight disks) or zstd (smallest, slowest)"`
}

// DefaultPrepareConfig returns the defaults.
func DefaultPrepareConfig() PrepareConfig {
	return PrepareConfig{Output: "prepared", Workers: 2}
}

// Validate checks the config before any work starts.
func (c PrepareConfig) Validate() error {
	if c.Output == "" {
		return errors.New("output is empty")
	}
	if c.Tokenizer == "" {
		return errors.New("tokenizer is empty")
	}
	if len(c.Sources) == 0 {
		return errors.New("no sources")
	}
	if c.Workers < 1 {
		return fmt.Errorf("workers = %d, want >= 1", c.Workers)
	}
	if c.CacheCodec != "" && !shards.ValidCacheCodec(c.CacheCodec) {
		return fmt.Errorf("cache_codec %q, want raw, s2 or zstd", c.CacheCodec)
	}
	seen := map[string]bool{}
	for i, s := range c.Sources {
		if s.Name == "" || strings.ContainsAny(s.Name, "/\\ ") {
			return fmt.Errorf("sources[%d]: name %q must be non-empty without slashes or spaces", i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("sources[%d]: duplicate name %q", i, s.Name)
		}
		seen[s.Name] = true
		if _, err := LookupFormat(s.Format); err != nil {
			return fmt.Errorf("source %s: %w", s.Name, err)
		}
		if len(s.Inputs) == 0 {
			return fmt.Errorf("source %s: no inputs", s.Name)
		}
		if s.MinTokens < 0 || s.MaxTokens < 0 || (s.MaxTokens > 0 && s.MaxTokens < s.MinTokens) {
			return fmt.Errorf("source %s: bad token limits min %d max %d", s.Name, s.MinTokens, s.MaxTokens)
		}
	}
	return nil
}

// sourceHash is the lineage hash of the settings and the code that shape a
// source's tokens; a cache made under another hash is redone.
func (s SourceConfig) sourceHash() (string, error) {
	return config.Hash(struct {
		Version   int    `yaml:"version"`
		Code      string `yaml:"code"`
		Format    string `yaml:"format"`
		MinTokens int    `yaml:"min_tokens"`
		MaxTokens int    `yaml:"max_tokens"`
	}{2, config.CodeVersion(), s.Format, s.MinTokens, s.MaxTokens})
}

// Tokenizer is what prepare needs from the tokenizer package.
type Tokenizer interface {
	AppendDoc(dst []uint32, text string) []uint32 // EOS appended
	Hash() string
}

// FileTask is one unit of work: one input file of one source.
type FileTask struct {
	Source        string `json:"source"`
	Format        string `json:"format"`
	Input         string `json:"input"`
	Size          int64  `json:"size"`
	ETag          string `json:"etag"`
	MinTokens     int    `json:"min_tokens"`
	MaxTokens     int    `json:"max_tokens"`
	Output        string `json:"output"` // output root
	Cache         string `json:"cache"`  // cache path relative to Output
	TokenizerHash string `json:"tokenizer_hash"`
	ConfigHash    string `json:"config_hash"`           // SourceConfig.sourceHash
	CacheCodec    string `json:"cache_codec,omitempty"` // "" = shards' default (raw)
}

// FileResult is what one unit of work reports.
type FileResult struct {
	Task        FileTask            `json:"task"`
	Cache       shards.CacheSummary `json:"cache"`
	Stats       shards.PrepareStats `json:"stats"`
	DeadLetters string              `json:"dead_letters,omitempty"` // relative to Output
	Reused      bool                `json:"reused,omitempty"`       // cache was up to date; not redone
	Unreadable  string              `json:"unreadable,omitempty"`   // open error under --skip-unreadable
}

// CacheName is the cache path (relative to the output root) for an input:
// source/<base>-<hash of the input path>.tokcache, so names are stable,
// unique and a retried unit of work overwrites its own output.
func CacheName(source, input string) string {
	base := storage.Base(input)
	for _, ext := range []string{".gz", ".zstd", ".zst", ".jsonl", ".json", ".parquet"} {
		base = strings.TrimSuffix(base, ext)
	}
	h := sha256.Sum256([]byte(input))
	return source + "/" + base + "-" + hex.EncodeToString(h[:6]) + ".tokcache"
}

func deadLetterName(cache string) string {
	return "dead_letters/" + strings.TrimSuffix(cache, ".tokcache") + ".jsonl"
}

func sidecarName(cache string) string { return cache + ".json" }

// ListTasks matches every source's globs (sorted, deduplicated) into tasks.
// A source whose globs match nothing is an error: it is almost always a
// wrong path.
func ListTasks(ctx context.Context, cfg PrepareConfig, tokenizerHash string) ([]FileTask, error) {
	var tasks []FileTask
	for _, s := range cfg.Sources {
		sourceHash, err := s.sourceHash()
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		seen := map[string]bool{}
		for _, g := range s.Inputs {
			files, err := storage.List(ctx, g)
			if err != nil {
				return nil, fmt.Errorf("source %s: list %s: %w", s.Name, g, err)
			}
			for _, f := range files {
				if seen[f.Path] {
					continue
				}
				seen[f.Path] = true
				tasks = append(tasks, FileTask{Source: s.Name, Format: s.Format, Input: f.Path, Size: f.Size, ETag: f.ETag,
					MinTokens: s.MinTokens, MaxTokens: s.MaxTokens, Output: cfg.Output, Cache: CacheName(s.Name, f.Path),
					TokenizerHash: tokenizerHash, ConfigHash: sourceHash, CacheCodec: cfg.CacheCodec})
			}
		}
		if len(seen) == 0 {
			return nil, fmt.Errorf("source %s: no files match %s", s.Name, strings.Join(s.Inputs, ", "))
		}
	}
	return tasks, nil
}

// UnreadableError is an input file that could not be opened at all.
type UnreadableError struct {
	Input string
	Err   error
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("unreadable input %s: %v", e.Input, e.Err)
}
func (e *UnreadableError) Unwrap() error { return e.Err }

// UpToDate returns the previous result for task if its cache was made from
// the same input content (size, etag) with the same tokenizer, source
// settings and code version, and the cache still holds exactly the bytes
// its sidecar recorded (xxh64): a cache damaged since is redone, not
// handed to mix.
func UpToDate(ctx context.Context, task FileTask) (FileResult, bool) {
	b, err := storage.ReadFile(ctx, storage.Join(task.Output, sidecarName(task.Cache)))
	if err != nil {
		return FileResult{}, false
	}
	var prev FileResult
	if json.Unmarshal(b, &prev) != nil || prev.Task != task {
		return FileResult{}, false
	}
	path := storage.Join(task.Output, task.Cache)
	if st, err := storage.Stat(ctx, path); err != nil || st.Size != prev.Cache.Bytes {
		return FileResult{}, false
	}
	if sum, err := shards.CacheChecksum(ctx, path); err != nil || sum != prev.Cache.XXH64 {
		return FileResult{}, false
	}
	prev.Reused = true
	return prev, true
}

// deadSample is how many ids a per-file filter dead letter lists.
const deadSample = 10

// openInput returns the file's reader (records counted by the reader), or
// an UnreadableError when the file cannot be opened at all.
func openInput(ctx context.Context, task FileTask, f Format) (read func(Emit) (int64, error), closeFn func(), err error) {
	if f.Parquet != nil {
		ra, err := storage.OpenReaderAt(ctx, task.Input)
		if err != nil {
			return nil, nil, &UnreadableError{task.Input, err}
		}
		// A bad footer means parquet cannot open the file at all.
		return func(e Emit) (int64, error) { return CountParquet(ra, ra.Size(), f, task.Input, task.Source, e) },
			func() { ra.Close() }, nil
	}
	rc, err := storage.Open(ctx, task.Input)
	if err != nil {
		return nil, nil, &UnreadableError{task.Input, err}
	}
	return func(e Emit) (int64, error) { return CountJSONLines(rc, f, task.Input, task.Source, e) },
		func() { rc.Close() }, nil
}

// PrepareFile is one unit of work: the chain read -> sanitise -> tokenize
// (workers goroutines) -> length filter -> write (in input order) over one
// input file, writing its token cache, its dead letters and a sidecar with
// its result. Outputs are byte-identical whatever workers is.
func PrepareFile(ctx context.Context, task FileTask, tok Tokenizer, workers int) (FileResult, error) {
	return prepareFile(ctx, task, tok, workers, nil)
}

// prepareFile is PrepareFile with extra steps after tokenize (tests use it
// to check that a step losing documents fails the accounting).
func prepareFile(ctx context.Context, task FileTask, tok Tokenizer, workers int, extra []Step) (FileResult, error) {
	f, err := LookupFormat(task.Format)
	if err != nil {
		return FileResult{}, err
	}
	res := FileResult{Task: task}
	res.Stats.Files = 1
	read, closeIn, err := openInput(ctx, task, f)
	if err != nil {
		return res, err
	}
	defer closeIn()

	cachePath := storage.Join(task.Output, task.Cache)
	cw, err := shards.CreateCache(ctx, cachePath, shards.CacheHeader{Source: task.Source, Input: task.Input,
		InputSize: task.Size, InputETag: task.ETag, TokenizerHash: task.TokenizerHash, ConfigHash: task.ConfigHash,
		EOS: true, TokenBytes: tokenBytes(tok), Codec: task.CacheCodec})
	if err != nil {
		return res, err
	}
	// Dead letters are created at the first drop: clean files (the common
	// case) cost no extra file.
	dlName := deadLetterName(task.Cache)
	var dw storage.Writer
	var dead *bufio.Writer
	fail := func(err error) (FileResult, error) {
		cw.Abort()
		if dw != nil {
			dw.Abort()
		}
		var ue *UnreadableError
		if !errors.As(err, &ue) && !strings.HasPrefix(err.Error(), task.Input) {
			err = fmt.Errorf("%s: %w", task.Input, err)
		}
		return res, err
	}
	writeDead := func(m Malformed) error {
		if dw == nil {
			w, err := storage.Create(ctx, storage.Join(task.Output, dlName))
			if err != nil {
				return err
			}
			dw, dead = w, bufio.NewWriterSize(w, 256<<10)
		}
		b, _ := json.Marshal(m)
		dead.Write(b)
		return dead.WriteByte('\n')
	}

	// Reader faults are one dead letter each (rare, and each names its
	// line or row). Filter drops are common (most of The Stack is under
	// 8k tokens): one letter per file and reason, with a sample of ids.
	type filterDrops struct {
		n, tokens int64
		limit     int
		unit      string
		first     int64
		sample    []string
	}
	filtered := map[string]*filterDrops{}
	st := &res.Stats
	sink := func(d *Doc) error {
		defer recycleTokens(d) // written to the cache (or dropped) by now
		if d.Drop == nil {
			n := len(d.Tokens)
			st.Lengths.Observe(n)
			return nil
		}
		m := d.Drop
		st.Drop(m.Reason, m.Records)
		if m.Limit == 0 {
			return writeDead(*m)
		}
		fd := filtered[m.Reason]
		if fd == nil {
			fd = &filterDrops{limit: m.Limit, unit: m.Unit, first: m.Record}
			filtered[m.Reason] = fd
		}
		fd.n += m.Records
		fd.tokens += int64(m.Tokens)
		if len(fd.sample) < deadSample {
			fd.sample = append(fd.sample, m.ID)
		}
		return nil
	}
	steps := []Step{sanitiseStep(), tokenizeStep(tok)}
	steps = append(steps, extra...)
	steps = append(steps, lengthStep(task.Source, task.Input, task.MinTokens, task.MaxTokens), writeStep(cw.Add))
	stepStats, err := runChain(ctx, read, steps, workers, sink)
	if err != nil {
		return fail(err)
	}
	for _, reason := range sortedKeysOf(filtered) {
		fd := filtered[reason]
		bound := "min_tokens"
		if reason == ReasonTooLong {
			bound = "max_tokens"
		}
		if err := writeDead(Malformed{Source: task.Source, File: task.Input, Unit: fd.unit, Record: fd.first, Records: fd.n,
			Reason: reason, Limit: fd.limit, Tokens: int(fd.tokens), Sample: fd.sample,
			Detail: fmt.Sprintf("%d documents (%d tokens) outside %s %d; first at %s %d; ids of the first %d in sample",
				fd.n, fd.tokens, bound, fd.limit, fd.unit, fd.first, len(fd.sample))}); err != nil {
			return fail(err)
		}
	}
	if dw != nil {
		if err := dead.Flush(); err != nil {
			return fail(err)
		}
	}
	sum, err := cw.Close()
	if err != nil {
		if dw != nil {
			dw.Abort()
		}
		return res, fmt.Errorf("%s: %w", task.Input, err)
	}
	res.Cache = sum
	// Each tally from where it is counted: read by the reader, written by
	// the cache, dropped by the steps; Check holds them together.
	st.Steps = stepStats
	st.Read = stepStats[0].In
	st.Written = sum.Docs
	st.Tokens = sum.Tokens
	for _, s := range stepStats {
		switch s.Name {
		case StepSanitise:
			st.InvalidUTF8 = s.Counts["invalid_utf8"]
		case StepLength:
			st.DroppedTokens = s.Counts["dropped_tokens"]
		case StepWrite:
			st.TextBytes = s.Counts["text_bytes"]
		}
	}
	if err := st.Check(); err != nil {
		if dw != nil {
			dw.Abort()
		}
		storage.Remove(ctx, cachePath)
		return res, fmt.Errorf("%s: accounting: %w", task.Input, err)
	}
	if dw != nil {
		if err := dw.Close(); err != nil {
			return res, err
		}
		res.DeadLetters = dlName
	} else if err := storage.Remove(ctx, storage.Join(task.Output, dlName)); err != nil && !errors.Is(err, storage.ErrNotExist) {
		return res, err // a stale file from an earlier run of a changed input
	}
	// The sidecar goes last: its presence means the cache is complete.
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := storage.WriteFile(ctx, storage.Join(task.Output, sidecarName(task.Cache)), b); err != nil {
		return res, err
	}
	return res, nil
}

// tokenBytes is the width of a token id in the cache: 2 when the
// vocabulary fits in uint16 (half the bytes to store and read), else 4.
func tokenBytes(tok Tokenizer) int {
	if v, ok := tok.(interface{ VocabSize() int }); ok && v.VocabSize() <= 1<<16 {
		return 2
	}
	return 4
}

func sortedKeysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
