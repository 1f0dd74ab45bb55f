package pipelines

// The mix stage on Beam, one pipeline for every sweep point: the plan step
// as Beam transforms (mix_beam_plan.go: scan, de-duplicate, totals, key
// histograms, crossing bucket, boundary), then per point the file list
// expanded again on workers once the plan and the drop lists are written
// (the job graph holds the list's path, not one element per cache file) ->
// Reshuffle, so select spreads over workers -> select (pieces keyed by
// packing group) -> GroupByKey over the bounded groups -> pack and write one
// shard per group. The plan, the counts and the per-group results go through
// combiners into small files the driver reads back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
)

func init() {
	register.DoFn4x2[context.Context, *sdf.LockRTracker, string, func(string), sdf.ProcessContinuation, error](&mixListFn{})
	register.DoFn3x1[context.Context, string, func(string), error](&mixListAllFn{})
	register.DoFn4x1[context.Context, string, func(int, []byte), func(string), error](&mixSelectFn{})
	register.DoFn3x1[context.Context, string, func(string), error](&mixWriteOnFn{})
	register.DoFn5x0[context.Context, string, func(*string) bool, func(*int) bool, func(string)](&mixGateFn{})
	register.Iter1[int]()
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
	beam.RegisterType(reflect.TypeOf((*mixGateFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mixWriteOnFn)(nil)).Elem())
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
// leaves in its own bundle and prism, which elides Reshuffle into a fusion
// break, spreads select (fused with this step) over bundles.
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

// mixListAllFn expands the whole file list in one call (bounded output): for
// every runner but prism; the direct runner's splittable-DoFn fallback does
// not resume a checkpoint anyway.
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

// mixSelectFn runs selectFile on one cache file (a JSON cacheFile), with the
// plan the plan step wrote to Plan (the file list reaches select only after
// that write: see mixGateFn); files of sources the plan takes nothing from are
// skipped, as the in-process executor never lists them.
type mixSelectFn struct {
	Job      string `json:"job"` // JSON mixJob, its plan read from Plan
	Point    int    `json:"point"`
	Plan     string `json:"plan"`
	job      mixJob
	planRead bool
	bundles  beam.Counter
	files    beam.Counter
}

func (f *mixSelectFn) Setup() error {
	f.bundles = beam.NewCounter("mix", fmt.Sprintf("select_bundles_%d", f.Point))
	f.files = beam.NewCounter("mix", fmt.Sprintf("select_files_%d", f.Point))
	return json.Unmarshal([]byte(f.Job), &f.job)
}

// loadPlan reads the plan on the first element (a runner may set DoFns up
// before the plan step has run).
func (f *mixSelectFn) loadPlan(ctx context.Context) error {
	if f.planRead {
		return nil
	}
	b, err := storage.ReadFile(ctx, f.Plan)
	if err != nil {
		return fmt.Errorf("mix select: plan: %w", err)
	}
	if err := json.Unmarshal(b, &f.job.Plan); err != nil {
		return fmt.Errorf("mix select: plan %s: %w", f.Plan, err)
	}
	f.planRead = true
	return nil
}

// StartBundle counts bundles: a mix whose select ran in one bundle ran on one
// worker.
// (Beam wants a StartBundle to declare the emitters ProcessElement has.)
func (f *mixSelectFn) StartBundle(ctx context.Context, _ func(int, []byte), _ func(string)) {
	f.bundles.Inc(ctx, 1)
}

func (f *mixSelectFn) ProcessElement(ctx context.Context, file string, emit func(int, []byte), emitCounts func(string)) error {
	if err := f.loadPlan(ctx); err != nil {
		return markFault(err)
	}
	var cf cacheFile
	if err := json.Unmarshal([]byte(file), &cf); err != nil {
		return markFault(fmt.Errorf("mix select: bad element %q: %w", file, err))
	}
	if sp, ok := f.job.Plan.Source(cf.Source); !ok || sp.Target == 0 {
		return nil
	}
	f.files.Inc(ctx, 1)
	counts, err := selectFile(ctx, f.job, cf, func(g int, p shards.Piece) error {
		emit(g, encodePiece(p))
		return nil
	})
	if err != nil {
		return markFault(err)
	}
	b, err := json.Marshal(counts)
	if err != nil {
		return err
	}
	emitCounts(string(b))
	return nil
}

// mixGateFn passes the file list element on once its side inputs (the
// written plan, the written drop lists) are complete.
type mixGateFn struct{}

func (f *mixGateFn) ProcessElement(_ context.Context, elem string, _ func(*string) bool, _ func(*int) bool, emit func(string)) {
	emit(elem)
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

// mixWriteOnFn writes its one input element to Path and emits it, for a
// step that must wait for the write (a side input).
type mixWriteOnFn struct {
	Path string `json:"path"`
}

func (f *mixWriteOnFn) ProcessElement(ctx context.Context, s string, emit func(string)) error {
	if err := storage.WriteFile(ctx, f.Path, []byte(s)); err != nil {
		return markFault(err)
	}
	emit(s)
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

// beamPoint is one sweep point's run on Beam: its options, its select and
// pack settings (the plan comes from the pipeline) and where the pipeline
// leaves its plan, counts and group results.
type beamPoint struct {
	opt                       MixOptions
	job                       mixJob
	planPath, counts, results string
}

// mixSweepBeam runs every point of the spec as one Beam pipeline: the plan
// step (mix_beam_plan.go), shared by the points, then per point the budgets,
// histogram, crossing bucket, boundary, select and pack. The driver writes
// the file list and reads back the plan, the counts and one result per
// group: its memory is O(files + groups), whatever the number of documents.
// The file list, the drop lists and the result files live in the temp area
// tmp, or next to a gs:// output where workers elsewhere can read them.
func mixSweepBeam(ctx context.Context, opt MixOptions, tmp string) ([]MixResult, error) {
	idx, _, err := manifestFiles(ctx, opt)
	if err != nil {
		return nil, err
	}
	if storage.IsGCS(opt.Output) {
		shared := storage.Join(opt.Output, "_mix-tmp")
		defer removeAll(ctx, shared)
		if err := removeAll(ctx, shared); err != nil {
			return nil, err
		}
		tmp = shared
	}
	idx.dropsDir = storage.Join(tmp, "drops")
	var points []beamPoint
	for i, spec := range opt.Spec.Points() {
		o := opt
		o.Spec, o.Output = spec, pointOutput(opt, spec)
		if err := clearOutput(ctx, o.Output); err != nil {
			return nil, err
		}
		dir := storage.Join(tmp, fmt.Sprintf("point-%03d", i))
		job := newMixJob(o, mixture.Plan{Name: spec.Name, Seed: spec.Seed}, idx.dropsDir)
		points = append(points, beamPoint{opt: o, job: job, planPath: storage.Join(dir, "plan.json"),
			counts: storage.Join(dir, "counts.json"), results: storage.Join(dir, "results.json")})
	}
	statsPath := storage.Join(tmp, "plan-stats.json")
	bundles, err := runBeamPipeline(ctx, opt, idx, points, storage.Join(tmp, "files.jsonl"), statsPath)
	if err != nil {
		return nil, err
	}
	var st planStats
	if err := readJSON(ctx, statsPath, &st); err != nil {
		return nil, err
	}
	if st.DupID == nil { // nothing survived: no document at all
		st = newPlanStats(len(idx.sources))
	}
	if len(st.DupID) != len(idx.sources) {
		return nil, fmt.Errorf("mix on beam: %s has %d sources, the spec %d", statsPath, len(st.DupID), len(idx.sources))
	}
	for s, name := range idx.sources {
		idx.totals[name] = st.Totals[s]
		d := Duplicates{ID: st.DupID[s], Content: st.DupContent[s]}
		if opt.Spec.Dedup == mixture.DedupExact {
			d.ContentDropped = d.Content
		}
		idx.dups[name] = d
	}
	var out []MixResult
	for _, pt := range points {
		job := pt.job
		if err := readJSON(ctx, pt.planPath, &job.Plan); err != nil {
			return out, err
		}
		// No counts or results file: no file had anything to select (the
		// manifest's check against the plan catches a missing one).
		counts := newSelectCounts()
		if err := readJSON(ctx, pt.counts, &counts); err != nil && !errors.Is(err, storage.ErrNotExist) {
			return out, err
		}
		counts.SelectBundles = bundles[pt.job.Output]
		var rs []groupResult
		if err := readJSON(ctx, pt.results, &rs); err != nil && !errors.Is(err, storage.ErrNotExist) {
			return out, err
		}
		r, err := finishMix(ctx, pt.opt, idx, job, counts, rs)
		if err != nil {
			return out, fmt.Errorf("mixture %s: %w", pt.opt.Spec.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ErrDryRun: the runner printed the job (--dry_run) and ran nothing, so
// there is no mixture.
var ErrDryRun = errors.New("mix on beam: --dry_run: the job was printed, not run")

// readJSON decodes the file a pipeline step wrote.
func readJSON(ctx context.Context, path string, v any) error {
	b, err := storage.ReadFile(ctx, path)
	if err != nil {
		return fmt.Errorf("mix on beam: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("mix on beam: %s: %w", path, err)
	}
	return nil
}

// runBeamPipeline builds and runs the mix pipeline on the named runner and
// returns, per point output, the bundles its select ran in.
func runBeamPipeline(ctx context.Context, opt MixOptions, idx *mixIndex, points []beamPoint, listPath, statsPath string) (map[string]int64, error) {
	if !beam.Initialized() {
		beam.Init()
	}
	var list bytes.Buffer
	for _, f := range idx.files {
		b, _ := json.Marshal(f)
		list.Write(b)
		list.WriteByte('\n')
	}
	if err := storage.WriteFile(ctx, listPath, list.Bytes()); err != nil {
		return nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	one := beam.Create(s, 0)
	listElem, _ := json.Marshal(mixListElem{Path: listPath, Files: int64(len(idx.files))})
	// The plan's scan reads only cache indexes: a plain expansion, then
	// Reshuffle to spread it on a distributed runner.
	var files beam.PCollection
	if len(idx.files) == 0 {
		files = beam.CreateList(s, []string{})
	} else {
		files = beam.Reshuffle(s, beam.ParDo(s, &mixListAllFn{}, beam.Create(s, string(listElem))))
	}

	// The shared plan step: scan, de-duplicate, totals.
	parts, content := planParts(opt, idx.files), contentDedup(opt.Spec)
	ps := s.Scope("plan")
	scanned := beam.ParDo(ps, &mixScanFn{Sources: idx.sources, Parts: parts, Content: content}, files)
	byID := beam.ParDoN(ps, &mixDedupFn{Sources: idx.sources, Parts: parts, InContent: content, OutContent: content,
		Drop: true, Final: !content}, beam.GroupByKey(ps, scanned))
	final, drops, stats := byID[0], []beam.PCollection{byID[1]}, []beam.PCollection{byID[2]}
	if content {
		byContent := beam.ParDoN(ps, &mixDedupFn{Sources: idx.sources, Parts: parts, ByContent: true, InContent: true,
			Drop: opt.Spec.Dedup == mixture.DedupExact, Final: true}, beam.GroupByKey(ps, final))
		final, drops, stats = byContent[0], append(drops, byContent[1]), append(stats, byContent[2])
	}
	// Select waits for every drop list: their writes are its side input.
	dropsDone := beam.ParDo(ps, &mixDropsFn{Dir: idx.dropsDir}, beam.GroupByKey(ps, beam.Flatten(ps, drops...)))
	totals := beam.Combine(ps, mergeStatsJSON, beam.Flatten(ps, stats...))
	beam.ParDo0(ps, &mixWriteSideFn{Path: statsPath}, one, beam.SideInput{Input: totals})

	bits := bucketBits(opt)
	for i, pt := range points {
		sp := s.Scope(fmt.Sprintf("point-%d", i))
		specJSON, err := json.Marshal(pt.opt.Spec)
		if err != nil {
			return nil, err
		}
		spec := string(specJSON)
		budgets := beam.ParDo(sp, &mixBudgetFn{Spec: spec, Sources: idx.sources}, one, beam.SideInput{Input: totals})
		side := func(c beam.PCollection) beam.SideInput { return beam.SideInput{Input: c} }
		hist := beam.ParDo(sp, &mixHistFn{Spec: spec, Sources: idx.sources, Bits: bits}, final, side(budgets))
		crossings := beam.ParDo(sp, &mixCrossingFn{Spec: spec, Sources: idx.sources, Bits: bits},
			beam.CombinePerKey(sp, mergeHist, hist), side(budgets))
		ranked := beam.ParDo(sp, &mixRankFn{Spec: spec, Sources: idx.sources, Bits: bits}, final, side(budgets), side(crossings))
		bounds := beam.ParDo(sp, &mixBoundaryFn{Spec: spec, Sources: idx.sources, Bits: bits},
			beam.GroupByKey(sp, ranked), side(budgets), side(crossings))
		plan := beam.ParDo(sp, &mixPlanFn{Spec: spec, Sources: idx.sources}, one, side(budgets), side(bounds))
		planWritten := beam.ParDo(sp, &mixWriteOnFn{Path: pt.planPath}, plan)

		jobJSON, err := json.Marshal(pt.job)
		if err != nil {
			return nil, err
		}
		// Select expands the file list a second time, once the plan and the
		// drop lists exist, through the splittable DoFn that gives each file
		// its own bundle (prism fuses select with it; a select fed by the
		// plan's expansion could not be fused, as the plan is its side input).
		var selFiles beam.PCollection
		if len(idx.files) == 0 {
			selFiles = beam.CreateList(sp, []string{})
		} else {
			gate := beam.ParDo(sp, &mixGateFn{}, beam.Create(sp, string(listElem)), side(planWritten), side(dropsDone))
			// A DoFn that checkpoints makes its output unbounded, and Dataflow
			// (or Flink) would run an unbounded pipeline as a streaming job
			// that never ends: only prism, which elides Reshuffle, gets the
			// checkpointing expansion; elsewhere Reshuffle spreads the files.
			if opt.Runner == "prism" {
				selFiles = beam.ParDo(sp, &mixListFn{}, gate)
			} else {
				selFiles = beam.ParDo(sp, &mixListAllFn{}, gate)
			}
			// One element expanded into many stays in one bundle unless reshuffled.
			selFiles = beam.Reshuffle(sp, selFiles)
		}
		pieces, fileCounts := beam.ParDo2(sp, &mixSelectFn{Job: string(jobJSON), Point: i, Plan: pt.planPath}, selFiles)
		results := beam.ParDo(sp, &mixPackFn{Job: string(jobJSON)}, beam.GroupByKey(sp, pieces))
		// Main inputs, not side inputs: the checkpointing expansion makes
		// these unbounded. No element (nothing selected) leaves no file.
		beam.ParDo0(sp, &mixWriteFn{Path: pt.counts}, beam.Combine(sp, mergeCountsJSON, fileCounts))
		beam.ParDo0(sp, &mixWriteFn{Path: pt.results}, beam.Combine(sp, mergeResultsJSON, results))
	}
	res, err := beam.Run(ctx, opt.Runner, p)
	if err != nil {
		if cause := Fault(err); cause != "" {
			return nil, fmt.Errorf("mix on beam runner %s: %s", opt.Runner, cause)
		}
		return nil, fmt.Errorf("mix on beam runner %s: %w", opt.Runner, err)
	}
	if f := flag.Lookup("dry_run"); f != nil && f.Value.String() == "true" {
		return nil, ErrDryRun
	}
	bundles := map[string]int64{}
	if res != nil {
		for _, c := range res.Metrics().AllMetrics().Counters() {
			for i, pt := range points {
				if c.Key.Namespace == "mix" && c.Key.Name == fmt.Sprintf("select_bundles_%d", i) {
					bundles[pt.job.Output] += c.Result()
				}
			}
		}
	}
	return bundles, nil
}
