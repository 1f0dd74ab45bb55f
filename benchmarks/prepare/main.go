// Benchmark prepare: the prepare pipeline over >= 200 MB of mixed-format
// input (the five demo layouts, many seeds) on the local runners, against
// the anchor: the raw tokenizer on exactly the same documents' text.
//
//	go run ./benchmarks/prepare [-mb 200] [-runners direct,prism] [-codecs raw,s2] [-workers 2] [-repeats 3]
//
// Each runner runs in a child process (once per token cache codec and
// repeat) so its peak RSS is its own. Every run is timed right after an
// anchor pass and its ratio is to that pass; the median over repeats is
// reported (one pass of either moves by 10-30% on this machine from one
// minute to the next). Prints
// MB/s (input and text), tokens/s, the ratio to the raw tokenizer at the
// same parallelism (goal >= 0.7), and peak RSS; writes results.json and
// results.md under -out.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	democorpus "longctx/corpus"
	"longctx/pipelines"
	"longctx/storage"
	"longctx/tokenizer"
)

var (
	corpus    = flag.String("corpus", filepath.Join(os.TempDir(), "longctx-bench-prepare"), "corpus directory (generated once, reused)")
	mb        = flag.Int("mb", 200, "input size to generate, MB")
	scale     = flag.Int("scale", 150, "records per generated file, as a multiple of the demo corpus (real dumps have 100 MB+ files)")
	runners   = flag.String("runners", "direct,prism", "runners to measure")
	workers   = flag.Int("workers", 2, "tokenizer goroutines per file (pipeline) and for the anchor")
	tokPath   = flag.String("tokenizer", "tokenizer/testdata/tokenizer.json", "tokenizer.json")
	out       = flag.String("out", filepath.Join(os.TempDir(), "longctx-bench-prepare-results"), "where results.json/results.md go")
	child     = flag.String("child", "", "internal: run the pipeline on this runner and print JSON")
	childOut  = flag.String("child_out", "", "internal: output directory for -child")
	childWork = flag.Int("child_workers", 2, "internal")
	codecs    = flag.String("codecs", "raw,s2", "token cache codecs to measure (raw, s2, zstd): each runner runs once per codec")
	childCdc  = flag.String("child_codec", "", "internal")
	childGen  = flag.String("child_gen", "", "internal: the corpus generator's fingerprint")
	repeats   = flag.Int("repeats", 3, "time every run this many times, each right after its own anchor pass; the median ratio is reported")
	cpuProf   = flag.String("cpuprofile", "", "write the pipeline runs' CPU profiles to this path (one per runner: path.<runner>)")
)

func config(outDir string, w int) pipelines.PrepareConfig {
	c := func(p string) []string {
		return []string{filepath.Join(*corpus, fmt.Sprintf("scale-%d-gen-%s-seed-*", *scale, *childGen), p)}
	}
	cfg := pipelines.DefaultPrepareConfig()
	cfg.Output, cfg.Tokenizer, cfg.Workers, cfg.Force, cfg.CacheCodec = outDir, *tokPath, w, true, *childCdc
	cfg.Sources = []pipelines.SourceConfig{
		{Name: "books", Format: "dolma", Inputs: c("dolma/books/*.json.gz")},
		{Name: "code", Format: "stack", Inputs: c("the-stack-dedup/data/*/*.parquet"), MinTokens: 8192},
		{Name: "fineweb-edu", Format: "fineweb-edu", Inputs: c("fineweb-edu/sample/10BT/*.parquet")},
		{Name: "dclm", Format: "dclm", Inputs: c("dclm-baseline-1.0/*/*/*.jsonl.zstd")},
		{Name: "math", Format: "finemath", Inputs: c("finemath/finemath-4plus/*.parquet")},
	}
	return cfg
}

