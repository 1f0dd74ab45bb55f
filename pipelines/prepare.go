package pipelines

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

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

// sourceHash is the lineage hash of the settings that shape a source's
// tokens; a cache made under another hash is redone.
func (s SourceConfig) sourceHash() (string, error) {
	return config.Hash(struct {
		Version   int    `yaml:"version"`
		Format    string `yaml:"format"`
		MinTokens int    `yaml:"min_tokens"`
		MaxTokens int    `yaml:"max_tokens"`
	}{1, s.Format, s.MinTokens, s.MaxTokens})
}

// Tokenizer is what prepare needs from the tokenizer package.
type Tokenizer interface {
	EncodeDoc(text string) []uint32 // EOS appended
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
	ConfigHash    string `json:"config_hash"` // SourceConfig.sourceHash
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
					TokenizerHash: tokenizerHash, ConfigHash: sourceHash})
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
// the same input content (size, etag) with the same tokenizer and source
// settings, and both the cache and its sidecar still exist.
func UpToDate(ctx context.Context, task FileTask) (FileResult, bool) {
	b, err := storage.ReadFile(ctx, storage.Join(task.Output, sidecarName(task.Cache)))
	if err != nil {
		return FileResult{}, false
	}
	var prev FileResult
	if json.Unmarshal(b, &prev) != nil || prev.Task != task {
		return FileResult{}, false
	}
	if st, err := storage.Stat(ctx, storage.Join(task.Output, task.Cache)); err != nil || st.Size != prev.Cache.Bytes {
		return FileResult{}, false
	}
	prev.Reused = true
	return prev, true
}

