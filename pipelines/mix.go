package pipelines

// The mix stage: token caches + a mixture spec -> packed shards + manifest +
// report. The work is three pure steps, run by an in-process executor or by
// Beam (mix_beam.go):
//
//  1. plan     read every cache's index (ids and lengths only) and compute the
//     per-source budgets (mixture.MakePlan);
//  2. select   per cache file: the documents and repetitions the plan takes,
//     split into pieces of at most seq_len, each assigned to a packing group
//     by a hash of (seed, source, id, repetition);
//  3. pack     per group: best-fit decreasing into seq_len sequences, a seeded
//     shuffle, one shard file named after the group.
//
// Groups bound the memory of a packing step and replace one giant
// GroupByKey; the number of groups comes from the budget, never from the
// worker count, so outputs are byte-identical however the work is spread.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"longctx/mixture"
	"longctx/progress"
	"longctx/shards"
	"longctx/storage"
)

// MixOptions configure one mix run.
type MixOptions struct {
	Spec    mixture.Spec // the mixture; a spec with a sweep makes one output per point (MixSweep)
	Prepare string       // prepare manifest (local or gs://)
	Output  string       // shard directory (local or gs://); sweep points go to Output/<point name>
	// GroupTokens is the budget of one packing group (and shard): it bounds a
	// packing step's memory. Default 64Mi tokens.
	GroupTokens int64
	// ChunkTokens sizes the shards' independently readable chunks. Default 65536.
	ChunkTokens int
	// MemoryTokens: when the budget is larger, the in-process executor spills
	// pieces to one local temp file per group instead of holding them; memory
	// is then about workers x GroupTokens. Default 512Mi.
	MemoryTokens int64
	Workers      int    // in-process workers; 0 = GOMAXPROCS
	Runner       string // "" or "local": in-process; a Beam runner name (prism, direct, dataflow, ...) runs on Beam
	Quiet        bool   // no progress lines
}

