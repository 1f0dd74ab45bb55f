package pipelines

// The plan step of mix, with no per-document state held in one place: the
// documents of the requested sources are spread over partitions (local spill
// files) by a hash of (source, id); each partition is de-duplicated alone;
// then each source's budget needs only its totals, a histogram of tokens by
// key bucket (added up over partitions) and the documents of the one bucket
// where the budget is crossed (mixture.Budgets, Crossing, Boundary). Memory is
// O(files + buckets) plus one partition per worker, whatever the corpus size.
//
// Duplicates: a repeated id within a source keeps its first occurrence (cache
// files in prepare-manifest order, then file order); with dedup count/exact,
// documents whose tokens repeat an earlier document's (same source, another
// id) are counted and, with exact, dropped. Dropped documents go to one list
// per cache file, which select reads.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
)

const (
	// defaultPartitionDocs bounds the documents of one plan partition (about
	// 25 MB of records in memory while it is de-duplicated).
	defaultPartitionDocs = 1 << 18
	// defaultBucketBits: 65,536 key buckets per source; at 10^9 documents the
	// crossing bucket holds about 15k of them.
	defaultBucketBits = 16
	// recordFlushBytes is what a worker buffers before appending to the
	// partition files.
	recordFlushBytes = 4 << 20
)

// Duplicates are one source's duplicate counts.
type Duplicates struct {
	ID             int64 `json:"duplicate_id"`      // repeated ids dropped
	Content        int64 `json:"duplicate_content"` // repeated content under another id (dedup count/exact)
	ContentDropped int64 `json:"content_dropped"`   // of those, dropped (dedup exact)
}

// mixIndex is what the plan step learned from the prepare manifest and the
// caches; sweep points share it.
type mixIndex struct {
	prepare     *shards.PrepareManifest
	prepareHash string
	sources     []string // spec order
	files       []cacheFile
	totals      map[string]mixture.SourceTotals
	dups        map[string]Duplicates
	parts       int
	final       *recordFiles // surviving documents by partition
	dropsDir    string       // per file: uvarint positions of dropped documents ("" when none)
	// ref holds every document when the reference planner is asked for.
	ref map[string][]mixture.Doc
}

// manifestFiles reads the prepare manifest and lists the caches of the
// sources the spec names (spec order, then manifest order).
func manifestFiles(ctx context.Context, opt MixOptions) (*mixIndex, []shards.CacheRef, error) {
	pm, err := shards.ReadPrepareManifest(ctx, opt.Prepare)
	if err != nil {
		return nil, nil, fmt.Errorf("mix: %w", err)
	}
	prepareHash, err := pm.Hash()
	if err != nil {
		return nil, nil, fmt.Errorf("mix: %s: %w", opt.Prepare, err)
	}
	idx := &mixIndex{prepare: pm, prepareHash: prepareHash, totals: map[string]mixture.SourceTotals{}, dups: map[string]Duplicates{}}
	var refs []shards.CacheRef
	for si, src := range opt.Spec.Sources {
		ps := pm.Source(src.Name)
		if ps == nil {
			var have []string
			for _, s := range pm.Sources {
				have = append(have, s.Name)
			}
			return nil, nil, fmt.Errorf("mix: source %q is not in prepare manifest %s (it has %s)", src.Name, opt.Prepare, strings.Join(have, ", "))
		}
		idx.sources = append(idx.sources, src.Name)
		for _, c := range ps.Caches {
			idx.files = append(idx.files, cacheFile{Source: src.Name, Path: shards.CachePath(opt.Prepare, c), Index: len(idx.files), Src: si,
				Docs: c.Docs, Tokens: c.Tokens})
			refs = append(refs, c)
		}
	}
	return idx, refs, nil
}

// openChecked opens a cache and checks it against the prepare manifest.
func openChecked(ctx context.Context, f cacheFile, ref shards.CacheRef) (*shards.Cache, error) {
	c, err := shards.OpenCache(ctx, f.Path)
	if err != nil {
		return nil, fmt.Errorf("mix: source %s: %w", f.Source, err)
	}
	if h := c.Header(); h.Source != f.Source {
		c.Close()
		return nil, fmt.Errorf("mix: token cache %s says source %q, the prepare manifest lists it under %q", f.Path, h.Source, f.Source)
	}
	if n, t := int64(len(c.Docs())), c.NumTokens(); ref.Docs != n || ref.Tokens != t {
		c.Close()
		return nil, fmt.Errorf("mix: token cache %s holds %d documents / %d tokens, the prepare manifest says %d / %d",
			f.Path, n, t, ref.Docs, ref.Tokens)
	}
	return c, nil
}

