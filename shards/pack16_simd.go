//go:build goexperiment.simd && amd64

package shards

import (
	"simd/archsimd"
	"unsafe"
)

// pack16 stores what pack16Scalar stores, 16 ids at a time on AVX-512
// (VPMOVDW); its result is above 0xffff exactly when an id did not fit.
// The scalar loop was ~1 ns per token on prepare's one ordered goroutine.
func pack16(dst []byte, tokens []uint32) uint32 {
	n := 0
	var all uint32
	if archsimd.X86.AVX512() && len(tokens) >= 16 {
		n = len(tokens) &^ 15
		_ = dst[2*n-1]
		// amd64 is little-endian: the uint16 view stores the same bytes.
		out := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), n)
		acc := archsimd.BroadcastUint32x16(0)
		for j := 0; j < n; j += 16 {
			x := archsimd.LoadUint32x16Slice(tokens[j:])
			acc = acc.Or(x)
			x.TruncateToUint16().StoreSlice(out[j:])
		}
		if acc.Greater(archsimd.BroadcastUint32x16(0xffff)).ToBits() != 0 {
			all = 1 << 16
		}
	}
	return all | pack16Scalar(dst[2*n:], tokens[n:])
}
