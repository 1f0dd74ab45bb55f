package trainer

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/shards"
)

func genConfig() ModelConfig {
	c := tinyConfig()
	c.MaxPositionEmbeddings = 300 // above genRound, so rounding is exercised
	c.EOSTokenID = -1
	return c
}

// KV-cache decoding gives exactly the tokens of full recomputation, for a
// batch of prompts of different lengths.
func TestGenerateCacheEqualsRecompute(t *testing.T) {
	backend := testBackend(t)
	c := genConfig()
	w := tinyWeights(t, c)
	rng := rand.New(rand.NewPCG(21, 22))
	prompts := [][]uint32{
		randomTokens(rng, 5, c.VocabSize),
		randomTokens(rng, 17, c.VocabSize),
		randomTokens(rng, 1, c.VocabSize),
		randomTokens(rng, 140, c.VocabSize), // prompt past one rounding unit
	}
	cached, err := NewGenerator(backend, w)
	if err != nil {
		t.Fatal(err)
	}
	full, err := NewGenerator(backend, w)
	if err != nil {
		t.Fatal(err)
	}
	full.NoCache = true
	const maxNew = 24
	got, err := cached.Generate(prompts, maxNew, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := full.Generate(prompts, maxNew, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		if len(got[i]) != maxNew {
			t.Errorf("prompt %d: %d tokens, want %d", i, len(got[i]), maxNew)
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("prompt %d:\ncache     %v\nrecompute %v", i, got[i], want[i])
		}
	}
	// One prompt alone gives what it gave in the batch.
	one, err := cached.Generate(prompts[1:2], maxNew, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one[0], got[1]) {
		t.Errorf("alone %v, in batch %v", one[0], got[1])
	}
	// The greedy tokens are the argmax of the model's own logits.
	seq := append(append([]uint32(nil), prompts[0]...), got[0][:3]...)
	logits := modelLogits(t, c, w, seq)
	for j := range 3 {
		row := logits[(len(prompts[0])-1+j)*c.VocabSize:][:c.VocabSize]
		best := 0
		for v := range row {
			if row[v] > row[best] {
				best = v
			}
		}
		if uint32(best) != got[0][j] {
			t.Errorf("token %d: generated %d, argmax of Logits %d", j, got[0][j], best)
		}
	}
}

// modelLogits runs Model.Logits (the training forward) on one sequence.
func modelLogits(t *testing.T, c ModelConfig, w *Weights, seq []uint32) []float32 {
	t.Helper()
	m, err := NewModel(c, c.MaxPositionEmbeddings)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := MakeBatch([]shards.Sequence{{Tokens: seq, Starts: []uint32{0}}}, len(seq), Documents{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(w.Data)
	e, err := NewExec(testBackend(t), func(g *Graph, in []*Node) *Node {
		return m.Logits(in[:n], Batch{IDs: in[n], Pos: in[n+1]})
	})
	if err != nil {
		t.Fatal(err)
	}
	args := []any{}
	for i, s := range c.ParamSpecs() {
		args = append(args, tensors.FromFlatDataAndDimensions(w.Data[i], s.Shape...))
	}
	out, err := e.Call(append(args, hb.IDs, hb.Pos)...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func TestGenerateStopsAndLimits(t *testing.T) {
	backend := testBackend(t)
	c := genConfig()
	w := tinyWeights(t, c)
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := [][]uint32{randomTokens(rng, 6, c.VocabSize), randomTokens(rng, 9, c.VocabSize)}
	g, err := NewGenerator(backend, w)
	if err != nil {
		t.Fatal(err)
	}
	free, err := g.Generate(prompts, 12, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stop row 0 after 4 tokens via the callback; row 1 runs on.
	stopped, err := g.Generate(prompts, 12, func(i int, out []uint32) bool { return i == 0 && len(out) == 4 })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stopped[0], free[0][:4]) || !reflect.DeepEqual(stopped[1], free[1]) {
		t.Errorf("stop callback: %v, free run %v", stopped, free)
	}
	// The EOS token ends a row and is left out.
	g.EOS = int(free[1][2])
	eos, err := g.Generate(prompts[1:], 12, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for first < len(free[1]) && int(free[1][first]) != g.EOS {
		first++
	}
	if !reflect.DeepEqual(eos[0], free[1][:first]) {
		t.Errorf("EOS %d: got %v, free run %v", g.EOS, eos[0], free[1])
	}
	if _, err := g.Generate([][]uint32{randomTokens(rng, 290, c.VocabSize)}, 20, nil); err == nil {
		t.Error("prompt + new tokens past max positions: want error")
	}
}

// TokenLosses equals the model's own Loss, token by token summed.
func TestTokenLossesMatchLoss(t *testing.T) {
	backend := testBackend(t)
	c := genConfig()
	w := tinyWeights(t, c)
	rng := rand.New(rand.NewPCG(8, 9))
	seq := randomTokens(rng, 40, c.VocabSize)
	g, err := NewGenerator(backend, w)
	if err != nil {
		t.Fatal(err)
	}
	losses, err := g.TokenLosses(seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(losses) != len(seq)-1 {
		t.Fatalf("%d losses for %d tokens", len(losses), len(seq))
	}
	logits := modelLogits(t, c, w, seq)
	for p := range len(seq) - 1 {
		row := logits[p*c.VocabSize:][:c.VocabSize]
		mx := float64(row[0])
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		want := mx + math.Log(s) - float64(row[seq[p+1]])
		if math.Abs(want-float64(losses[p])) > 1e-4 {
			t.Fatalf("position %d: loss %g, from logits %g", p, losses[p], want)
		}
	}
}
