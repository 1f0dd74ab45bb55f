// Package tokenizer encodes text with a Hugging Face tokenizer.json byte-level
// BPE tokenizer (GPT-2 style, as used by SmolLM2), producing ids identical to
// the Hugging Face tokenizers library.
//
// The encoder follows tokenizers' order of work: added tokens are matched in
// the raw text first (leftmost-longest); each text segment between them is
// split by the Digits pre-tokenizer and the GPT-2 regex (written here as a
// hand scanner, since Go's regexp has no lookahead); each pre-token's UTF-8
// bytes map to the byte-level alphabet, bytes absent from the vocabulary are
// dropped, and BPE merges apply lowest rank first, leftmost on ties.
//
// Configurations the encoder does not implement are refused by Load with an
// error naming the field, never encoded differently.
package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Tokenizer is a loaded tokenizer. It is safe for concurrent use: each call
// borrows an encoder (with its own pre-token cache) from a small pool.
type Tokenizer struct {
	hash  string
	vocab map[string]uint32 // model vocabulary plus added tokens
	// tokens[id] is the token string (byte-level alphabet for model tokens,
	// the literal content for added tokens).
	tokens []string
	added  []addedToken // matched in the raw text before pre-tokenizing
	// addedFirst marks bytes that can start an added token.
	addedFirst [256]bool
	// addedOneFirst is the first byte shared by all added tokens, or -1.
	addedOneFirst int
	eos           uint32

	digits      bool // Digits pre-tokenizer present
	digitsEach  bool // individual_digits: each numeric char is its own pre-token
	byteID      [256]int32
	merges      pairTable
	decodeBytes []byte // reverse byte-level map: rune (< 512) -> byte

	pool *sync.Pool // of *encoder
}

// addedToken is an added (usually special) token matched in raw text.
type addedToken struct {
	content string
	id      uint32
	special bool
}

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := LoadBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LoadBytes parses the contents of a tokenizer.json file.
func LoadBytes(data []byte) (*Tokenizer, error) {
	t, err := parse(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	t.hash = hex.EncodeToString(sum[:])
	t.pool = newEncoderPool(t)
	return t, nil
}

// WithSpecialsAsText returns a tokenizer that encodes special-token strings
// found in text as ordinary text, like transformers' split_special_tokens=True
// (tokenizers' encode_special_tokens). The default, which SmolLM2's data
// pipeline used, maps "<|endoftext|>" in a document to its id. Non-special
// added tokens are still matched. EncodeDoc still appends the EOS id.
func (t *Tokenizer) WithSpecialsAsText() *Tokenizer {
	c := *t
	c.added = nil
	c.addedFirst = [256]bool{}
	for _, a := range t.added {
		if !a.special {
			c.added = append(c.added, a)
			c.addedFirst[a.content[0]] = true
		}
	}
	c.setAddedFirst()
	c.pool = newEncoderPool(&c)
	return &c
}

// Hash is the hex sha256 of the tokenizer.json bytes, for lineage records.
func (t *Tokenizer) Hash() string { return t.hash }

// EOS is the id appended to each document by EncodeDoc: the id of
// <|endoftext|> when the tokenizer has it, else of the first special token.
func (t *Tokenizer) EOS() uint32 { return t.eos }

// VocabSize is the number of ids, added tokens included (max id + 1).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a token string (byte-level alphabet form for model
// tokens, e.g. "Ġthe"; literal content for added tokens).
func (t *Tokenizer) TokenID(s string) (uint32, bool) {
	id, ok := t.vocab[s]
	return id, ok
}

// Token returns the token string of an id, or "" and false when out of range.
func (t *Tokenizer) Token(id uint32) (string, bool) {
	if int(id) >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// Encode returns the ids of text, without EOS. Invalid UTF-8 is first replaced
// as SanitizeUTF8 does (as a Rust String built with from_utf8_lossy would hold).
func (t *Tokenizer) Encode(text string) []uint32 {
	e := t.get()
	ids := e.encode(text, make([]uint32, 0, len(text)/2+16))
	t.put(e)
	return ids
}

// EncodeDoc returns the ids of one document followed by EOS, as SmolLM2's
// data was tokenized (datatrove's `$A <EOS>` template, no BOS).
func (t *Tokenizer) EncodeDoc(text string) []uint32 {
	e := t.get()
	ids := e.encode(text, make([]uint32, 0, len(text)/2+16))
	t.put(e)
	return append(ids, t.eos)
}

// AppendDoc appends EncodeDoc(text) to dst and returns it: callers that
// reuse dst (prepare recycles one per document in flight) allocate nothing
// per document.
func (t *Tokenizer) AppendDoc(dst []uint32, text string) []uint32 {
	e := t.get()
	dst = e.encode(text, dst)
	t.put(e)
	return append(dst, t.eos)
}

// AppendEncode appends the ids of text to dst and returns it.
func (t *Tokenizer) AppendEncode(dst []uint32, text string) []uint32 {
	e := t.get()
	dst = e.encode(text, dst)
	t.put(e)
	return dst
}

// Count returns len(Encode(text)) without materialising the ids.
func (t *Tokenizer) Count(text string) int {
	e := t.get()
	n := e.count(text)
	t.put(e)
	return n
}

// EncodeBatch encodes texts on workers goroutines (GOMAXPROCS when
// workers <= 0), appending EOS to each when addEOS. Results keep input order.
func (t *Tokenizer) EncodeBatch(texts []string, addEOS bool, workers int) [][]uint32 {
	out := make([][]uint32, len(texts))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			e := t.get()
			defer t.put(e)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				ids := e.encode(texts[i], make([]uint32, 0, len(texts[i])/2+16))
				if addEOS {
					ids = append(ids, t.eos)
				}
				out[i] = ids
			}
		})
	}
	wg.Wait()
	return out
}

