package trainer

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// Attention core: causal grouped-query attention over q, k, v that already
// carry RoPE. Two implementations compute the same function:
//
//   - NaiveAttention materialises the full S x S score matrix per head. It is
//     the slow, obviously-correct reference used by the tests.
//   - BlockAttention computes the same output in blocks with an online
//     softmax (FlashAttention-2 style) and has a hand-written backward pass
//     that recomputes each block's probabilities, so neither the forward nor
//     the backward pass holds more than S x block scores per head.
//
// Shapes: q [B, S, H, D]; k, v [B, S, Hkv, D]; query head h uses key/value
// head h / (H/Hkv), as HF's repeat_kv does. doc [B, S] int32 is the document
// index of each token (tokens attend only within their document); pass nil
// for plain causal attention. The output is [B, S, H, D].

// maskedScore is the score given to masked (query, key) pairs. It is finite
// so that no inf-inf NaN can appear; exp(maskedScore - m) underflows to 0
// for any realistic running max m.
const maskedScore = -1e30

// NaiveAttention is the reference attention: full scores, masked softmax.
// k and v may be longer than q (a KV cache followed by the new tokens): the
// Sq queries are then the last Sq positions of the Sk keys. doc [B, Sk] (or
// nil) gives the document of every key position; queries take the last Sq.
func NaiveAttention(q, k, v, doc *Node) *Node {
	B, S, H, D := q.Shape().Dim(0), q.Shape().Dim(1), q.Shape().Dim(2), q.Shape().Dim(3)
	Sk, Hkv := k.Shape().Dim(1), k.Shape().Dim(2)
	G := H / Hkv
	q5 := Reshape(q, B, S, Hkv, G, D)
	// scores [B, Hkv, Sq, G, Sk]
	scores := DotGeneral(q5, []int{4}, []int{0, 2}, k, []int{3}, []int{0, 2})
	scores = MulScalar(scores, 1/math.Sqrt(float64(D)))
	g := q.Graph()
	qi := AddScalar(Iota(g, shapes.Make(dtypes.Int32, S, Sk), 0), Sk-S)
	kj := Iota(g, shapes.Make(dtypes.Int32, S, Sk), 1)
	mask := Reshape(GreaterOrEqual(qi, kj), 1, 1, S, 1, Sk) // causal
	if doc != nil {
		docQ := Slice(doc, AxisRange(), AxisRange(Sk-S, Sk))
		same := Equal(Reshape(docQ, B, 1, S, 1, 1), Reshape(doc, B, 1, 1, 1, Sk))
		mask = LogicalAnd(BroadcastToDims(mask, B, 1, S, 1, Sk), same)
	}
	mask = BroadcastToDims(mask, B, Hkv, S, G, Sk)
	scores = Where(mask, scores, BroadcastToDims(Scalar(g, scores.DType(), maskedScore), scores.Shape().Dimensions...))
	m := StopGradient(ReduceAndKeep(scores, ReduceMax, 4))
	p := Exp(Sub(scores, m))
	p = Div(p, ReduceAndKeep(p, ReduceSum, 4))
	// out [B, Hkv, Sq, G, D]
	out := DotGeneral(p, []int{4}, []int{0, 1}, v, []int{1}, []int{0, 2})
	out = TransposeAllAxes(out, 0, 2, 1, 3, 4) // [B, Sq, Hkv, G, D]
	return Reshape(out, B, S, H, D)
}

