package trainer

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// The host AdamW (Go backend) and the graph AdamW (accelerators) are the
// same update: weights, moments and gradient norm agree to float32
// rounding, with clipping active, mixed decay and tensors larger than one
// chunk. The host sums the gradient norm in float64 and the graph in
// float32, so the clip factor differs in the ~6th digit; a wrong bias
// correction, decay or clip would be off by percents. (Both are checked
// against PyTorch by the golden test.)
func TestHostAdamWMatchesGraph(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(7, 8))
	sizes := []int{3, hostChunk + 17, 1000}
	decay := []bool{false, true, true}
	o := DefaultOptimizer()
	o.ClipNorm = 0.5
	const count, lr, step = 37, 1e-3, 3
	mk := func(scale float64) []*tensors.Tensor {
		out := make([]*tensors.Tensor, len(sizes))
		for i, n := range sizes {
			d := make([]float32, n)
			for j := range d {
				d[j] = float32(rng.NormFloat64() * scale)
			}
			if scale < 0 { // second moments are non-negative
				for j := range d {
					d[j] = d[j] * d[j]
				}
			}
			out[i] = tensors.FromFlatDataAndDimensions(d, n)
		}
		return out
	}
	p, m, v, g := mk(1), mk(0.01), mk(-0.01), mk(3)
	n := len(sizes)
	args := []any{}
	for _, set := range [][]*tensors.Tensor{p, m, v, g} {
		for _, x := range set {
			args = append(args, tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](x), x.Shape().Dimensions...))
		}
	}
	tt := float64(step)
	args = append(args, tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(1-math.Pow(o.Beta1, tt))),
		tensors.FromScalar(float32(1-math.Pow(o.Beta2, tt))), tensors.FromScalar(float32(count)))
	exec, err := NewExec(backend, func(gr *Graph, in []*Node) []*Node {
		s := in[4*n:]
		np, nm, nv, gn := adamWUpdate(o, decay, in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n], s[0], s[1], s[2], s[3])
		return append(append(append(np, nm...), nv...), gn)
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	gnorm, err := hostAdamW(o, decay, p, m, v, g, lr, step, count)
	if err != nil {
		t.Fatal(err)
	}
	if wg := float64(tensors.MustCopyFlatData[float32](want[3*n])[0]); math.Abs(gnorm-wg) > 1e-5*wg {
		t.Errorf("gradient norm: host %g, graph %g", gnorm, wg)
	}
	if gnorm <= o.ClipNorm {
		t.Fatalf("gradient norm %g does not exercise clipping at %g", gnorm, o.ClipNorm)
	}
	for k, set := range [][]*tensors.Tensor{p, m, v} {
		for i, x := range set {
			got, w := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](want[k*n+i])
			for j := range got {
				if d := math.Abs(float64(got[j] - w[j])); d > 1e-4*math.Abs(float64(w[j]))+1e-7 {
					gm := tensors.MustCopyFlatData[float32](want[1*n+i])
					gv := tensors.MustCopyFlatData[float32](want[2*n+i])
					hm := tensors.MustCopyFlatData[float32](m[i])
					hv := tensors.MustCopyFlatData[float32](v[i])
					t.Fatalf("output %d tensor %d [%d]: host %g, graph %g (m %g %g v %g %g)", k, i, j, got[j], w[j], hm[j], gm[j], hv[j], gv[j])
				}
			}
		}
	}
}
