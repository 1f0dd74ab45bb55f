package trainer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// referenceLogits is an independent float64 Llama forward pass in plain Go
// loops, written from the HF modeling_llama conventions: RMSNorm, rotate_half
// RoPE, repeat_kv (query head h uses kv head h / (H/Hkv)), causal softmax,
// SwiGLU, tied or untied head. It checks the GoMLX graph's layouts.
func referenceLogits(w *Weights, inv []float32, ids []uint32) [][]float64 {
	c := w.Config
	S, hd, H, Hkv, D, I := len(ids), c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDimension(), c.IntermediateSize
	G := H / Hkv
	p := func(i int) []float32 { return w.Data[i] }
	matvec := func(W []float32, out, in int, x []float64) []float64 { // W [out, in]
		y := make([]float64, out)
		for o := range out {
			var s float64
			for k := range in {
				s += float64(W[o*in+k]) * x[k]
			}
			y[o] = s
		}
		return y
	}
	norm := func(x []float64, g []float32) []float64 {
		var ms float64
		for _, v := range x {
			ms += v * v
		}
		r := 1 / math.Sqrt(ms/float64(len(x))+c.RMSNormEps)
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] * r * float64(g[i])
		}
		return out
	}
	rope := func(x []float64, pos int) { // one head [D], in place
		half := D / 2
		y := make([]float64, D)
		for j := range D {
			th := float64(float32(pos) * inv[j%half])
			var rot float64 // rotate_half(x)[j]
			if j < half {
				rot = -x[j+half]
			} else {
				rot = x[j-half]
			}
			y[j] = x[j]*math.Cos(th) + rot*math.Sin(th)
		}
		copy(x, y)
	}
	x := make([][]float64, S)
	for t, id := range ids {
		x[t] = make([]float64, hd)
		for k := range hd {
			x[t][k] = float64(p(0)[int(id)*hd+k])
		}
	}
	for l := range c.NumHiddenLayers {
		b := 1 + l*perLayerParams
		qs, ks, vs := make([][]float64, S), make([][]float64, S), make([][]float64, S)
		for t := range S {
			h := norm(x[t], p(b))
			qs[t], ks[t], vs[t] = matvec(p(b+1), H*D, hd, h), matvec(p(b+2), Hkv*D, hd, h), matvec(p(b+3), Hkv*D, hd, h)
			for hh := range H {
				rope(qs[t][hh*D:(hh+1)*D], t)
			}
			for hh := range Hkv {
				rope(ks[t][hh*D:(hh+1)*D], t)
			}
		}
		for t := range S {
			att := make([]float64, H*D)
			for hh := range H {
				kv := hh / G
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for j := 0; j <= t; j++ {
					var s float64
					for d := range D {
						s += qs[t][hh*D+d] * ks[j][kv*D+d]
					}
					scores[j] = s / math.Sqrt(float64(D))
					mx = max(mx, scores[j])
				}
				var z float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range scores {
					for d := range D {
						att[hh*D+d] += scores[j] / z * vs[j][kv*D+d]
					}
				}
			}
			o := matvec(p(b+4), hd, H*D, att)
			for k := range hd {
				x[t][k] += o[k]
			}
			h := norm(x[t], p(b+5))
			gate, up := matvec(p(b+6), I, hd, h), matvec(p(b+7), I, hd, h)
			for i := range I {
				gate[i] = gate[i] / (1 + math.Exp(-gate[i])) * up[i]
			}
			d := matvec(p(b+8), hd, I, gate)
			for k := range hd {
				x[t][k] += d[k]
			}
		}
	}
	head := p(0)
	if !c.TieWordEmbeddings {
		head = p(len(w.Data) - 1)
	}
	out := make([][]float64, S)
	for t := range S {
		out[t] = matvec(head, c.VocabSize, hd, norm(x[t], p(1+c.NumHiddenLayers*perLayerParams)))
	}
	return out
}

func TestModelMatchesPlainGoReference(t *testing.T) {
	backend := testBackend(t)
	for _, tied := range []bool{true, false} {
		c := tinyConfig()
		c.TieWordEmbeddings = tied
		w := tinyWeights(t, c)
		ids := randomTokens(rand.New(rand.NewPCG(2, 3)), 11, c.VocabSize)
		m, err := NewModel(c, len(ids))
		if err != nil {
			t.Fatal(err)
		}
		want := referenceLogits(w, m.InvFreq, ids)
		got, err := Forward(backend, w, ids, 4)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range want {
			for v := range want[i] {
				worst = max(worst, math.Abs(want[i][v]-float64(got[i][v])))
			}
		}
		if worst > 1e-4 {
			t.Errorf("tied=%v: GoMLX logits differ from the plain Go reference by %g", tied, worst)
		}
	}
}
