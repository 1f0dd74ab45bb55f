// Package trainer holds the SmolLM2 (Llama) model written with GoMLX, its
// blockwise document-aware attention, HF checkpoint I/O (safetensors and
// config.json), and the continued-pretraining loop with exact resume.
package trainer

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// ParamSpec names one parameter tensor with its HF name and shape.
type ParamSpec struct {
	Name  string
	Shape []int
	// Decay is whether AdamW applies weight decay to it by default:
	// matrices yes; norms, biases and embeddings no.
	Decay bool
	// Norm marks RMSNorm weights (initialised to 1).
	Norm bool
}

// ParamSpecs lists the parameters in the canonical order used for graph
// inputs, checkpoints and safetensors files.
func (c ModelConfig) ParamSpecs() []ParamSpec {
	D := c.HeadDimension()
	h := c.HiddenSize
	specs := []ParamSpec{{Name: "model.embed_tokens.weight", Shape: []int{c.VocabSize, h}}}
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		specs = append(specs,
			ParamSpec{Name: p + "input_layernorm.weight", Shape: []int{h}, Norm: true},
			ParamSpec{Name: p + "self_attn.q_proj.weight", Shape: []int{c.NumAttentionHeads * D, h}, Decay: true},
			ParamSpec{Name: p + "self_attn.k_proj.weight", Shape: []int{c.NumKeyValueHeads * D, h}, Decay: true},
			ParamSpec{Name: p + "self_attn.v_proj.weight", Shape: []int{c.NumKeyValueHeads * D, h}, Decay: true},
			ParamSpec{Name: p + "self_attn.o_proj.weight", Shape: []int{h, c.NumAttentionHeads * D}, Decay: true},
			ParamSpec{Name: p + "post_attention_layernorm.weight", Shape: []int{h}, Norm: true},
			ParamSpec{Name: p + "mlp.gate_proj.weight", Shape: []int{c.IntermediateSize, h}, Decay: true},
			ParamSpec{Name: p + "mlp.up_proj.weight", Shape: []int{c.IntermediateSize, h}, Decay: true},
			ParamSpec{Name: p + "mlp.down_proj.weight", Shape: []int{h, c.IntermediateSize}, Decay: true},
		)
	}
	specs = append(specs, ParamSpec{Name: "model.norm.weight", Shape: []int{h}, Norm: true})
	if !c.TieWordEmbeddings {
		specs = append(specs, ParamSpec{Name: "lm_head.weight", Shape: []int{c.VocabSize, h}, Decay: true})
	}
	return specs
}

// perLayerParams is the number of tensors per transformer layer in ParamSpecs.
const perLayerParams = 9

// Weights is a model's parameters on the host, float32, in ParamSpecs order.
type Weights struct {
	Config ModelConfig
	Data   [][]float32
	// SourceConfig is the config.json the weights were loaded from, if any;
	// SaveHF keeps its other fields and updates only RoPE.
	SourceConfig []byte
}

// InitWeights draws a random model as HF's LlamaPreTrainedModel does: normal
// (0, initializer_range) for matrices and embeddings, ones for norms. It is a
// pure function of (config, seed); drawing on the host keeps it identical on
// every backend (and avoids GoMLX's half-precision random init bug).
func InitWeights(c ModelConfig, seed uint64) (*Weights, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f6e67637478)) // "longctx"
	std := c.InitializerRange
	if std <= 0 {
		std = 0.02
	}
	w := &Weights{Config: c}
	for _, s := range c.ParamSpecs() {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			if s.Norm {
				data[i] = 1
			} else {
				data[i] = float32(rng.NormFloat64() * std)
			}
		}
		w.Data = append(w.Data, data)
	}
	return w, nil
}

// Batch holds the graph inputs of one batch of packed sequences, all [B, S]:
// token ids, RoPE positions (reset per document or not) and document index
// (nil or all-equal for attention across documents).
type Batch struct {
	IDs, Pos, Doc *Node
}

