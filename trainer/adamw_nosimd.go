//go:build !(goexperiment.simd && amd64)

package trainer

// adamwRange is adamwScalar where archsimd is not available.
func adamwRange(p, m, v, g []float32, k adamwStep) { adamwScalar(p, m, v, g, k) }
