package trainer

import (
	"fmt"
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
// (TestParallelBackendDoesNotHang). It is not the default: ops run as soon
// as their inputs are ready, not in creation order, which gives up the
// memory bound of per-layer recompute.
const ParallelBackend = "go:parallelism=-1"

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
		b, err = compute.NewWithConfig(spec)
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
