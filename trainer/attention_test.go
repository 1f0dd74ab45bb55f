package trainer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func testBackend(t *testing.T) compute.Backend {
	t.Helper()
	b, err := NewBackend(DefaultBackend)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randF32(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

func maxAbsDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	x, y := tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)
	if len(x) != len(y) {
		t.Fatalf("sizes differ: %d vs %d", len(x), len(y))
	}
	var m float64
	for i := range x {
		m = max(m, math.Abs(float64(x[i]-y[i])))
	}
	return m
}

// docIDs builds [B, S] document indices from per-row document lengths.
func docIDs(S int, rows ...[]int) []int32 {
	var out []int32
	for _, lens := range rows {
		d := int32(0)
		n := 0
		for _, l := range lens {
			for range l {
				out = append(out, d)
				n++
			}
			d++
		}
		for ; n < S; n++ {
			out = append(out, d)
		}
	}
	return out
}

func TestBlockAttentionEqualsNaive(t *testing.T) {
	backend := testBackend(t)
	const B, S, H, Hkv, D = 2, 12, 4, 2, 8
	rng := rand.New(rand.NewPCG(1, 2))
	q := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	k := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*Hkv*D), B, S, Hkv, D)
	v := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*Hkv*D), B, S, Hkv, D)
	r := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	docs := tensors.FromFlatDataAndDimensions(docIDs(S, []int{5, 4, 3}, []int{1, 10}), B, S)
	defer func(keep int) { keepProbsMaxLen = keep }(keepProbsMaxLen)
	for _, tc := range []struct {
		name   string
		block  int
		docMsk bool
		keep   bool // backward reuses the forward's probabilities
	}{
		{"block4", 4, false, false}, {"block4-docs", 4, true, false}, {"block5-padded", 5, false, false},
		{"block5-padded-docs", 5, true, false}, {"block1-docs", 1, true, false}, {"block12", 12, true, false},
		{"block4-docs-keep", 4, true, true}, {"block5-padded-docs-keep", 5, true, true}, {"block1-docs-keep", 1, true, true},
	} {
		keepProbsMaxLen = 0
		if tc.keep {
			keepProbsMaxLen = S + 8 // padded length included
		}
		t.Run(tc.name, func(t *testing.T) {
			fn := func(q, k, v, doc, r *Node) []*Node {
				if !tc.docMsk {
					doc = nil
				}
				var outs []*Node
				for _, o := range []*Node{NaiveAttention(q, k, v, doc), BlockAttention(q, k, v, doc, tc.block)} {
					loss := ReduceAllSum(Mul(o, r))
					outs = append(outs, o)
					outs = append(outs, Gradient(loss, q, k, v)...)
				}
				return outs
			}
			exec, err := NewExec(backend, fn)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Exec(q, k, v, docs, r)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"out", "dq", "dk", "dv"} {
				if d := maxAbsDiff(t, out[i], out[i+4]); d > 1e-5 {
					t.Errorf("%s: blockwise differs from naive by %g", name, d)
				}
			}
		})
	}
}

// Without document masking, a packed row must differ from the masked one:
// guards against a mask that silently does nothing.
func TestDocMaskChangesOutput(t *testing.T) {
	backend := testBackend(t)
	const B, S, H, D = 1, 8, 2, 4
	rng := rand.New(rand.NewPCG(3, 4))
	q := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	k := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	v := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	docs := tensors.FromFlatDataAndDimensions(docIDs(S, []int{3, 5}), B, S)
	out, err := ExecOnceN(backend, func(q, k, v, doc *Node) []*Node {
		return []*Node{BlockAttention(q, k, v, doc, 4), BlockAttention(q, k, v, nil, 4)}
	}, q, k, v, docs)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, out[0], out[1]); d < 1e-3 {
		t.Errorf("document mask had no effect (max diff %g)", d)
	}
}

// Attention of the last tokens against a longer key sequence (a KV cache)
// equals the last rows of full attention.
func TestNaiveAttentionWithCache(t *testing.T) {
	backend := testBackend(t)
	const B, S, H, Hkv, D, New = 1, 9, 4, 2, 8, 3
	rng := rand.New(rand.NewPCG(7, 8))
	q := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*H*D), B, S, H, D)
	k := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*Hkv*D), B, S, Hkv, D)
	v := tensors.FromFlatDataAndDimensions(randF32(rng, B*S*Hkv*D), B, S, Hkv, D)
	out, err := ExecOnceN(backend, func(q, k, v *Node) []*Node {
		full := NaiveAttention(q, k, v, nil)
		last := NaiveAttention(Slice(q, AxisRange(), AxisRange(S-New, S)), k, v, nil)
		return []*Node{Slice(full, AxisRange(), AxisRange(S-New, S)), last}
	}, q, k, v)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, out[0], out[1]); d > 1e-6 {
		t.Errorf("cached attention differs by %g", d)
	}
}
