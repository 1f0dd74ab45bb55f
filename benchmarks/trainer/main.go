// Command trainer benchmarks longctx training against PyTorch on CPU, side
// by side in one run: per model shape, tokens/s, peak RSS and CPU use of
// each side (each in its own process, so peak RSS is the shape's own), the
// PyTorch/longctx ratio, training GFLOP/s and its fraction of the machine's
// sgemm peak (OpenBLAS through PyTorch; GoMLX's matmul is shown next to it).
//
//	go run ./benchmarks/trainer [-shapes demo,4l,4l-b2,30l,16k-2l] [-steps 2] [-waits passive,default] [-memory-limit 3.5GiB] [-lanes 1] [-schedule parallel]
//
// Shapes: demo (configs/model/demo.yaml, batch 8, seq 256), 4l (SmolLM2-135M
// shape, 4 layers, seq 2048), 30l (all 30 layers, seq 2048), 16k-2l (2 layers,
// seq 16384; PyTorch with chunked attention) and 16k-30l (30 layers at 16k,
// recompute on both sides; slow, only when named), 4l-b2 and 30l-b2 (two
// sequences per step, so longctx's lanes apply; 30l-b2 recomputes on both
// sides and runs only when named). The PyTorch side is
// benchmarks/trainer/torch_step.py on Debian's python3-torch with
// libopenblas0 (`make bench` installs both). Results go to
// out/trainer-bench.json and out/trainer-bench.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/config"
	"longctx/storage"
	"longctx/trainer"
)

// shape is one benchmarked model shape.
type shape struct {
	Name   string `json:"name"`
	Desc   string `json:"desc"`
	Model  string `json:"model"`
	Layers int    `json:"layers"` // 0 = the config's
	Batch  int    `json:"batch"`
	Seq    int    `json:"seq"`
	// TorchChunk is PyTorch's attention/loss chunk (0 = whole sequence):
	// at 16k its full score matrices would not fit.
	TorchChunk int  `json:"torch_chunk"`
	Recompute  bool `json:"recompute"` // both sides recompute layers
}

var allShapes = []shape{
	{Name: "demo", Desc: "demo model (configs/model/demo.yaml), batch 8, seq 256", Model: "configs/model/demo.yaml", Batch: 8, Seq: 256},
	{Name: "4l", Desc: "SmolLM2-135M shape, 4 layers, seq 2048", Model: "configs/model/smollm2-135m.yaml", Layers: 4, Batch: 1, Seq: 2048},
	{Name: "30l", Desc: "SmolLM2-135M, all 30 layers, seq 2048", Model: "configs/model/smollm2-135m.yaml", Layers: 30, Batch: 1, Seq: 2048},
	{Name: "16k-2l", Desc: "135M shape, 2 layers, seq 16384", Model: "configs/model/smollm2-135m.yaml", Layers: 2, Batch: 1, Seq: 16384, TorchChunk: 1024},
	{Name: "16k-30l", Desc: "135M, all 30 layers, seq 16384, recompute", Model: "configs/model/smollm2-135m.yaml", Layers: 30, Batch: 1, Seq: 16384, TorchChunk: 1024, Recompute: true},
	// Two sequences per step: longctx's default lanes run them at once (one
	// sequence per step leaves longctx's non-matmul ops on one core). At 30
	// layers PyTorch's batch of 2 needs ~26 GB without recompute, so both
	// sides recompute there.
	{Name: "4l-b2", Desc: "SmolLM2-135M shape, 4 layers, batch 2, seq 2048", Model: "configs/model/smollm2-135m.yaml", Layers: 4, Batch: 2, Seq: 2048},
	{Name: "30l-b2", Desc: "SmolLM2-135M, all 30 layers, batch 2, seq 2048, recompute", Model: "configs/model/smollm2-135m.yaml", Layers: 30, Batch: 2, Seq: 2048, Recompute: true},
}

const installHint = "apt-get update && apt-get install -y python3-torch libopenblas0   (or: make bench)"

