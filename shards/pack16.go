package shards

// pack16Scalar stores tokens as little-endian uint16 in dst (2 bytes each)
// and returns the OR of all ids: above 0xffff means one did not fit and dst
// holds truncated ids.
func pack16Scalar(dst []byte, tokens []uint32) uint32 {
	var all uint32
	dst = dst[:2*len(tokens)]
	for i, t := range tokens {
		all |= t
		dst[2*i] = byte(t)
		dst[2*i+1] = byte(t >> 8)
	}
	return all
}
