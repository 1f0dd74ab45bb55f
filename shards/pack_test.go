package shards

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// docTokens gives each token a unique value (doc<<20 | position) so lost or
// duplicated tokens show.
func docTokens(doc, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(doc)<<20 | uint32(i)
	}
	return t
}

func randomPieces(r *rand.Rand, ndocs, seqLen int, mean int) ([]Piece, map[uint32]int) {
	var ps []Piece
	want := map[uint32]int{}
	for d := 0; d < ndocs; d++ {
		n := 1 + r.IntN(2*mean)
		toks := docTokens(d, n)
		for _, tok := range toks {
			want[tok]++
		}
		ps = append(ps, Split("s", fmt.Sprint(d), 0, r.Uint64(), toks, seqLen)...)
	}
	return ps, want
}

func TestPackProperties(t *testing.T) {
	tests := []struct {
		name          string
		seqLen, ndocs int
		mean          int
	}{
		{"short docs", 64, 500, 10},
		{"mixed", 128, 300, 100},
		{"long docs", 32, 50, 300},
		{"one token docs", 8, 30, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.seqLen)))
			ps, want := randomPieces(r, tc.ndocs, tc.seqLen, tc.mean)
			seqs, st, err := Pack(ps, tc.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint32]int{}
			var real, pad int64
			for i, s := range seqs {
				if err := s.Validate(tc.seqLen); err != nil {
					t.Fatalf("sequence %d: %v", i, err)
				}
				for _, tok := range s.Tokens[:tc.seqLen-int(s.Pad)] {
					got[tok]++
				}
				real += int64(tc.seqLen - int(s.Pad))
				pad += int64(s.Pad)
				// Every piece starts at a boundary and pieces are contiguous
				// runs of one document.
				for k, st := range s.Starts {
					end := uint32(tc.seqLen) - s.Pad
					if k+1 < len(s.Starts) {
						end = s.Starts[k+1]
					}
					for j := st + 1; j < end; j++ {
						if s.Tokens[j] != s.Tokens[j-1]+1 {
							t.Fatalf("sequence %d piece %d: tokens %x, %x not contiguous", i, k, s.Tokens[j-1], s.Tokens[j])
						}
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("tokens lost or duplicated: %d distinct packed, %d distinct given", len(got), len(want))
			}
			if st.Real != real || st.Pad != pad || st.Sequences != int64(len(seqs)) {
				t.Errorf("stats %+v disagree with sequences (real %d pad %d n %d)", st, real, pad, len(seqs))
			}
			// Input order does not matter.
			shuffled := append([]Piece(nil), ps...)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, _, _ := Pack(shuffled, tc.seqLen)
			if !reflect.DeepEqual(seqs, again) {
				t.Errorf("packing depends on input order")
			}
		})
	}
}

// Best fit: a piece goes to the open sequence it fills most tightly.
func TestPackBestFit(t *testing.T) {
	mk := func(id string, n int) Piece { return Piece{Source: "s", DocID: id, Tokens: docTokens(len(id), n)} }
	// Decreasing: 6 (bin A, free 4), 5 (bin B, free 5), 4 -> A (tight, free 0), 3 -> B (free 2), 2 -> B, 1 -> new C.
	seqs, st, err := Pack([]Piece{mk("a", 2), mk("b", 4), mk("c", 6), mk("d", 1), mk("e", 5), mk("f", 3)}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var lens [][]int
	for _, s := range seqs {
		var l []int
		for k := range s.Starts {
			end := 10 - int(s.Pad)
			if k+1 < len(s.Starts) {
				end = int(s.Starts[k+1])
			}
			l = append(l, end-int(s.Starts[k]))
		}
		lens = append(lens, l)
	}
	want := [][]int{{6, 4}, {5, 3, 2}, {1}}
	if !reflect.DeepEqual(lens, want) {
		t.Errorf("bins %v, want %v", lens, want)
	}
	if st.Pad != 9 || st.Real != 21 {
		t.Errorf("stats %+v", st)
	}
	if _, _, err := Pack([]Piece{mk("toolong", 11)}, 10); err == nil {
		t.Error("a piece longer than seq_len was accepted")
	}
}

func TestFreeIndex(t *testing.T) {
	f := newFreeIndex(20)
	if f.first(0) != -1 {
		t.Fatal("empty index found something")
	}
	f.add(5, 1)
	f.add(17, 1)
	for _, tc := range [][2]int{{0, 5}, {5, 5}, {6, 17}, {17, 17}, {18, -1}, {31, -1}, {40, -1}} {
		if got := f.first(tc[0]); got != tc[1] {
			t.Errorf("first(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
	f.add(5, -1)
	if got := f.first(0); got != 17 {
		t.Errorf("after removal first(0) = %d", got)
	}
}

func TestPackFillRealistic(t *testing.T) {
	// Books ≈100k tokens and web ≈1k at seq_len 16384: the many short
	// documents fill the gaps the books' last pieces leave.
	const seqLen = 16384
	r := rand.New(rand.NewPCG(3, 4))
	var ps []Piece
	for d := 0; d < 40; d++ {
		ps = append(ps, Split("books", fmt.Sprint(d), 0, r.Uint64(), make([]uint32, 50_000+r.IntN(100_000)), seqLen)...)
	}
	for d := 0; d < 4000; d++ {
		ps = append(ps, Split("web", fmt.Sprint(d), 0, r.Uint64(), make([]uint32, 100+r.IntN(1800)), seqLen)...)
	}
	_, st, err := Pack(ps, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fill() < 0.995 {
		t.Errorf("fill %.4f < 0.995 (%+v)", st.Fill(), st)
	}
}

// Pieces too large to pair leave a sequence each after best fit; dissolving
// the emptiest sequences into the others' gaps reaches the fewest sequences.
func TestPackDissolve(t *testing.T) {
	var ps []Piece
	want := map[uint32]int{}
	for d := 0; d < 5; d++ {
		toks := docTokens(d, 6)
		for _, v := range toks {
			want[v]++
		}
		ps = append(ps, Piece{Source: "s", DocID: fmt.Sprint(d), Tokens: toks})
	}
	seqs, st, err := Pack(ps, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 3 || st.Pad != 0 || st.Cuts == 0 {
		t.Fatalf("%d sequences, stats %+v; want 3 sequences without padding", len(seqs), st)
	}
	got := map[uint32]int{}
	var starts int64
	for _, s := range seqs {
		if err := s.Validate(10); err != nil {
			t.Fatal(err)
		}
		starts += int64(len(s.Starts))
		for _, v := range s.Tokens {
			got[v]++
		}
	}
	if !reflect.DeepEqual(got, want) || starts != st.Pieces {
		t.Errorf("tokens or pieces changed: %d starts, %d pieces", starts, st.Pieces)
	}
}
