//go:build !(goexperiment.simd && amd64)

package shards

// pack16 is pack16Scalar where archsimd is not available.
func pack16(dst []byte, tokens []uint32) uint32 { return pack16Scalar(dst, tokens) }
