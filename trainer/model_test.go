package trainer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/shards"
)

func tinyConfig() ModelConfig {
	return ModelConfig{
		VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		RMSNormEps: 1e-5, TieWordEmbeddings: true, InitializerRange: 0.2,
	}
}

func tinyWeights(t *testing.T, c ModelConfig) *Weights {
	t.Helper()
	w, err := InitWeights(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	// Norm weights away from 1 so their gradients are exercised too.
	rng := rand.New(rand.NewPCG(9, 9))
	for i, s := range c.ParamSpecs() {
		if s.Norm {
			for j := range w.Data[i] {
				w.Data[i][j] = 1 + 0.3*float32(rng.NormFloat64())
			}
		}
	}
	return w
}

func randomTokens(rng *rand.Rand, n, vocab int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(rng.IntN(vocab))
	}
	return out
}

// Gradients of the blockwise, recomputing, document-masked model against
// central finite differences, in float64.
func TestGradientsFiniteDifference(t *testing.T) {
	backend := testBackend(t)
	c := tinyConfig()
	c.TieWordEmbeddings = false // exercise lm_head too
	w := tinyWeights(t, c)
	m, err := NewModel(c, 12)
	if err != nil {
		t.Fatal(err)
	}
	m.BlockSize, m.Recompute = 4, true
	rng := rand.New(rand.NewPCG(5, 6))
	seqs := []shards.Sequence{
		{Tokens: randomTokens(rng, 12, c.VocabSize), Starts: []uint32{0, 5, 9}},
		{Tokens: randomTokens(rng, 12, c.VocabSize), Starts: []uint32{0}, Pad: 2},
	}
	hb, err := MakeBatch(seqs, 12, Documents{Mask: true, ResetPositions: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(w.Data)
	specs := c.ParamSpecs()
	params := make([][]float64, n)
	for i := range params {
		params[i] = make([]float64, len(w.Data[i]))
		for j, x := range w.Data[i] {
			params[i][j] = float64(x)
		}
	}
	args := func() []any {
		a := []any{}
		for i, p := range params {
			a = append(a, tensors.FromFlatDataAndDimensions(p, specs[i].Shape...))
		}
		return append(a, hb.IDs, hb.Pos, hb.Doc, hb.Targets, hb.Weights)
	}
	lossOf := func(in []*Node) *Node {
		sum, count := m.Loss(in[:n], Batch{IDs: in[n], Pos: in[n+1], Doc: in[n+2]}, in[n+3], in[n+4])
		return Div(sum, ConvertDType(count, dtypes.Float64))
	}
	gradExec, err := NewExec(backend, func(g *Graph, in []*Node) []*Node {
		loss := lossOf(in)
		return append([]*Node{loss}, Gradient(loss, in[:n]...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	lossExec, err := NewExec(backend, func(g *Graph, in []*Node) *Node { return lossOf(in) })
	if err != nil {
		t.Fatal(err)
	}
	out, err := gradExec.Exec(args()...)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for pi, s := range specs {
		grad := tensors.MustCopyFlatData[float64](out[1+pi])
		for range 2 {
			j := rng.IntN(len(params[pi]))
			orig := params[pi][j]
			const h = 1e-5
			params[pi][j] = orig + h
			lp, err := lossExec.Exec(args()...)
			if err != nil {
				t.Fatal(err)
			}
			params[pi][j] = orig - h
			lm, err := lossExec.Exec(args()...)
			if err != nil {
				t.Fatal(err)
			}
			params[pi][j] = orig
			num := (tensors.MustCopyFlatData[float64](lp[0])[0] - tensors.MustCopyFlatData[float64](lm[0])[0]) / (2 * h)
			if diff := math.Abs(num - grad[j]); diff > 1e-6+1e-4*math.Abs(num) {
				t.Errorf("%s[%d]: analytic %g, finite difference %g", s.Name, j, grad[j], num)
			}
			checked++
		}
	}
	t.Logf("checked %d coordinates over %d tensors", checked, len(specs))
}

// A packed sequence with document masking and position reset gives each
// document the logits it gets alone.
func TestPackedEqualsSeparate(t *testing.T) {
	backend := testBackend(t)
	c := tinyConfig()
	w := tinyWeights(t, c)
	rng := rand.New(rand.NewPCG(11, 12))
	lens := []int{5, 7, 4}
	var packed []uint32
	var starts []uint32
	for _, l := range lens {
		starts = append(starts, uint32(len(packed)))
		packed = append(packed, randomTokens(rng, l, c.VocabSize)...)
	}
	m, err := NewModel(c, len(packed))
	if err != nil {
		t.Fatal(err)
	}
	m.BlockSize = 4
	hb, err := MakeBatch([]shards.Sequence{{Tokens: packed, Starts: starts}}, len(packed), Documents{Mask: true, ResetPositions: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.forwardLogits(backend, w, hb)
	if err != nil {
		t.Fatal(err)
	}
	for di, l := range lens {
		s := int(starts[di])
		alone, err := Forward(backend, w, packed[s:s+l], 4)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range l {
			for v := range c.VocabSize {
				worst = max(worst, math.Abs(float64(got[s+i][v]-alone[i][v])))
			}
		}
		if worst > 1e-5 {
			t.Errorf("document %d: packed logits differ from alone by %g", di, worst)
		}
	}
	// Without the mask the later documents must change (the test can fail).
	hb2, _ := MakeBatch([]shards.Sequence{{Tokens: packed, Starts: starts}}, len(packed), Documents{})
	open, err := m.forwardLogits(backend, w, hb2)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(float64(open[len(packed)-1][0] - got[len(packed)-1][0])); d < 1e-6 {
		t.Errorf("unmasked packing gave the same logits (%g): mask not effective", d)
	}
}

func TestModelBlockEqualsNaive(t *testing.T) {
	backend := testBackend(t)
	c := tinyConfig()
	w := tinyWeights(t, c)
	ids := randomTokens(rand.New(rand.NewPCG(1, 1)), 13, c.VocabSize)
	a, err := Forward(backend, w, ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Forward(backend, w, ids, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for v := range a[i] {
			if d := math.Abs(float64(a[i][v] - b[i][v])); d > 1e-5 {
				t.Fatalf("logit [%d][%d]: naive %g block %g", i, v, a[i][v], b[i][v])
			}
		}
	}
}

// The chunked loss equals the loss over all positions at once, with and
// without recompute.
func TestLossChunking(t *testing.T) {
	backend := testBackend(t)
	c := tinyConfig()
	w := tinyWeights(t, c)
	rng := rand.New(rand.NewPCG(4, 4))
	hb, err := MakeBatch([]shards.Sequence{{Tokens: randomTokens(rng, 12, c.VocabSize), Starts: []uint32{0, 7}, Pad: 1}}, 12, Documents{Mask: true})
	if err != nil {
		t.Fatal(err)
	}
	var losses []float32
	for _, tc := range []struct {
		chunk     int
		recompute bool
	}{{0, false}, {5, false}, {5, true}, {1, true}} {
		m, _ := NewModel(c, 12)
		m.BlockSize, m.LossChunk, m.Recompute = 4, tc.chunk, tc.recompute
		n := len(w.Data)
		args := []any{}
		for _, x := range w.Tensors() {
			args = append(args, x)
		}
		args = append(args, hb.IDs, hb.Pos, hb.Doc, hb.Targets, hb.Weights)
		out, err := ExecOnceN(backend, func(g *Graph, in []*Node) []*Node {
			sum, count := m.Loss(in[:n], Batch{IDs: in[n], Pos: in[n+1], Doc: in[n+2]}, in[n+3], in[n+4])
			return []*Node{sum, count}
		}, args...)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, tensors.MustCopyFlatData[float32](out[0])[0])
		if cnt := tensors.MustCopyFlatData[float32](out[1])[0]; int(cnt) != hb.Tokens || hb.Tokens != 9 {
			t.Fatalf("count %g, batch tokens %d, want 9 (12 - 1 pad - 1 last - 1 boundary)", cnt, hb.Tokens)
		}
	}
	for i, l := range losses[1:] {
		if math.Abs(float64(l-losses[0])) > 1e-4 {
			t.Errorf("case %d: loss %g, unchunked %g", i+1, l, losses[0])
		}
	}
}
