// Package shards holds the on-disk formats between the data stages and the
// trainer: token caches (tokenized documents), packed sequences and shards,
// exporters to other trainers' formats, and the training data loader.
package shards

import "fmt"

// Sequence is one packed training sequence: exactly seq_len token ids made of
// whole documents and pieces of split documents, with the offsets where each
// begins so the trainer can reset positions and mask attention across
// documents.
type Sequence struct {
	Tokens []uint32 // len == seq_len; padding, if any, is at the end
	Starts []uint32 // offset of each document (piece) in Tokens; Starts[0] == 0, strictly increasing
	Pad    uint32   // padding tokens at the end of Tokens; they carry no loss
}

// Validate checks the invariants every producer and consumer relies on.
func (s Sequence) Validate(seqLen int) error {
	if len(s.Tokens) != seqLen {
		return fmt.Errorf("sequence has %d tokens, want %d", len(s.Tokens), seqLen)
	}
	if int(s.Pad) >= seqLen {
		return fmt.Errorf("sequence has %d padding tokens of %d", s.Pad, seqLen)
	}
	if len(s.Starts) == 0 || s.Starts[0] != 0 {
		return fmt.Errorf("sequence boundaries %v must start at 0", s.Starts)
	}
	end := uint32(seqLen) - s.Pad
	for i := 1; i < len(s.Starts); i++ {
		if s.Starts[i] <= s.Starts[i-1] || s.Starts[i] >= end {
			return fmt.Errorf("sequence boundary %d (%d) out of order or past the %d real tokens", i, s.Starts[i], end)
		}
	}
	return nil
}

// DocIDs returns, per token, the index of the document piece it belongs to
// (padding gets the index len(Starts)), and positions that restart at 0 at
// every boundary. The trainer builds its attention mask and RoPE positions
// from these.
func (s Sequence) DocIDs() (doc []int32, pos []int32) {
	n := len(s.Tokens)
	doc = make([]int32, n)
	pos = make([]int32, n)
	real := n - int(s.Pad)
	d := -1
	next := 0
	var start int
	for i := 0; i < n; i++ {
		if i >= real {
			doc[i] = int32(len(s.Starts))
			pos[i] = int32(i - start)
			continue
		}
		if next < len(s.Starts) && i == int(s.Starts[next]) {
			d, start = next, i
			next++
		}
		doc[i] = int32(d)
		pos[i] = int32(i - start)
	}
	return doc, pos
}
