package trainer

import (
	"fmt"
	"math"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Greedy generation with a key/value cache that runs on every GoMLX backend,
// the pure Go one included (GoMLX's own KV cache needs an op only XLA has).
//
// The cache is plain tensors of fixed shape [B, L, Hkv, D] per layer, one
// for keys and one for values. A prefill graph runs the training model's
// forward over the (right-padded) prompts, returns the first new token and
// the filled cache; a step graph takes one token per row, writes its key and
// value at the row's own position with a one-hot Where, and attends over
// the slots up to that position. Rows of different lengths need no padding
// in the cache: each has its own position. Shapes are rounded up to
// multiples of genRound, so a run compiles a handful of graphs, not one per
// length.
//
// Generation without the cache (NoCache) reruns the prefill graph on the
// whole sequence for every new token: the reference the cache must match.

// genRound is the granularity of prompt and cache lengths in compiled graphs.
const genRound = 128

// Generator decodes greedily from a model's weights. It implements the
// evaluation package's LM interface. It is safe for one goroutine at a time.
type Generator struct {
	model   *Model
	backend compute.Backend
	params  []*tensors.Tensor
	// EOS ends a row's generation (left out of the output); -1 for none.
	EOS int
	// NoCache switches to full recomputation per token (for tests and
	// benchmarks).
	NoCache bool

	mu      sync.Mutex
	prefill map[[2]int]*Exec // (prompt length P, cache length L; 0 = no cache)
	step    map[int]*Exec    // cache length L
	losses  *Exec
}

// NewGenerator uploads the weights once and prepares the graphs lazily.
func NewGenerator(backend compute.Backend, w *Weights) (*Generator, error) {
	c := w.Config
	m, err := NewModel(c, max(c.MaxPositionEmbeddings, 1))
	if err != nil {
		return nil, err
	}
	specs := c.ParamSpecs()
	if len(specs) != len(w.Data) {
		return nil, fmt.Errorf("generator: %d weight tensors, config wants %d", len(w.Data), len(specs))
	}
	g := &Generator{model: m, backend: backend, EOS: c.EOSTokenID,
		prefill: map[[2]int]*Exec{}, step: map[int]*Exec{}}
	for i, s := range specs {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		if len(w.Data[i]) != n {
			return nil, fmt.Errorf("generator: %s has %d values, want %d", s.Name, len(w.Data[i]), n)
		}
		g.params = append(g.params, tensors.FromFlatDataAndDimensions(w.Data[i], s.Shape...))
	}
	return g, nil
}

// MaxPositions is the model's context length (max_position_embeddings).
func (g *Generator) MaxPositions() int { return g.model.Config.MaxPositionEmbeddings }

func roundUp(n, k int) int { return (n + k - 1) / k * k }

// capLen rounds a length up for compilation, never past the model's limit
// (but never below n).
func (g *Generator) capLen(n int) int {
	return max(n, min(roundUp(n, genRound), g.MaxPositions()))
}

// Generate continues each prompt greedily by at most maxNew tokens; see the
// eval.LM contract.
func (g *Generator) Generate(prompts [][]uint32, maxNew int, done func(int, []uint32) bool) ([][]uint32, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	B := len(prompts)
	if B == 0 || maxNew <= 0 {
		return make([][]uint32, B), nil
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		}
		longest = max(longest, len(p))
	}
	// The last new token is never fed back, so the cache needs
	// longest+maxNew-1 slots.
	need := longest + maxNew - 1
	if need > g.MaxPositions() {
		return nil, fmt.Errorf("generate: prompt of %d tokens + %d new exceeds the model's %d positions", longest, maxNew, g.MaxPositions())
	}
	seqs := make([][]uint32, B)
	for i, p := range prompts {
		seqs[i] = append([]uint32(nil), p...)
	}
	out := make([][]uint32, B)
	finished := make([]bool, B)
	left := B
	accept := func(next []int32) {
		for i := range B {
			if finished[i] {
				continue
			}
			tok := uint32(next[i])
			if g.EOS >= 0 && int(next[i]) == g.EOS {
				finished[i] = true
				left--
				continue
			}
			out[i] = append(out[i], tok)
			seqs[i] = append(seqs[i], tok)
			if len(out[i]) >= maxNew || (done != nil && done(i, out[i])) {
				finished[i] = true
				left--
			}
		}
	}

	if g.NoCache {
		L := g.capLen(need)
		for left > 0 {
			next, _, err := g.runPrefill(seqs, L, 0)
			if err != nil {
				return nil, err
			}
			accept(next)
		}
		return out, nil
	}

	L := g.capLen(need)
	P := g.capLen(longest)
	next, cache, err := g.runPrefill(seqs, P, L)
	if err != nil {
		return nil, err
	}
	pos := make([]int32, B)
	for i := range B {
		pos[i] = int32(len(seqs[i]) - 1)
	}
	accept(next)
	for left > 0 {
		// Each row feeds its last token at its own position; finished rows
		// keep feeding theirs (the result is ignored) so shapes stay fixed.
		ids := make([]int32, B)
		for i := range B {
			ids[i] = int32(seqs[i][len(seqs[i])-1])
			if !finished[i] {
				pos[i] = int32(len(seqs[i]) - 1)
			}
		}
		next, cache, err = g.runStep(ids, pos, cache, L)
		if err != nil {
			return nil, err
		}
		accept(next)
	}
	for _, t := range cache {
		t.FinalizeAll()
	}
	return out, nil
}