// BlockAttention is NaiveAttention computed one block of bs queries at a
// time, with a hand-written backward pass that recomputes each block's
// probabilities for sequences longer than keepProbsMaxLen and reuses the
// forward pass's up to it. Query block i sees its whole key row, keys [0, (i+1)·bs):
// its softmax is exact in one fused op (no online rescaling, no running
// max/sum accumulators), and the largest score tensor alive is
// [B·Hkv, bs·G, S]. S is padded up to a multiple of bs internally; padding
// sits after every real token, so causality keeps it invisible.
//
// Layout, chosen so every DotGeneral is on the Go backend's fast path (one
// leading batch axis, contracting axis last on the left): heads are folded
// into the batch axis, and a query row is (position, group) so one KV head's
// G query heads share one matmul with its keys:
//
//	queries q·scale [B·Hkv, S·G, D]; keys, values [B·Hkv, S, D];
//	block scores, probabilities [B·Hkv, bs·G, e] with e = (i+1)·bs.
//
// Only the scores matmul, the mask, one fused softmax and (backward) one
// subtract and one multiply touch score-sized tensors: the Go backend runs
// every non-matmul op on one core, so those passes are what costs.
func BlockAttention(q, k, v, doc *Node, blockSize int) *Node {
	B, S, H, D := q.Shape().Dim(0), q.Shape().Dim(1), q.Shape().Dim(2), q.Shape().Dim(3)
	Hkv := k.Shape().Dim(2)
	g := q.Graph()
	if blockSize <= 0 || blockSize > S {
		blockSize = S
	}
	if doc == nil {
		doc = Zeros(g, shapes.Make(dtypes.Int32, B, S))
	}
	if pad := (blockSize - S%blockSize) % blockSize; pad > 0 {
		padAxis1 := func(x *Node) *Node {
			dims := x.Shape().Clone().Dimensions
			dims[1] = pad
			return Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), dims...))}, 1)
		}
		out := BlockAttention(padAxis1(q), padAxis1(k), padAxis1(v), padAxis1(doc), blockSize)
		return Slice(out, AxisRange(), AxisRange(0, S))
	}
	a := attnLayout{B: B, S: S, H: H, Hkv: Hkv, G: H / Hkv, D: D, bs: blockSize, nb: S / blockSize}
	qr := a.queryRows(MulScalar(q, 1/math.Sqrt(float64(D)))) // [BH, S·G, D]
	kr, vr := a.keyRows(k), a.keyRows(v)                     // [BH, S, D]
	mask := func(pass int, after *Node) func(i int, prev *Node) *Node {
		salt := maskSalt(qr, pass, after)
		return func(i int, prev *Node) *Node { return a.blockMask(doc, i, gate(salt, prev)) }
	}
	o, ps := a.forward(StopGradient(qr), StopGradient(kr), StopGradient(vr), mask(0, qr), S <= keepProbsMaxLen)

	// Route the gradient through an identity with a custom gradient: the
	// packed tensor holds q, k, v and the output o along the row axis;
	// out = o + (q - q) carries dO into the q slot, where the custom
	// gradient turns it into dq, dk, dv.
	SG := S * a.G
	rows := []int{0, SG, SG + S, SG + 2*S, 2*SG + 2*S}
	part := func(y *Node, i int) *Node { return Slice(y, AxisRange(), AxisRange(rows[i], rows[i+1])) }
	packed := Concatenate([]*Node{qr, kr, vr, StopGradient(o)}, 1)
	packed = IdentityWithCustomGradient(packed, func(y, dy *Node) *Node {
		dq, dk, dv := a.backward(part(y, 0), part(y, 1), part(y, 2), part(y, 3), part(dy, 0), mask(1, dy), ps)
		return Concatenate([]*Node{dq, dk, dv, ZerosLike(dq)}, 1)
	})
	qs := part(packed, 0)
	return a.fromQueryRows(Add(StopGradient(part(packed, 3)), Sub(qs, StopGradient(qs))))
}

// attnLayout holds the shapes of one BlockAttention call.
type attnLayout struct {
	B, S, H, Hkv, G, D int
	bs, nb             int // block size and number of blocks
}

// queryRows: [B, S, H, D] -> [B·Hkv, S·G, D], row = position·G + group.
func (a attnLayout) queryRows(x *Node) *Node {
	x = TransposeAllAxes(Reshape(x, a.B, a.S, a.Hkv, a.G, a.D), 0, 2, 1, 3, 4)
	return Reshape(x, a.B*a.Hkv, a.S*a.G, a.D)
}

func (a attnLayout) fromQueryRows(x *Node) *Node {
	x = TransposeAllAxes(Reshape(x, a.B, a.Hkv, a.S, a.G, a.D), 0, 2, 1, 3, 4)
	return Reshape(x, a.B, a.S, a.H, a.D)
}

// keyRows: [B, S, Hkv, D] -> [B·Hkv, S, D].
func (a attnLayout) keyRows(x *Node) *Node {
	return Reshape(TransposeAllAxes(x, 0, 2, 1, 3), a.B*a.Hkv, a.S, a.D)
}

func (a attnLayout) fromKeyRows(x *Node) *Node {
	return TransposeAllAxes(Reshape(x, a.B, a.Hkv, a.S, a.D), 0, 2, 1, 3)
}