// PrepareFile is one unit of work: read the input file with its source's
// reader, sanitise and tokenize every document (workers goroutines, output
// order fixed by input order), apply the length filters, and write the token
// cache, the file's dead letters and a sidecar with its result. Outputs are
// byte-identical whatever workers is.
func PrepareFile(ctx context.Context, task FileTask, tok Tokenizer, workers int) (FileResult, error) {
	f, err := LookupFormat(task.Format)
	if err != nil {
		return FileResult{}, err
	}
	res := FileResult{Task: task}
	res.Stats.Files = 1

	// Open first: a file that cannot be opened is an UnreadableError.
	var read func(Emit) error
	if f.Parquet != nil {
		ra, err := storage.OpenReaderAt(ctx, task.Input)
		if err != nil {
			return res, &UnreadableError{task.Input, err}
		}
		defer ra.Close()
		// A bad footer means parquet cannot open the file at all.
		read = func(e Emit) error { return ReadParquet(ra, ra.Size(), f, task.Input, task.Source, e) }
	} else {
		rc, err := storage.Open(ctx, task.Input)
		if err != nil {
			return res, &UnreadableError{task.Input, err}
		}
		defer rc.Close()
		read = func(e Emit) error { return ReadJSONLines(rc, f, task.Input, task.Source, e) }
	}

	cachePath := storage.Join(task.Output, task.Cache)
	cw, err := shards.CreateCache(ctx, cachePath, shards.CacheHeader{Source: task.Source, Input: task.Input,
		InputSize: task.Size, InputETag: task.ETag, TokenizerHash: task.TokenizerHash, ConfigHash: task.ConfigHash, EOS: true})
	if err != nil {
		return res, err
	}
	// Dead letters are created at the first drop: clean files (the common
	// case) cost no extra file.
	dlName := deadLetterName(task.Cache)
	var dw storage.Writer
	var dead *bufio.Writer
	abort := func(err error) (FileResult, error) {
		cw.Abort()
		if dw != nil {
			dw.Abort()
		}
		return res, err
	}

	st := &res.Stats
	writeDead := func(m Malformed) error {
		if dw == nil {
			w, err := storage.Create(ctx, storage.Join(task.Output, dlName))
			if err != nil {
				return err
			}
			dw, dead = w, bufio.NewWriterSize(w, 256<<10)
		}
		st.Drop(m.Reason, m.Records)
		b, _ := json.Marshal(m)
		dead.Write(b)
		return dead.WriteByte('\n')
	}
	keep := func(it *item) error {
		n := len(it.tokens)
		if task.MinTokens > 0 && n < task.MinTokens || task.MaxTokens > 0 && n > task.MaxTokens {
			reason, limit := ReasonTooShort, task.MinTokens
			if task.MaxTokens > 0 && n > task.MaxTokens {
				reason, limit = ReasonTooLong, task.MaxTokens
			}
			st.DroppedTokens += int64(n)
			return writeDead(Malformed{Source: task.Source, File: task.Input, Unit: it.doc.Unit, Record: it.doc.Record,
				Records: 1, Reason: reason, Detail: fmt.Sprintf("%d tokens, limit %d", n, limit), ID: it.doc.ID, Tokens: n})
		}
		st.Read++
		st.Written++
		st.Tokens += int64(n)
		st.TextBytes += int64(len(it.text))
		st.InvalidUTF8 += int64(it.replaced)
		st.Lengths.Observe(n)
		return cw.Add(it.doc.ID, it.tokens)
	}
	if err := tokenizeOrdered(ctx, read, tok, workers, func(it *item) error {
		if it.bad != nil {
			return writeDead(*it.bad)
		}
		return keep(it)
	}); err != nil {
		var ue *UnreadableError
		if errors.As(err, &ue) {
			return abort(err)
		}
		return abort(fmt.Errorf("%s: %w", task.Input, err))
	}
	if err := st.Check(); err != nil {
		return abort(fmt.Errorf("%s: accounting: %w", task.Input, err))
	}
	if dw != nil {
		if err := dead.Flush(); err != nil {
			return abort(err)
		}
	}
	sum, err := cw.Close()
	if err != nil {
		if dw != nil {
			dw.Abort()
		}
		return res, err
	}
	res.Cache = sum
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

// item is one record on its way from the reader to the cache.
type item struct {
	doc      Document
	bad      *Malformed
	text     string // sanitised text
	replaced int
	tokens   []uint32
}

type batch struct {
	items []item
	done  chan struct{}
}

// tokenizeOrdered runs read in one goroutine, tokenizes its documents in
// `workers` goroutines, and calls sink for every record in input order.
func tokenizeOrdered(ctx context.Context, read func(Emit) error, tok Tokenizer, workers int, sink func(*item) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *batch, workers)
	ordered := make(chan *batch, 2*workers+2)
	readErr := make(chan error, 1)

	go func() {
		defer close(jobs)
		defer close(ordered)
		var cur *batch
		var curBytes int
		send := func() error {
			if cur == nil {
				return nil
			}
			select {
			case ordered <- cur:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- cur:
			case <-ctx.Done():
				return ctx.Err()
			}
			cur, curBytes = nil, 0
			return nil
		}
		add := func(it item, n int) error {
			if cur == nil {
				cur = &batch{done: make(chan struct{})}
			}
			cur.items = append(cur.items, it)
			curBytes += n
			if curBytes >= 1<<20 || len(cur.items) >= 512 {
				return send()
			}
			return nil
		}
		err := read(Emit{
			Doc: func(d Document) error { return add(item{doc: d}, len(d.Text)) },
			Bad: func(m Malformed) error { return add(item{bad: &m}, 0) },
		})
		if err == nil {
			err = send()
		}
		readErr <- err
	}()
	for w := 0; w < workers; w++ {
		go func() {
			for b := range jobs {
				for i := range b.items {
					it := &b.items[i]
					if it.bad == nil {
						it.text, it.replaced = sanitizeUTF8(it.doc.Text)
						it.tokens = tok.EncodeDoc(it.text)
					}
				}
				close(b.done)
			}
		}()
	}
	var sinkErr error
	for b := range ordered {
		<-b.done
		if sinkErr != nil {
			continue // drain so the reader and workers end
		}
		for i := range b.items {
			if err := sink(&b.items[i]); err != nil {
				sinkErr = err
				cancel()
				break
			}
		}
	}
	if err := <-readErr; err != nil && sinkErr == nil {
		return err
	}
	return sinkErr
}