// runPrefill runs the model over seqs right-padded to P tokens and returns
// the argmax next token of each row and, when L > 0, the caches padded to L
// slots.
func (g *Generator) runPrefill(seqs [][]uint32, P, L int) ([]int32, []*tensors.Tensor, error) {
	B := len(seqs)
	ids := make([]int32, B*P)
	lens := make([]int32, B)
	for i, s := range seqs {
		for j, t := range s {
			ids[i*P+j] = int32(t)
		}
		lens[i] = int32(len(s))
	}
	e, err := g.prefillExec(P, L)
	if err != nil {
		return nil, nil, err
	}
	args := make([]any, 0, len(g.params)+2)
	for _, p := range g.params {
		args = append(args, p)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(ids, B, P), tensors.FromFlatDataAndDimensions(lens, B))
	res, err := e.Call(args...)
	if err != nil {
		return nil, nil, fmt.Errorf("generate: prefill: %w", err)
	}
	next := tensors.MustCopyFlatData[int32](res[0])
	res[0].FinalizeAll()
	return next, res[1:], nil
}

func (g *Generator) runStep(ids, pos []int32, cache []*tensors.Tensor, L int) ([]int32, []*tensors.Tensor, error) {
	B := len(ids)
	e, err := g.stepExec(L)
	if err != nil {
		return nil, nil, err
	}
	args := make([]any, 0, len(g.params)+2+len(cache))
	for _, p := range g.params {
		args = append(args, p)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(ids, B), tensors.FromFlatDataAndDimensions(pos, B))
	for _, t := range cache {
		// The old cache is not needed after this step: let the backend
		// reuse its memory for the new one.
		d, err := DonateTensorBuffer(t, g.backend, 0)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, d)
	}
	res, err := e.Call(args...)
	if err != nil {
		return nil, nil, fmt.Errorf("generate: step: %w", err)
	}
	next := tensors.MustCopyFlatData[int32](res[0])
	res[0].FinalizeAll()
	return next, res[1:], nil
}

