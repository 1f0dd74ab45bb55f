package trainer

// Micro-benchmarks of single Go-backend ops on score-sized tensors: what one
// pass over a [rows, cols] float32 tensor costs per element. They explain the
// graph choices in attention.go and model.go (one fused softmax instead of
// separate Max/Exp/Sum/Div passes, matmul layouts without transposes). Run
// with
//
//	make opsbench
//
// Exp and Logistic call math.Exp per element. Under GOEXPERIMENT=simd, with
// Go's asynchronous preemption on, math.Exp on this project's machines runs
// at ~4-5 µs per call instead of ~15 ns (measured: BenchmarkOpExp 3962 vs
// 12.4 ns/elem under the same load): the Makefile links every binary and
// test with GODEBUG asyncpreemptoff=1 (see GO_LDFLAGS there).

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

const benchRows, benchCols = 2048, 4096 // 8M elements, 32 MiB

func benchOp(b *testing.B, fn func(x *Node) *Node) {
	backend := testBackendB(b)
	rng := rand.New(rand.NewPCG(1, 2))
	x := tensors.FromFlatDataAndDimensions(randF32(rng, benchRows*benchCols), benchRows, benchCols)
	exec, err := NewExec(backend, fn)
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	run := func() {
		out, err := exec.Exec(x)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			o.FinalizeAll()
		}
	}
	run() // compile
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(benchRows*benchCols), "ns/elem")
}

func testBackendB(b *testing.B) compute.Backend {
	backend, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	return backend
}

func BenchmarkOpExp(b *testing.B)      { benchOp(b, func(x *Node) *Node { return Exp(x) }) }
func BenchmarkOpLogistic(b *testing.B) { benchOp(b, func(x *Node) *Node { return Sigmoid(x) }) }
func BenchmarkOpAdd(b *testing.B)      { benchOp(b, func(x *Node) *Node { return Add(x, x) }) }
func BenchmarkOpAddRowBroadcast(b *testing.B) {
	benchOp(b, func(x *Node) *Node { return Sub(x, Slice(x, AxisRange(), AxisRange(0, 1))) })
}
func BenchmarkOpReduceMax(b *testing.B) { benchOp(b, func(x *Node) *Node { return ReduceMax(x, -1) }) }
func BenchmarkOpReduceSum(b *testing.B) { benchOp(b, func(x *Node) *Node { return ReduceSum(x, -1) }) }
func BenchmarkOpRowSumByMatmul(b *testing.B) {
	benchOp(b, func(x *Node) *Node {
		return DotGeneral(x, []int{1}, nil, Ones(x.Graph(), shapes.Make(dtypes.Float32, benchCols, 1)), []int{0}, nil)
	})
}
func BenchmarkOpFusedSoftmax(b *testing.B) {
	benchOp(b, func(x *Node) *Node { return BackendFusedSoftmax(x, 1) })
}
func BenchmarkOpSoftmaxDecomposed(b *testing.B) {
	benchOp(b, func(x *Node) *Node {
		m := ReduceAndKeep(x, ReduceMax, -1)
		e := Exp(Sub(x, m))
		return Div(e, ReduceAndKeep(e, ReduceSum, -1))
	})
}
func BenchmarkOpWhereBroadcastMask(b *testing.B) {
	benchOp(b, func(x *Node) *Node {
		g := x.Graph()
		mask := GreaterOrEqual(Iota(g, shapes.Make(dtypes.Int32, benchRows, benchCols), 0), Iota(g, shapes.Make(dtypes.Int32, benchRows, benchCols), 1))
		return Where(mask, x, BroadcastToDims(Scalar(g, dtypes.Float32, maskedScore), benchRows, benchCols))
	})
}
func BenchmarkOpTranspose(b *testing.B) {
	benchOp(b, func(x *Node) *Node { return Transpose(x, 0, 1) })
}
func BenchmarkOpCos(b *testing.B)  { benchOp(b, func(x *Node) *Node { return Cos(x) }) }
func BenchmarkOpSqrt(b *testing.B) { benchOp(b, func(x *Node) *Node { return Sqrt(Abs(x)) }) }

// After an AVX-512 matmul in the same graph (as in a training step), with
// asynchronous preemption off: Exp and Logistic stay the cheapest ways to
// an exponential (pure-Go Expm1 is slower).
func afterMatmul(op func(x *Node) *Node) func(x *Node) *Node {
	return func(x *Node) *Node {
		w := Reshape(Slice(x, AxisRange(0, 64)), benchCols, 64)            // [cols, 64]
		mm := ReduceAllSum(DotGeneral(x, []int{1}, nil, w, []int{0}, nil)) // [rows, 64] summed
		return Add(op(x), MulScalar(mm, 0))
	}
}
func BenchmarkOpExpAfterMatmul(b *testing.B) {
	benchOp(b, afterMatmul(func(x *Node) *Node { return Exp(x) }))
}
func BenchmarkOpExpm1AfterMatmul(b *testing.B) {
	benchOp(b, afterMatmul(func(x *Node) *Node { return Expm1(x) }))
}
func BenchmarkOpLogisticAfterMatmul(b *testing.B) {
	benchOp(b, afterMatmul(func(x *Node) *Node { return Sigmoid(x) }))
}
