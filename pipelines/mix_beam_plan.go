package pipelines

// The plan step of mix as Beam transforms, so that on a distributed runner no
// machine holds more than one partition of document records and the driver
// only reads small files back (O(files + buckets)):
//
//	file list -> scan (per cache: records by id partition) -> GroupByKey
//	  -> de-duplicate by id (-> by content partition -> GroupByKey -> by content)
//	  => survivors by partition, drop lists by file, duplicate counts and totals
//	totals (Combine) -> budgets (a singleton side input)
//	survivors -> per-(source, bucket) token histograms -> CombinePerKey(source)
//	  -> crossing bucket per source (a small side input)
//	survivors -> documents of the crossing bucket -> GroupByKey(source) -> boundary
//	budgets + boundaries -> plan (a singleton side input of select)
//
// Every step runs the same code as the in-process planner (scanFile,
// dedupRecs, planKeys), so the plan is the same field for field.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
)

func init() {
	register.DoFn3x1[context.Context, string, func(int, []byte), error](&mixScanFn{})
	register.DoFn6x1[context.Context, int, func(*[]byte) bool, func(int, []byte), func(int, []byte), func(string), error](&mixDedupFn{})
	register.DoFn4x1[context.Context, int, func(*[]byte) bool, func(int), error](&mixDropsFn{})
	register.DoFn4x1[context.Context, int, func(*string) bool, func(string), error](&mixBudgetFn{})
	register.DoFn5x1[context.Context, int, []byte, func(*string) bool, func(int, []byte), error](&mixHistFn{})
	register.DoFn5x1[context.Context, int, []byte, func(*string) bool, func(string), error](&mixCrossingFn{})
	register.DoFn6x1[context.Context, int, []byte, func(*string) bool, func(*string) bool, func(int, []byte), error](&mixRankFn{})
	register.DoFn6x1[context.Context, int, func(*[]byte) bool, func(*string) bool, func(*string) bool, func(string), error](&mixBoundaryFn{})
	register.DoFn5x1[context.Context, int, func(*string) bool, func(*string) bool, func(string), error](&mixPlanFn{})
	register.DoFn3x1[context.Context, int, func(*string) bool, error](&mixWriteSideFn{})
	register.Function2x2(mergeStatsJSON)
	register.Function2x2(mergeHist)
	register.Emitter1[int]()
	register.Iter1[string]()
	for _, fn := range []any{&mixScanFn{}, &mixDedupFn{}, &mixDropsFn{}, &mixBudgetFn{}, &mixHistFn{}, &mixCrossingFn{},
		&mixRankFn{}, &mixBoundaryFn{}, &mixPlanFn{}, &mixWriteSideFn{}} {
		beam.RegisterType(reflect.TypeOf(fn).Elem())
	}
}

// planStats are the de-duplication steps' counts per source (spec order),
// summed by a combiner.
type planStats struct {
	DupID      []int64                `json:"dup_id"`
	DupContent []int64                `json:"dup_content"`
	Totals     []mixture.SourceTotals `json:"totals"` // of the documents that survive every step
}

func newPlanStats(n int) planStats {
	return planStats{DupID: make([]int64, n), DupContent: make([]int64, n), Totals: make([]mixture.SourceTotals, n)}
}

func (s *planStats) merge(o planStats) error {
	if len(o.DupID) != len(s.DupID) || len(o.DupContent) != len(s.DupContent) || len(o.Totals) != len(s.Totals) {
		return fmt.Errorf("mix plan stats: %d sources against %d", len(o.DupID), len(s.DupID))
	}
	for i := range s.DupID {
		s.DupID[i] += o.DupID[i]
		s.DupContent[i] += o.DupContent[i]
		s.Totals[i].Tokens += o.Totals[i].Tokens
		s.Totals[i].Docs += o.Totals[i].Docs
	}
	return nil
}

func mergeStatsJSON(a, b string) (string, error) {
	var x, y planStats
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		return "", err
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		return "", err
	}
	if err := x.merge(y); err != nil {
		return "", err
	}
	out, err := json.Marshal(x)
	return string(out), err
}

