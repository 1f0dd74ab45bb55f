package trainer

import (
	"math"
	"math/rand/v2"
	"slices"
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

// TestAdamWRangeMatchesScalar: the vector update must give the scalar
// loop's bits (same operations, same order), on lengths that are not a
// multiple of 16, with and without decay, for tiny, zero and large values.
func TestAdamWRangeMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	vals := func(n int, scale float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			switch i % 7 {
			case 0:
				out[i] = 0
			case 1:
				out[i] = float32(rng.NormFloat64() * 1e-30)
			default:
				out[i] = float32(rng.NormFloat64() * scale)
			}
		}
		return out
	}
	for _, n := range []int{1, 15, 16, 17, 1000, 4099} {
		for _, keep := range []float32{1, 0.9995} {
			k := adamwStep{cnt: 3, scale: 0.7, b1: 0.9, b2: 0.95, keep: keep, bc1: 0.19, bc2: 0.0975, lr: 3e-3, eps: 1e-8}
			p, m, g := vals(n, 0.05), vals(n, 1e-3), vals(n, 2)
			v := vals(n, 1e-6)
			for i := range v {
				v[i] = float32(math.Abs(float64(v[i])))
			}
			p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
			adamwRange(p, m, v, g, k)
			adamwScalar(p2, m2, v2, g, k)
			for i := range p {
				if math.Float32bits(p[i]) != math.Float32bits(p2[i]) || math.Float32bits(m[i]) != math.Float32bits(m2[i]) ||
					math.Float32bits(v[i]) != math.Float32bits(v2[i]) {
					t.Fatalf("n %d keep %v element %d: vector p/m/v %v/%v/%v, scalar %v/%v/%v", n, keep, i, p[i], m[i], v[i], p2[i], m2[i], v2[i])
				}
			}
		}
	}
}
