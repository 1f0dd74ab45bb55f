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

// BlockAttention is NaiveAttention computed in blocks of blockSize tokens
// with an online softmax and a recomputing backward pass. S is padded up to
// a multiple of blockSize internally; padding sits after every real token,
// so causality keeps it invisible.
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

	// Pack everything the backward pass needs into one tensor per token,
	// [B, S, N], and route the gradient through an identity with a custom
	// gradient: out = O + (q - q) carries dO into the q slot of the packed
	// tensor, where the custom gradient turns it into dq, dk, dv.
	qf := Reshape(q, B, S, H*D)
	kf := Reshape(k, B, S, Hkv*D)
	vf := Reshape(v, B, S, Hkv*D)
	o, lse := flashForward(StopGradient(q), StopGradient(k), StopGradient(v), doc, blockSize)
	of := Reshape(o, B, S, H*D)
	lsef := lse // [B, S, H]
	offs := []int{0, H * D, H*D + Hkv*D, H*D + 2*Hkv*D, 2*H*D + 2*Hkv*D, 2*H*D + 2*Hkv*D + H}
	packed := Concatenate([]*Node{qf, kf, vf, StopGradient(of), StopGradient(lsef)}, 2)
	part := func(y *Node, i int) *Node { return Slice(y, AxisRange(), AxisRange(), AxisRange(offs[i], offs[i+1])) }
	packed = IdentityWithCustomGradient(packed, func(y, dy *Node) *Node {
		dO := Reshape(part(dy, 0), B, S, H, D)
		dq, dk, dv := flashBackward(
			Reshape(part(y, 0), B, S, H, D), Reshape(part(y, 1), B, S, Hkv, D), Reshape(part(y, 2), B, S, Hkv, D),
			Reshape(part(y, 3), B, S, H, D), part(y, 4), doc, dO, blockSize)
		zo := ZerosLike(part(y, 3))
		zl := ZerosLike(part(y, 4))
		return Concatenate([]*Node{Reshape(dq, B, S, H*D), Reshape(dk, B, S, Hkv*D), Reshape(dv, B, S, Hkv*D), zo, zl}, 2)
	})
	qs := part(packed, 0)
	out := Add(StopGradient(part(packed, 3)), Sub(qs, StopGradient(qs)))
	return Reshape(out, B, S, H, D)
}

// blocked holds the block layout of one attention call.
type blocked struct {
	B, S, H, Hkv, G, D, bs, nb int
	scale                      float64
}

func newBlocked(q, k *Node, bs int) blocked {
	b := blocked{B: q.Shape().Dim(0), S: q.Shape().Dim(1), H: q.Shape().Dim(2), D: q.Shape().Dim(3), Hkv: k.Shape().Dim(2), bs: bs}
	b.G = b.H / b.Hkv
	b.nb = b.S / bs
	b.scale = 1 / math.Sqrt(float64(b.D))
	return b
}

// queryBlocks: [B, S, H, D] -> [B, Hkv, nb, G, bs, D].
func (b blocked) queryBlocks(x *Node) *Node {
	return TransposeAllAxes(Reshape(x, b.B, b.nb, b.bs, b.Hkv, b.G, b.D), 0, 3, 1, 4, 2, 5)
}

// fromQueryBlocks inverts queryBlocks.
func (b blocked) fromQueryBlocks(x *Node) *Node {
	return Reshape(TransposeAllAxes(x, 0, 2, 4, 1, 3, 5), b.B, b.S, b.H, b.D)
}

// keyBlocks: [B, S, Hkv, D] -> [B, Hkv, nb, bs, D].
func (b blocked) keyBlocks(x *Node) *Node {
	return TransposeAllAxes(Reshape(x, b.B, b.nb, b.bs, b.Hkv, b.D), 0, 3, 1, 2, 4)
}

func (b blocked) fromKeyBlocks(x *Node) *Node {
	return Reshape(TransposeAllAxes(x, 0, 2, 3, 1, 4), b.B, b.S, b.Hkv, b.D)
}