func (g *Generator) prefillExec(P, L int) (*Exec, error) {
	if e := g.prefill[[2]int{P, L}]; e != nil {
		return e, nil
	}
	n := len(g.params)
	m := g.model
	e, err := NewExec(g.backend, func(gr *Graph, in []*Node) []*Node {
		params, ids, lens := in[:n], in[n], in[n+1]
		B := ids.Shape().Dim(0)
		pos := Iota(gr, shapes.Make(dtypes.Int32, B, P), 1)
		x := Embed(params[0], ids)
		cos, sin := m.RopeCosSin(pos)
		var cache []*Node
		eps := m.Config.RMSNormEps
		for i := range m.Config.NumHiddenLayers {
			l := LayerParams(params, i)
			q, k, v := m.QKV(l, RMSNorm(x, l.InputNorm, eps), cos, sin)
			x = Add(x, m.AttnOut(l, m.AttentionCore(q, k, v, nil)))
			x = Add(x, m.MLP(l, RMSNorm(x, l.PostNorm, eps)))
			if L > 0 {
				cache = append(cache, padSlots(k, L), padSlots(v, L))
			}
		}
		h := RMSNorm(x, params[1+m.Config.NumHiddenLayers*perLayerParams], eps) // [B, P, hidden]
		// Hidden state at each row's last real token: a one-hot contraction
		// over positions.
		sel := OneHot(AddScalar(lens, -1), P, h.DType())                   // [B, P]
		last := DotGeneral(sel, []int{1}, []int{0}, h, []int{1}, []int{0}) // [B, hidden]
		logits := m.linear(last, m.LMHead(params))                         // [B, vocab]
		return append([]*Node{ArgMax(logits, -1)}, cache...)
	})
	if err != nil {
		return nil, err
	}
	g.prefill[[2]int{P, L}] = e
	return e, nil
}

// padSlots pads k or v [B, P, Hkv, D] with zeros to [B, L, Hkv, D].
func padSlots(x *Node, L int) *Node {
	dims := x.Shape().Clone().Dimensions
	if dims[1] == L {
		return x
	}
	dims[1] = L - dims[1]
	return Concatenate([]*Node{x, Zeros(x.Graph(), shapes.Make(x.DType(), dims...))}, 1)
}

func (g *Generator) stepExec(L int) (*Exec, error) {
	if e := g.step[L]; e != nil {
		return e, nil
	}
	n := len(g.params)
	m := g.model
	c := m.Config
	e, err := NewExec(g.backend, func(gr *Graph, in []*Node) []*Node {
		params, ids, pos, cache := in[:n], in[n], in[n+1], in[n+2:]
		B := ids.Shape().Dim(0)
		x := Embed(params[0], Reshape(ids, B, 1))    // [B, 1, hidden]
		cos, sin := m.RopeCosSin(Reshape(pos, B, 1)) // [B, 1, D]
		slots := Iota(gr, shapes.Make(dtypes.Int32, B, L), 1)
		here := Equal(slots, BroadcastToDims(Reshape(pos, B, 1), B, L))          // [B, L]
		visible := LessOrEqual(slots, BroadcastToDims(Reshape(pos, B, 1), B, L)) // [B, L]
		eps := c.RMSNormEps
		var newCache []*Node
		for i := range c.NumHiddenLayers {
			l := LayerParams(params, i)
			q, k, v := m.QKV(l, RMSNorm(x, l.InputNorm, eps), cos, sin)
			kc := writeSlot(cache[2*i], k, here)
			vc := writeSlot(cache[2*i+1], v, here)
			newCache = append(newCache, kc, vc)
			x = Add(x, m.AttnOut(l, cachedAttention(q, kc, vc, visible)))
			x = Add(x, m.MLP(l, RMSNorm(x, l.PostNorm, eps)))
		}
		h := RMSNorm(x, params[1+c.NumHiddenLayers*perLayerParams], eps) // [B, 1, hidden]
		logits := m.linear(Reshape(h, B, -1), m.LMHead(params))
		return append([]*Node{ArgMax(logits, -1)}, newCache...)
	})
	if err != nil {
		return nil, err
	}
	g.step[L] = e
	return e, nil
}