// Model builds the forward graph. Params are the nodes of the weights in
// ParamSpecs order (any float dtype is used as given).
type Model struct {
	Config ModelConfig
	// InvFreq [D/2] and AttentionFactor come from the rope package for the
	// configured base and scaling.
	InvFreq         []float32
	AttentionFactor float32
	// BlockSize is the attention block; 0 uses NaiveAttention (tests only).
	BlockSize int
	// Recompute wraps every layer in a gradient checkpoint so the backward
	// pass recomputes activations layer by layer.
	Recompute bool
	// LossChunk is the number of positions whose logits exist at once in
	// Loss (0 = defaultLossChunk).
	LossChunk int
	// ComputeDType, if BFloat16, runs the linear layers in bf16 (weights stay
	// float32 masters; norms, softmax and loss stay float32).
	ComputeDType dtypes.DType
}

// Layer is one transformer layer's weights as graph nodes.
type Layer struct {
	InputNorm, Q, K, V, O, PostNorm, Gate, Up, Down *Node
}

// LayerParams picks layer i's nodes out of the canonical parameter list.
func LayerParams(params []*Node, i int) Layer {
	p := params[1+i*perLayerParams:]
	return Layer{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]}
}

// linear computes x @ w^T with w in HF layout [out, in]: [..., in] -> [..., out].
func (m *Model) linear(x, w *Node) *Node {
	dt := x.DType()
	if m.ComputeDType == dtypes.BFloat16 {
		x, w = ConvertDType(x, dtypes.BFloat16), ConvertDType(w, dtypes.BFloat16)
	}
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	return ConvertDType(y, dt)
}

// RMSNorm as HF LlamaRMSNorm: x / sqrt(mean(x²) + eps) * w, in float32.
// Uses 1/Sqrt rather than Rsqrt: GoMLX v0.28.8 has no Rsqrt gradient.
func RMSNorm(x, w *Node, eps float64) *Node {
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	return Mul(Div(x, Sqrt(AddScalar(ms, eps))), ExpandLeftToRank(w, x.Rank()))
}

// RopeCosSin returns cos and sin [B, S, D] for positions pos [B, S] int32,
// computed in float32 as HF does (emb = concat(freqs, freqs), times the
// attention factor).
func (m *Model) RopeCosSin(pos *Node) (cos, sin *Node) {
	g := pos.Graph()
	inv := Reshape(Const(g, m.InvFreq), 1, 1, -1)                        // [1, 1, D/2]
	freqs := Mul(ExpandAxes(ConvertDType(pos, dtypes.Float32), -1), inv) // [B, S, D/2]
	emb := Concatenate([]*Node{freqs, freqs}, -1)                        // [B, S, D]
	cos, sin = Cos(emb), Sin(emb)
	if m.AttentionFactor != 1 && m.AttentionFactor != 0 {
		cos, sin = MulScalar(cos, m.AttentionFactor), MulScalar(sin, m.AttentionFactor)
	}
	return cos, sin
}

// ApplyRope rotates x [B, S, heads, D] with cos, sin [B, S, D] in the
// rotate_half layout: x·cos + rotate_half(x)·sin. rotate_half is a signed
// permutation of the last axis, applied as a matmul with a constant [D, D]
// matrix: exact (one non-zero term per output), and one multi-threaded op
// instead of two slices, a negation and a concatenation on one core.
func ApplyRope(x, cos, sin *Node) *Node {
	rot := DotGeneral(x, []int{3}, nil, rotateHalf(x.Graph(), x.DType(), x.Shape().Dim(-1)), []int{0}, nil)
	cos, sin = ConvertDType(ExpandAxes(cos, 2), x.DType()), ConvertDType(ExpandAxes(sin, 2), x.DType())
	return Add(Mul(x, cos), Mul(rot, sin))
}

// rotateHalf returns R [D, D] with x·R = concat(-x[D/2:], x[:D/2]).
func rotateHalf(g *Graph, dt dtypes.DType, D int) *Node {
	r := make([]float64, D*D)
	for j := range D / 2 {
		r[(j+D/2)*D+j] = -1 // out[j] = -x[j+D/2]
		r[j*D+j+D/2] = 1    // out[j+D/2] = x[j]
	}
	return ConvertDType(Reshape(Const(g, r), D, D), dt)
}