// planParts is the number of plan partitions: about partitionDocs documents
// each.
func planParts(opt MixOptions, files []cacheFile) int {
	var docs int64
	for _, f := range files {
		docs += f.Docs
	}
	per := int64(opt.partitionDocs)
	if per <= 0 {
		per = defaultPartitionDocs
	}
	return int(max(1, (docs+per-1)/per))
}

// contentDedup: the plan hashes documents' tokens.
func contentDedup(spec mixture.Spec) bool {
	return spec.Dedup == mixture.DedupCount || spec.Dedup == mixture.DedupExact
}

// buildIndex runs the shared part of the plan step: scan every cache's index
// into partitions by id, drop repeated ids (and, with content dedup, repeated
// content) partition by partition, and sum each source's totals.
func buildIndex(ctx context.Context, opt MixOptions, tmp string) (*mixIndex, error) {
	idx, refs, err := manifestFiles(ctx, opt)
	if err != nil {
		return nil, err
	}
	parts := planParts(opt, idx.files)
	idx.parts = parts
	content := contentDedup(opt.Spec)
	idx.dropsDir = filepath.Join(tmp, "plan-drops")
	drops, err := newRecordFiles(idx.dropsDir, len(idx.files))
	if err != nil {
		return nil, err
	}
	byID, err := newRecordFiles(filepath.Join(tmp, "plan-id"), parts)
	if err != nil {
		return nil, err
	}
	if idx.final, err = newRecordFiles(filepath.Join(tmp, "plan-final"), parts); err != nil {
		return nil, err
	}
	idPart := func(r docRec) int { return idPartition(idx.sources, parts, r) }
	contentPart := func(r docRec) int { return contentPartition(parts, r) }
	err = parallel(ctx, opt.Workers, len(idx.files), func(i int) error {
		return scanFile(ctx, idx.files[i], refs[i], content, byID.append, idPart)
	})
	if err != nil {
		return nil, err
	}
	n := len(idx.sources)
	var mu sync.Mutex
	dupID, dupContent := make([]int64, n), make([]int64, n)
	totals := make([]mixture.SourceTotals, n)
	add := func(dst []int64, d []int64) {
		for s, v := range d {
			dst[s] += v
		}
	}
	addTotals := func(t []mixture.SourceTotals) {
		for s, v := range t {
			totals[s].Tokens += v.Tokens
			totals[s].Docs += v.Docs
		}
	}
	// Repeated ids: the first occurrence wins, always dropped.
	next, route := idx.final, func(r docRec, p int) int { return p }
	var byContent *recordFiles
	if content {
		if byContent, err = newRecordFiles(filepath.Join(tmp, "plan-content"), parts); err != nil {
			return nil, err
		}
		next, route = byContent, func(r docRec, _ int) int { return contentPart(r) }
	}
	err = parallel(ctx, opt.Workers, parts, func(p int) error {
		d, t, err := dedupPartition(byID, p, content, content, byIDKey, true, drops, next, route)
		if err != nil {
			return fmt.Errorf("mix plan: partition %d by id: %w", p, err)
		}
		mu.Lock()
		add(dupID, d)
		addTotals(t)
		mu.Unlock()
		return byID.remove(p)
	})
	if err != nil {
		return nil, err
	}
	if content {
		clear(totals)
		drop := opt.Spec.Dedup == mixture.DedupExact
		err = parallel(ctx, opt.Workers, parts, func(p int) error {
			d, t, err := dedupPartition(byContent, p, true, false, byContentKey, drop, drops, idx.final, func(_ docRec, p int) int { return p })
			if err != nil {
				return fmt.Errorf("mix plan: partition %d by content: %w", p, err)
			}
			mu.Lock()
			add(dupContent, d)
			addTotals(t)
			mu.Unlock()
			return byContent.remove(p)
		})
		if err != nil {
			return nil, err
		}
	}
	for s, name := range idx.sources {
		idx.totals[name] = totals[s]
		d := Duplicates{ID: dupID[s], Content: dupContent[s]}
		if opt.Spec.Dedup == mixture.DedupExact {
			d.ContentDropped = d.Content
		}
		idx.dups[name] = d
	}
	return idx, nil
}

// idPartition is the plan partition of a document by (source, id): every
// occurrence of an id lands in the same one.
func idPartition(sources []string, parts int, r docRec) int {
	return int(mixture.Hash(0, "dedup-id", sources[r.Src], r.ID, 0) % uint64(parts))
}

