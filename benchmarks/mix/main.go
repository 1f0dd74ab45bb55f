// Command mix benchmarks the mix stage: throughput (tokens/s) and peak RSS
// over >= 100M tokens of synthetic token caches, against the anchor of just
// reading and decoding those caches, and packing fill on a demo-like and on
// a realistic length distribution (books ~100k tokens, web ~1k).
//
//	go run ./benchmarks/mix [-tokens 100000000] [-dir /tmp/longctx-mixbench] [-workers 2] [-beam prism]
//	    [-many-docs 10000000,50000000] [-skip-tokens]
//
// -many-docs measures the plan step where document count, not tokens, is the
// load: caches of N documents of 8-16 tokens, a fixed 4M-token mixture, the
// peak RSS of the whole mix at each N (it must stay flat), and the reference
// planner (every id in memory) at the smallest N beside it.
//
// Each measurement runs in a child process so its peak RSS is its own.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"longctx/mixture"
	"longctx/pipelines"
	"longctx/shards"
)

type result struct {
	Phase    string  `json:"phase"`
	Tokens   int64   `json:"tokens"`
	Seconds  float64 `json:"seconds"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
	Fill     float64 `json:"fill,omitempty"`
	Seqs     int64   `json:"sequences,omitempty"`
	Split    int64   `json:"split_docs,omitempty"`
	ShardsMB float64 `json:"shards_mb,omitempty"`
}

func main() {
	phase := flag.String("phase", "", "internal: run one measurement (gen, read, mix) and print JSON")
	tokens := flag.Int64("tokens", 100_000_000, "tokens of synthetic caches (realistic distribution)")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "longctx-mixbench"), "work directory (caches and outputs)")
	workers := flag.Int("workers", 2, "mix workers")
	beamRunner := flag.String("beam", "prism", "also run mix on this Beam runner over -beam-tokens (empty: skip)")
	beamTokens := flag.Int64("beam-tokens", 10_000_000, "tokens of caches for the Beam run (prism keeps everything in memory)")
	seqLen := flag.Int("seq-len", 16384, "sequence length of the realistic mix")
	runner := flag.String("mix-runner", "local", "internal: runner of a mix phase (not -runner: Beam defines that flag)")
	memTokens := flag.Int64("memory-tokens", 0, "internal: MixOptions.MemoryTokens of a mix phase (0 = default)")
	groupTokens := flag.Int64("group-tokens", 0, "internal: MixOptions.GroupTokens of a mix phase (0 = default)")
	manyDocs := flag.String("many-docs", "10000000,50000000", "document counts of the short-document plan benchmark (empty: skip)")
	skipTokens := flag.Bool("skip-tokens", false, "skip the token-throughput measurements (run only -many-docs)")
	reference := flag.Bool("reference", false, "internal: plan with the reference planner")
	flag.Parse()
	if *phase != "" {
		if err := child(*phase, *dir, *tokens, *workers, *seqLen, *runner, *memTokens, *groupTokens, *reference); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	run := func(args ...string) result {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%v: %v\n", args, err)
			os.Exit(1)
		}
		var r result
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			fmt.Fprintf(os.Stderr, "%v: %v in %q\n", args, err, out)
			os.Exit(1)
		}
		return r
	}
	d := func(sub string) string { return filepath.Join(*dir, sub) }
	tk := func(n int64) string { return strconv.FormatInt(n, 10) }
	w := strconv.Itoa(*workers)
	if *manyDocs != "" {
		benchManyDocs(run, *dir, *manyDocs, w)
	}
	if *skipTokens {
		return
	}
	fmt.Printf("mix benchmark: %d tokens of synthetic caches (books ~100k tokens/doc, web ~1k, code ~10k, math ~1.4k), seq_len %d, %d workers\n",
		*tokens, *seqLen, *workers)
	gen := run("-phase", "gen", "-dir", d("big"), "-tokens", tk(*tokens))
	fmt.Printf("generated caches: %d tokens in %.1fs\n", gen.Tokens, gen.Seconds)
	read := run("-phase", "read", "-dir", d("big"), "-tokens", tk(*tokens), "-workers", w)
	mix := run("-phase", "mix", "-dir", d("big"), "-tokens", tk(*tokens), "-workers", w, "-seq-len", strconv.Itoa(*seqLen))
	fmt.Printf("\n%-34s %12s %10s %14s %12s\n", "measurement", "tokens", "seconds", "tokens/s", "peak RSS")
	show := func(name string, r result) {
		fmt.Printf("%-34s %12d %10.2f %14.0f %10.0f MB\n", name, r.Tokens, r.Seconds, float64(r.Tokens)/r.Seconds, float64(r.PeakRSS)/1e6)
	}
	show("anchor: read+decode caches", read)
	show("mix (local executor)", mix)
	spill := run("-phase", "mix", "-dir", d("big"), "-tokens", tk(*tokens), "-workers", w, "-seq-len", strconv.Itoa(*seqLen), "-memory-tokens", "16777216", "-group-tokens", "8388608")
	show("mix (local, spilled, 8Mi groups)", spill)
	fmt.Printf("ratio mix/anchor throughput: %.3f\n", (float64(mix.Tokens)/mix.Seconds)/(float64(read.Tokens)/read.Seconds))
	fmt.Printf("realistic fill (seq_len %d): %.4f%% over %d sequences, %d documents split, shards %.1f MB\n",
		*seqLen, 100*mix.Fill, mix.Seqs, mix.Split, mix.ShardsMB)

	demoGen := run("-phase", "gen-demo", "-dir", d("demo"))
	demo := run("-phase", "mix", "-dir", d("demo"), "-tokens", tk(demoGen.Tokens), "-workers", w, "-seq-len", "512")
	fmt.Printf("demo-like fill (seq_len 512, %d tokens): %.4f%% over %d sequences, %d documents split\n", demo.Tokens, 100*demo.Fill, demo.Seqs, demo.Split)

	if *beamRunner != "" {
		run("-phase", "gen", "-dir", d("beam"), "-tokens", tk(*beamTokens))
		lb := run("-phase", "mix", "-dir", d("beam"), "-tokens", tk(*beamTokens), "-workers", w, "-seq-len", strconv.Itoa(*seqLen))
		bb := run("-phase", "mix", "-dir", d("beam"), "-tokens", tk(*beamTokens), "-workers", w, "-seq-len", strconv.Itoa(*seqLen), "-mix-runner", *beamRunner)
		fmt.Println()
		show("mix local ("+tk(*beamTokens)+" tokens)", lb)
		show("mix beam "+*beamRunner, bb)
		fmt.Printf("ratio beam/local throughput: %.3f, peak RSS beam/local: %.2f\n",
			(float64(bb.Tokens)/bb.Seconds)/(float64(lb.Tokens)/lb.Seconds), float64(bb.PeakRSS)/float64(lb.PeakRSS))
	}
}

// benchManyDocs runs the short-document plan benchmark.
func benchManyDocs(run func(args ...string) result, dir, list, w string) {
	var ns []int64
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "-many-docs %q: %v\n", list, err)
			os.Exit(1)
		}
		ns = append(ns, n)
	}
	fmt.Printf("plan benchmark: caches of N documents of 8-16 tokens, a %d-token mixture, %s workers\n", manyDocsMix, w)
	fmt.Printf("\n%-44s %12s %10s %12s\n", "measurement", "documents", "seconds", "peak RSS")
	var first, last result
	for i, n := range ns {
		d := filepath.Join(dir, fmt.Sprintf("docs-%d", n))
		gen := run("-phase", "gen-docs", "-dir", d, "-tokens", strconv.FormatInt(n, 10))
		fmt.Printf("%-44s %12d %10.2f %10.0f MB\n", "generate caches", n, gen.Seconds, float64(gen.PeakRSS)/1e6)
		mix := run("-phase", "mix-docs", "-dir", d, "-tokens", strconv.FormatInt(n, 10), "-workers", w)
		fmt.Printf("%-44s %12d %10.2f %10.0f MB\n", "mix (spread-out planner)", n, mix.Seconds, float64(mix.PeakRSS)/1e6)
		if i == 0 {
			first = mix
			ref := run("-phase", "mix-docs", "-dir", d, "-tokens", strconv.FormatInt(n, 10), "-workers", w, "-reference")
			fmt.Printf("%-44s %12d %10.2f %10.0f MB\n", "mix (reference planner: every id in memory)", n, ref.Seconds, float64(ref.PeakRSS)/1e6)
		}
		last = mix
		os.RemoveAll(d)
	}
	if len(ns) > 1 {
		fmt.Printf("peak RSS at %d documents / at %d: %.2fx (flat: <= 1.2x)\n\n", ns[len(ns)-1], ns[0], float64(last.PeakRSS)/float64(first.PeakRSS))
	}
}

// manyDocsMix is the mixture of the plan benchmark: fixed, so only the
// document count changes between runs.
const manyDocsMix = 4_000_000

// generateShortDocs writes n documents of 8-16 tokens in caches of 1Mi
// documents each (two writers at a time) and a prepare manifest.
func generateShortDocs(ctx context.Context, dir string, n int64) error {
	os.RemoveAll(dir)
	root := filepath.Join(dir, "caches")
	const perFile = 1 << 20
	files := int((n + perFile - 1) / perFile)
	refs := make([]shards.CacheRef, files)
	errs := make([]error, files)
	sem := make(chan struct{}, 2)
	done := make(chan struct{})
	for f := range files {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem; done <- struct{}{} }()
			rel := fmt.Sprintf("web/web-%05d.tokcache", f)
			cw, err := shards.CreateCache(ctx, filepath.Join(root, rel), shards.CacheHeader{Source: "web", Input: rel, Codec: shards.CodecS2}) // the codec its figures were measured with
			if err != nil {
				errs[f] = err
				return
			}
			ref := shards.CacheRef{Path: rel}
			x := uint64(f)*0x9e3779b97f4a7c15 + 1
			buf := make([]uint32, 0, 16)
			for d := int64(f) * perFile; d < min(int64(f+1)*perFile, n); d++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				l := 8 + int(x%9)
				buf = buf[:0]
				for k := range l {
					buf = append(buf, uint32((x>>(k*3))%4096))
				}
				if err := cw.Add("doc-"+strconv.FormatInt(d, 10), buf); err != nil {
					errs[f] = err
					return
				}
				ref.Docs++
				ref.Tokens += int64(l)
			}
			sum, err := cw.Close()
			ref.XXH64 = sum.XXH64
			refs[f], errs[f] = ref, err
		}()
	}
	for range files {
		<-done
	}
	ps := shards.PreparedSource{Name: "web"}
	for f := range files {
		if errs[f] != nil {
			return errs[f]
		}
		ps.Caches = append(ps.Caches, refs[f])
		ps.Docs += refs[f].Docs
		ps.Tokens += refs[f].Tokens
	}
	pm := &shards.PrepareManifest{Version: 1, TokenizerHash: "bench", Sources: []shards.PreparedSource{ps}}
	return shards.WritePrepareManifest(ctx, filepath.Join(root, "manifest.json"), pm)
}

// peakRSS reads this process's high-water resident set (Linux VmHWM).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type benchSource struct {
	name      string
	share     float64 // of the cache tokens
	mean      int     // mean document length
	files     int
	minTokens int
}

// realistic: books ~100k tokens per document, web ~1k.
var realistic = []benchSource{
	{"books", 0.3, 100_000, 4, 20_000},
	{"code", 0.1, 10_000, 2, 8_192},
	{"web", 0.4, 1_000, 8, 50},
	{"math", 0.2, 1_400, 4, 50},
}

// demoLike: the demo corpus's shape at small scale.
var demoLike = []benchSource{
	{"books", 0.3, 6_000, 2, 2_000},
	{"code", 0.1, 1_500, 1, 800},
	{"web", 0.4, 300, 2, 20},
	{"math", 0.2, 250, 1, 20},
}

func child(phase, dir string, tokens int64, workers, seqLen int, runner string, memTokens, groupTokens int64, reference bool) error {
	ctx := context.Background()
	prep := filepath.Join(dir, "caches", "manifest.json")
	start := time.Now()
	r := result{Phase: phase}
	switch phase {
	case "gen":
		n, err := generate(ctx, dir, realistic, tokens)
		if err != nil {
			return err
		}
		r.Tokens = n
	case "gen-docs":
		if err := generateShortDocs(ctx, dir, tokens); err != nil {
			return err
		}
	case "mix-docs":
		spec := mixture.Spec{Name: "docs", TotalTokens: manyDocsMix, SeqLen: 1024, Seed: 1, Upsample: mixture.UpsampleRepeat,
			Sources: []mixture.Source{{Name: "web", Weight: 1}}}
		out := filepath.Join(dir, "out")
		res, err := pipelines.Mix(ctx, pipelines.MixOptions{Spec: spec, Prepare: prep, Output: out, Workers: workers, Quiet: true,
			GroupTokens: 1 << 20, ReferencePlanner: reference})
		if err != nil {
			return err
		}
		r.Tokens = res.Manifest.Packing.Real
		os.RemoveAll(out)
	case "gen-demo":
		n, err := generate(ctx, dir, demoLike, 400_000)
		if err != nil {
			return err
		}
		r.Tokens = n
	case "read":
		pm, err := shards.ReadPrepareManifest(ctx, prep)
		if err != nil {
			return err
		}
		var refs []string
		for _, s := range pm.Sources {
			for _, c := range s.Caches {
				refs = append(refs, shards.CachePath(prep, c))
			}
		}
		counts := make([]int64, len(refs))
		errs := make([]error, len(refs))
		sem := make(chan struct{}, workers)
		done := make(chan struct{})
		for i, p := range refs {
			go func() {
				sem <- struct{}{}
				defer func() { <-sem; done <- struct{}{} }()
				c, err := shards.OpenCache(ctx, p)
				if err != nil {
					errs[i] = err
					return
				}
				defer c.Close()
				errs[i] = c.ForEach(func(_ int, e shards.CacheEntry, toks []uint32) error {
					counts[i] += int64(len(toks))
					return nil
				})
			}()
		}
		for range refs {
			<-done
		}
		for i := range refs {
			if errs[i] != nil {
				return errs[i]
			}
			r.Tokens += counts[i]
		}
	case "mix":
		spec := mixture.Spec{Name: "bench", TotalTokens: tokens * 95 / 100, SeqLen: seqLen, Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 4}
		for _, s := range realistic {
			spec.Sources = append(spec.Sources, mixture.Source{Name: s.name, Weight: s.share})
		}
		out := filepath.Join(dir, "out-"+runner)
		os.RemoveAll(out)
		opt := pipelines.MixOptions{Spec: spec, Prepare: prep, Output: out, Workers: workers, Runner: runner, MemoryTokens: memTokens, GroupTokens: groupTokens, Quiet: true}
		if seqLen <= 1024 {
			opt.GroupTokens, opt.ChunkTokens = 1<<18, 8192
		}
		res, err := pipelines.Mix(ctx, opt)
		if err != nil {
			return err
		}
		m := res.Manifest
		r.Tokens, r.Fill, r.Seqs, r.Split = m.Packing.Real, m.Packing.Fill(), m.Packing.Sequences, m.SplitDocs
		for _, s := range m.Shards {
			r.ShardsMB += float64(s.Bytes) / 1e6
		}
	default:
		return fmt.Errorf("unknown phase %q", phase)
	}
	r.Seconds = time.Since(start).Seconds()
	r.PeakRSS = peakRSS()
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return nil
}

// generate writes token caches whose document lengths follow srcs (lengths
// exponential around the mean, at least minTokens) and a prepare manifest.
// Token ids are Zipf-like over a 49,152 vocabulary so they compress like
// text tokens.
func generate(ctx context.Context, dir string, srcs []benchSource, tokens int64) (int64, error) {
	os.RemoveAll(dir)
	root := filepath.Join(dir, "caches")
	pm := &shards.PrepareManifest{Version: 1, TokenizerHash: "bench"}
	r := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(r, 1.1, 1, 49151)
	var total int64
	for _, s := range srcs {
		budget := int64(float64(tokens) * s.share)
		ps := shards.PreparedSource{Name: s.name}
		per := budget / int64(s.files)
		for f := 0; f < s.files; f++ {
			rel := fmt.Sprintf("%s/%s-%03d.tokcache", s.name, s.name, f)
			cw, err := shards.CreateCache(ctx, filepath.Join(root, rel), shards.CacheHeader{Source: s.name, Input: rel, Codec: shards.CodecS2})
			if err != nil {
				return 0, err
			}
			ref := shards.CacheRef{Path: rel}
			var buf []uint32
			for d := 0; ref.Tokens < per; d++ {
				n := s.minTokens + int(r.ExpFloat64()*float64(s.mean-s.minTokens))
				buf = buf[:0]
				for range n {
					buf = append(buf, uint32(zipf.Uint64()))
				}
				if err := cw.Add(fmt.Sprintf("%s-%d-%d", s.name, f, d), buf); err != nil {
					return 0, err
				}
				ref.Docs++
				ref.Tokens += int64(n)
			}
			sum, err := cw.Close()
			if err != nil {
				return 0, err
			}
			ref.XXH64 = sum.XXH64
			ps.Caches = append(ps.Caches, ref)
			ps.Docs += ref.Docs
			ps.Tokens += ref.Tokens
			total += ref.Tokens
		}
		pm.Sources = append(pm.Sources, ps)
	}
	return total, shards.WritePrepareManifest(ctx, filepath.Join(root, "manifest.json"), pm)
}
