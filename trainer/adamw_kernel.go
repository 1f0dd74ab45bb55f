package trainer

import "math"

// adamwStep holds one step's AdamW constants for one parameter tensor.
type adamwStep struct {
	cnt, scale float32 // gradient = sum / cnt * scale (mean, then clipping)
	b1, b2     float32
	keep       float32 // 1 - lr·weight_decay, or 1 where the tensor has no decay
	bc1, bc2   float32 // bias corrections 1 - β^t
	lr, eps    float32
}

// adamwScalar updates p, m, v in place from the summed gradient g: the
// reference for adamwRange, one element at a time in float32 (the square
// root through float64 rounds to the same float32).
func adamwScalar(p, m, v, g []float32, k adamwStep) {
	for j := range p {
		x := g[j] / k.cnt * k.scale
		mj := m[j]*k.b1 + x*(1-k.b1)
		vj := v[j]*k.b2 + x*x*(1-k.b2)
		pj := p[j]
		if k.keep != 1 {
			pj *= k.keep
		}
		denom := float32(math.Sqrt(float64(vj/k.bc2))) + k.eps
		p[j] = pj - k.lr*((mj/k.bc1)/denom)
		m[j], v[j] = mj, vj
	}
}
