package pipelines

// The mix stage: token caches + a mixture spec -> packed shards + manifest +
// report. The work is three steps, run by an in-process executor
// (mix_local.go) or, all three as Beam transforms, by Beam (mix_beam.go,
// mix_beam_plan.go):
//
//  1. plan     (mix_plan.go) scan every cache's index into partitions, drop
//     duplicates, and compute the per-source budgets from totals, key
//     histograms and one exactly ranked bucket per source;
//  2. select   (mix_select.go) per cache file: the documents and repetitions
//     the plan takes, split into pieces of at most seq_len, each assigned to
//     a packing group by a hash of (seed, source, id, repetition);
//  3. pack     (mix_pack.go) per group: best-fit decreasing into seq_len
//     sequences, a seeded shuffle, one shard file named after the group;
//     then the manifest, with every count checked against the plan.
//
// Groups bound the memory of a packing step and replace one giant
// GroupByKey; the number of groups comes from the budget, never from the
// worker count, so outputs are byte-identical however the work is spread.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"

	"longctx/mixture"
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
	// pieces to one file per group in the output's temp area instead of
	// holding them; memory is then about workers x GroupTokens. Default 512Mi.
	MemoryTokens int64
	Workers      int    // in-process workers; 0 = GOMAXPROCS
	Runner       string // "" or "local": in-process; a Beam runner name (prism, direct, dataflow, ...) runs on Beam
	Quiet        bool   // no progress lines
	// ReferencePlanner plans with mixture.MakePlan over every document id held
	// in memory (the planner before the plan step was spread out; it refuses
	// repeated ids). For comparison tests and benchmarks.
	ReferencePlanner bool

	partitionDocs int // documents per plan partition (tests force several)
	bucketBits    int // key histogram bits (tests force crowded buckets)
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
	// Blocks of token cache select decoded and skipped (no selected document).
	BlocksRead    int64 `json:"blocks_read"`
	BlocksSkipped int64 `json:"blocks_skipped"`
	// SelectBundles: on Beam, the bundles select ran in (1 means one worker).
	SelectBundles int64 `json:"select_bundles,omitempty"`
}

// cacheFile is one token cache of one source: the unit of work of select.
type cacheFile struct {
	Source string `json:"source"`
	Path   string `json:"path"`
	Index  int    `json:"index"` // position in the mix's file list: names its drop list
	Src    int    `json:"src"`   // index of the source in the spec
	// What the prepare manifest says the cache holds (checked by the plan's
	// scan; Beam workers get it with the file).
	Docs   int64 `json:"docs,omitempty"`
	Tokens int64 `json:"tokens,omitempty"`
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
// running the shared part of the plan step once.
func MixSweep(ctx context.Context, opt MixOptions) ([]MixResult, error) {
	opt.defaults()
	if err := opt.Spec.Validate(); err != nil {
		return nil, err
	}
	if opt.Prepare == "" || opt.Output == "" {
		return nil, fmt.Errorf("mix: prepare manifest and output are required")
	}
	// The temp area holds the plan's partitions and the spill; a killed run
	// leaves it behind and this removes it.
	tmp := mixTempDir(opt.Output)
	if err := freshTempDir(tmp); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if opt.Runner != "" && opt.Runner != "local" {
		if opt.ReferencePlanner {
			return nil, fmt.Errorf("mix: the reference planner runs in-process only, not on Beam runner %s", opt.Runner)
		}
		return mixSweepBeam(ctx, opt, tmp)
	}
	var idx *mixIndex
	var err error
	if opt.ReferencePlanner {
		idx, err = referenceIndex(ctx, opt)
	} else {
		idx, err = buildIndex(ctx, opt, tmp)
	}
	if err != nil {
		return nil, err
	}
	points := opt.Spec.Points()
	var out []MixResult
	for i, spec := range points {
		o := opt
		o.Spec, o.Output = spec, pointOutput(opt, spec)
		r, err := mixOne(ctx, o, idx, fmt.Sprintf("%s/point-%03d", tmp, i))
		if err != nil {
			return out, fmt.Errorf("mixture %s: %w", spec.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// mixJob is everything select and pack need; it travels to Beam workers as
// JSON.
type mixJob struct {
	Plan      mixture.Plan `json:"plan"`
	Groups    int          `json:"groups"`
	SeqLen    int          `json:"seq_len"`
	ChunkSeqs int          `json:"chunk_seqs"`
	Output    string       `json:"output"`
	// DropsDir holds the plan's per-file lists of dropped duplicates.
	DropsDir string `json:"drops_dir,omitempty"`
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

// clearOutput removes the shards, manifest and report an earlier mix left in
// out, so a reused directory never mixes old shards with new ones (the
// manifest goes first: a run killed after this leaves no manifest pointing at
// missing shards).
func clearOutput(ctx context.Context, out string) error {
	old := []string{storage.Join(out, shards.ManifestName)}
	files, err := storage.List(ctx, storage.Join(out, "shard-*"+shards.ShardExt))
	if err != nil {
		return fmt.Errorf("mix: listing old shards in %s: %w", out, err)
	}
	for _, f := range files {
		old = append(old, f.Path)
	}
	old = append(old, storage.Join(out, "report.json"), storage.Join(out, "report.md"), storage.Join(out, "mixture.png"))
	for _, p := range old {
		if err := storage.Remove(ctx, p); err != nil {
			return fmt.Errorf("mix: removing old output %s: %w", p, err)
		}
	}
	return nil
}

// pointOutput is where sweep point spec of opt's spec goes.
func pointOutput(opt MixOptions, spec mixture.Spec) string {
	if len(opt.Spec.Sweep) > 0 {
		return storage.Join(opt.Output, spec.Name)
	}
	return opt.Output
}

// newMixJob is one mixture's select and pack settings (the plan comes from
// the plan step).
func newMixJob(opt MixOptions, plan mixture.Plan, dropsDir string) mixJob {
	groups := int((opt.Spec.TotalTokens + opt.GroupTokens - 1) / opt.GroupTokens)
	return mixJob{Plan: plan, Groups: max(1, groups), SeqLen: opt.Spec.SeqLen,
		ChunkSeqs: shards.ChunkSeqs(opt.Spec.SeqLen, opt.ChunkTokens), Output: opt.Output, DropsDir: dropsDir}
}

func mixOne(ctx context.Context, opt MixOptions, idx *mixIndex, tmp string) (MixResult, error) {
	plan, err := makePlan(ctx, opt, opt.Spec, idx)
	if err != nil {
		return MixResult{}, err
	}
	if err := clearOutput(ctx, opt.Output); err != nil {
		return MixResult{}, err
	}
	var files []cacheFile
	for _, f := range idx.files {
		if sp, _ := plan.Source(f.Source); sp.Target > 0 {
			files = append(files, f)
		}
	}
	job := newMixJob(opt, plan, idx.dropsDir)
	counts, results, err := runLocal(ctx, opt, job, files, tmp)
	if err != nil {
		return MixResult{}, err
	}
	return finishMix(ctx, opt, idx, job, counts, results)
}

// finishMix checks the counts against the plan and writes the manifest and
// the report.
func finishMix(ctx context.Context, opt MixOptions, idx *mixIndex, job mixJob, counts selectCounts, results []groupResult) (MixResult, error) {
	plan := job.Plan
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
	return MixResult{Output: opt.Output, Plan: plan, Manifest: m, Report: files2,
		BlocksRead: counts.BlocksRead, BlocksSkipped: counts.BlocksSkipped, SelectBundles: counts.SelectBundles}, nil
}
