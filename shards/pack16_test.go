package shards

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestPack16MatchesScalar: the vector packing stores the same bytes and
// reports an id over 16 bits wherever it is (vector body or scalar tail).
func TestPack16MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 100, 1024, 4099} {
		for _, big := range []int{-1, 0, n / 2, n - 1} {
			if big >= n {
				continue
			}
			tokens := make([]uint32, n)
			for i := range tokens {
				tokens[i] = uint32(r.IntN(49152))
			}
			if big >= 0 {
				tokens[big] = 70000
			}
			want, got := make([]byte, 2*n), make([]byte, 2*n)
			wantAll := pack16Scalar(want, tokens)
			gotAll := pack16(got, tokens)
			if !bytes.Equal(want, got) {
				t.Fatalf("n=%d big=%d: bytes differ", n, big)
			}
			if (wantAll > 0xffff) != (gotAll > 0xffff) || (big >= 0) != (gotAll > 0xffff) {
				t.Fatalf("n=%d big=%d: overflow reported %v, scalar %v", n, big, gotAll > 0xffff, wantAll > 0xffff)
			}
		}
	}
}