type runResult struct {
	Runner      string  `json:"runner"`
	Codec       string  `json:"cache_codec"`
	CacheBytes  int64   `json:"cache_bytes"`
	Wall        float64 `json:"wall_s"` // median of the repeats
	WallMin     float64 `json:"wall_min_s"`
	WallMax     float64 `json:"wall_max_s"`
	InputBytes  int64   `json:"input_bytes"`
	TextBytes   int64   `json:"text_bytes"`
	Tokens      int64   `json:"tokens"`
	Docs        int64   `json:"docs"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	InputMBs    float64 `json:"input_mb_s"`
	TextMBs     float64 `json:"text_mb_s"`
	TokensPerS  float64 `json:"tokens_s"`
	RatioToRaw  float64 `json:"ratio_to_raw_tokenizer"` // median over repeats of the ratio within a repeat
	RatioMin    float64 `json:"ratio_min"`
	RatioMax    float64 `json:"ratio_max"`
	RatioToRaw1 float64 `json:"ratio_to_raw_tokenizer_1_thread"`
	CPU         float64 `json:"cpu_s"`            // user+sys of the run's process
	CPURatio    float64 `json:"cpu_ratio_to_raw"` // raw tokenizer CPU / pipeline CPU on the same text
}

func runChild() {
	flag.Set("runner", *child)
	beam.Init()
	ctx := context.Background()
	plan, err := pipelines.PlanPrepare(ctx, config(*childOut, *childWork))
	if err != nil {
		fatal(err)
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
	}
	start := time.Now()
	if err := beamx.Run(ctx, plan.Pipeline); err != nil {
		fatal(err)
	}
	wall := time.Since(start).Seconds()
	pprof.StopCPUProfile()
	m, err := pipelines.ReadManifest(ctx, *childOut)
	if err != nil {
		fatal(err)
	}
	r := runResult{Runner: *child, Codec: *childCdc, Wall: wall, InputBytes: plan.InputBytes}
	filepath.Walk(*childOut, func(path string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".tokcache") {
			r.CacheBytes += fi.Size()
		}
		return nil
	})
	for _, s := range m.Sources {
		r.TextBytes += s.Stats.TextBytes
		r.Tokens += s.Stats.Tokens + s.Stats.DroppedTokens // the tokenizer ran on dropped-by-length docs too
		r.Docs += s.Stats.Written
	}
	r.PeakRSSMB = peakRSSMB()
	json.NewEncoder(os.Stdout).Encode(r)
}

// peakRSSMB is this process's VmHWM. The parent's rusage of a child counts
// the parent's own RSS at fork (the anchor's texts, ~1.4 GB), so each child
// reports its own.
func peakRSSMB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			var kb float64
			fmt.Sscan(f[1], &kb)
			return kb / 1024
		}
	}
	return 0
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench prepare:", err)
	os.Exit(1)
}

// generatorFingerprint hashes what the corpus generator writes for seed 1
// at scale 2 (names and bytes; 2 so what grows with scale shows): the
// generated corpus is kept between runs, and a generator change must not
// leave an old one in use (this machine's copy was made by a generator
// three commits old).
func generatorFingerprint(ctx context.Context) string {
	dir, err := os.MkdirTemp("", "bench-prepare-gen-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	files, err := democorpus.GenerateCorpus(ctx, dir, 1, 2)
	if err != nil {
		fatal(err)
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", f.Path, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureCorpus generates demo corpora with seeds 1, 2, ... until the input
// reaches -mb megabytes, after removing corpora of this scale made by
// another generator.
func ensureCorpus(ctx context.Context) int64 {
	old, _ := filepath.Glob(filepath.Join(*corpus, fmt.Sprintf("scale-%d-*", *scale)))
	for _, d := range old {
		if !strings.HasPrefix(filepath.Base(d), fmt.Sprintf("scale-%d-gen-%s-", *scale, *childGen)) {
			fmt.Printf("removing %s (another corpus generator)\n", d)
			if err := os.RemoveAll(d); err != nil {
				fatal(err)
			}
		}
	}
	var total int64
	for seed := uint64(1); total < int64(*mb)*1e6; seed++ {
		dir := filepath.Join(*corpus, fmt.Sprintf("scale-%d-gen-%s-seed-%04d", *scale, *childGen, seed))
		if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
			files, err := democorpus.GenerateCorpus(ctx, dir, seed, *scale)
			if err != nil {
				fatal(err)
			}
			var n int
			for _, f := range files {
				n += f.Bytes
			}
			os.WriteFile(filepath.Join(dir, "done"), []byte(fmt.Sprint(n)), 0o644)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "done"))
		var n int64
		fmt.Sscan(string(b), &n)
		total += n
	}
	return total
}

// loadTexts reads every document the pipeline reads (same readers, same
// sanitising), file by file, for the anchor.
func loadTexts(ctx context.Context) (*tokenizer.Tokenizer, [][]string) {
	tk, err := pipelines.LoadTokenizer(ctx, *tokPath)
	if err != nil {
		fatal(err)
	}
	tasks, err := pipelines.ListTasks(ctx, config("unused", 1), tk.Hash())
	if err != nil {
		fatal(err)
	}
	var files [][]string
	for _, task := range tasks {
		f, _ := pipelines.LookupFormat(task.Format)
		var texts []string
		emit := pipelines.Emit{Doc: func(d pipelines.Document) error {
			t, _ := pipelines.SanitizeUTF8(d.Text)
			texts = append(texts, t)
			return nil
		}, Bad: func(pipelines.Malformed) error { return nil }}
		data, err := os.ReadFile(task.Input)
		if err != nil {
			fatal(err)
		}
		if f.Parquet != nil {
			pipelines.ReadParquet(bytes.NewReader(data), int64(len(data)), f, task.Input, task.Source, emit)
		} else {
			pipelines.ReadJSONLines(bytes.NewReader(data), f, task.Input, task.Source, emit)
		}
		files = append(files, texts)
	}
	return tk, files
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// anchorPass times only the tokenizer over the same text, file by file as
// the pipeline goes: on 1 goroutine, then on `workers`.
func anchorPass(tk *tokenizer.Tokenizer, files [][]string) (t1, tN, cpu time.Duration, tokens int64) {
	for _, texts := range files {
		start, c0 := time.Now(), cpuNow()
		for _, t := range texts {
			tokens += int64(len(tk.EncodeDoc(t)))
		}
		t1 += time.Since(start)
		cpu += cpuNow() - c0
		start = time.Now()
		var wg sync.WaitGroup
		next := make(chan string)
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range next {
					tk.EncodeDoc(t)
				}
			}()
		}
		for _, t := range texts {
			next <- t
		}
		close(next)
		wg.Wait()
		tN += time.Since(start)
	}
	return t1, tN, cpu, tokens
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// runList is every (runner, codec) pair, codecs alternating within a
// runner so a load change on a shared machine hits both.
func runList() [][2]string {
	var out [][2]string
	for _, r := range strings.Split(*runners, ",") {
		for _, c := range strings.Split(*codecs, ",") {
			out = append(out, [2]string{r, c})
		}
	}
	return out
}

func main() {
	flag.Parse()
	if *child != "" {
		runChild()
		return
	}
	ctx := context.Background()
	fmt.Printf("bench prepare: GOMAXPROCS %d, workers %d, load %s\n", runtime.GOMAXPROCS(0), *workers, loadavg())
	*childGen = generatorFingerprint(ctx)
	input := ensureCorpus(ctx)
	fmt.Printf("corpus: %.1f MB of input under %s\n", float64(input)/1e6, *corpus)
	tk, texts := loadTexts(ctx)
	exe, _ := os.Executable()
	// Every run is timed right after its own anchor pass and its ratio is
	// to that pass: this machine's speed drifts by 10-30% within minutes,
	// which a comparison of separate medians would take for a difference
	// between the two.
	runs := map[[2]string][]runResult{}
	var t1s, tNs, cpus []time.Duration
	var rawTokens int64
	for rep := range *repeats {
		for _, run := range runList() {
			r, codec := run[0], run[1]
			t1, tN, cpu, n := anchorPass(tk, texts)
			t1s, tNs, cpus, rawTokens = append(t1s, t1), append(tNs, tN), append(cpus, cpu), n
			dir, _ := os.MkdirTemp("", "bench-prepare-out-")
			args := []string{"-child=" + r, "-child_out=" + dir, fmt.Sprint("-child_workers=", *workers),
				"-corpus=" + *corpus, "-tokenizer=" + *tokPath, fmt.Sprint("-scale=", *scale), "-child_codec=" + codec,
				"-child_gen=" + *childGen}
			if *cpuProf != "" && rep == 0 {
				args = append(args, "-cpuprofile="+*cpuProf+"."+r+"."+codec)
			}
			cmd := exec.Command(exe, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				e := stderr.Bytes()
				fatal(fmt.Errorf("runner %s: %v; its stderr ends:\n%s", r, err, e[max(0, len(e)-3000):]))
			}
			os.RemoveAll(dir)
			var res runResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				fatal(fmt.Errorf("runner %s output %q: %v", r, stdout.String(), err))
			}
			if res.Tokens != rawTokens {
				fatal(fmt.Errorf("runner %s tokenized %d tokens, anchor %d", r, res.Tokens, rawTokens))
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			res.CPU = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
			res.TokensPerS = float64(res.Tokens) / res.Wall
			res.RatioToRaw = tN.Seconds() / res.Wall
			res.RatioToRaw1 = t1.Seconds() / res.Wall
			res.CPURatio = cpu.Seconds() / res.CPU
			fmt.Printf("repeat %d: anchor %.0f tokens/s on 1 goroutine, %.0f on %d; %s %s: %.2f s, %.0f tokens/s, %.1f s CPU, ratio to raw %.2f\n",
				rep+1, float64(n)/t1.Seconds(), float64(n)/tN.Seconds(), *workers, r, codec, res.Wall, res.TokensPerS, res.CPU, res.RatioToRaw)
			runs[run] = append(runs[run], res)
		}
	}
	raw1 := float64(rawTokens) / median(t1s).Seconds()
	rawN := float64(rawTokens) / median(tNs).Seconds()
	rawCPU := median(cpus)
	var results []runResult
	for _, run := range runList() {
		rs := runs[run]
		var walls, cpuS, rss, ratio, ratio1, cpuRatio []float64
		for _, x := range rs {
			walls, cpuS, rss = append(walls, x.Wall), append(cpuS, x.CPU), append(rss, x.PeakRSSMB)
			ratio, ratio1, cpuRatio = append(ratio, x.RatioToRaw), append(ratio1, x.RatioToRaw1), append(cpuRatio, x.CPURatio)
		}
		res := rs[0]
		res.Wall, res.WallMin, res.WallMax = median(walls), slices.Min(walls), slices.Max(walls)
		res.CPU, res.PeakRSSMB = median(cpuS), slices.Max(rss)
		res.RatioToRaw, res.RatioToRaw1, res.CPURatio = median(ratio), median(ratio1), median(cpuRatio)
		res.RatioMin, res.RatioMax = slices.Min(ratio), slices.Max(ratio)
		res.InputMBs = float64(res.InputBytes) / 1e6 / res.Wall
		res.TextMBs = float64(res.TextBytes) / 1e6 / res.Wall
		res.TokensPerS = float64(res.Tokens) / res.Wall
		results = append(results, res)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# prepare benchmark\n\n%.1f MB input (5 formats), %d tokens; workers %d; GOMAXPROCS %d; load %s\n\n",
		float64(input)/1e6, rawTokens, *workers, runtime.GOMAXPROCS(0), loadavg())
	fmt.Fprintf(&md, "anchor: raw tokenizer on the same text: %.0f tokens/s (1 goroutine), %.0f tokens/s (%d goroutines), %.1f s CPU; medians of %d passes\n\n", raw1, rawN, *workers, rawCPU.Seconds(), len(tNs))
	md.WriteString("| runner | cache codec | cache MB | wall s (median, range) | input MB/s | text MB/s | tokens/s | ratio to raw (same parallelism; median, range) | ratio to raw (1 goroutine) | CPU s | CPU ratio (raw/pipeline) | peak RSS MB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&md, "| %s | %s | %.0f | %.2f (%.2f-%.2f) | %.1f | %.1f | %.0f | %.2f (%.2f-%.2f) | %.2f | %.1f | %.2f | %.0f |\n", r.Runner, r.Codec, float64(r.CacheBytes)/1e6, r.Wall, r.WallMin, r.WallMax, r.InputMBs, r.TextMBs, r.TokensPerS, r.RatioToRaw, r.RatioMin, r.RatioMax, r.RatioToRaw1, r.CPU, r.CPURatio, r.PeakRSSMB)
	}
	md.WriteString("\nEach ratio is to the anchor pass timed just before that run (median over repeats, with their range). On a shared machine wall-clock ratios depend on what else runs; the CPU ratio (tokenizer CPU / whole pipeline CPU) does not.\n")
	fmt.Print("\n" + md.String())
	os.MkdirAll(*out, 0o755)
	b, _ := json.MarshalIndent(map[string]any{"input_bytes": input, "tokens": rawTokens, "raw_tokens_s_1": raw1,
		"raw_tokens_s_n": rawN, "raw_cpu_s": rawCPU.Seconds(), "workers": *workers, "repeats": *repeats, "runs": results}, "", "  ")
	storage.WriteFile(ctx, filepath.Join(*out, "results.json"), b)
	storage.WriteFile(ctx, filepath.Join(*out, "results.md"), []byte(md.String()))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