// run is one side's measurement of one shape.
type run struct {
	Side       string  `json:"side"` // longctx, torch-passive, torch-default
	TokensPerS float64 `json:"tokens_per_s"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// CPUPercent is user+system CPU over wall time of the whole process
	// (start-up and compilation included).
	CPUPercent float64 `json:"cpu_percent"`
	WallS      float64 `json:"wall_s"`
	GFLOPS     float64 `json:"train_gflops"`
	MFU        float64 `json:"mfu"` // GFLOPS / measured sgemm peak
	RatioTorch float64 `json:"ratio_to_longctx,omitempty"`
	FirstLoss  float64 `json:"first_loss"`
	Error      string  `json:"error,omitempty"`
}

type shapeResult struct {
	Shape         shape   `json:"shape"`
	FLOPsPerToken float64 `json:"flops_per_token"`
	Runs          []run   `json:"runs"`
}

type matmul struct {
	Shape       string  `json:"shape"`
	TorchGFLOPS float64 `json:"torch_openblas_gflops"`
	GoMLXGFLOPS float64 `json:"gomlx_gflops"`
}

func main() {
	shapesFlag := flag.String("shapes", "demo,4l,4l-b2,30l,16k-2l", "shapes to run, comma-separated: demo, 4l, 30l, 16k-2l, 4l-b2, 30l-b2, 16k-30l (slow)")
	steps := flag.Int("steps", 2, "timed training steps per shape and side (after one untimed warm-up/compile step)")
	threads := flag.Int("threads", 2, "threads per side (GOMAXPROCS for longctx, torch.set_num_threads for PyTorch)")
	waits := flag.String("waits", "passive,default", "PyTorch OMP_WAIT_POLICY settings to run (passive is the faster)")
	block := flag.Int("block", 256, "longctx attention block")
	memLimit := flag.String("memory-limit", "", "longctx's memory_limit (soft heap limit, e.g. 3.5GiB; empty = the trainer's default, 80% of physical memory)")
	schedule := flag.String("schedule", "", "longctx's schedule: auto (empty), parallel or sequential (the Go backend running independent ops at once or one at a time)")
	lanes := flag.Int("lanes", 0, "longctx's lanes: pieces of each batch run at once (0 = the trainer's default: 2 for an even batch, else 1)")
	recomputeAll := flag.Bool("recompute", false, "longctx recomputes layers on every shape (default: only where the shape says)")
	python := flag.String("python", "/usr/bin/python3", "python with Debian's python3-torch")
	sgemm := flag.String("sgemm", "2048x576x1536,4096x4096x4096", "matmul shapes MxKxN for the sgemm peak")
	repeats := flag.Int("repeats", 5, "sgemm: best of this many")
	out := flag.String("out", "out", "output directory (trainer-bench.json, trainer-bench.md)")
	godebug := flag.String("godebug", "", "GODEBUG for longctx's side, e.g. asyncpreemptoff=1 (under GOEXPERIMENT=simd, math.Exp runs ~100x slower once a goroutine was async-preempted)")
	worker := flag.String("worker", "", "internal: run longctx's side of one shape and print JSON")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of longctx's side of each shape to PATH.SHAPE")
	flag.Parse()

	if *worker != "" {
		runWorker(*worker, *steps, *block, *lanes, *recomputeAll, *memLimit, *schedule, *cpuprofile)
		return
	}
	var sel []shape
	for _, n := range strings.Split(*shapesFlag, ",") {
		s, ok := findShape(strings.TrimSpace(n))
		if !ok {
			fail(fmt.Errorf("unknown shape %q (have demo, 4l, 30l, 16k-2l, 16k-30l)", n))
		}
		sel = append(sel, s)
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%6s] %s\n", time.Since(start).Round(time.Second), fmt.Sprintf(format, a...))
	}
	script, err := filepath.Abs(filepath.Join("benchmarks", "trainer", "torch_step.py"))
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(script); err != nil {
		fail(fmt.Errorf("%v (run from the repository root)", err))
	}
	if err := exec.Command(*python, "-c", "import torch").Run(); err != nil {
		fail(fmt.Errorf("PyTorch is not importable by %s (%v); install it with:\n  %s", *python, err, installHint))
	}

	// sgemm peak: OpenBLAS through PyTorch, and GoMLX's matmul on the same shapes.
	logf("sgemm %s (PyTorch/OpenBLAS and GoMLX, %d threads, best of %d)", *sgemm, *threads, *repeats)
	var ts struct {
		SGEMM []struct {
			Shape  string  `json:"shape"`
			GFLOPS float64 `json:"gflops"`
		} `json:"sgemm"`
		TorchVersion string   `json:"torch_version"`
		BLAS         []string `json:"blas"`
	}
	if _, err := runJSON(exec.Command(*python, script, "--sgemm", *sgemm, "--repeats", strconv.Itoa(*repeats), "--threads", strconv.Itoa(*threads)),
		torchEnv("passive", *threads), &ts); err != nil {
		fail(fmt.Errorf("PyTorch sgemm: %w", err))
	}
	if !slices.ContainsFunc(ts.BLAS, func(l string) bool { return strings.Contains(strings.ToLower(l), "openblas") }) {
		fail(fmt.Errorf("PyTorch runs on %v, not OpenBLAS (the reference BLAS is ~30x slower); install it with:\n  %s", ts.BLAS, installHint))
	}
	runtime.GOMAXPROCS(*threads)
	backend, err := trainer.NewBackend("")
	if err != nil {
		fail(err)
	}
	var mms []matmul
	var peak float64
	for _, s := range ts.SGEMM {
		d := parseDims(s.Shape)
		g := matmulFLOPs(backend, d[0], d[1], d[2], *repeats) / 1e9
		mms = append(mms, matmul{Shape: s.Shape, TorchGFLOPS: s.GFLOPS, GoMLXGFLOPS: g})
		peak = max(peak, s.GFLOPS)
		logf("sgemm %s: PyTorch/OpenBLAS %.1f GFLOP/s, GoMLX %.1f GFLOP/s", s.Shape, s.GFLOPS, g)
	}
	backend.Finalize()

	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	var results []shapeResult
	for _, s := range sel {
		mc, err := shapeConfig(s)
		if err != nil {
			fail(err)
		}
		sr := shapeResult{Shape: s, FLOPsPerToken: mc.FlopsPerToken(s.Seq)}
		logf("shape %s: %s, %.1fM parameters", s.Name, s.Desc, float64(mc.NumParams())/1e6)

		args := []string{"-worker", s.Name, "-steps", strconv.Itoa(*steps), "-block", strconv.Itoa(*block), "-lanes", strconv.Itoa(*lanes), "-schedule", *schedule}
		if *recomputeAll {
			args = append(args, "-recompute")
		}
		if *memLimit != "" {
			args = append(args, "-memory-limit", *memLimit)
		}
		if *cpuprofile != "" {
			// One profile per shape: PATH.SHAPE (go tool pprof reads it with the binary).
			args = append(args, "-cpuprofile", *cpuprofile+"."+s.Name)
		}
		cmd := exec.Command(self, args...)
		var lr struct {
			TokensPerS float64 `json:"tokens_per_s"`
			FirstLoss  float64 `json:"first_loss"`
		}
		logf("  longctx: %d+1 steps ...", *steps)
		env := append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(*threads))
		side := "longctx"
		if *memLimit != "" {
			side += " (memory_limit " + *memLimit + ")"
		}
		if *lanes > 0 {
			side += fmt.Sprintf(" (lanes %d)", *lanes)
		}
		if *schedule != "" {
			side += " (schedule " + *schedule + ")"
		}
		if *godebug != "" {
			env = append(env, "GODEBUG="+*godebug)
			side += " (GODEBUG=" + *godebug + ")"
		}
		u, err := runJSON(cmd, env, &lr)
		r := u.run(side, err)
		r.TokensPerS, r.FirstLoss = lr.TokensPerS, lr.FirstLoss
		sr.Runs = append(sr.Runs, r)
		logf("  longctx: %s", r.line())

		hf, err := json.Marshal(torchModel(mc))
		if err != nil {
			fail(err)
		}
		for _, wait := range strings.Split(*waits, ",") {
			wait = strings.TrimSpace(wait)
			targs := []string{script, "--model", string(hf), "--batch", strconv.Itoa(s.Batch), "--seq", strconv.Itoa(s.Seq),
				"--steps", strconv.Itoa(*steps), "--threads", strconv.Itoa(*threads), "--attn-chunk", strconv.Itoa(s.TorchChunk)}
			if s.Recompute {
				targs = append(targs, "--recompute")
			}
			var tr struct {
				TokensPerS float64   `json:"tokens_per_s"`
				Losses     []float64 `json:"losses"`
			}
			logf("  torch-%s: %d+1 steps ...", wait, *steps)
			u, err := runJSON(exec.Command(*python, targs...), torchEnv(wait, *threads), &tr)
			r := u.run("torch-"+wait, err)
			r.TokensPerS = tr.TokensPerS
			if len(tr.Losses) > 0 {
				r.FirstLoss = tr.Losses[0]
			}
			sr.Runs = append(sr.Runs, r)
			logf("  torch-%s: %s", wait, r.line())
		}
		for i := range sr.Runs {
			r := &sr.Runs[i]
			r.GFLOPS = r.TokensPerS * sr.FLOPsPerToken / 1e9
			r.MFU = r.GFLOPS / peak
			if i > 0 && sr.Runs[0].TokensPerS > 0 {
				r.RatioTorch = r.TokensPerS / sr.Runs[0].TokensPerS
			}
		}
		results = append(results, sr)
	}

	md := report(results, mms, peak, ts.TorchVersion, ts.BLAS, *threads, *steps, time.Since(start))
	fmt.Print("\n" + md)
	b, _ := json.MarshalIndent(map[string]any{
		"commit": gitCommit(), "date": time.Now().UTC().Format(time.RFC3339), "cpu": cpuModel(), "load_at_end": loadavg(),
		"threads": *threads, "steps": *steps, "torch_version": ts.TorchVersion, "blas": ts.BLAS,
		"sgemm_peak_gflops": peak, "matmul": mms, "shapes": results,
	}, "", "  ")
	ctx := context.Background()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	if err := storage.WriteFile(ctx, filepath.Join(*out, "trainer-bench.json"), append(b, '\n')); err != nil {
		fail(err)
	}
	if err := storage.WriteFile(ctx, filepath.Join(*out, "trainer-bench.md"), []byte(md)); err != nil {
		fail(err)
	}
	logf("wrote %s and %s", filepath.Join(*out, "trainer-bench.json"), filepath.Join(*out, "trainer-bench.md"))
	for _, sr := range results {
		for _, r := range sr.Runs {
			if r.Error != "" {
				os.Exit(1) // the report is written; a failed side still fails the run
			}
		}
	}
}

func findShape(name string) (shape, bool) {
	for _, s := range allShapes {
		if s.Name == name {
			return s, true
		}
	}
	return shape{}, false
}

func shapeConfig(s shape) (trainer.ModelConfig, error) {
	mc, err := trainer.LoadModelConfig(s.Model)
	if err != nil {
		return mc, err
	}
	if s.Layers > 0 {
		mc.NumHiddenLayers = s.Layers
	}
	return mc, nil
}

// torchModel is the config torch_step.py reads (HF field names).
func torchModel(c trainer.ModelConfig) map[string]any {
	return map[string]any{"vocab_size": c.VocabSize, "hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize,
		"num_hidden_layers": c.NumHiddenLayers, "num_attention_heads": c.NumAttentionHeads, "num_key_value_heads": c.NumKeyValueHeads,
		"rope_theta": c.RopeTheta, "rms_norm_eps": c.RMSNormEps, "tie_word_embeddings": c.TieWordEmbeddings,
		"initializer_range": c.InitializerRange}
}

func torchEnv(wait string, threads int) []string {
	env := append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(threads))
	if wait != "default" {
		env = append(env, "OMP_WAIT_POLICY="+wait)
	}
	return env
}

// usage is what the kernel reports for a finished child process.
type usage struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
}

func (u usage) run(side string, err error) run {
	r := run{Side: side, PeakRSSMiB: float64(u.maxRSS) / 1024, WallS: u.wall.Seconds()}
	if u.wall > 0 {
		r.CPUPercent = 100 * u.cpu.Seconds() / u.wall.Seconds()
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func (r run) line() string {
	if r.Error != "" {
		return "FAILED: " + r.Error
	}
	return fmt.Sprintf("%.1f tokens/s, peak RSS %.0f MiB, CPU %.0f%%, %.0f s", r.TokensPerS, r.PeakRSSMiB, r.CPUPercent, r.WallS)
}

// runJSON runs cmd with env, passes its stderr through (progress lines,
// indented) and decodes the last line of its stdout into v.
func runJSON(cmd *exec.Cmd, env []string, v any) (usage, error) {
	cmd.Env = env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(os.Stderr, "           %s\n", sc.Text())
			if tail = append(tail, sc.Text()); len(tail) > 5 {
				tail = tail[1:]
			}
		}
	}()
	t0 := time.Now()
	err := cmd.Run()
	pw.Close()
	<-done
	u := usage{wall: time.Since(t0)}
	if ps := cmd.ProcessState; ps != nil {
		u.cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			u.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		return u, fmt.Errorf("%s: %v; last output: %s", filepath.Base(cmd.Path), err, strings.Join(tail, " | "))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		return u, fmt.Errorf("%s: output is not JSON: %v: %q", filepath.Base(cmd.Path), err, lines[len(lines)-1])
	}
	return u, nil
}

// runWorker trains one shape with longctx's real training loop and prints
// {"tokens_per_s", "first_loss"}; the parent measures its peak RSS.
func runWorker(name string, steps, block, lanes int, recompute bool, memLimit, schedule, cpuprofile string) {
	s, ok := findShape(name)
	if !ok {
		fail(fmt.Errorf("unknown shape %q", name))
	}
	mc, err := shapeConfig(s)
	if err != nil {
		fail(err)
	}
	tmp, err := os.MkdirTemp("", "longctx-bench-"+name+"-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	data, err := config.Marshal(mc)
	if err != nil {
		fail(err)
	}
	model := filepath.Join(tmp, "model.yaml")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		fail(err)
	}
	// A deterministic token stream whose EOS tokens (0) make packed documents,
	// so document masking and position resets run as in training.
	n := s.Batch * s.Seq * (steps + 1)
	tokens := make([]uint32, n)
	for i := range tokens {
		tokens[i] = uint32((i*7919 + i/97) % mc.VocabSize)
	}
	src, err := trainer.NewTokenStream(tokens, s.Seq, uint32(mc.EOSTokenID))
	if err != nil {
		fail(err)
	}
	cfg := trainer.DefaultTrainConfig()
	cfg.ModelConfig, cfg.SeqLen, cfg.BatchSize, cfg.Steps, cfg.AttentionBlock = model, s.Seq, s.Batch, steps+1, block
	cfg.Recompute = recompute || s.Recompute
	cfg.MemoryLimit, cfg.Lanes, cfg.Schedule = memLimit, lanes, schedule
	cfg.Out = filepath.Join(tmp, "out")
	cfg.CheckpointEvery, cfg.LogEvery, cfg.ExportDType = 0, 1, "F32"
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	res, err := trainer.Train(context.Background(), cfg, src, os.Stderr)
	if err != nil {
		fail(err)
	}
	b, _ := json.Marshal(map[string]any{"tokens_per_s": res.TokensPerS, "first_loss": res.FirstLoss, "final_loss": res.FinalLoss})
	fmt.Println(string(b))
}

func parseDims(s string) [3]int {
	var d [3]int
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		fail(fmt.Errorf("matmul shape %q, want MxKxN", s))
	}
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			fail(fmt.Errorf("matmul shape %q: %v", s, err))
		}
		d[i] = v
	}
	return d
}

// matmulFLOPs times an [m,k]x[k,n] f32 matmul on GoMLX (best of repeats
// after a warm-up).
func matmulFLOPs(backend compute.Backend, m, k, n, repeats int) float64 {
	exec, err := NewExec(backend, func(a, b *Node) *Node { return MatMul(a, b) })
	if err != nil {
		fail(err)
	}
	defer exec.Finalize()
	a := tensors.FromShape(shapes.Make(dtypes.Float32, m, k))
	b := tensors.FromShape(shapes.Make(dtypes.Float32, k, n))
	best := time.Duration(1 << 62)
	for i := range repeats + 1 {
		t0 := time.Now()
		out, err := exec.Exec(a, b)
		if err != nil {
			fail(err)
		}
		out[0].MustConstFlatData(func(any) {})
		if d := time.Since(t0); i > 0 && d < best {
			best = d
		}
		out[0].FinalizeAll()
	}
	return 2 * float64(m*k*n) / best.Seconds()
}

func report(results []shapeResult, mms []matmul, peak float64, torchVersion string, blas []string, threads, steps int, took time.Duration) string {
	var md strings.Builder
	fmt.Fprintf(&md, "# trainer benchmark: longctx vs PyTorch %s (CPU)\n\n", torchVersion)
	fmt.Fprintf(&md, "commit %s; %s; %d threads per side; %d timed steps after one warm-up; load at end %s; took %s\n\n",
		gitCommit(), cpuModel(), threads, steps, loadavg(), took.Round(time.Second))
	fmt.Fprintf(&md, "PyTorch BLAS: %s\n\n", strings.Join(blas, ", "))
	md.WriteString("| sgemm (f32) | PyTorch/OpenBLAS GFLOP/s | GoMLX GFLOP/s |\n|---|---:|---:|\n")
	for _, m := range mms {
		fmt.Fprintf(&md, "| %s | %.1f | %.1f |\n", m.Shape, m.TorchGFLOPS, m.GoMLXGFLOPS)
	}
	fmt.Fprintf(&md, "\nMFU = training GFLOP/s (6 x matmul parameters + causal attention per token) / the sgemm peak, %.1f GFLOP/s.\n\n", peak)
	md.WriteString("| shape | side | tokens/s | PyTorch / longctx | peak RSS MiB | CPU % | train GFLOP/s | MFU | first loss |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range results {
		for _, r := range sr.Runs {
			if r.Error != "" {
				fmt.Fprintf(&md, "| %s | %s | failed: %s | | %.0f | | | | |\n", sr.Shape.Name, r.Side, strings.ReplaceAll(r.Error, "|", "/"), r.PeakRSSMiB)
				continue
			}
			ratio := ""
			if r.RatioTorch > 0 {
				ratio = fmt.Sprintf("%.2fx", r.RatioTorch)
			}
			fmt.Fprintf(&md, "| %s | %s | %.1f | %s | %.0f | %.0f | %.1f | %.1f%% | %.3f |\n", sr.Shape.Name, r.Side, r.TokensPerS, ratio,
				r.PeakRSSMiB, r.CPUPercent, r.GFLOPS, 100*r.MFU, r.FirstLoss)
		}
	}
	md.WriteString("\nShapes: ")
	for i, sr := range results {
		if i > 0 {
			md.WriteString("; ")
		}
		fmt.Fprintf(&md, "%s = %s", sr.Shape.Name, sr.Shape.Desc)
		if sr.Shape.TorchChunk > 0 {
			fmt.Fprintf(&md, " (PyTorch attention and loss in checkpointed chunks of %d)", sr.Shape.TorchChunk)
		}
	}
	md.WriteString(".\nCPU % is over each process's whole life (start-up and the compiling first step included). " +
		"On a shared machine tokens/s depends on what else runs; both sides run back to back in the same invocation.\n")
	return md.String()
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return fmt.Sprintf("%s x %d", strings.TrimSpace(v), runtime.NumCPU())
		}
	}
	return fmt.Sprintf("%d CPUs", runtime.NumCPU())
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchmark:", err)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	os.Exit(1)
}
