package trainer

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // pure Go backend, always available
)

// DefaultBackend is the backend used when $GOMLX_BACKEND is unset: the pure
// Go backend with ops run one at a time, in creation order.
//   - ops_sequential: GoMLX v0.28.8's Go backend can deadlock when several
//     large matmuls run in parallel under its default scheduling; each matmul
//     still uses every core (see TestGoBackendParallelOpsWorkaround).
//   - creation_order: the default order runs the longest paths first, which
//     pulls the recomputation of every layer to the front and defeats
//     per-layer recompute; creation order recomputes a layer when its
//     backward pass needs it (135M shape at 1k tokens: peak RSS 7.3 -> 4.5 GiB).
const DefaultBackend = "go:ops_sequential,creation_order"

// ParallelBackend runs independent ops at the same time. The default Go
// backend configuration deadlocks when several matmuls run at once: each
// running op holds a slot of a bounded worker pool while its matmul waits
// for free slots. With parallelism=-1 ops take no slots (each matmul still
// caps itself at GOMAXPROCS workers), so nothing waits on a full pool
// (TestParallelBackendDoesNotHang). Ops run as soon as their inputs are
// ready, so a single-threaded op (the loss's fused softmax, a transpose)
// overlaps with a matmul or another one: on the idle 2-core machine the
// 135M shape at 2k ran 425 tokens/s against 308 sequential (4 layers; 83
// against 59 with 30), at 4.2 GB peak RSS against 2.9 (13.0 against 9.5).
// The price is memory: every ready op starts early. Attention blocks and
// loss chunks wait for the one two before them (gate in attention.go), so
// at 16k (2 layers) it ran 305 tokens/s against 203 sequential, but at
// 9.3 GB peak RSS against 5.3 (3.6 with memory_limit 3.5GiB, where
// parallel thrashes the collector: 225 tokens/s at 5.8 GB); without the
// gates it peaked at 21.6 GB. It also pulls per-layer recomputation to the
// front. Training picks it by default only where it pays (trainBackendSpec).
const ParallelBackend = "go:parallelism=-1,ops_parallel"

// parallelMaxTokens is the largest micro-batch (tokens per lane) that
// trains with ParallelBackend by default: at 2k it costs +1.3 GB (4 layers),
// at 16k +4 GB, which would break a 16k run sized for the sequential peak;
// schedule: parallel trades that memory for 1.5x the speed.
const parallelMaxTokens = 4096

// trainBackendSpec returns the backend a run trains on and, when it chose
// the Go backend's schedule itself, why: cfg.Backend, else $GOMLX_BACKEND,
// else the Go backend with ops in parallel or in sequence (cfg.Schedule;
// auto = parallel for one lane without recompute up to parallelMaxTokens).
// Two lanes already keep both cores busy, and each running in parallel
// mode made the 135M 2-sequence step 12% slower. Results are bit-identical
// either way: every op computes the same values in any order.
func trainBackendSpec(cfg TrainConfig) (spec, desc string) {
	if cfg.Backend != "" {
		return cfg.Backend, ""
	}
	if env := os.Getenv(compute.ConfigEnvVar); env != "" {
		return env, ""
	}
	l := lanes(cfg, true)
	tokens := cfg.BatchSize / l * cfg.SeqLen
	switch cfg.Schedule {
	case "parallel":
		return ParallelBackend, "parallel (set)"
	case "sequential":
		return DefaultBackend, "sequential (set)"
	}
	switch {
	case l > 1:
		return DefaultBackend, fmt.Sprintf("sequential (auto: %d lanes fill the cores)", l)
	case cfg.Recompute:
		return DefaultBackend, "sequential (auto: recompute needs creation order)"
	case tokens > parallelMaxTokens:
		return DefaultBackend, fmt.Sprintf("sequential (auto: %d tokens per micro-batch > %d, parallel would need ~1.75x the memory; schedule: parallel to trade it for speed)", tokens, parallelMaxTokens)
	}
	return ParallelBackend, "parallel (auto: independent ops run at once)"
}

// NewBackend returns the compute backend named by spec, or by
// $GOMLX_BACKEND when spec is empty, or DefaultBackend. The XLA backend is
// only available in binaries that import it (cmd/longctx-train), and takes
// the PJRT plugin path: "xla:/abs/path/pjrt_c_api_gpu_plugin.so".
func NewBackend(spec string) (compute.Backend, error) {
	if spec == "" {
		spec = os.Getenv(compute.ConfigEnvVar)
	}
	if spec == "" {
		spec = DefaultBackend
	}
	var b compute.Backend
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		b, err = newQuiet(spec)
	}()
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", spec, err)
	}
	return b, nil
}

// AsyncPreemptOff reports whether this binary runs with Go's asynchronous
// preemption off (GODEBUG asyncpreemptoff=1, linked in by the Makefile or
// set in the environment). With it on, under GOEXPERIMENT=simd, math.Exp
// (the Go backend's Exp and Sigmoid) runs ~300x slower on this project's
// machines once a goroutine has been preempted (trainer/ops_bench_test.go).
func AsyncPreemptOff() bool {
	if strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
		return true
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-ldflags" && strings.Contains(s.Value, "godebugDefault=asyncpreemptoff=1") {
				return true
			}
		}
	}
	return false
}

// newQuiet creates a backend with os.Stdout captured while it does: the Go
// backend of compute v0.1.6 prints "Go backend: parallelism set to N" to
// stdout, which would corrupt JSON a command writes there. Anything else
// printed is passed on.
func newQuiet(spec string) (compute.Backend, error) {
	if !strings.Contains(spec, "parallelism=") {
		return compute.NewWithConfig(spec)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdout := os.Stdout
	os.Stdout = pw
	b, err := compute.NewWithConfig(spec)
	os.Stdout = stdout
	pw.Close()
	out, _ := io.ReadAll(pr)
	pr.Close()
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "Go backend: parallelism set to") {
			fmt.Fprint(stdout, line)
		}
	}
	return b, err
}
