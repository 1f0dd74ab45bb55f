package pipelines

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"longctx/config"
	"longctx/progress"
	"longctx/shards"
	"longctx/storage"
)

// The Beam wrapper is thin: one element per input file, PrepareFile does the
// work, combiners sum statistics, and one final step writes the manifest,
// the Markdown report and the merged dead letters.
//
//	tasks in groups --Reshuffle--> prepareFileFn --> FileResult
//	  FileResult --by source--> CombinePerKey(statsCombineFn) --side input--+
//	  FileResult --Combine(collectFn)--> fileList --> writeManifestFn <-----+

func init() {
	for _, t := range []reflect.Type{reflect.TypeOf(FileTask{}), reflect.TypeOf(FileResult{}),
		reflect.TypeOf(shards.PrepareStats{}), reflect.TypeOf(fileList{}), reflect.TypeOf(fileGroup{})} {
		beam.RegisterType(t)
	}
	// JSON coders: these types hold maps and fixed arrays, and JSON keeps
	// them readable in runner UIs. Encoding is deterministic.
	// Coder functions are looked up by name on workers, so each type has its
	// own non-generic pair (instantiations of a generic share one name).
	beam.RegisterCoder(reflect.TypeOf(FileTask{}), encodeTask, decodeTask)
	beam.RegisterCoder(reflect.TypeOf(FileResult{}), encodeResult, decodeResult)
	beam.RegisterCoder(reflect.TypeOf(shards.PrepareStats{}), encodeStats, decodeStats)
	beam.RegisterCoder(reflect.TypeOf(fileList{}), encodeFileList, decodeFileList)
	beam.RegisterCoder(reflect.TypeOf(fileGroup{}), encodeFileGroup, decodeFileGroup)

	register.DoFn3x1[context.Context, fileGroup, func(FileResult), error](&prepareFileFn{})
	register.Emitter1[FileResult]()
	register.Function1x2[FileResult, string, FileResult](keyBySource)
	register.Combiner3[shards.PrepareStats, FileResult, shards.PrepareStats](&statsCombineFn{})
	register.Combiner3[fileList, FileResult, fileList](&collectFn{})
	register.DoFn3x1[context.Context, fileList, func(*string, *shards.PrepareStats) bool, error](&writeManifestFn{})
	register.Iter2[string, shards.PrepareStats]()
}

func encodeTask(v FileTask) ([]byte, error)                   { return json.Marshal(v) }
func encodeResult(v FileResult) ([]byte, error)               { return json.Marshal(v) }
func encodeStats(v shards.PrepareStats) ([]byte, error)       { return json.Marshal(v) }
func encodeFileList(v fileList) ([]byte, error)               { return json.Marshal(v) }
func decodeTask(b []byte) (v FileTask, err error)             { err = json.Unmarshal(b, &v); return }
func decodeResult(b []byte) (v FileResult, err error)         { err = json.Unmarshal(b, &v); return }
func decodeStats(b []byte) (v shards.PrepareStats, err error) { err = json.Unmarshal(b, &v); return }
func decodeFileList(b []byte) (v fileList, err error)         { err = json.Unmarshal(b, &v); return }
func encodeFileGroup(v fileGroup) ([]byte, error)             { return json.Marshal(v) }
func decodeFileGroup(b []byte) (v fileGroup, err error)       { err = json.Unmarshal(b, &v); return }

// localBar is the progress bar of an in-process run (direct, prism, or a
// loopback worker): DoFns running in this process add to it. Remote workers
// have none and log a line per file instead.
var localBar atomic.Pointer[progress.Bar]

// fileGroup is one element of the prepare job: consecutive input files
// that one DoFn call prepares, filesInFlight at a time. With one file per
// call the tokenizer goroutines idle at every file boundary, while a file's
// reader fills its first batch and while its last batches, cache block and
// fsyncs drain; within a group the next file starts as soon as one ends.
// (Emitting from FinishBundle would allow the same across elements, but
// prism lost such outputs downstream in 2 of 5 runs.)
type fileGroup struct {
	Tasks []FileTask `json:"tasks"`
}

const (
	filesPerGroup = 8 // 30k DCLM files are still ~4k elements to spread
	filesInFlight = 2
)