// rowBlocks: per-row statistics [B, S, H] -> [B, Hkv, nb, G, bs].
func (b blocked) rowBlocks(x *Node) *Node {
	return TransposeAllAxes(Reshape(x, b.B, b.nb, b.bs, b.Hkv, b.G), 0, 3, 1, 4, 2)
}

func (b blocked) fromRowBlocks(x *Node) *Node {
	return Reshape(TransposeAllAxes(x, 0, 2, 4, 1, 3), b.B, b.S, b.H)
}

// blockRange slices axis 2 (the block axis) to [from, to).
func blockRange(x *Node, from, to int) *Node {
	specs := make([]SliceAxisSpec, x.Rank())
	for i := range specs {
		specs[i] = AxisRange()
	}
	specs[2] = AxisRange(from, to)
	return Slice(x, specs...)
}

// addToBlocks returns acc with delta added to blocks [from, from+n) of axis 2.
func addToBlocks(acc, delta *Node, from int) *Node {
	n := delta.Shape().Dim(2)
	nb := acc.Shape().Dim(2)
	parts := []*Node{}
	if from > 0 {
		parts = append(parts, blockRange(acc, 0, from))
	}
	parts = append(parts, Add(blockRange(acc, from, from+n), delta))
	if from+n < nb {
		parts = append(parts, blockRange(acc, from+n, nb))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return Concatenate(parts, 2)
}

// diagonalScores computes the scaled, masked scores of every (query block
// d+n, key block n) pair at once: [B, Hkv, nb-d, G, bs, bs]. Pairing blocks
// by diagonal keeps the graph at nb steps instead of nb²/2.
func (b blocked) diagonalScores(qb, kb, docb *Node, d int) (scores, mask *Node) {
	g := qb.Graph()
	n := b.nb - d
	qd := blockRange(qb, d, b.nb)                                                   // [B, Hkv, n, G, bs, D]
	kd := blockRange(kb, 0, n)                                                      // [B, Hkv, n, bs, D]
	scores = DotGeneral(qd, []int{5}, []int{0, 1, 2}, kd, []int{4}, []int{0, 1, 2}) // [B, Hkv, n, G, bs, bs]
	scores = MulScalar(scores, b.scale)
	docQ := Reshape(Slice(docb, AxisRange(), AxisRange(d, b.nb)), b.B, 1, n, 1, b.bs, 1)
	docK := Reshape(Slice(docb, AxisRange(), AxisRange(0, n)), b.B, 1, n, 1, 1, b.bs)
	mask = Equal(docQ, docK) // [B, 1, n, 1, bs, bs]
	if d == 0 {
		causal := GreaterOrEqual(Iota(g, shapes.Make(dtypes.Int32, b.bs, b.bs), 0), Iota(g, shapes.Make(dtypes.Int32, b.bs, b.bs), 1))
		mask = LogicalAnd(mask, BroadcastToDims(Reshape(causal, 1, 1, 1, 1, b.bs, b.bs), mask.Shape().Dimensions...))
	}
	mask = BroadcastToDims(mask, scores.Shape().Dimensions...)
	scores = Where(mask, scores, BroadcastToDims(Scalar(g, scores.DType(), maskedScore), scores.Shape().Dimensions...))
	return scores, mask
}

// flashForward returns the attention output [B, S, H, D] and the per-row
// log-sum-exp of the scores [B, S, H]. S must be a multiple of bs.
func flashForward(q, k, v, doc *Node, bs int) (o, lse *Node) {
	b := newBlocked(q, k, bs)
	qb, kb, vb := b.queryBlocks(q), b.keyBlocks(k), b.keyBlocks(v)
	docb := Reshape(doc, b.B, b.nb, b.bs)
	var m, l, acc *Node // running max, sum and output: [B, Hkv, nb, G, bs(, D)]
	// The diagonal (d = 0) goes first: every row sees at least itself there,
	// so the running max is finite from the start.
	for d := 0; d < b.nb; d++ {
		s, _ := b.diagonalScores(qb, kb, docb, d)
		vd := blockRange(vb, 0, b.nb-d)
		rowMax := ReduceMax(s, 5)
		if d == 0 {
			m = rowMax
			p := Exp(Sub(s, ExpandAxes(m, 5)))
			l = ReduceSum(p, 5)
			acc = DotGeneral(p, []int{5}, []int{0, 1, 2}, vd, []int{3}, []int{0, 1, 2})
			continue
		}
		mOld, lOld, accOld := blockRange(m, d, b.nb), blockRange(l, d, b.nb), blockRange(acc, d, b.nb)
		mNew := Max(mOld, rowMax)
		alpha := Exp(Sub(mOld, mNew))
		p := Exp(Sub(s, ExpandAxes(mNew, 5)))
		lNew := Add(Mul(alpha, lOld), ReduceSum(p, 5))
		accNew := Add(Mul(ExpandAxes(alpha, 5), accOld), DotGeneral(p, []int{5}, []int{0, 1, 2}, vd, []int{3}, []int{0, 1, 2}))
		m = Concatenate([]*Node{blockRange(m, 0, d), mNew}, 2)
		l = Concatenate([]*Node{blockRange(l, 0, d), lNew}, 2)
		acc = Concatenate([]*Node{blockRange(acc, 0, d), accNew}, 2)
	}
	o = b.fromQueryBlocks(Div(acc, ExpandAxes(l, 5)))
	lse = b.fromRowBlocks(Add(m, Log(l)))
	return o, lse
}

// flashBackward returns dq, dk, dv given the forward inputs, its output o,
// its log-sum-exp lse and the output gradient dO (FlashAttention-2,
// Algorithm 2, with blocks paired by diagonal).
func flashBackward(q, k, v, o, lse, doc, dO *Node, bs int) (dq, dk, dv *Node) {
	b := newBlocked(q, k, bs)
	qb, kb, vb := b.queryBlocks(q), b.keyBlocks(k), b.keyBlocks(v)
	dOb := b.queryBlocks(dO)
	lseb := b.rowBlocks(lse)
	docb := Reshape(doc, b.B, b.nb, b.bs)
	delta := b.rowBlocks(ReduceSum(Mul(dO, o), 3)) // [B, Hkv, nb, G, bs]
	dqb := ZerosLike(qb)
	dkb := ZerosLike(kb)
	dvb := ZerosLike(vb)
	for d := 0; d < b.nb; d++ {
		n := b.nb - d
		s, mask := b.diagonalScores(qb, kb, docb, d)
		p := Exp(Sub(s, ExpandAxes(blockRange(lseb, d, b.nb), 5)))
		p = Where(mask, p, ZerosLike(p)) // [B, Hkv, n, G, bs, bs]
		qd, dOd := blockRange(qb, d, b.nb), blockRange(dOb, d, b.nb)
		kd, vd := blockRange(kb, 0, n), blockRange(vb, 0, n)
		// dV[j] += sum over (g, i) of p[i, j] dO[i]: [B, Hkv, n, bs, D]
		dvb = addToBlocks(dvb, DotGeneral(p, []int{3, 4}, []int{0, 1, 2}, dOd, []int{3, 4}, []int{0, 1, 2}), 0)
		dp := DotGeneral(dOd, []int{5}, []int{0, 1, 2}, vd, []int{4}, []int{0, 1, 2}) // [B, Hkv, n, G, bs, bs]
		ds := Mul(p, Sub(dp, ExpandAxes(blockRange(delta, d, b.nb), 5)))
		ds = MulScalar(ds, b.scale)
		dqb = addToBlocks(dqb, DotGeneral(ds, []int{5}, []int{0, 1, 2}, kd, []int{3}, []int{0, 1, 2}), d)
		dkb = addToBlocks(dkb, DotGeneral(ds, []int{3, 4}, []int{0, 1, 2}, qd, []int{3, 4}, []int{0, 1, 2}), 0)
	}
	return b.fromQueryBlocks(dqb), b.fromKeyBlocks(dkb), b.fromKeyBlocks(dvb)
}