// Decode maps ids back to text with the ByteLevel decoder. Added tokens decode
// to their content (they are not skipped). Byte sequences that are not valid
// UTF-8 become U+FFFD as in SanitizeUTF8; ids out of range are skipped.
func (t *Tokenizer) Decode(ids []uint32) string {
	buf := make([]byte, 0, len(ids)*4)
	for _, id := range ids {
		if int(id) >= len(t.tokens) {
			continue
		}
		tok := t.tokens[id]
		if t.isAdded(id) {
			buf = append(buf, tok...)
			continue
		}
		for _, r := range tok {
			if int(r) < len(t.decodeBytes) {
				buf = append(buf, t.decodeBytes[r])
			}
		}
	}
	s, _ := SanitizeUTF8(string(buf))
	return s
}

func (t *Tokenizer) isAdded(id uint32) bool {
	for i := range t.added {
		if t.added[i].id == id {
			return true
		}
	}
	return false
}

// newEncoderPool keeps encoders per P (sync.Pool): a goroutine gets back
// the encoder last used on its CPU, whose 1 MB piece cache is still in that
// core's L2. A shared FIFO handed each call whichever encoder came next, its
// cache warm on the other core.
func newEncoderPool(t *Tokenizer) *sync.Pool {
	return &sync.Pool{New: func() any { return newEncoder(t) }}
}

// get borrows an encoder; its cache survives between calls (and a GC: the
// pool's victim cache hands it back at the next call).
func (t *Tokenizer) get() *encoder { return t.pool.Get().(*encoder) }

func (t *Tokenizer) put(e *encoder) { t.pool.Put(e) }

// SanitizeUTF8 returns s with each maximal ill-formed subsequence replaced by
// one U+FFFD, exactly as Rust's String::from_utf8_lossy (and Node's and
// WHATWG's UTF-8 decoders) do, and the number of U+FFFD inserted. A byte that
// can never start a sequence (0x80-0xC1, 0xF5-0xFF) is one subsequence; a
// truncated sequence such as E2 82 followed by 'A' is one subsequence too
// (one U+FFFD for two bytes). Valid input is returned unchanged without
// copying.
func SanitizeUTF8(s string) (clean string, replaced int) {
	if utf8.ValidString(s) {
		return s, 0
	}
	buf := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			buf = append(buf, c)
			i++
			continue
		}
		n, ok := maximalSubpart(s[i:])
		if ok {
			buf = append(buf, s[i:i+n]...)
		} else {
			buf = append(buf, "\uFFFD"...)
			replaced++
		}
		i += n
	}
	return string(buf), replaced
}

// maximalSubpart returns the length of the well-formed sequence at the start
// of s (ok) or of its maximal ill-formed prefix (!ok, at least 1).
func maximalSubpart(s string) (n int, ok bool) {
	c := s[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range allowed for the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1, false
	}
	i := 1
	for k := 0; k < need; k++ {
		if i >= len(s) || s[i] < lo || s[i] > hi {
			return i, false
		}
		i++
		lo, hi = 0x80, 0xBF
	}
	return i, true
}