func byIDKey(a, b docRec) int      { return strings.Compare(a.ID, b.ID) }
func byContentKey(a, b docRec) int { return bytes.Compare(a.Content[:], b.Content[:]) }

// contentPartition is the plan partition of a document by content hash.
func contentPartition(parts int, r docRec) int {
	return int(binary.LittleEndian.Uint64(r.Content[:]) % uint64(parts))
}

// scanFile reads one cache's index (and, for content dedup, its tokens) and
// hands a record per document, in batches, to the partition route gives it.
// sink may keep the batch it is given.
func scanFile(ctx context.Context, f cacheFile, ref shards.CacheRef, content bool, sink func(p int, batch []byte) error, route func(docRec) int) error {
	c, err := openChecked(ctx, f, ref)
	if err != nil {
		return err
	}
	defer c.Close()
	entries := c.Docs()
	var hashes [][16]byte
	if content {
		hashes = make([][16]byte, len(entries))
		var raw []byte
		for b := range c.NumBlocks() {
			toks, err := c.Block(b)
			if err != nil {
				return fmt.Errorf("mix plan: %w", err)
			}
			first, _ := c.BlockDocs(b)
			for j, ts := range toks {
				raw = raw[:0]
				for _, t := range ts {
					raw = binary.LittleEndian.AppendUint32(raw, t)
				}
				sum := sha256.Sum256(raw)
				copy(hashes[first+j][:], sum[:16])
			}
		}
	}
	// Batches per partition, all flushed once they hold recordFlushBytes
	// together: memory stays bounded however many partitions there are.
	bufs := map[int][]byte{}
	var held int
	flush := func() error {
		keys := make([]int, 0, len(bufs))
		for p := range bufs {
			keys = append(keys, p)
		}
		sort.Ints(keys)
		for _, p := range keys {
			if err := sink(p, bufs[p]); err != nil {
				return err
			}
		}
		clear(bufs)
		held = 0
		return nil
	}
	var rec []byte
	for i, e := range entries {
		r := docRec{Src: uint16(f.Src), File: uint32(f.Index), Doc: uint32(i), Tokens: uint32(e.Tokens), ID: e.ID}
		if content {
			r.Content = hashes[i]
		}
		p := route(r)
		rec = appendDocRec(rec[:0], r, content)
		bufs[p] = appendFramed(bufs[p], rec)
		if held += len(rec) + 2; held >= recordFlushBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// readPartition decodes every record of partition p.
func readPartition(in *recordFiles, p int, content bool) ([]docRec, error) {
	data, err := in.read(p)
	if err != nil {
		return nil, err
	}
	recs, err := decodeRecs(nil, data, content)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.path(p), err)
	}
	return recs, nil
}

