package pipelines

// The mix stage on Beam: the file list is a file the workers expand (the job
// graph holds its path, not one element per cache file) -> Reshuffle, so
// select spreads over workers -> select (pieces keyed by packing group) ->
// GroupByKey over the bounded groups -> pack and write one shard per group.
// Counts and per-group results go through combiners into two small files the
// driver reads back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"longctx/shards"
	"longctx/storage"
)

func init() {
	register.DoFn4x2[context.Context, *sdf.LockRTracker, string, func(string), sdf.ProcessContinuation, error](&mixListFn{})
	register.DoFn3x1[context.Context, string, func(string), error](&mixListAllFn{})
	register.DoFn4x1[context.Context, string, func(int, []byte), func(string), error](&mixSelectFn{})
	register.DoFn4x1[context.Context, int, func(*[]byte) bool, func(string), error](&mixPackFn{})
	register.DoFn2x1[context.Context, string, error](&mixWriteFn{})
	register.Function2x2(mergeCountsJSON)
	register.Function2x2(mergeResultsJSON)
	register.Emitter2[int, []byte]()
	register.Emitter1[string]()
	register.Iter1[[]byte]()
	beam.RegisterType(reflect.TypeOf((*mixListFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixListAllFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixSelectFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixPackFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixWriteFn)(nil)).Elem())
}

// removeAll removes every file under dir (local or gs://).
func removeAll(ctx context.Context, dir string) error {
	fs, err := storage.List(ctx, storage.Join(dir, "**"))
	if err != nil {
		return fmt.Errorf("mix temp area %s: %w", dir, err)
	}
	for _, f := range fs {
		if err := storage.Remove(ctx, f.Path); err != nil {
			return fmt.Errorf("mix temp area: %w", err)
		}
	}
	return nil
}

// mixListElem names the file list (JSON Lines of cacheFile) and its length.
type mixListElem struct {
	Path  string `json:"path"`
	Files int64  `json:"files"`
}

// mixListFn expands the file list on a worker: a splittable DoFn over the
// list's line numbers that emits one file and then checkpoints, so each file
// leaves in its own bundle and the runner can spread select even where it
// fuses it with this step (prism elides Reshuffle into a fusion break).
type mixListFn struct {
	path  string
	lines []string
}

func (f *mixListFn) CreateInitialRestriction(elem string) offsetrange.Restriction {
	var e mixListElem
	json.Unmarshal([]byte(elem), &e)
	return offsetrange.Restriction{Start: 0, End: e.Files}
}

func (f *mixListFn) SplitRestriction(_ string, r offsetrange.Restriction) []offsetrange.Restriction {
	return []offsetrange.Restriction{r}
}

func (f *mixListFn) RestrictionSize(_ string, r offsetrange.Restriction) float64 { return r.Size() }

func (f *mixListFn) CreateTracker(r offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(offsetrange.NewTracker(r))
}

func (f *mixListFn) ProcessElement(ctx context.Context, rt *sdf.LockRTracker, elem string, emit func(string)) (sdf.ProcessContinuation, error) {
	var e mixListElem
	if err := json.Unmarshal([]byte(elem), &e); err != nil {
		return sdf.StopProcessing(), fmt.Errorf("mix file list: bad element %q: %w", elem, err)
	}
	if f.path != e.Path {
		b, err := storage.ReadFile(ctx, e.Path)
		if err != nil {
			return sdf.StopProcessing(), fmt.Errorf("mix file list: %w", err)
		}
		f.path, f.lines = e.Path, strings.Split(strings.TrimSpace(string(b)), "\n")
		if int64(len(f.lines)) != e.Files {
			return sdf.StopProcessing(), fmt.Errorf("mix file list %s: %d lines, the driver wrote %d", e.Path, len(f.lines), e.Files)
		}
	}
	r := rt.GetRestriction().(offsetrange.Restriction)
	if !rt.TryClaim(r.Start) {
		return sdf.StopProcessing(), nil
	}
	emit(f.lines[r.Start])
	if r.Start+1 >= r.End {
		return sdf.StopProcessing(), nil
	}
	return sdf.ResumeProcessingIn(0), nil
}