// QKV projects the normed hidden state h [B, S, hidden] to q [B, S, H, D]
// and k, v [B, S, Hkv, D], with RoPE applied to q and k. A KV cache stores
// the k, v returned here.
func (m *Model) QKV(l Layer, h, cos, sin *Node) (q, k, v *Node) {
	c := m.Config
	B, S := h.Shape().Dim(0), h.Shape().Dim(1)
	D := c.HeadDimension()
	q = Reshape(m.linear(h, l.Q), B, S, c.NumAttentionHeads, D)
	k = Reshape(m.linear(h, l.K), B, S, c.NumKeyValueHeads, D)
	v = Reshape(m.linear(h, l.V), B, S, c.NumKeyValueHeads, D)
	return ApplyRope(q, cos, sin), ApplyRope(k, cos, sin), v
}

// AttentionCore is causal attention of q [B, S, H, D] over k, v
// [B, S, Hkv, D]; doc [B, S] (or nil) restricts it to the same document.
func (m *Model) AttentionCore(q, k, v, doc *Node) *Node {
	if m.BlockSize <= 0 {
		return NaiveAttention(q, k, v, doc)
	}
	return BlockAttention(q, k, v, doc, m.BlockSize)
}

// AttnOut projects attention output [B, S, H, D] back to [B, S, hidden].
func (m *Model) AttnOut(l Layer, o *Node) *Node {
	B, S := o.Shape().Dim(0), o.Shape().Dim(1)
	return m.linear(Reshape(o, B, S, -1), l.O)
}

// MLP is SwiGLU: down(silu(gate(h)) * up(h)), [B, S, hidden] -> same.
// Gate and up are one matmul against the stacked weights [2I, hidden], and
// the activation has a hand-written gradient (swiGLU).
func (m *Model) MLP(l Layer, h *Node) *Node {
	gu := m.linear(h, Concatenate([]*Node{l.Gate, l.Up}, 0)) // [B, S, 2I]
	return m.linear(swiGLU(gu), l.Down)
}

// sliceLast returns slice specs that take [from, to) of the last of rank axes.
func sliceLast(rank, from, to int) []SliceAxisSpec {
	specs := make([]SliceAxisSpec, rank)
	for i := range specs {
		specs[i] = AxisRange()
	}
	specs[rank-1] = AxisRange(from, to)
	return specs
}

// swiGLU maps gu = [gate, up] [..., 2I] to silu(gate)·up [..., I] with a
// hand-written gradient: with s = sigmoid(gate),
// d gate = dy·up·s·(1 + gate·(1-s)) and d up = dy·gate·s. Both coefficients
// are computed in the forward pass, so the backward keeps two [..., I]
// tensors (instead of gate, up, s and gate·s) and does two multiplies;
// sigmoid (math.Exp per element, the expensive op) runs once.
func swiGLU(gu *Node) *Node {
	r := gu.Rank()
	I := gu.Shape().Dim(-1) / 2
	gus := StopGradient(gu)
	gate, up := Slice(gus, sliceLast(r, 0, I)...), Slice(gus, sliceLast(r, I, 2*I)...)
	s := Sigmoid(gate)
	gs := Mul(gate, s)
	y := Mul(gs, up)
	dGateCoef := Mul(up, Add(s, Mul(gs, OneMinus(s)))) // up·s·(1 + gate·(1-s))
	// The identity carries dy into the gate slot of gu, where the custom
	// gradient turns it into d gate and d up (as BlockAttention does).
	packed := IdentityWithCustomGradient(gu, func(_, v *Node) *Node {
		dy := Slice(v, sliceLast(r, 0, I)...)
		return Concatenate([]*Node{Mul(dy, dGateCoef), Mul(dy, gs)}, -1)
	})
	slot := Slice(packed, sliceLast(r, 0, I)...)
	return Add(StopGradient(y), Sub(slot, StopGradient(slot)))
}