// rows slices axis 1 to [from, to).
func rows(x *Node, from, to int) *Node {
	specs := make([]SliceAxisSpec, x.Rank())
	for i := range specs {
		specs[i] = AxisRange()
	}
	specs[1] = AxisRange(from, to)
	return Slice(x, specs...)
}

// blockMask returns which keys each query row of block i may see: bool
// [B·Hkv, bs·G, e], causal and within the same document. salt [] int32 is
// added to both sides of each comparison, which leaves the mask unchanged;
// see maskSalt for why.
func (a attnLayout) blockMask(doc *Node, i int, salt *Node) *Node {
	g := doc.Graph()
	e := (i + 1) * a.bs
	sd := Add(doc, salt)
	docQ := Reshape(Slice(sd, AxisRange(), AxisRange(i*a.bs, e)), a.B, a.bs, 1)
	docK := Reshape(Slice(sd, AxisRange(), AxisRange(0, e)), a.B, 1, e)
	// Positions as [bs, 1] and [1, e], broadcast by the comparison: the
	// backend merges identical nodes, so full [bs, e] iotas would be shared
	// by every layer and pass and stay alive for the whole step (~0.5 GB at
	// 16k tokens).
	qpos := Add(Iota(g, shapes.Make(dtypes.Int32, a.bs, 1), 0), AddScalar(salt, float64(i*a.bs)))
	kpos := Add(Iota(g, shapes.Make(dtypes.Int32, 1, e), 1), salt)
	m := LogicalAnd(Equal(docQ, docK), Reshape(GreaterOrEqual(qpos, kpos), 1, a.bs, e)) // [B, bs, e]
	m = BroadcastToDims(Reshape(m, a.B, 1, a.bs, 1, e), a.B, a.Hkv, a.bs, a.G, e)
	return Reshape(m, a.B*a.Hkv, a.bs*a.G, e)
}

// maskSalt returns a scalar int32 that makes each attention call's and each
// pass's masks distinct graph nodes that cannot run before after exists. The
// Go backend merges identical expressions: shared masks would stay alive from
// the first layer's forward pass to its backward pass (at 16k tokens, over a
// GiB). And a mask that depends on the document ids alone is ready at the
// start of the step: a scheduler that runs ops when ready (ParallelBackend)
// would build every layer's masks at once. The salt's value comes from the
// node id; its dependency on after is a comparison that is always false
// (x > x, even for NaN).
func maskSalt(n *Node, pass int, after *Node) *Node {
	first := after
	for range after.Rank() {
		first = Squeeze(Slice(first, AxisRange(0, 1)), 0)
	}
	zero := ConvertDType(GreaterThan(first, first), dtypes.Int32)
	return AddScalar(zero, float64(int32((int(n.Id())%256)*2+pass)<<21))
}

// blockLag is how many blocks (or loss chunks) may run ahead of the oldest
// unfinished one. A scheduler that runs ops when ready would otherwise
// start every block of a layer at once (at 16k, 64 score tensors of up to
// 150 MB and their masks); two in flight keep a second core busy.
const blockLag = 2

// gate returns x, available only once after exists (nil: x itself). A
// block's query rows, dO rows and mask salt pass through it, so its scores
// and mask wait too.
func gate(x, after *Node) *Node {
	if after == nil {
		return x
	}
	return SchedulingBarrier(x, after)
}

// lagged returns xs[i-blockLag], or nil for the first blocks.
func lagged(xs []*Node, i int) *Node {
	if i < blockLag {
		return nil
	}
	return xs[i-blockLag]
}

// probs returns the attention probabilities of query block i over keys
// [0, e): q [BH, bs·G, D] (already scaled), k [BH, e, D] -> [BH, bs·G, e].
// Every row sees at least its own position, so no row is fully masked.
func probs(q, k, mask *Node) *Node {
	s := DotGeneral(q, []int{2}, []int{0}, k, []int{2}, []int{0})
	s = Where(mask, s, Scalar(q.Graph(), s.DType(), maskedScore))
	return BackendFusedSoftmax(s, 2)
}

// keepProbsMaxLen is the longest sequence whose attention probabilities
// are kept from the forward pass for the backward pass instead of being
// recomputed. Keeping them costs S²/2·H floats per layer and sequence
// (~75 MB on the 135M shape at 2k; 30 layers 2.3 GB, where PyTorch's eager
// attention keeps the same), and saves a scores matmul, a mask, a Where
// and a fused softmax per block (135M, 30 layers at 2k: 87.5 -> 102 tokens/s).
// At 4k it would be 4x that; at 16k, 64x. (A variable so that tests run
// both paths.)
var keepProbsMaxLen = 2048