// fileSlots bounds the files being prepared in this process at once,
// across DoFn calls: prism ran two bundles at a time, 4 files in flight on
// 2 cores (peak RSS 372 MB against 322 MB with the bound, same wall). A
// process gets max(filesInFlight, cores/workers + 1) slots.
var (
	fileSlotsOnce sync.Once
	fileSlots     chan struct{}
)

func acquireFileSlot(ctx context.Context, workers int) error {
	fileSlotsOnce.Do(func() {
		fileSlots = make(chan struct{}, max(filesInFlight, runtime.GOMAXPROCS(0)/max(workers, 1)+1))
	})
	select {
	case fileSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func releaseFileSlot() { <-fileSlots }

// groupTasks cuts tasks into groups of up to n consecutive files.
func groupTasks(tasks []FileTask, n int) []fileGroup {
	var gs []fileGroup
	for len(tasks) > 0 {
		k := min(n, len(tasks))
		gs = append(gs, fileGroup{Tasks: tasks[:k:k]})
		tasks = tasks[k:]
	}
	return gs
}

// prepareFileFn runs PrepareFile on each file of a group.
type prepareFileFn struct {
	Tokenizer      string `json:"tokenizer"`
	Workers        int    `json:"workers"`
	SkipUnreadable bool   `json:"skip_unreadable"`
	Force          bool   `json:"force"`

	tok Tokenizer
}

func (f *prepareFileFn) Setup(ctx context.Context) error {
	tok, err := loadTokenizer(ctx, f.Tokenizer)
	if err != nil {
		return err
	}
	f.tok = tok
	return nil
}

var (
	docsWritten  = beam.NewCounter("prepare", "documents_written")
	docsDropped  = beam.NewCounter("prepare", "documents_dropped")
	tokensCount  = beam.NewCounter("prepare", "tokens_written")
	filesReused  = beam.NewCounter("prepare", "files_reused")
	filesSkipped = beam.NewCounter("prepare", "files_unreadable")
)

type fileDone struct {
	task FileTask
	res  FileResult
	err  error
}

// ProcessElement prepares the group's files, emitting each result on this
// goroutine as its file finishes (the manifest sorts them). The first
// failure cancels the files in flight, waits for them and is returned.
func (f *prepareFileFn) ProcessElement(ctx context.Context, g fileGroup, emit func(FileResult)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan fileDone, len(g.Tasks))
	next, running := 0, 0
	var first error
	for {
		for first == nil && running < filesInFlight && next < len(g.Tasks) {
			task := g.Tasks[next]
			next++
			if task.TokenizerHash != f.tok.Hash() {
				first = fmt.Errorf("%s: tokenizer hash %s on this worker, %s when the job was built", task.Input, f.tok.Hash(), task.TokenizerHash)
				cancel()
				break
			}
			if !f.Force {
				if prev, ok := UpToDate(ctx, task); ok {
					filesReused.Inc(ctx, 1)
					f.done(ctx, prev)
					emit(prev)
					continue
				}
			}
			if err := acquireFileSlot(ctx, f.Workers); err != nil {
				first = err
				break
			}
			running++
			go func() {
				d := fileDone{task: task}
				defer func() {
					if p := recover(); p != nil {
						d.err = fmt.Errorf("%s: panic: %v\n%s", task.Input, p, debug.Stack())
					}
					releaseFileSlot() // before the result: the next file may start at once
					finished <- d
				}()
				d.res, d.err = PrepareFile(ctx, task, f.tok, f.Workers)
			}()
		}
		if running == 0 {
			return markFault(first)
		}
		d := <-finished
		running--
		if first != nil {
			continue // draining after a failure
		}
		if err := f.collect(ctx, d, emit); err != nil {
			first = err
			cancel()
		}
	}
}

// collect counts and emits one finished file, or returns its error.
func (f *prepareFileFn) collect(ctx context.Context, d fileDone, emit func(FileResult)) error {
	var ue *UnreadableError
	switch {
	case errors.As(d.err, &ue) && f.SkipUnreadable:
		filesSkipped.Inc(ctx, 1)
		res := FileResult{Task: d.task, Unreadable: ue.Err.Error(), Stats: shards.PrepareStats{Files: 1}}
		slog.Warn("prepare: skipping unreadable input", "input", d.task.Input, "err", ue.Err)
		f.done(ctx, res)
		emit(res)
		return nil
	case d.err != nil:
		return d.err
	}
	docsWritten.Inc(ctx, d.res.Stats.Written)
	docsDropped.Inc(ctx, d.res.Stats.Dropped())
	tokensCount.Inc(ctx, d.res.Stats.Tokens)
	f.done(ctx, d.res)
	emit(d.res)
	return nil
}

func (f *prepareFileFn) done(ctx context.Context, r FileResult) {
	if b := localBar.Load(); b != nil {
		b.Add(r.Task.Size)
		return
	}
	slog.Info("prepare: file done", "input", r.Task.Input, "read", r.Stats.Read, "written", r.Stats.Written,
		"dropped", r.Stats.Dropped(), "tokens", r.Stats.Tokens, "reused", r.Reused)
}

func keyBySource(r FileResult) (string, FileResult) { return r.Task.Source, r }

// statsCombineFn sums per-file statistics into per-source statistics.
type statsCombineFn struct{}

func (statsCombineFn) CreateAccumulator() shards.PrepareStats { return shards.PrepareStats{} }
func (statsCombineFn) AddInput(a shards.PrepareStats, r FileResult) shards.PrepareStats {
	a.Merge(r.Stats)
	return a
}
func (statsCombineFn) MergeAccumulators(a, b shards.PrepareStats) shards.PrepareStats {
	a.Merge(b)
	return a
}

// fileList gathers every file's result for the manifest (one small record
// per input file, so this is a few MB even for thousands of files).
type fileList struct {
	Files []FileResult `json:"files"`
}

type collectFn struct{}

func (collectFn) CreateAccumulator() fileList { return fileList{} }
func (collectFn) AddInput(a fileList, r FileResult) fileList {
	a.Files = append(a.Files, r)
	return a
}
func (collectFn) MergeAccumulators(a, b fileList) fileList {
	a.Files = append(a.Files, b.Files...)
	return a
}

// writeManifestFn writes manifest, report and merged dead letters.
type writeManifestFn struct {
	Output        string         `json:"output"`
	TokenizerHash string         `json:"tokenizer_hash"`
	ConfigHash    string         `json:"config_hash"`
	Sources       []SourceConfig `json:"sources"`
}

func (f *writeManifestFn) ProcessElement(ctx context.Context, files fileList, perSource func(*string, *shards.PrepareStats) bool) error {
	combined := map[string]shards.PrepareStats{}
	var name string
	var st shards.PrepareStats
	for perSource(&name, &st) {
		combined[name] = st
	}
	m, err := BuildManifest(f.TokenizerHash, f.ConfigHash, f.Sources, files.Files)
	if err != nil {
		return markFault(err)
	}
	// Two independent sums must agree: the combiner's and the manifest's.
	for _, s := range m.Sources {
		c := combined[s.Name]
		a, _ := json.Marshal(c)
		b, _ := json.Marshal(s.Stats)
		if !bytes.Equal(a, b) {
			return markFault(fmt.Errorf("source %s: combined statistics %s differ from per-file sum %s", s.Name, a, b))
		}
	}
	return markFault(WriteOutputs(ctx, f.Output, m, files.Files))
}

// BuildManifest assembles the prepare manifest from per-file results
// (sorted by cache path, so it does not depend on completion order) and
// checks every file's and source's accounting.
func BuildManifest(tokHash, cfgHash string, sources []SourceConfig, files []FileResult) (*shards.PrepareManifest, error) {
	files = append([]FileResult(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Task.Cache < files[j].Task.Cache })
	m := &shards.PrepareManifest{Version: 1, TokenizerHash: tokHash, ConfigHash: cfgHash,
		DeadLetters: "dead_letters.jsonl", Report: "report.md"}
	for _, sc := range sources {
		ps := shards.PreparedSource{Name: sc.Name, Format: sc.Format}
		for _, r := range files {
			if r.Task.Source != sc.Name {
				continue
			}
			if err := r.Stats.Check(); err != nil {
				return nil, fmt.Errorf("%s: %w", r.Task.Input, err)
			}
			ps.Stats.Merge(r.Stats)
			in := shards.InputRef{Path: r.Task.Input, Size: r.Task.Size, ETag: r.Task.ETag}
			if r.Unreadable != "" {
				ps.Unreadable = append(ps.Unreadable, shards.Unreadable{Input: in, Error: r.Unreadable})
				continue
			}
			ps.Caches = append(ps.Caches, shards.CacheRef{Path: r.Task.Cache, Input: in, Docs: r.Cache.Docs,
				Tokens: r.Cache.Tokens, XXH64: r.Cache.XXH64, Stats: r.Stats, DeadLetters: r.DeadLetters})
		}
		if err := ps.Stats.Check(); err != nil {
			return nil, fmt.Errorf("source %s: %w", sc.Name, err)
		}
		ps.Docs, ps.Tokens = ps.Stats.Written, ps.Stats.Tokens
		m.Sources = append(m.Sources, ps)
	}
	sort.Slice(m.Sources, func(i, j int) bool { return m.Sources[i].Name < m.Sources[j].Name })
	return m, nil
}

// WriteOutputs writes the merged dead letters, the report and, last, the
// manifest (its presence means the run completed).
func WriteOutputs(ctx context.Context, out string, m *shards.PrepareManifest, files []FileResult) error {
	files = append([]FileResult(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Task.Cache < files[j].Task.Cache })
	w, err := storage.Create(ctx, storage.Join(out, m.DeadLetters))
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, r := range files {
		if r.DeadLetters == "" {
			continue
		}
		// Streamed: a code source's too_short letters can be large.
		rc, err := storage.Open(ctx, storage.Join(out, r.DeadLetters))
		if err != nil {
			w.Abort()
			return err
		}
		_, err = io.Copy(bw, rc)
		rc.Close()
		if err != nil {
			w.Abort()
			return fmt.Errorf("merge dead letters %s: %w", r.DeadLetters, err)
		}
	}
	if err := bw.Flush(); err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := storage.WriteFile(ctx, storage.Join(out, m.Report), []byte(Report(m, files))); err != nil {
		return err
	}
	return shards.WritePrepareManifest(ctx, storage.Join(out, "manifest.json"), m)
}

// PrepareConfigHash is the lineage hash of the settings that shape outputs.
func PrepareConfigHash(cfg PrepareConfig) (string, error) {
	return config.Hash(struct {
		Code           string         `yaml:"code"`
		Sources        []SourceConfig `yaml:"sources"`
		SkipUnreadable bool           `yaml:"skip_unreadable"`
	}{config.CodeVersion(), cfg.Sources, cfg.SkipUnreadable})
}

// PrepareOutputs are the pipeline's collections, for tests.
type PrepareOutputs struct {
	Files     beam.PCollection // FileResult, one per input file
	PerSource beam.PCollection // KV<string, shards.PrepareStats>
}

// BuildPrepare adds the prepare pipeline for tasks to scope s.
func BuildPrepare(s beam.Scope, cfg PrepareConfig, tokHash string, tasks []FileTask) (PrepareOutputs, error) {
	cfgHash, err := PrepareConfigHash(cfg)
	if err != nil {
		return PrepareOutputs{}, err
	}
	s = s.Scope("prepare")
	in := beam.CreateList(s, groupTasks(tasks, filesPerGroup))
	// Spread groups over workers: Create makes one bundle.
	in = beam.Reshuffle(s, in)
	files := beam.ParDo(s, &prepareFileFn{Tokenizer: cfg.Tokenizer, Workers: cfg.Workers,
		SkipUnreadable: cfg.SkipUnreadable, Force: cfg.Force}, in)
	perSource := beam.CombinePerKey(s, &statsCombineFn{}, beam.ParDo(s, keyBySource, files))
	all := beam.Combine(s, &collectFn{}, files)
	beam.ParDo0(s, &writeManifestFn{Output: cfg.Output, TokenizerHash: tokHash, ConfigHash: cfgHash,
		Sources: cfg.Sources}, all, beam.SideInput{Input: perSource})
	return PrepareOutputs{Files: files, PerSource: perSource}, nil
}
