package tokenizer

import "math/bits"

const noRank = ^uint32(0)

// pairTable maps a token-id pair to its merge rank and merged id, with open
// addressing on a 64-bit pair key (a Go map is ~3x slower here).
type pairTable struct {
	keys  []uint64
	vals  []uint64 // rank<<32 | merged id
	shift uint
}

const emptyKey = ^uint64(0)

func newPairTable(n int) pairTable {
	size := 1 << bits.Len(uint(2*n+16))
	p := pairTable{keys: make([]uint64, size), vals: make([]uint64, size), shift: uint(64 - bits.Len(uint(size-1)))}
	for i := range p.keys {
		p.keys[i] = emptyKey
	}
	return p
}

func (p *pairTable) slot(key uint64) int {
	mask := len(p.keys) - 1
	i := int((key * 0x9E3779B97F4A7C15) >> p.shift)
	for p.keys[i] != key && p.keys[i] != emptyKey {
		i = (i + 1) & mask
	}
	return i
}

func (p *pairTable) put(a, b, rank, id uint32) {
	key := uint64(a)<<32 | uint64(b)
	i := p.slot(key)
	p.keys[i] = key
	p.vals[i] = uint64(rank)<<32 | uint64(id)
}

// get returns the rank and merged id of (a, b); rank is noRank when absent.
func (p *pairTable) get(a, b uint32) (rank, id uint32) {
	key := uint64(a)<<32 | uint64(b)
	mask := len(p.keys) - 1
	i := int((key * 0x9E3779B97F4A7C15) >> p.shift)
	for {
		k := p.keys[i]
		if k == key {
			v := p.vals[i]
			return uint32(v >> 32), uint32(v)
		}
		if k == emptyKey {
			return noRank, 0
		}
		i = (i + 1) & mask
	}
}

// longWord is the symbol count above which merging switches from repeated
// scans (quadratic, fast for short words) to a heap over a linked list.
const longWord = 96

// bpe appends the ids of one pre-token (raw UTF-8 bytes) to dst. Bytes whose
// byte-level symbol is not in the vocabulary are dropped before merging, as
// tokenizers does without an unk token. Merges apply lowest rank first,
// leftmost on equal rank.
func (e *encoder) bpe(p string, dst []uint32) []uint32 {
	t := e.t
	syms := e.syms[:0]
	for i := 0; i < len(p); i++ {
		if id := t.byteID[p[i]]; id >= 0 {
			syms = append(syms, uint32(id))
		}
	}
	e.syms = syms
	if len(syms) > longWord {
		return e.bpeLong(dst)
	}
	if len(syms) < 2 {
		return append(dst, syms...)
	}
	ranks, ids := e.ranks[:0], e.ids[:0]
	for k := 0; k+1 < len(syms); k++ {
		r, id := t.merges.get(syms[k], syms[k+1])
		ranks = append(ranks, r)
		ids = append(ids, id)
	}
	for len(ranks) > 0 {
		best, bi := noRank, -1
		for k, r := range ranks {
			if r < best {
				best, bi = r, k
			}
		}
		if bi < 0 {
			break
		}
		syms[bi] = ids[bi]
		syms = append(syms[:bi+1], syms[bi+2:]...)
		ranks = append(ranks[:bi], ranks[bi+1:]...)
		ids = append(ids[:bi], ids[bi+1:]...)
		if bi < len(ranks) {
			ranks[bi], ids[bi] = t.merges.get(syms[bi], syms[bi+1])
		}
		if bi > 0 {
			ranks[bi-1], ids[bi-1] = t.merges.get(syms[bi-1], syms[bi])
		}
	}
	e.ranks, e.ids = ranks, ids
	return append(dst, syms...)
}

// bpeLong merges e.syms with a min-heap of (rank, position) over a doubly
// linked list: O(n log n) for minified code, base64 and long CJK runs.
func (e *encoder) bpeLong(dst []uint32) []uint32 {
	t := e.t
	syms := e.syms
	n := len(syms)
	next, prev := e.next[:0], e.prev[:0]
	for i := range n {
		next = append(next, int32(i+1))
		prev = append(prev, int32(i-1))
	}
	next[n-1] = -1
	h := e.heap[:0]
	push := func(pos int32) {
		q := next[pos]
		if q < 0 {
			return
		}
		if r, _ := t.merges.get(syms[pos], syms[q]); r != noRank {
			h = heapPush(h, uint64(r)<<32|uint64(pos))
		}
	}
	for i := 0; i+1 < n; i++ {
		push(int32(i))
	}
	const dead = ^uint32(0)
	for len(h) > 0 {
		var top uint64
		h, top = heapPop(h)
		pos := int32(uint32(top))
		if syms[pos] == dead {
			continue
		}
		q := next[pos]
		if q < 0 {
			continue
		}
		r, id := t.merges.get(syms[pos], syms[q])
		if r != uint32(top>>32) {
			continue // stale: a neighbour changed since this entry was pushed
		}
		syms[pos] = id
		syms[q] = dead
		nq := next[q]
		next[pos] = nq
		if nq >= 0 {
			prev[nq] = pos
		}
		if pp := prev[pos]; pp >= 0 {
			push(pp)
		}
		push(pos)
	}
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, syms[i])
	}
	e.next, e.prev, e.heap = next, prev, h
	return dst
}

func heapPush(h []uint64, v uint64) []uint64 {
	h = append(h, v)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= v {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = v
	return h
}

func heapPop(h []uint64) ([]uint64, uint64) {
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	n := len(h)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1] < h[c] {
			c++
		}
		if last <= h[c] {
			break
		}
		h[i] = h[c]
		i = c
	}
	if n > 0 {
		h[i] = last
	}
	return h, top
}