// readStats merges the (at most one, once combined) stats of a side input;
// none means no document survived.
func readStats(n int, iter func(*string) bool) (planStats, error) {
	st := newPlanStats(n)
	var v string
	for iter(&v) {
		var o planStats
		if err := json.Unmarshal([]byte(v), &o); err != nil {
			return st, fmt.Errorf("mix plan stats: %w", err)
		}
		if err := st.merge(o); err != nil {
			return st, err
		}
	}
	return st, nil
}

// mixScanFn scans one cache file's index into records by id partition.
type mixScanFn struct {
	Sources []string `json:"sources"`
	Parts   int      `json:"parts"`
	Content bool     `json:"content"`
}

func (f *mixScanFn) ProcessElement(ctx context.Context, line string, emit func(int, []byte)) error {
	var cf cacheFile
	if err := json.Unmarshal([]byte(line), &cf); err != nil {
		return markFault(fmt.Errorf("mix plan: bad file list element %q: %w", line, err))
	}
	ref := shards.CacheRef{Docs: cf.Docs, Tokens: cf.Tokens}
	err := scanFile(ctx, cf, ref, f.Content, func(p int, b []byte) error { emit(p, b); return nil },
		func(r docRec) int { return idPartition(f.Sources, f.Parts, r) })
	return markFault(err)
}

// mixDedupFn de-duplicates one partition (by id, or by content hash): the
// records kept go out by their next partition, drop lists by file index, and
// the counts as one planStats.
type mixDedupFn struct {
	Sources    []string `json:"sources"`
	Parts      int      `json:"parts"`
	ByContent  bool     `json:"by_content"`  // key: content hash (else id)
	InContent  bool     `json:"in_content"`  // records carry their content hash
	OutContent bool     `json:"out_content"` // and keep it (a content step follows)
	Drop       bool     `json:"drop"`        // duplicates are dropped (else only counted)
	Final      bool     `json:"final"`       // the last step: its survivors make the totals
}

func (f *mixDedupFn) ProcessElement(ctx context.Context, p int, batches func(*[]byte) bool,
	emit func(int, []byte), emitDrop func(int, []byte), emitStats func(string)) error {
	var recs []docRec
	var b []byte
	for batches(&b) {
		var err error
		if recs, err = decodeRecs(recs, b, f.InContent); err != nil {
			return markFault(fmt.Errorf("mix plan: partition %d: %w", p, err))
		}
	}
	key, route := byIDKey, func(_ docRec, p int) int { return p }
	if f.ByContent {
		key = byContentKey
	} else if f.OutContent {
		route = func(r docRec, _ int) int { return contentPartition(f.Parts, r) }
	}
	sink := func(q int, b []byte) error { emit(q, b); return nil }
	dropSink := func(file int, b []byte) error { emitDrop(file, b); return nil }
	dups, totals, err := dedupRecs(recs, p, f.OutContent, key, f.Drop, dropSink, sink, route)
	if err != nil {
		return markFault(fmt.Errorf("mix plan: partition %d: %w", p, err))
	}
	st := newPlanStats(len(f.Sources))
	for s, d := range dups {
		if f.ByContent {
			st.DupContent[s] = d
		} else {
			st.DupID[s] = d
		}
		if f.Final {
			st.Totals[s] = totals[s]
		}
	}
	out, err := json.Marshal(st)
	if err != nil {
		return err
	}
	emitStats(string(out))
	return nil
}

// mixDropsFn writes one cache file's drop list where select reads it, and
// emits one element so select can wait for every list (a side input).
type mixDropsFn struct {
	Dir string `json:"dir"`
}

func (f *mixDropsFn) ProcessElement(ctx context.Context, file int, batches func(*[]byte) bool, done func(int)) error {
	var all, b []byte
	for batches(&b) {
		all = append(all, b...)
	}
	if err := storage.WriteFile(ctx, storage.Join(f.Dir, fmt.Sprintf("%06d", file)), all); err != nil {
		return markFault(fmt.Errorf("mix drop list: %w", err))
	}
	done(file)
	return nil
}

