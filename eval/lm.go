// Package eval measures checkpoints: GSM8k (lm-evaluation-harness protocol),
// passkey retrieval and needle-in-a-haystack at long context, perplexity by
// position, a regression gate between two reports and checkpoint selection.
//
// The package only needs a model through the small LM interface below, so it
// never imports the trainer; trainer.Model implements it and the CLI wires
// the two together.
package eval

// LM is what an evaluation needs from a language model.
type LM interface {
	// Generate greedily continues each prompt by at most maxNew tokens and
	// returns the new tokens only. After each new token of prompt i it calls
	// done(i, out) (when done is not nil); a true result finishes that prompt.
	// The model also finishes a prompt at its end-of-sequence token (which is
	// then left out of the output).
	Generate(prompts [][]uint32, maxNew int, done func(i int, out []uint32) bool) ([][]uint32, error)
	// TokenLosses returns the cross-entropy (nats) of predicting ids[t+1]
	// from ids[:t+1], for t = 0..len(ids)-2.
	TokenLosses(ids []uint32) ([]float32, error)
	// MaxPositions is the longest sequence the model accepts.
	MaxPositions() int
}

// Tokenizer turns text into token ids and back.
type Tokenizer interface {
	Encode(text string) []uint32
	Decode(ids []uint32) string
}

// Bytes is a byte-level tokenizer: one token per byte, ids 0..255. Tiny
// models trained in tests and sweeps use it; real checkpoints use their
// tokenizer.json.
type Bytes struct{}

// Encode returns the bytes of text as ids.
func (Bytes) Encode(text string) []uint32 {
	out := make([]uint32, len(text))
	for i := range len(text) {
		out[i] = uint32(text[i])
	}
	return out
}

// Decode returns the bytes of ids as a string; ids above 255 are dropped.
func (Bytes) Decode(ids []uint32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}