// Block runs one transformer layer on x [B, S, hidden].
func (m *Model) Block(l Layer, x, cos, sin, doc *Node) *Node {
	eps := m.Config.RMSNormEps
	q, k, v := m.QKV(l, RMSNorm(x, l.InputNorm, eps), cos, sin)
	x = Add(x, m.AttnOut(l, m.AttentionCore(q, k, v, doc)))
	return Add(x, m.MLP(l, RMSNorm(x, l.PostNorm, eps)))
}

// Embed looks up ids [B, S] -> [B, S, hidden] in the embedding's dtype.
func Embed(embed, ids *Node) *Node {
	return Gather(embed, ExpandAxes(ids, -1))
}

// Hidden runs the embedding, every layer and the final norm: [B, S, hidden].
func (m *Model) Hidden(params []*Node, b Batch) *Node {
	x := Embed(params[0], b.IDs)
	cos, sin := m.RopeCosSin(b.Pos)
	for i := range m.Config.NumHiddenLayers {
		if m.Recompute {
			x = x.Checkpoint()
		}
		x = m.Block(LayerParams(params, i), x, cos, sin, b.Doc)
	}
	if m.Recompute {
		x = x.StopCheckpoint()
	}
	return RMSNorm(x, params[1+m.Config.NumHiddenLayers*perLayerParams], m.Config.RMSNormEps)
}

// LMHead returns the output projection weight [vocab, hidden].
func (m *Model) LMHead(params []*Node) *Node {
	if m.Config.TieWordEmbeddings {
		return params[0]
	}
	return params[len(params)-1]
}

// Logits returns [B, S, vocab] in the weights' dtype.
func (m *Model) Logits(params []*Node, b Batch) *Node {
	return m.linear(m.Hidden(params, b), m.LMHead(params))
}

// defaultLossChunk is the number of positions whose logits are materialised
// at a time in Loss: [B, chunk, vocab] instead of [B, S, vocab]. At 8k
// tokens on the 135M shape, 1024 instead of 2048 lowers peak RSS by ~1 GB
// at the same speed; 512 saves nothing more.
const defaultLossChunk = 1024

// Loss returns the summed next-token cross-entropy over positions with
// weight 1 and the number of such positions. targets [B, S] int32 holds the
// token to predict at each position; weights [B, S] float32 is 1 where a
// target counts.
//
// Logits exist one chunk of positions at a time and are never kept for
// the backward pass: each chunk computes its softmax p and, in the same
// pass, the log-sum-exp term's gradients (p·head for the hidden state, its
// transpose for the head), which enter the graph through linear surrogate
// terms; the target-logit term's gradient comes from autodiff of a gather
// of head rows (h·head[t]), not a one-hot over the vocabulary. The value is
// −log p[t], gathered from p: no max or sum pass over [c, V] beyond the
// fused softmax's own. It saturates at −log(2⁻¹²⁶) ≈ 87.3 nats per token
// (float32's smallest normal), which only a diverged model reaches; the
// gradient does not saturate. The gradient is exact for any scalar
// multiple of sum (as Gradient(sum/count) takes); it is not a second-order
// differentiable graph.
func (m *Model) Loss(params []*Node, b Batch, targets, weights *Node) (sum, count *Node) {
	h := m.Hidden(params, b) // [B, S, hidden]
	head := m.LMHead(params) // [V, hidden]
	B, S, hid := h.Shape().Dim(0), h.Shape().Dim(1), h.Shape().Dim(2)
	chunk := m.LossChunk
	if chunk <= 0 {
		chunk = defaultLossChunk
	}
	w := ConvertDType(weights, h.DType())
	// picked = Σ w·h·head[target]: differentiated by autodiff (small).
	picked := ReduceAllSum(Mul(Mul(h, Gather(head, ExpandAxes(targets, -1))), ExpandAxes(w, -1)))

	hs, heads := StopGradient(h), StopGradient(head)
	var nllSum, gHead *Node // gHead: d Σ lse / d head, transposed [hidden, V]
	gH := make([]*Node, 0, (S+chunk-1)/chunk)
	for start := 0; start < S; start += chunk {
		end := min(start+chunk, S)
		c := end - start
		// A chunk waits for the one blockLag before it: a ready-first
		// schedule would otherwise hold every chunk's [B, c, V] at once.
		hc := gate(Slice(hs, AxisRange(), AxisRange(start, end)), lagged(gH, len(gH))) // [B, c, hidden]
		wc := Slice(w, AxisRange(), AxisRange(start, end))                             // [B, c]
		logits := m.linear(hc, heads)                                                  // [B, c, V]
		p := BackendFusedSoftmax(logits, 2)                                            // [B, c, V]
		pt := pickTargets(p, Slice(targets, AxisRange(), AxisRange(start, end)))
		nll := Neg(Log(Max(pt, Scalar(pt.Graph(), pt.DType(), smallestNormal32)))) // [B, c]
		ls := ReduceAllSum(Mul(nll, wc))
		// d ls / d hc = w·(p @ head); d ls / d head = pᵀ @ (w·hc), built as
		// (w·hc)ᵀ @ p so the [c, V] operand needs no transpose.
		gH = append(gH, Mul(ExpandAxes(wc, -1), DotGeneral(p, []int{2}, nil, heads, []int{0}, nil)))
		whT := Reshape(TransposeAllAxes(Mul(hc, ExpandAxes(wc, -1)), 2, 0, 1), hid, B*c)
		gh := DotGeneral(whT, []int{1}, nil, Reshape(p, B*c, -1), []int{0}, nil) // [hidden, V]
		if nllSum == nil {
			nllSum, gHead = ls, gh
		} else {
			nllSum, gHead = Add(nllSum, ls), Add(gHead, gh)
		}
	}
	// Surrogates: value 0, gradient (the stop-gradient coefficient) × upstream.
	surrogate := func(x, coef *Node) *Node {
		t := ReduceAllSum(Mul(x, StopGradient(coef)))
		return Sub(t, StopGradient(t))
	}
	lseGrad := Add(surrogate(h, Concatenate(gH, 1)), surrogate(head, Transpose(gHead, 0, 1)))
	pickedGrad := Sub(picked, StopGradient(picked))
	return Add(StopGradient(nllSum), Sub(lseGrad, pickedGrad)), ReduceAllSum(weights)
}