// planSide caches what a plan DoFn decodes from its side inputs: the spec,
// the budgets and, once known, the crossing buckets.
type planSide struct {
	spec      mixture.Spec
	specRaw   string
	budgetRaw string
	keys      *planKeys
}

func (ps *planSide) load(specJSON string, sources []string, bits int, budgets func(*string) bool) (*planKeys, error) {
	if ps.specRaw != specJSON {
		if err := json.Unmarshal([]byte(specJSON), &ps.spec); err != nil {
			return nil, fmt.Errorf("mix plan: spec: %w", err)
		}
		ps.specRaw = specJSON
	}
	var raw string
	if !budgets(&raw) {
		return nil, errors.New("mix plan: no budgets (the budget step failed)")
	}
	if ps.keys == nil || raw != ps.budgetRaw {
		pk := &planKeys{seed: ps.spec.Seed, sources: sources, bits: bits}
		if err := json.Unmarshal([]byte(raw), &pk.budgets); err != nil {
			return nil, fmt.Errorf("mix plan: budgets: %w", err)
		}
		if len(pk.budgets) != len(sources) {
			return nil, fmt.Errorf("mix plan: %d budgets for %d sources", len(pk.budgets), len(sources))
		}
		ps.keys, ps.budgetRaw = pk, raw
	}
	return ps.keys, nil
}

// crossingInfo is one source's crossing bucket.
type crossingInfo struct {
	Src    int   `json:"src"`
	Bucket int   `json:"bucket"`
	Before int64 `json:"before"`
}

// withCrossings returns pk with the crossing buckets of a side input (-1 for a
// source without one: none of its documents is ranked).
func withCrossings(pk *planKeys, iter func(*string) bool) (*planKeys, error) {
	out := *pk
	out.crossing, out.before = make([]int, len(pk.budgets)), make([]int64, len(pk.budgets))
	for s := range out.crossing {
		out.crossing[s] = -1
	}
	var v string
	for iter(&v) {
		var c crossingInfo
		if err := json.Unmarshal([]byte(v), &c); err != nil || c.Src < 0 || c.Src >= len(out.crossing) {
			return nil, fmt.Errorf("mix plan: bad crossing %q: %v", v, err)
		}
		out.crossing[c.Src], out.before[c.Src] = c.Bucket, c.Before
	}
	return &out, nil
}

// mixBudgetFn computes the budgets from the combined totals.
type mixBudgetFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
}

func (f *mixBudgetFn) ProcessElement(ctx context.Context, _ int, stats func(*string) bool, emit func(string)) error {
	var spec mixture.Spec
	if err := json.Unmarshal([]byte(f.Spec), &spec); err != nil {
		return err
	}
	st, err := readStats(len(f.Sources), stats)
	if err != nil {
		return markFault(err)
	}
	totals := map[string]mixture.SourceTotals{}
	for s, name := range f.Sources {
		totals[name] = st.Totals[s]
	}
	budgets, err := mixture.Budgets(spec, totals)
	if err != nil {
		return markFault(fmt.Errorf("mixture %s: %w", spec.Name, err))
	}
	out, err := json.Marshal(budgets)
	if err != nil {
		return err
	}
	emit(string(out))
	return nil
}

// mixHistFn emits, per source with a partial pass, the token histogram of one
// batch of surviving records (sparse: see encodeHist).
type mixHistFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
	Bits    int      `json:"bits"`
	side    planSide
}

func (f *mixHistFn) ProcessElement(ctx context.Context, p int, batch []byte, budgets func(*string) bool, emit func(int, []byte)) error {
	pk, err := f.side.load(f.Spec, f.Sources, f.Bits, budgets)
	if err != nil {
		return markFault(err)
	}
	recs, err := decodeRecs(nil, batch, false)
	if err != nil {
		return markFault(fmt.Errorf("mix plan: partition %d: %w", p, err))
	}
	for s, h := range pk.histogram(recs) {
		if h != nil {
			emit(s, encodeHist(h))
		}
	}
	return nil
}