// writeSlot puts x [B, 1, Hkv, D] into cache [B, L, Hkv, D] where here
// [B, L] is true (one slot per row).
func writeSlot(cache, x, here *Node) *Node {
	dims := cache.Shape().Dimensions
	B, L := dims[0], dims[1]
	mask := BroadcastToDims(Reshape(here, B, L, 1, 1), dims...)
	return Where(mask, BroadcastToDims(x, dims...), cache)
}

// cachedAttention is one query per row, q [B, 1, H, D], over the cache
// k, v [B, L, Hkv, D], attending to the slots where visible [B, L]. It is
// NaiveAttention's arithmetic with the causal mask given by positions.
func cachedAttention(q, k, v, visible *Node) *Node {
	B, H, D := q.Shape().Dim(0), q.Shape().Dim(2), q.Shape().Dim(3)
	L, Hkv := k.Shape().Dim(1), k.Shape().Dim(2)
	G := H / Hkv
	q4 := Reshape(q, B, Hkv, G, D)
	scores := DotGeneral(q4, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 2}) // [B, Hkv, G, L]
	scores = MulScalar(scores, 1/math.Sqrt(float64(D)))
	mask := BroadcastToDims(Reshape(visible, B, 1, 1, L), B, Hkv, G, L)
	scores = Where(mask, scores, BroadcastToDims(Scalar(q.Graph(), scores.DType(), maskedScore), B, Hkv, G, L))
	mx := ReduceAndKeep(scores, ReduceMax, 3)
	p := Exp(Sub(scores, mx))
	p = Div(p, ReduceAndKeep(p, ReduceSum, 3))
	out := DotGeneral(p, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, Hkv, G, D]
	return Reshape(out, B, 1, H, D)
}

// TokenLosses returns the cross-entropy of predicting ids[t+1] from
// ids[:t+1] under the model, for t = 0..len(ids)-2 (eval.LM contract).
func (g *Generator) TokenLosses(ids []uint32) ([]float32, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	S := len(ids)
	if S < 2 {
		return nil, fmt.Errorf("token losses: need at least 2 tokens, got %d", S)
	}
	if S > g.MaxPositions() {
		return nil, fmt.Errorf("token losses: %d tokens exceed the model's %d positions", S, g.MaxPositions())
	}
	P := g.capLen(S)
	in := make([]int32, P)
	tg := make([]int32, P)
	for i, t := range ids {
		in[i] = int32(t)
		if i > 0 {
			tg[i-1] = int32(t)
		}
	}
	if g.losses == nil {
		n := len(g.params)
		m := g.model
		e, err := NewExec(g.backend, func(gr *Graph, x []*Node) *Node {
			params, ids, targets := x[:n], x[n], x[n+1]
			Sx := ids.Shape().Dim(1)
			pos := Iota(gr, shapes.Make(dtypes.Int32, 1, Sx), 1)
			h := m.Hidden(params, Batch{IDs: ids, Pos: pos})
			head := m.LMHead(params)
			chunk := m.LossChunk
			if chunk <= 0 {
				chunk = defaultLossChunk
			}
			var parts []*Node
			for start := 0; start < Sx; start += chunk {
				end := min(start+chunk, Sx)
				logits := m.linear(Slice(h, AxisRange(), AxisRange(start, end)), head) // [1, c, V]
				lsm := LogSoftmax(logits, -1)
				tc := Slice(targets, AxisRange(), AxisRange(start, end))
				parts = append(parts, Neg(pickTargets(lsm, tc))) // [1, c]
			}
			if len(parts) == 1 {
				return parts[0]
			}
			return Concatenate(parts, 1)
		})
		if err != nil {
			return nil, err
		}
		g.losses = e
	}
	args := make([]any, 0, len(g.params)+2)
	for _, p := range g.params {
		args = append(args, p)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(in, 1, P), tensors.FromFlatDataAndDimensions(tg, 1, P))
	res, err := g.losses.Call(args...)
	if err != nil {
		return nil, fmt.Errorf("token losses: %w", err)
	}
	all := tensors.MustCopyFlatData[float32](res[0])
	res[0].FinalizeAll()
	return all[:S-1], nil
}