// smallestNormal32 is float32's smallest normal number, 2⁻¹²⁶: the floor
// under p[t] before the log in Loss.
const smallestNormal32 = 1.1754943508222875e-38

// pickTargets returns p[b, i, t[b, i]] for p [B, c, V] and t [B, c] int32.
func pickTargets(p, t *Node) *Node {
	B, c, V := p.Shape().Dim(0), p.Shape().Dim(1), p.Shape().Dim(2)
	row := Iota(p.Graph(), shapes.Make(dtypes.Int32, B*c, 1), 0)
	idx := Concatenate([]*Node{row, Reshape(ConvertDType(t, dtypes.Int32), B*c, 1)}, 1) // [B·c, 2]
	return Reshape(Gather(Reshape(p, B*c, V), idx), B, c)
}

// paramShapes returns the graph input shapes of the weights.
func paramShapes(c ModelConfig) []shapes.Shape {
	specs := c.ParamSpecs()
	out := make([]shapes.Shape, len(specs))
	for i, s := range specs {
		out[i] = shapes.Make(dtypes.Float32, s.Shape...)
	}
	return out
}

// flopsPerToken estimates training FLOPs per token for sequence length S
// (6 x matmul parameters + causal attention), as in the PaLM/nanoGPT MFU
// formula; forward only is a third of it.
func (c ModelConfig) FlopsPerToken(S int) float64 {
	D := c.HeadDimension()
	h := float64(c.HiddenSize)
	perLayer := h*float64(c.NumAttentionHeads*D) + 2*h*float64(c.NumKeyValueHeads*D) + float64(c.NumAttentionHeads*D)*h + 3*h*float64(c.IntermediateSize)
	matmul := float64(c.NumHiddenLayers)*perLayer + h*float64(c.VocabSize)
	// Causal attention: q·k and p·v, 2 FLOPs per MAC, half the pairs.
	attn := float64(c.NumHiddenLayers) * 2 * 2 * float64(c.NumAttentionHeads*D) * float64(S) / 2
	return 6*matmul + 3*attn
}