// encodeHist writes the non-empty buckets of h as (bucket delta, tokens)
// uvarint pairs, in bucket order.
func encodeHist(h []int64) []byte {
	var b []byte
	prev := 0
	for k, v := range h {
		if v != 0 {
			b = binary.AppendUvarint(b, uint64(k-prev))
			b = binary.AppendUvarint(b, uint64(v))
			prev = k
		}
	}
	return b
}

// forHist calls fn for every (bucket, tokens) of an encoded histogram.
func forHist(b []byte, fn func(k int, v int64)) error {
	k := 0
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("malformed histogram")
		}
		b = b[n:]
		v, m := binary.Uvarint(b)
		if m <= 0 {
			return errors.New("malformed histogram")
		}
		b = b[m:]
		k += int(d)
		fn(k, int64(v))
	}
	return nil
}

// mergeHist adds two encoded histograms (the combiner of CombinePerKey).
func mergeHist(a, b []byte) ([]byte, error) {
	type kv struct {
		k int
		v int64
	}
	var x, y []kv
	if err := forHist(a, func(k int, v int64) { x = append(x, kv{k, v}) }); err != nil {
		return nil, err
	}
	if err := forHist(b, func(k int, v int64) { y = append(y, kv{k, v}) }); err != nil {
		return nil, err
	}
	var out []byte
	prev := 0
	put := func(e kv) {
		out = binary.AppendUvarint(out, uint64(e.k-prev))
		out = binary.AppendUvarint(out, uint64(e.v))
		prev = e.k
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case j == len(y) || (i < len(x) && x[i].k < y[j].k):
			put(x[i])
			i++
		case i == len(x) || y[j].k < x[i].k:
			put(y[j])
			j++
		default:
			put(kv{x[i].k, x[i].v + y[j].v})
			i, j = i+1, j+1
		}
	}
	return out, nil
}

// mixCrossingFn finds one source's crossing bucket in its combined histogram.
type mixCrossingFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
	Bits    int      `json:"bits"`
	side    planSide
}

func (f *mixCrossingFn) ProcessElement(ctx context.Context, src int, hist []byte, budgets func(*string) bool, emit func(string)) error {
	pk, err := f.side.load(f.Spec, f.Sources, f.Bits, budgets)
	if err != nil {
		return markFault(err)
	}
	if src < 0 || src >= len(pk.budgets) {
		return markFault(fmt.Errorf("mix plan: histogram of source %d of %d", src, len(pk.budgets)))
	}
	dense := make([]int64, 1<<f.Bits)
	if err := forHist(hist, func(k int, v int64) { dense[k] += v }); err != nil {
		return markFault(fmt.Errorf("mix plan: source %q: %w", f.Sources[src], err))
	}
	bucket, before, err := mixture.Crossing(dense, pk.budgets[src].Remaining)
	if err != nil {
		return markFault(fmt.Errorf("source %q: %w", f.Sources[src], err))
	}
	out, err := json.Marshal(crossingInfo{Src: src, Bucket: bucket, Before: before})
	if err != nil {
		return err
	}
	emit(string(out))
	return nil
}

// mixRankFn emits, per source, the documents of one batch of survivors that
// fall in the source's crossing bucket: (key, tokens, id) records.
type mixRankFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
	Bits    int      `json:"bits"`
	side    planSide
}

func (f *mixRankFn) ProcessElement(ctx context.Context, p int, batch []byte, budgets, crossings func(*string) bool, emit func(int, []byte)) error {
	pk, err := f.side.load(f.Spec, f.Sources, f.Bits, budgets)
	if err != nil {
		return markFault(err)
	}
	if pk, err = withCrossings(pk, crossings); err != nil {
		return markFault(err)
	}
	recs, err := decodeRecs(nil, batch, false)
	if err != nil {
		return markFault(fmt.Errorf("mix plan: partition %d: %w", p, err))
	}
	for s, docs := range pk.rank(recs) {
		if len(docs) == 0 {
			continue
		}
		var out, rec []byte
		for _, d := range docs {
			rec = binary.LittleEndian.AppendUint64(rec[:0], d.Key)
			rec = binary.AppendUvarint(rec, uint64(d.Tokens))
			rec = append(rec, d.ID...)
			out = appendFramed(out, rec)
		}
		emit(s, out)
	}
	return nil
}