// decodeRecs appends the framed document records of data to recs.
func decodeRecs(recs []docRec, data []byte, content bool) ([]docRec, error) {
	err := forFramed(data, func(b []byte) error {
		r, err := decodeDocRec(b, content)
		if err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// dedupPartition de-duplicates partition p of in (dedupRecs), appending the
// records kept to out and the dropped positions to drops.
func dedupPartition(in *recordFiles, p int, content, outContent bool, key func(a, b docRec) int, drop bool,
	drops, out *recordFiles, route func(r docRec, p int) int) ([]int64, []mixture.SourceTotals, error) {
	recs, err := readPartition(in, p, content)
	if err != nil {
		return nil, nil, err
	}
	return dedupRecs(recs, p, outContent, key, drop, drops.append, out.append, route)
}

// dedupRecs sorts the records of partition p by (source, key, file,
// position); a record equal by key to the one before it is a duplicate:
// counted, and dropped when drop is set (its position goes to its file's drop
// list, handed to dropSink by file index). The records kept go to outSink
// (partition route; with their content hash if outContent), in batches of
// about recordFlushBytes, and are summed per source.
func dedupRecs(recs []docRec, p int, outContent bool, key func(a, b docRec) int, drop bool,
	dropSink, outSink func(int, []byte) error, route func(r docRec, p int) int) ([]int64, []mixture.SourceTotals, error) {
	slices.SortFunc(recs, func(a, b docRec) int {
		if a.Src != b.Src {
			return cmp.Compare(a.Src, b.Src)
		}
		if c := key(a, b); c != 0 {
			return c
		}
		if a.File != b.File {
			return cmp.Compare(a.File, b.File)
		}
		return cmp.Compare(a.Doc, b.Doc)
	})
	var dups []int64
	var totals []mixture.SourceTotals
	grow := func(s int) {
		for len(dups) <= s {
			dups = append(dups, 0)
			totals = append(totals, mixture.SourceTotals{})
		}
	}
	outBufs, dropBufs := map[int][]byte{}, map[int][]byte{}
	flush := func(sink func(int, []byte) error, bufs map[int][]byte) error {
		keys := make([]int, 0, len(bufs))
		for k := range bufs {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			if err := sink(k, bufs[k]); err != nil {
				return err
			}
		}
		clear(bufs)
		return nil
	}
	var rec []byte
	var held int
	for i, r := range recs {
		grow(int(r.Src))
		if i > 0 && recs[i-1].Src == r.Src && key(recs[i-1], r) == 0 {
			dups[r.Src]++
			if drop {
				dropBufs[int(r.File)] = binary.AppendUvarint(dropBufs[int(r.File)], uint64(r.Doc))
				continue
			}
		}
		totals[r.Src].Tokens += int64(r.Tokens)
		totals[r.Src].Docs++
		q := route(r, p)
		rec = appendDocRec(rec[:0], r, outContent)
		outBufs[q] = appendFramed(outBufs[q], rec)
		// Batches stay bounded (a Beam element, a write).
		if held += len(rec) + 2; held >= recordFlushBytes {
			if err := flush(outSink, outBufs); err != nil {
				return nil, nil, err
			}
			held = 0
		}
	}
	if err := flush(outSink, outBufs); err != nil {
		return nil, nil, err
	}
	if err := flush(dropSink, dropBufs); err != nil {
		return nil, nil, err
	}
	return dups, totals, nil
}

// readDrops returns the positions of the documents dropped from cache file
// index (nil when none). dir is local or, for Beam workers elsewhere, gs://.
func readDrops(ctx context.Context, dir string, index int) (map[int]bool, error) {
	if dir == "" {
		return nil, nil
	}
	data, err := storage.ReadFile(ctx, storage.Join(dir, fmt.Sprintf("%06d", index)))
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mix drop list: %w", err)
	}
	out := map[int]bool{}
	for len(data) > 0 {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, fmt.Errorf("mix drop list of file %d: truncated", index)
		}
		out[int(v)] = true
		data = data[k:]
	}
	return out, nil
}

// makePlan computes one mixture's plan from the index: budgets from the
// totals, then for each source with a partial pass a histogram of its
// documents' keys and an exact ranking of the crossing bucket only.
func makePlan(ctx context.Context, opt MixOptions, spec mixture.Spec, idx *mixIndex) (mixture.Plan, error) {
	if idx.ref != nil {
		return mixture.MakePlan(spec, idx.ref)
	}
	budgets, err := mixture.Budgets(spec, idx.totals)
	if err != nil {
		return mixture.Plan{}, err
	}
	pk := planKeys{seed: spec.Seed, sources: idx.sources, budgets: budgets, bits: bucketBits(opt)}
	n := len(budgets)
	need := false
	for _, b := range budgets {
		need = need || b.Remaining > 0
	}
	if need {
		hist := make([][]int64, n)
		var mu sync.Mutex
		err := parallel(ctx, opt.Workers, idx.parts, func(p int) error {
			recs, err := readPartition(idx.final, p, false)
			if err != nil {
				return err
			}
			local := pk.histogram(recs)
			mu.Lock()
			defer mu.Unlock()
			for s, h := range local {
				if h == nil {
					continue
				}
				if hist[s] == nil {
					hist[s] = make([]int64, len(h))
				}
				for k, v := range h {
					hist[s][k] += v
				}
			}
			return nil
		})
		if err != nil {
			return mixture.Plan{}, fmt.Errorf("mix plan histogram: %w", err)
		}
		pk.crossing, pk.before = make([]int, n), make([]int64, n)
		for s, b := range budgets {
			if b.Remaining == 0 {
				continue
			}
			if pk.crossing[s], pk.before[s], err = mixture.Crossing(hist[s], b.Remaining); err != nil {
				return mixture.Plan{}, fmt.Errorf("source %q: %w", idx.sources[s], err)
			}
		}
		ranked := make([][]mixture.Ranked, n)
		err = parallel(ctx, opt.Workers, idx.parts, func(p int) error {
			recs, err := readPartition(idx.final, p, false)
			if err != nil {
				return err
			}
			local := pk.rank(recs)
			mu.Lock()
			defer mu.Unlock()
			for s, l := range local {
				ranked[s] = append(ranked[s], l...)
			}
			return nil
		})
		if err != nil {
			return mixture.Plan{}, fmt.Errorf("mix plan crossing bucket: %w", err)
		}
		for s := range budgets {
			if err := pk.boundary(s, ranked[s]); err != nil {
				return mixture.Plan{}, err
			}
		}
	}
	return finishPlan(spec, budgets), nil
}

func bucketBits(opt MixOptions) int {
	if opt.bucketBits > 0 {
		return opt.bucketBits
	}
	return defaultBucketBits
}

// planKeys holds what the histogram and ranking steps of one mixture need;
// the in-process planner and the Beam DoFns share it.
type planKeys struct {
	seed     uint64
	sources  []string
	budgets  []mixture.Budget
	bits     int
	crossing []int   // per source: the bucket where its partial pass ends
	before   []int64 // per source: tokens of the buckets before it
}

// histogram adds up, per source with a partial pass, the tokens of recs by key
// bucket (nil for the other sources).
func (pk *planKeys) histogram(recs []docRec) [][]int64 {
	out := make([][]int64, len(pk.budgets))
	for _, r := range recs {
		b := pk.budgets[r.Src]
		if b.Remaining == 0 {
			continue
		}
		if out[r.Src] == nil {
			out[r.Src] = make([]int64, 1<<pk.bits)
		}
		out[r.Src][mixture.Bucket(mixture.Key(pk.seed, pk.sources[r.Src], r.ID, b.Rep), pk.bits)] += int64(r.Tokens)
	}
	return out
}

// rank returns, per source, the documents of recs in its crossing bucket.
func (pk *planKeys) rank(recs []docRec) [][]mixture.Ranked {
	out := make([][]mixture.Ranked, len(pk.budgets))
	for _, r := range recs {
		b := pk.budgets[r.Src]
		if b.Remaining == 0 {
			continue
		}
		k := mixture.Key(pk.seed, pk.sources[r.Src], r.ID, b.Rep)
		if mixture.Bucket(k, pk.bits) == pk.crossing[r.Src] {
			out[r.Src] = append(out[r.Src], mixture.Ranked{Key: k, ID: r.ID, Tokens: int64(r.Tokens)})
		}
	}
	return out
}

// boundary ranks source s's crossing bucket and sets its threshold and
// boundary document (nothing to do for a source without a partial pass).
func (pk *planKeys) boundary(s int, ranked []mixture.Ranked) error {
	b := &pk.budgets[s]
	if b.Remaining == 0 {
		return nil
	}
	return mixture.Boundary(&b.Plan, ranked, b.Remaining, pk.before[s])
}

// finishPlan assembles the plan from the sources' finished budgets.
func finishPlan(spec mixture.Spec, budgets []mixture.Budget) mixture.Plan {
	plan := mixture.Plan{Name: spec.Name, Seed: spec.Seed, SeqLen: spec.SeqLen, Total: spec.TotalTokens}
	for _, b := range budgets {
		if b.Plan.Warning != "" {
			plan.Warnings = append(plan.Warnings, b.Plan.Source+": "+b.Plan.Warning)
		}
		plan.Sources = append(plan.Sources, b.Plan)
	}
	return plan
}

// referenceIndex is the planner mix had before the plan step was spread out:
// every document id and length of every requested source in memory, for
// mixture.MakePlan. Tests compare the two; benchmarks measure its memory.
func referenceIndex(ctx context.Context, opt MixOptions) (*mixIndex, error) {
	idx, refs, err := manifestFiles(ctx, opt)
	if err != nil {
		return nil, err
	}
	docs := make([][]mixture.Doc, len(idx.files))
	err = parallel(ctx, opt.Workers, len(idx.files), func(i int) error {
		c, err := openChecked(ctx, idx.files[i], refs[i])
		if err != nil {
			return err
		}
		defer c.Close()
		entries := c.Docs()
		ds := make([]mixture.Doc, len(entries))
		for j, e := range entries {
			ds[j] = mixture.Doc{ID: e.ID, Tokens: int64(e.Tokens)}
		}
		docs[i] = ds
		return nil
	})
	if err != nil {
		return nil, err
	}
	idx.ref = map[string][]mixture.Doc{}
	for i, f := range idx.files {
		idx.ref[f.Source] = append(idx.ref[f.Source], docs[i]...)
	}
	return idx, nil
}
