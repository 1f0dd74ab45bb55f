package pipelines

// The mix stage on Beam: one element per token-cache file -> select (pieces
// keyed by packing group) -> GroupByKey over the bounded groups -> pack and
// write one shard per group. Counts and per-group results go through
// combiners into two small files the driver reads back.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"longctx/shards"
	"longctx/storage"
)

func init() {
	register.DoFn4x1[context.Context, string, func(int, []byte), func(string), error](&mixSelectFn{})
	register.DoFn4x1[context.Context, int, func(*[]byte) bool, func(string), error](&mixPackFn{})
	register.DoFn2x1[context.Context, string, error](&mixWriteFn{})
	register.Function2x2(mergeCountsJSON)
	register.Function2x2(mergeResultsJSON)
	register.Emitter2[int, []byte]()
	register.Emitter1[string]()
	register.Iter1[[]byte]()
	beam.RegisterType(reflect.TypeOf((*mixSelectFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixPackFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixWriteFn)(nil)).Elem())
}

// mixSelectFn runs selectFile on one cache file (a JSON cacheFile).
type mixSelectFn struct {
	Job string `json:"job"` // JSON mixJob
	job mixJob
}

func (f *mixSelectFn) Setup() error { return json.Unmarshal([]byte(f.Job), &f.job) }

func (f *mixSelectFn) ProcessElement(ctx context.Context, file string, emit func(int, []byte), emitCounts func(string)) error {
	var cf cacheFile
	if err := json.Unmarshal([]byte(file), &cf); err != nil {
		return fmt.Errorf("mix select: bad element %q: %w", file, err)
	}
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
func runBeam(ctx context.Context, opt MixOptions, job mixJob, files []cacheFile) (selectCounts, []groupResult, error) {
	counts := newSelectCounts()
	if len(files) == 0 {
		return counts, nil, nil
	}
	if !beam.Initialized() {
		beam.Init()
	}
	jobJSON, err := json.Marshal(job)
	if err != nil {
		return counts, nil, err
	}
	parts := storage.Join(job.Output, "parts")
	countsPath, resultsPath := storage.Join(parts, "counts.json"), storage.Join(parts, "results.json")
	p, s := beam.NewPipelineWithRoot()
	elems := make([]string, len(files))
	for i, f := range files {
		b, _ := json.Marshal(f)
		elems[i] = string(b)
	}
	in := beam.CreateList(s, elems)
	pieces, fileCounts := beam.ParDo2(s, &mixSelectFn{Job: string(jobJSON)}, in)
	grouped := beam.GroupByKey(s, pieces)
	results := beam.ParDo(s, &mixPackFn{Job: string(jobJSON)}, grouped)
	beam.ParDo0(s, &mixWriteFn{Path: countsPath}, beam.Combine(s, mergeCountsJSON, fileCounts))
	beam.ParDo0(s, &mixWriteFn{Path: resultsPath}, beam.Combine(s, mergeResultsJSON, results))
	if _, err := beam.Run(ctx, opt.Runner, p); err != nil {
		return counts, nil, fmt.Errorf("mix on beam runner %s: %w", opt.Runner, err)
	}
	cb, err := storage.ReadFile(ctx, countsPath)
	if err != nil {
		return counts, nil, fmt.Errorf("mix on beam: counts: %w", err)
	}
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
	// The parts are the driver's inputs only; the shard directory keeps
	// shards, manifest and report.
	storage.Remove(ctx, countsPath)
	storage.Remove(ctx, resultsPath)
	return counts, rs, nil
}