// forward returns the attention output rows [BH, S·G, D] and, with keep,
// each block's probabilities [BH, bs·G, e].
func (a attnLayout) forward(q, k, v *Node, mask func(i int, prev *Node) *Node, keep bool) (*Node, []*Node) {
	R := a.bs * a.G
	outs := make([]*Node, a.nb)
	var ps []*Node
	for i := range a.nb {
		e := (i + 1) * a.bs
		var prev *Node // kept probabilities are only kept up to 2k: no gate there
		if !keep {
			prev = lagged(outs, i)
		}
		p := probs(gate(rows(q, i*R, (i+1)*R), prev), rows(k, 0, e), mask(i, prev))
		outs[i] = DotGeneral(p, []int{2}, []int{0}, rows(v, 0, e), []int{1}, []int{0}) // [BH, R, D]
		if keep {
			ps = append(ps, p)
		}
	}
	return Concatenate(outs, 1), ps
}

// backward returns dq, dk, dv (row layouts) from the forward inputs, the
// output o and its gradient dO (FlashAttention-2's backward with complete
// rows: dS = P·(dP - rowsum(dO·O)), dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO).
// dKᵀ and dVᵀ are accumulated as [BH, D, S] so both matmuls take the
// score-sized operand in the layout the backend multiplies without a
// transpose; only the small q and dO blocks are transposed.
// ps, when not nil, holds the forward pass's probabilities.
func (a attnLayout) backward(q, k, v, o, dO *Node, mask func(i int, prev *Node) *Node, ps []*Node) (dq, dk, dv *Node) {
	R := a.bs * a.G
	delta := ReduceAndKeep(Mul(dO, o), ReduceSum, 2) // [BH, S·G, 1]
	qT := TransposeAllAxes(q, 0, 2, 1)               // [BH, D, S·G]
	dOT := TransposeAllAxes(dO, 0, 2, 1)
	dqs := make([]*Node, a.nb)
	var dkT, dvT *Node // [BH, D, S]
	for i := range a.nb {
		e := (i + 1) * a.bs
		ke, ve := rows(k, 0, e), rows(v, 0, e)
		dOi := rows(dO, i*R, (i+1)*R)
		var p *Node
		if ps != nil {
			p = ps[i]
		} else {
			prev := lagged(dqs, i)
			dOi = gate(dOi, prev)
			p = probs(gate(rows(q, i*R, (i+1)*R), prev), ke, mask(i, prev))
		}
		dp := DotGeneral(dOi, []int{2}, []int{0}, ve, []int{2}, []int{0}) // [BH, R, e]
		ds := Mul(p, Sub(dp, rows(delta, i*R, (i+1)*R)))
		dqs[i] = DotGeneral(ds, []int{2}, []int{0}, ke, []int{1}, []int{0}) // [BH, R, D]
		cols := func(x *Node) *Node { return Slice(x, AxisRange(), AxisRange(), AxisRange(i*R, (i+1)*R)) }
		dk := DotGeneral(cols(qT), []int{2}, []int{0}, ds, []int{1}, []int{0}) // [BH, D, e]
		dv := DotGeneral(cols(dOT), []int{2}, []int{0}, p, []int{1}, []int{0})
		dkT, dvT = addPrefix(dkT, dk, a.S), addPrefix(dvT, dv, a.S)
	}
	return Concatenate(dqs, 1), TransposeAllAxes(dkT, 0, 2, 1), TransposeAllAxes(dvT, 0, 2, 1)
}

// addPrefix returns acc + x, where x [BH, D, e] covers the first e of the
// S columns of acc (nil acc = zeros). It pads rather than concatenating a
// zeros tensor: identical zeros nodes of every layer would be merged into
// one, kept alive from the first layer's backward pass to the last's.
func addPrefix(acc, x *Node, S int) *Node {
	e := x.Shape().Dim(2)
	if e < S {
		x = Pad(x, ScalarZero(x.Graph(), x.DType()), PadAxis{}, PadAxis{}, PadAxis{End: S - e})
	}
	if acc == nil {
		return x
	}
	return Add(acc, x)
}