func (o *MixOptions) defaults() {
	if o.GroupTokens <= 0 {
		o.GroupTokens = 64 << 20
	}
	if o.ChunkTokens <= 0 {
		o.ChunkTokens = 1 << 16
	}
	if o.MemoryTokens <= 0 {
		o.MemoryTokens = 512 << 20
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
}

// MixResult is what one mix produced.
type MixResult struct {
	Output   string          `json:"output"`
	Plan     mixture.Plan    `json:"plan"`
	Manifest shards.Manifest `json:"-"`
	Report   MixReportFiles  `json:"report"`
}

// cacheFile is one token cache of one source: the unit of work of select.
type cacheFile struct {
	Source string `json:"source"`
	Path   string `json:"path"`
}

// mixIndex is everything read from the prepare manifest and the caches'
// indexes; sweep points share it.
type mixIndex struct {
	prepare     *shards.PrepareManifest
	prepareHash string
	files       []cacheFile
	docs        map[string][]mixture.Doc
}

// Mix builds one mixture. A spec with sweep points is refused: use MixSweep.
func Mix(ctx context.Context, opt MixOptions) (MixResult, error) {
	if len(opt.Spec.Sweep) > 0 {
		return MixResult{}, fmt.Errorf("mixture %q has %d sweep points: use MixSweep", opt.Spec.Name, len(opt.Spec.Sweep))
	}
	rs, err := MixSweep(ctx, opt)
	if err != nil {
		return MixResult{}, err
	}
	return rs[0], nil
}

// MixSweep builds every point of the spec (the spec itself when it has no
// sweep) from the same token caches, each into its own output directory,
// reading the caches' indexes once.
func MixSweep(ctx context.Context, opt MixOptions) ([]MixResult, error) {
	opt.defaults()
	if err := opt.Spec.Validate(); err != nil {
		return nil, err
	}
	if opt.Prepare == "" || opt.Output == "" {
		return nil, fmt.Errorf("mix: prepare manifest and output are required")
	}
	idx, err := loadIndex(ctx, opt)
	if err != nil {
		return nil, err
	}
	points := opt.Spec.Points()
	var out []MixResult
	for _, spec := range points {
		o := opt
		o.Spec = spec
		if len(opt.Spec.Sweep) > 0 {
			o.Output = storage.Join(opt.Output, spec.Name)
		}
		r, err := mixOne(ctx, o, idx)
		if err != nil {
			return out, fmt.Errorf("mixture %s: %w", spec.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// loadIndex reads the prepare manifest and every cache's index of the
// sources the spec names.
func loadIndex(ctx context.Context, opt MixOptions) (*mixIndex, error) {
	pm, err := shards.ReadPrepareManifest(ctx, opt.Prepare)
	if err != nil {
		return nil, fmt.Errorf("mix: %w", err)
	}
	prepareHash, err := pm.Hash()
	if err != nil {
		return nil, fmt.Errorf("mix: %s: %w", opt.Prepare, err)
	}
	idx := &mixIndex{prepare: pm, prepareHash: prepareHash, docs: map[string][]mixture.Doc{}}
	for _, src := range opt.Spec.Sources {
		ps := pm.Source(src.Name)
		if ps == nil {
			var have []string
			for _, s := range pm.Sources {
				have = append(have, s.Name)
			}
			return nil, fmt.Errorf("mix: source %q is not in prepare manifest %s (it has %s)", src.Name, opt.Prepare, strings.Join(have, ", "))
		}
		for _, c := range ps.Caches {
			idx.files = append(idx.files, cacheFile{Source: src.Name, Path: shards.CachePath(opt.Prepare, c)})
		}
	}
	refs := map[string]shards.CacheRef{}
	for _, ps := range pm.Sources {
		for _, c := range ps.Caches {
			refs[shards.CachePath(opt.Prepare, c)] = c
		}
	}
	docs := make([][]mixture.Doc, len(idx.files))
	err = parallel(ctx, opt.Workers, len(idx.files), func(i int) error {
		f := idx.files[i]
		c, err := shards.OpenCache(ctx, f.Path)
		if err != nil {
			return fmt.Errorf("mix: source %s: %w", f.Source, err)
		}
		defer c.Close()
		if h := c.Header(); h.Source != f.Source {
			return fmt.Errorf("mix: token cache %s says source %q, the prepare manifest lists it under %q", f.Path, h.Source, f.Source)
		}
		entries := c.Docs()
		ds := make([]mixture.Doc, len(entries))
		var tokens int64
		for j, e := range entries {
			ds[j] = mixture.Doc{ID: e.ID, Tokens: int64(e.Tokens)}
			tokens += int64(e.Tokens)
		}
		if ref := refs[f.Path]; ref.Docs != int64(len(ds)) || ref.Tokens != tokens {
			return fmt.Errorf("mix: token cache %s holds %d documents / %d tokens, the prepare manifest says %d / %d",
				f.Path, len(ds), tokens, ref.Docs, ref.Tokens)
		}
		docs[i] = ds
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, f := range idx.files {
		idx.docs[f.Source] = append(idx.docs[f.Source], docs[i]...)
	}
	return idx, nil
}

// mixJob is everything select and pack need; it travels to Beam workers as
// JSON.
type mixJob struct {
	Plan      mixture.Plan `json:"plan"`
	Groups    int          `json:"groups"`
	SeqLen    int          `json:"seq_len"`
	ChunkSeqs int          `json:"chunk_seqs"`
	Output    string       `json:"output"`
}

func (j mixJob) source(name string) (mixture.SourcePlan, error) {
	sp, ok := j.Plan.Source(name)
	if !ok {
		return sp, fmt.Errorf("source %q has no plan", name)
	}
	return sp, nil
}

// Group is the packing group of one document repetition.
func (j mixJob) group(source, id string, rep int) int {
	return int(mixture.Hash(j.Plan.Seed, "group", source, id, rep) % uint64(j.Groups))
}

// ShardName names the shard of group g.
func ShardName(g int) string { return fmt.Sprintf("shard-%05d%s", g, shards.ShardExt) }

// selectCounts are the select step's counts, summed over files (a combiner in
// Beam).
type selectCounts struct {
	Tokens     map[string]int64  `json:"tokens"`      // per source, tokens taken
	Docs       map[string]int64  `json:"docs"`        // per source, document repetitions taken
	Truncated  map[string]int64  `json:"truncated"`   // per source, tokens left out of boundary documents
	SplitDocs  int64             `json:"split_docs"`  // repetitions longer than seq_len
	DocLengths shards.LengthHist `json:"doc_lengths"` // lengths of the taken repetitions
}

func newSelectCounts() selectCounts {
	return selectCounts{Tokens: map[string]int64{}, Docs: map[string]int64{}, Truncated: map[string]int64{}}
}

func (c *selectCounts) merge(o selectCounts) {
	for k, v := range o.Tokens {
		c.Tokens[k] += v
	}
	for k, v := range o.Docs {
		c.Docs[k] += v
	}
	for k, v := range o.Truncated {
		c.Truncated[k] += v
	}
	c.SplitDocs += o.SplitDocs
	c.DocLengths.Merge(o.DocLengths)
}

// selectFile reads one token cache and emits the pieces the plan takes from
// it, with their packing group.
func selectFile(ctx context.Context, job mixJob, f cacheFile, emit func(g int, p shards.Piece) error) (selectCounts, error) {
	counts := newSelectCounts()
	sp, err := job.source(f.Source)
	if err != nil {
		return counts, err
	}
	c, err := shards.OpenCache(ctx, f.Path)
	if err != nil {
		return counts, err
	}
	defer c.Close()
	seed, seqLen := job.Plan.Seed, job.SeqLen
	err = c.ForEach(func(_ int, e shards.CacheEntry, tokens []uint32) error {
		for _, tk := range sp.Takes(seed, e.ID, int64(e.Tokens)) {
			counts.Tokens[f.Source] += tk.Tokens
			counts.Docs[f.Source]++
			counts.Truncated[f.Source] += int64(e.Tokens) - tk.Tokens
			counts.DocLengths.Add(tk.Tokens)
			if tk.Tokens > int64(seqLen) {
				counts.SplitDocs++
			}
			g := job.group(f.Source, e.ID, tk.Rep)
			// Copy: the cache's block buffer must not stay alive for a
			// few sampled documents.
			own := append([]uint32(nil), tokens[:tk.Tokens]...)
			order := mixture.Key(seed, f.Source, e.ID, tk.Rep)
			for _, p := range shards.Split(f.Source, e.ID, tk.Rep, order, own, seqLen) {
				if err := emit(g, p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return counts, fmt.Errorf("select %s: %w", f.Path, err)
	}
	return counts, nil
}

// groupResult is what packing one group produced.
type groupResult struct {
	Group int              `json:"group"`
	Shard shards.ShardInfo `json:"shard"`
	Pack  shards.PackStats `json:"pack"`
}

// packGroup packs one group's pieces and writes its shard. The pieces' order
// does not matter.
func packGroup(ctx context.Context, job mixJob, g int, pieces []shards.Piece) (groupResult, error) {
	seqs, st, err := shards.Pack(pieces, job.SeqLen)
	if err != nil {
		return groupResult{}, fmt.Errorf("group %d: %w", g, err)
	}
	shards.Shuffle(seqs, mixture.Hash(job.Plan.Seed, "shuffle", "", "", g))
	info, err := shards.WriteShard(ctx, job.Output, ShardName(g), seqs, job.SeqLen, job.ChunkSeqs)
	if err != nil {
		return groupResult{}, err
	}
	return groupResult{Group: g, Shard: info, Pack: st}, nil
}

func mixOne(ctx context.Context, opt MixOptions, idx *mixIndex) (MixResult, error) {
	plan, err := mixture.MakePlan(opt.Spec, idx.docs)
	if err != nil {
		return MixResult{}, err
	}
	var files []cacheFile
	for _, f := range idx.files {
		if sp, _ := plan.Source(f.Source); sp.Target > 0 {
			files = append(files, f)
		}
	}
	groups := int((opt.Spec.TotalTokens + opt.GroupTokens - 1) / opt.GroupTokens)
	job := mixJob{Plan: plan, Groups: max(1, groups), SeqLen: opt.Spec.SeqLen,
		ChunkSeqs: shards.ChunkSeqs(opt.Spec.SeqLen, opt.ChunkTokens), Output: opt.Output}
	var counts selectCounts
	var results []groupResult
	switch opt.Runner {
	case "", "local":
		counts, results, err = runLocal(ctx, opt, job, files)
	default:
		counts, results, err = runBeam(ctx, opt, job, files)
	}
	if err != nil {
		return MixResult{}, err
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Group < results[j].Group })
	m, err := assembleManifest(opt, idx, job, counts, results)
	if err != nil {
		return MixResult{}, err
	}
	if err := shards.WriteManifest(ctx, opt.Output, m); err != nil {
		return MixResult{}, err
	}
	files2, err := writeMixReport(ctx, opt.Output, plan, m)
	if err != nil {
		return MixResult{}, err
	}
	return MixResult{Output: opt.Output, Plan: plan, Manifest: m, Report: files2}, nil
}

// assembleManifest checks every count against the plan and builds the shard
// manifest.
func assembleManifest(opt MixOptions, idx *mixIndex, job mixJob, counts selectCounts, results []groupResult) (shards.Manifest, error) {
	specJSON, err := json.Marshal(opt.Spec)
	if err != nil {
		return shards.Manifest{}, err
	}
	sum := sha256.Sum256(specJSON)
	m := shards.Manifest{Format: shards.ManifestFormat, Version: shards.ShardVersion, Name: opt.Spec.Name,
		SeqLen: job.SeqLen, ChunkSeqs: job.ChunkSeqs, Seed: opt.Spec.Seed,
		MixtureConfigHash: hex.EncodeToString(sum[:]), TokenizerHash: idx.prepare.TokenizerHash, PrepareManifestHash: idx.prepareHash,
		SplitDocs: counts.SplitDocs, DocLengths: counts.DocLengths}
	var taken int64
	for _, sp := range job.Plan.Sources {
		got := counts.Tokens[sp.Source]
		if got != sp.Realized {
			return m, fmt.Errorf("source %s: select took %d tokens, the plan realizes %d", sp.Source, got, sp.Realized)
		}
		if tr := counts.Truncated[sp.Source]; tr != sp.Truncated {
			return m, fmt.Errorf("source %s: select truncated %d tokens, the plan %d", sp.Source, tr, sp.Truncated)
		}
		taken += got
		m.Sources = append(m.Sources, shards.SourceStats{Source: sp.Source, Weight: sp.Weight, TargetTokens: sp.Target,
			AvailableTokens: sp.Available, RealizedTokens: got, Docs: counts.Docs[sp.Source], FullPasses: sp.FullPasses,
			Repeats: sp.Repeats, TruncatedTokens: sp.Truncated, Warning: sp.Warning})
	}
	for _, r := range results {
		m.Packing.Add(r.Pack)
		m.Shards = append(m.Shards, r.Shard)
	}
	if m.Packing.Real != taken {
		return m, fmt.Errorf("packed %d tokens, selected %d", m.Packing.Real, taken)
	}
	return m, nil
}

// runLocal is the in-process executor: select over files with a worker
// pool, then pack each group. Pieces wait for packing in memory when the
// budget fits MemoryTokens, else in one spill file per group under the
// system temp directory, so memory stays about workers x GroupTokens.
func runLocal(ctx context.Context, opt MixOptions, job mixJob, files []cacheFile) (selectCounts, []groupResult, error) {
	counts := newSelectCounts()
	var store pieceStore = &memStore{buckets: make([][]shards.Piece, job.Groups)}
	if job.Plan.Total > opt.MemoryTokens {
		sp, err := newSpillStore(job.Groups)
		if err != nil {
			return counts, nil, err
		}
		store = sp
	}
	defer store.close()
	var bar *progress.Bar
	if !opt.Quiet {
		bar = progress.New("mix "+job.Plan.Name, 2*job.Plan.Total, progress.Options{Unit: "tokens"})
		defer bar.Done()
	}
	// Workers hand pieces to the store in batches of about flushTokens.
	const flushTokens = 4 << 20
	fileCounts := make([]selectCounts, len(files))
	err := parallel(ctx, opt.Workers, len(files), func(i int) error {
		local := map[int][]shards.Piece{}
		var held int
		flush := func() error {
			for g, ps := range local {
				if err := store.add(g, ps); err != nil {
					return err
				}
			}
			clear(local)
			held = 0
			return nil
		}
		c, err := selectFile(ctx, job, files[i], func(g int, p shards.Piece) error {
			local[g] = append(local[g], p)
			held += len(p.Tokens)
			if bar != nil {
				bar.Add(int64(len(p.Tokens)))
			}
			if held >= flushTokens {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		fileCounts[i] = c
		return flush()
	})
	if err != nil {
		return counts, nil, err
	}
	for _, c := range fileCounts {
		counts.merge(c)
	}
	results := make([]*groupResult, job.Groups)
	err = parallel(ctx, opt.Workers, job.Groups, func(g int) error {
		pieces, err := store.take(g)
		if err != nil || len(pieces) == 0 {
			return err
		}
		r, err := packGroup(ctx, job, g, pieces)
		if err != nil {
			return err
		}
		results[g] = &r
		if bar != nil {
			bar.Add(r.Pack.Real)
		}
		return nil
	})
	if err != nil {
		return counts, nil, err
	}
	var out []groupResult
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return counts, out, nil
}

// pieceStore holds selected pieces by packing group until they are packed.
// The order pieces arrive in does not matter: Pack sorts them.
type pieceStore interface {
	add(g int, ps []shards.Piece) error
	take(g int) ([]shards.Piece, error) // all pieces of g, once
	close() error
}

type memStore struct {
	mu      sync.Mutex
	buckets [][]shards.Piece
}

func (m *memStore) add(g int, ps []shards.Piece) error {
	m.mu.Lock()
	m.buckets[g] = append(m.buckets[g], ps...)
	m.mu.Unlock()
	return nil
}

func (m *memStore) take(g int) ([]shards.Piece, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.buckets[g]
	m.buckets[g] = nil
	return ps, nil
}

func (m *memStore) close() error { return nil }

// spillStore appends length-prefixed piece records to one local file per
// group.
type spillStore struct {
	dir   string
	mu    []sync.Mutex
	files []*os.File
}

func newSpillStore(groups int) (*spillStore, error) {
	dir, err := os.MkdirTemp("", "longctx-mix-spill-")
	if err != nil {
		return nil, fmt.Errorf("mix spill: %w", err)
	}
	return &spillStore{dir: dir, mu: make([]sync.Mutex, groups), files: make([]*os.File, groups)}, nil
}

func (s *spillStore) add(g int, ps []shards.Piece) error {
	var buf []byte
	for _, p := range ps {
		rec := encodePiece(p)
		buf = binary.AppendUvarint(buf, uint64(len(rec)))
		buf = append(buf, rec...)
	}
	s.mu[g].Lock()
	defer s.mu[g].Unlock()
	if s.files[g] == nil {
		f, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("group-%05d", g)))
		if err != nil {
			return fmt.Errorf("mix spill: %w", err)
		}
		s.files[g] = f
	}
	if _, err := s.files[g].Write(buf); err != nil {
		return fmt.Errorf("mix spill group %d: %w", g, err)
	}
	return nil
}

func (s *spillStore) take(g int) ([]shards.Piece, error) {
	s.mu[g].Lock()
	f := s.files[g]
	s.files[g] = nil
	s.mu[g].Unlock()
	if f == nil {
		return nil, nil
	}
	name := f.Name()
	defer os.Remove(name)
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("mix spill group %d: %w", g, err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("mix spill group %d: %w", g, err)
	}
	var ps []shards.Piece
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || uint64(len(data)-k) < n {
			return nil, fmt.Errorf("mix spill group %d: %s: truncated record", g, name)
		}
		p, err := decodePiece(data[k : k+int(n)])
		if err != nil {
			return nil, fmt.Errorf("mix spill group %d: %s: %w", g, name, err)
		}
		ps = append(ps, p)
		data = data[k+int(n):]
	}
	return ps, nil
}

func (s *spillStore) close() error {
	for g := range s.files {
		if f := s.files[g]; f != nil {
			f.Close()
		}
	}
	return os.RemoveAll(s.dir)
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the first
// error (by index, so the error reported does not depend on scheduling).
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// encodePiece and decodePiece carry a piece through a Beam shuffle.
func encodePiece(p shards.Piece) []byte {
	b := make([]byte, 0, 40+len(p.Source)+len(p.DocID)+4*len(p.Tokens))
	b = binary.AppendUvarint(b, uint64(len(p.Source)))
	b = append(b, p.Source...)
	b = binary.AppendUvarint(b, uint64(len(p.DocID)))
	b = append(b, p.DocID...)
	b = binary.AppendUvarint(b, uint64(p.Rep))
	b = binary.AppendUvarint(b, uint64(p.Offset))
	b = binary.LittleEndian.AppendUint64(b, p.Order)
	b = binary.AppendUvarint(b, uint64(len(p.Tokens)))
	for _, t := range p.Tokens {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	return b
}

func decodePiece(b []byte) (shards.Piece, error) {
	var p shards.Piece
	bad := errors.New("malformed piece record")
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	var ok bool
	if p.Source, ok = str(); !ok {
		return p, bad
	}
	if p.DocID, ok = str(); !ok {
		return p, bad
	}
	rep, ok1 := num()
	off, ok2 := num()
	if !ok1 || !ok2 || len(b) < 8 {
		return p, bad
	}
	p.Rep, p.Offset = int(rep), int64(off)
	p.Order = binary.LittleEndian.Uint64(b)
	b = b[8:]
	n, ok := num()
	if !ok || uint64(len(b)) != 4*n {
		return p, bad
	}
	p.Tokens = make([]uint32, n)
	for i := range p.Tokens {
		p.Tokens[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return p, nil
}
