package trainer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"

	"longctx/shards"
)

// SequenceSource yields packed training sequences in a fixed order and can
// save and restore its position, so a resumed run sees exactly the sequences
// an uninterrupted run would have. The shards loader satisfies it through a
// thin adapter.
type SequenceSource interface {
	Next() (shards.Sequence, error)
	// State is an opaque snapshot of the position (stored in checkpoints).
	State() ([]byte, error)
	// Restore returns the source to a position returned by State.
	Restore(state []byte) error
}

// TokenStream is a SequenceSource over a flat token stream: consecutive
// windows of seqLen tokens, where a document ends after every EOS token. At
// the end of the stream it starts over (next epoch). Tests and small demos
// use it; real runs use the shards loader.
type TokenStream struct {
	tokens []uint32
	seqLen int
	eos    uint32
	next   int64 // sequences handed out so far
}

// NewTokenStream needs at least seqLen tokens.
func NewTokenStream(tokens []uint32, seqLen int, eos uint32) (*TokenStream, error) {
	if seqLen <= 1 || len(tokens) < seqLen {
		return nil, fmt.Errorf("token stream: %d tokens cannot fill sequences of %d", len(tokens), seqLen)
	}
	return &TokenStream{tokens: tokens, seqLen: seqLen, eos: eos}, nil
}

// Next returns the next window with its document starts.
func (s *TokenStream) Next() (shards.Sequence, error) {
	per := int64(len(s.tokens) / s.seqLen)
	off := int(s.next%per) * s.seqLen
	s.next++
	toks := s.tokens[off : off+s.seqLen]
	starts := []uint32{0}
	for i, t := range toks[:len(toks)-1] {
		if t == s.eos {
			starts = append(starts, uint32(i+1))
		}
	}
	return shards.Sequence{Tokens: toks, Starts: starts}, nil
}

type tokenStreamState struct {
	Next   int64 `json:"next"`
	SeqLen int   `json:"seq_len"`
	Tokens int   `json:"tokens"`
}

// State records how many sequences were handed out.
func (s *TokenStream) State() ([]byte, error) {
	return json.Marshal(tokenStreamState{Next: s.next, SeqLen: s.seqLen, Tokens: len(s.tokens)})
}

// Restore checks the state belongs to the same stream and seeks to it.
func (s *TokenStream) Restore(state []byte) error {
	var st tokenStreamState
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("token stream state: %v", err)
	}
	if st.SeqLen != s.seqLen || st.Tokens != len(s.tokens) {
		return fmt.Errorf("token stream state is for %d tokens in sequences of %d, this stream has %d in %d",
			st.Tokens, st.SeqLen, len(s.tokens), s.seqLen)
	}
	s.next = st.Next
	return nil
}

// ReadTokenFile reads a flat little-endian uint32 token file.
func ReadTokenFile(path string) ([]uint32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if len(data)%4 != 0 {
		return nil, fmt.Errorf("token file %s: %d bytes is not a whole number of uint32 tokens", path, len(data))
	}
	out := make([]uint32, len(data)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(data[4*i:])
	}
	return out, nil
}
