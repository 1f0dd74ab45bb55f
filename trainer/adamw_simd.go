//go:build goexperiment.simd && amd64

package trainer

import "simd/archsimd"

// adamwRange is adamwScalar 16 lanes at a time on AVX-512: the same float32
// operations in the same order (no fused multiply-add), so the results are
// bit-identical (TestAdamWRangeMatchesScalar). The scalar loop spent ~13 ns
// per parameter on its divisions and float64 square root; this one is
// bound by memory.
func adamwRange(p, m, v, g []float32, k adamwStep) {
	n := 0
	if archsimd.X86.AVX512() {
		n = len(p) &^ 15
		cnt, scale := archsimd.BroadcastFloat32x16(k.cnt), archsimd.BroadcastFloat32x16(k.scale)
		b1, b2 := archsimd.BroadcastFloat32x16(k.b1), archsimd.BroadcastFloat32x16(k.b2)
		omb1, omb2 := archsimd.BroadcastFloat32x16(1-k.b1), archsimd.BroadcastFloat32x16(1-k.b2)
		keep := archsimd.BroadcastFloat32x16(k.keep)
		bc1, bc2 := archsimd.BroadcastFloat32x16(k.bc1), archsimd.BroadcastFloat32x16(k.bc2)
		lr, eps := archsimd.BroadcastFloat32x16(k.lr), archsimd.BroadcastFloat32x16(k.eps)
		decay := k.keep != 1
		for j := 0; j < n; j += 16 {
			x := archsimd.LoadFloat32x16Slice(g[j:]).Div(cnt).Mul(scale)
			mj := archsimd.LoadFloat32x16Slice(m[j:]).Mul(b1).Add(x.Mul(omb1))
			vj := archsimd.LoadFloat32x16Slice(v[j:]).Mul(b2).Add(x.Mul(x).Mul(omb2))
			pj := archsimd.LoadFloat32x16Slice(p[j:])
			if decay {
				pj = pj.Mul(keep)
			}
			denom := vj.Div(bc2).Sqrt().Add(eps)
			pj.Sub(lr.Mul(mj.Div(bc1).Div(denom))).StoreSlice(p[j:])
			mj.StoreSlice(m[j:])
			vj.StoreSlice(v[j:])
		}
	}
	adamwScalar(p[n:], m[n:], v[n:], g[n:], k)
}
