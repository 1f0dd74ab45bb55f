package shards

import (
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// Piece is a contiguous run of at most seq_len tokens of one repetition of
// one document. Long documents become several pieces; the packer never splits
// a piece.
type Piece struct {
	Source string
	DocID  string
	Rep    int
	Offset int64  // where the piece begins in the document
	Order  uint64 // tie-break among equal lengths: a hash of (seed, source, id, rep)
	Tokens []uint32
}

// Split cuts one document repetition into pieces of seqLen tokens and a
// shorter last piece. The pieces alias tokens.
func Split(source, id string, rep int, order uint64, tokens []uint32, seqLen int) []Piece {
	out := make([]Piece, 0, (len(tokens)+seqLen-1)/seqLen)
	for off := 0; off < len(tokens); off += seqLen {
		end := min(off+seqLen, len(tokens))
		out = append(out, Piece{Source: source, DocID: id, Rep: rep, Offset: int64(off), Order: order, Tokens: tokens[off:end]})
	}
	return out
}

// PackStats counts what packing did. Fill = Real / (Sequences * seq_len).
type PackStats struct {
	Sequences int64 `json:"sequences"`
	Real      int64 `json:"real_tokens"`
	Pad       int64 `json:"pad_tokens"`
	Pieces    int64 `json:"pieces"`
	// FullPieces are pieces of exactly seq_len tokens (from split documents).
	FullPieces int64 `json:"full_pieces"`
	// Cuts are pieces cut again to fill another sequence's free space.
	Cuts int64 `json:"cuts"`
}

// Add accumulates o into s.
func (s *PackStats) Add(o PackStats) {
	s.Sequences += o.Sequences
	s.Real += o.Real
	s.Pad += o.Pad
	s.Pieces += o.Pieces
	s.FullPieces += o.FullPieces
	s.Cuts += o.Cuts
}

// Fill is the fraction of sequence slots holding real tokens.
func (s PackStats) Fill() float64 {
	if s.Real+s.Pad == 0 {
		return 0
	}
	return float64(s.Real) / float64(s.Real+s.Pad)
}

// Pack places pieces into sequences of exactly seqLen tokens by best-fit
// decreasing: longest piece first, each into the open sequence whose free
// space fits it most tightly, a new sequence when none does. Then the
// emptiest sequences are dissolved into the others' free space while it can
// hold them (cutting pieces as needed), so padding remains only where the
// tokens cannot fill another sequence. The result depends
// only on the multiset of pieces (ties broken by Order, DocID, Rep, Offset),
// not on their input order.
func Pack(pieces []Piece, seqLen int) ([]Sequence, PackStats, error) {
	ps := slices.Clone(pieces)
	slices.SortFunc(ps, func(a, b Piece) int {
		if c := cmp.Compare(len(b.Tokens), len(a.Tokens)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Order, b.Order); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		if c := cmp.Compare(a.DocID, b.DocID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Rep, b.Rep); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	var st PackStats
	type bin struct {
		parts [][]uint32
		free  int
	}
	var bins []bin
	free := newFreeIndex(seqLen)
	// open[f] holds the open bins with f free tokens (a stack: the most
	// recently touched bin wins ties, deterministically).
	open := make([][]int, seqLen+1)
	for _, p := range ps {
		n := len(p.Tokens)
		if n == 0 {
			continue
		}
		if n > seqLen {
			return nil, st, fmt.Errorf("pack: piece of document %q (source %q, offset %d) has %d tokens, more than seq_len %d",
				p.DocID, p.Source, p.Offset, n, seqLen)
		}
		st.Pieces++
		st.Real += int64(n)
		if n == seqLen {
			st.FullPieces++
		}
		b := -1
		if f := free.first(n); f >= 0 {
			stack := open[f]
			b = stack[len(stack)-1]
			open[f] = stack[:len(stack)-1]
			free.add(f, -1)
		} else {
			bins = append(bins, bin{free: seqLen})
			b = len(bins) - 1
		}
		bins[b].parts = append(bins[b].parts, p.Tokens)
		bins[b].free -= n
		if f := bins[b].free; f > 0 {
			open[f] = append(open[f], b)
			free.add(f, 1)
		}
	}
	// Best fit leaves free space in many sequences when pieces are large
	// relative to seq_len. While the other sequences' free space can hold
	// the emptiest sequence, dissolve it into them, cutting a piece where no
	// gap takes it whole (one more boundary inside that document). Padding
	// then stays only where the tokens cannot fill another sequence.
	var totalFree int
	for _, b := range bins {
		totalFree += b.free
	}
	dead := make([]bool, len(bins))
	for {
		v := -1
		for i, b := range bins {
			if !dead[i] && b.free > 0 && (v < 0 || b.free >= bins[v].free) {
				v = i
			}
		}
		if v < 0 || totalFree-bins[v].free < seqLen-bins[v].free {
			break
		}
		dead[v] = true
		totalFree -= bins[v].free
		for _, part := range bins[v].parts {
			for len(part) > 0 {
				// Tightest gap that takes the rest whole, else the largest gap.
				fit, big := -1, -1
				for i, b := range bins {
					if dead[i] || b.free == 0 {
						continue
					}
					if b.free >= len(part) && (fit < 0 || b.free < bins[fit].free) {
						fit = i
					}
					if big < 0 || b.free > bins[big].free {
						big = i
					}
				}
				b, n := fit, len(part)
				if b < 0 {
					b, n = big, bins[big].free
					st.Cuts++
					st.Pieces++
				}
				bins[b].parts = append(bins[b].parts, part[:n])
				bins[b].free -= n
				totalFree -= n
				part = part[n:]
			}
		}
	}
	seqs := make([]Sequence, 0, len(bins))
	for i, b := range bins {
		if dead[i] {
			continue
		}
		s := Sequence{Tokens: make([]uint32, 0, seqLen), Starts: make([]uint32, 0, len(b.parts)), Pad: uint32(b.free)}
		for _, part := range b.parts {
			s.Starts = append(s.Starts, uint32(len(s.Tokens)))
			s.Tokens = append(s.Tokens, part...)
		}
		s.Tokens = s.Tokens[:seqLen] // padding tokens are zero
		seqs = append(seqs, s)
		st.Pad += int64(b.free)
	}
	st.Sequences = int64(len(seqs))
	return seqs, st, nil
}

// Shuffle permutes sequences in place with a PCG seeded by seed.
func Shuffle(seqs []Sequence, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5e9))
	r.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
}

// freeIndex counts open bins by free space and finds the smallest free space
// >= n that some open bin has, in O(log seq_len).
type freeIndex struct {
	size  int // leaves, a power of two > seqLen
	count []int32
}

func newFreeIndex(seqLen int) *freeIndex {
	size := 1 << bits.Len(uint(seqLen))
	return &freeIndex{size: size, count: make([]int32, 2*size)}
}

func (f *freeIndex) add(at, d int) {
	for i := at + f.size; i >= 1; i >>= 1 {
		f.count[i] += int32(d)
	}
}

// first returns the smallest index >= lo with a non-zero count, or -1.
func (f *freeIndex) first(lo int) int {
	if lo >= f.size {
		return -1
	}
	// Walk up from leaf lo; whenever we are a left child, the right sibling
	// covers indices > lo: descend into the first non-empty one.
	i := lo + f.size
	if f.count[i] > 0 {
		return lo
	}
	for i > 1 {
		if i&1 == 0 && f.count[i+1] > 0 {
			i++
			for i < f.size {
				if f.count[2*i] > 0 {
					i = 2 * i
				} else {
					i = 2*i + 1
				}
			}
			return i - f.size
		}
		i >>= 1
	}
	return -1
}

// LengthHist counts lengths in power-of-two buckets: bucket k holds lengths
// in [2^k, 2^(k+1)); bucket 0 also holds length 0.
type LengthHist struct {
	Counts [40]int64 `json:"counts"`
	Tokens [40]int64 `json:"tokens"`
}

// Add counts one length.
func (h *LengthHist) Add(n int64) {
	k := 0
	if n > 0 {
		k = bits.Len64(uint64(n)) - 1
	}
	if k >= len(h.Counts) {
		k = len(h.Counts) - 1
	}
	h.Counts[k]++
	h.Tokens[k] += n
}

// Merge adds o into h.
func (h *LengthHist) Merge(o LengthHist) {
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
		h.Tokens[i] += o.Tokens[i]
	}
}