// mixListAllFn expands the whole file list in one call: for the direct
// runner, whose splittable-DoFn fallback does not resume a checkpoint.
type mixListAllFn struct{}

func (f *mixListAllFn) ProcessElement(ctx context.Context, elem string, emit func(string)) error {
	var e mixListElem
	if err := json.Unmarshal([]byte(elem), &e); err != nil {
		return fmt.Errorf("mix file list: bad element %q: %w", elem, err)
	}
	b, err := storage.ReadFile(ctx, e.Path)
	if err != nil {
		return fmt.Errorf("mix file list: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		emit(line)
	}
	return nil
}

// mixSelectFn runs selectFile on one cache file (a JSON cacheFile).
type mixSelectFn struct {
	Job     string `json:"job"` // JSON mixJob
	job     mixJob
	bundles beam.Counter
	files   beam.Counter
}

func (f *mixSelectFn) Setup() error {
	f.bundles = beam.NewCounter("mix", "select_bundles")
	f.files = beam.NewCounter("mix", "select_files")
	return json.Unmarshal([]byte(f.Job), &f.job)
}

// StartBundle counts bundles: a mix whose select ran in one bundle ran on one
// worker.
// (Beam wants a StartBundle to declare the emitters ProcessElement has.)
func (f *mixSelectFn) StartBundle(ctx context.Context, _ func(int, []byte), _ func(string)) {
	f.bundles.Inc(ctx, 1)
}

func (f *mixSelectFn) ProcessElement(ctx context.Context, file string, emit func(int, []byte), emitCounts func(string)) error {
	var cf cacheFile
	if err := json.Unmarshal([]byte(file), &cf); err != nil {
		return fmt.Errorf("mix select: bad element %q: %w", file, err)
	}
	f.files.Inc(ctx, 1)
	counts, err := selectFile(ctx, f.job, cf, func(g int, p shards.Piece) error {
		emit(g, encodePiece(p))
		return nil
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(counts)
	if err != nil {
		return err
	}
	emitCounts(string(b))
	return nil
}

// mixPackFn packs one group and writes its shard.
type mixPackFn struct {
	Job string `json:"job"`
	job mixJob
}

func (f *mixPackFn) Setup() error { return json.Unmarshal([]byte(f.Job), &f.job) }

func (f *mixPackFn) ProcessElement(ctx context.Context, g int, records func(*[]byte) bool, emit func(string)) error {
	var pieces []shards.Piece
	var rec []byte
	for records(&rec) {
		p, err := decodePiece(rec)
		if err != nil {
			return fmt.Errorf("mix pack group %d: %w", g, err)
		}
		pieces = append(pieces, p)
	}
	r, err := packGroup(ctx, f.job, g, pieces)
	if err != nil {
		return err
	}
	b, err := json.Marshal([]groupResult{r})
	if err != nil {
		return err
	}
	emit(string(b))
	return nil
}

// mixWriteFn writes its one input element to Path.
type mixWriteFn struct {
	Path string `json:"path"`
}

func (f *mixWriteFn) ProcessElement(ctx context.Context, s string) error {
	return storage.WriteFile(ctx, f.Path, []byte(s))
}

// mergeCountsJSON is the combiner of select counts (JSON selectCounts).
func mergeCountsJSON(a, b string) (string, error) {
	x, y := newSelectCounts(), newSelectCounts()
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		return "", err
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		return "", err
	}
	x.merge(y)
	out, err := json.Marshal(x)
	return string(out), err
}

// mergeResultsJSON is the combiner of group results (JSON []groupResult).
func mergeResultsJSON(a, b string) (string, error) {
	var x, y []groupResult
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		return "", err
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		return "", err
	}
	x = append(x, y...)
	sort.Slice(x, func(i, j int) bool { return x[i].Group < x[j].Group })
	out, err := json.Marshal(x)
	return string(out), err
}

// runBeam builds and runs the mix pipeline on the named runner.
// The file list, the drop lists and the two result files live in the temp
// area tmp, or next to a gs:// output where workers elsewhere can read them.
func runBeam(ctx context.Context, opt MixOptions, job mixJob, files []cacheFile, tmp string) (selectCounts, []groupResult, error) {
	counts := newSelectCounts()
	if len(files) == 0 {
		return counts, nil, nil
	}
	if storage.IsGCS(job.Output) {
		shared := storage.Join(job.Output, "_mix-tmp")
		defer removeAll(ctx, shared)
		if err := removeAll(ctx, shared); err != nil {
			return counts, nil, err
		}
		if job.DropsDir != "" {
			drops := storage.Join(shared, "drops")
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(job.DropsDir, fmt.Sprintf("%06d", f.Index)))
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return counts, nil, fmt.Errorf("mix drop list: %w", err)
				}
				if err := storage.WriteFile(ctx, storage.Join(drops, fmt.Sprintf("%06d", f.Index)), b); err != nil {
					return counts, nil, err
				}
			}
			job.DropsDir = drops
		}
		tmp = shared
	}
	if !beam.Initialized() {
		beam.Init()
	}
	jobJSON, err := json.Marshal(job)
	if err != nil {
		return counts, nil, err
	}
	countsPath, resultsPath, listPath := storage.Join(tmp, "counts.json"), storage.Join(tmp, "results.json"), storage.Join(tmp, "files.jsonl")
	var list bytes.Buffer
	for _, f := range files {
		b, _ := json.Marshal(f)
		list.Write(b)
		list.WriteByte('\n')
	}
	if err := storage.WriteFile(ctx, listPath, list.Bytes()); err != nil {
		return counts, nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	listElem, _ := json.Marshal(mixListElem{Path: listPath, Files: int64(len(files))})
	var in beam.PCollection
	if opt.Runner == "direct" {
		in = beam.ParDo(s, &mixListAllFn{}, beam.Create(s, string(listElem)))
	} else {
		in = beam.ParDo(s, &mixListFn{}, beam.Create(s, string(listElem)))
	}
	// One element expanded into many stays in one bundle unless reshuffled.
	in = beam.Reshuffle(s, in)
	pieces, fileCounts := beam.ParDo2(s, &mixSelectFn{Job: string(jobJSON)}, in)
	grouped := beam.GroupByKey(s, pieces)
	results := beam.ParDo(s, &mixPackFn{Job: string(jobJSON)}, grouped)
	beam.ParDo0(s, &mixWriteFn{Path: countsPath}, beam.Combine(s, mergeCountsJSON, fileCounts))
	beam.ParDo0(s, &mixWriteFn{Path: resultsPath}, beam.Combine(s, mergeResultsJSON, results))
	res, err := beam.Run(ctx, opt.Runner, p)
	if err != nil {
		return counts, nil, fmt.Errorf("mix on beam runner %s: %w", opt.Runner, err)
	}
	if res != nil {
		for _, c := range res.Metrics().AllMetrics().Counters() {
			if c.Key.Namespace == "mix" && c.Key.Name == "select_bundles" {
				counts.SelectBundles += c.Result()
			}
		}
	}
	cb, err := storage.ReadFile(ctx, countsPath)
	if err != nil {
		return counts, nil, fmt.Errorf("mix on beam: counts: %w", err)
	}
	bundles := counts.SelectBundles
	if err := json.Unmarshal(cb, &counts); err != nil {
		return counts, nil, fmt.Errorf("mix on beam: %s: %w", countsPath, err)
	}
	var rs []groupResult
	rb, err := storage.ReadFile(ctx, resultsPath)
	if err != nil {
		return counts, nil, fmt.Errorf("mix on beam: results: %w", err)
	}
	if err := json.Unmarshal(rb, &rs); err != nil {
		return counts, nil, fmt.Errorf("mix on beam: %s: %w", resultsPath, err)
	}
	counts.SelectBundles = bundles
	return counts, rs, nil
}