// mixBoundaryFn ranks one source's crossing bucket exactly and emits its
// finished SourcePlan.
type mixBoundaryFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
	Bits    int      `json:"bits"`
	side    planSide
}

// boundaryPlan is one source's finished plan.
type boundaryPlan struct {
	Src  int                `json:"src"`
	Plan mixture.SourcePlan `json:"plan"`
}

func (f *mixBoundaryFn) ProcessElement(ctx context.Context, src int, batches func(*[]byte) bool, budgets, crossings func(*string) bool, emit func(string)) error {
	pk, err := f.side.load(f.Spec, f.Sources, f.Bits, budgets)
	if err != nil {
		return markFault(err)
	}
	if pk, err = withCrossings(pk, crossings); err != nil {
		return markFault(err)
	}
	if src < 0 || src >= len(pk.budgets) {
		return markFault(fmt.Errorf("mix plan: ranked documents of source %d of %d", src, len(pk.budgets)))
	}
	var ranked []mixture.Ranked
	var b []byte
	for batches(&b) {
		err := forFramed(b, func(rec []byte) error {
			if len(rec) < 9 {
				return errors.New("malformed ranked record")
			}
			tokens, n := binary.Uvarint(rec[8:])
			if n <= 0 {
				return errors.New("malformed ranked record")
			}
			ranked = append(ranked, mixture.Ranked{Key: binary.LittleEndian.Uint64(rec), Tokens: int64(tokens), ID: string(rec[8+n:])})
			return nil
		})
		if err != nil {
			return markFault(fmt.Errorf("mix plan: source %q: %w", f.Sources[src], err))
		}
	}
	// pk is shared by the bundle's elements: finish a copy of the budget.
	own := *pk
	own.budgets = append([]mixture.Budget(nil), pk.budgets...)
	if err := own.boundary(src, ranked); err != nil {
		return markFault(err)
	}
	out, err := json.Marshal(boundaryPlan{Src: src, Plan: own.budgets[src].Plan})
	if err != nil {
		return err
	}
	emit(string(out))
	return nil
}

// mixPlanFn assembles the plan from the budgets and the boundaries.
type mixPlanFn struct {
	Spec    string   `json:"spec"`
	Sources []string `json:"sources"`
	side    planSide
}

func (f *mixPlanFn) ProcessElement(ctx context.Context, _ int, budgets, bounds func(*string) bool, emit func(string)) error {
	pk, err := f.side.load(f.Spec, f.Sources, 0, budgets)
	if err != nil {
		return markFault(err)
	}
	bs := append([]mixture.Budget(nil), pk.budgets...)
	done := make([]bool, len(bs))
	var v string
	for bounds(&v) {
		var bp boundaryPlan
		if err := json.Unmarshal([]byte(v), &bp); err != nil || bp.Src < 0 || bp.Src >= len(bs) || done[bp.Src] {
			return markFault(fmt.Errorf("mix plan: bad boundary %q: %v", v, err))
		}
		bs[bp.Src].Plan, done[bp.Src] = bp.Plan, true
	}
	for s, b := range bs {
		if b.Remaining > 0 && !done[s] {
			return markFault(fmt.Errorf("mixture %s: source %q: no boundary document was ranked", f.side.spec.Name, f.Sources[s]))
		}
	}
	out, err := json.Marshal(finishPlan(f.side.spec, bs))
	if err != nil {
		return err
	}
	emit(string(out))
	return nil
}

// mixWriteSideFn writes the one value of a side input to Path ("null" when
// the side input is empty, e.g. no file had anything to count).
type mixWriteSideFn struct {
	Path string `json:"path"`
}

func (f *mixWriteSideFn) ProcessElement(ctx context.Context, _ int, vals func(*string) bool) error {
	out := "null"
	var v string
	for vals(&v) {
		out = v
	}
	return markFault(storage.WriteFile(ctx, f.Path, []byte(out)))
}
