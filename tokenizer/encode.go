package tokenizer

import (
	"strings"
)

// Cache limits: a pre-token longer than maxCachedPiece bytes is merged each
// time; the cache is cleared when it holds maxCacheEntries pieces.
const (
	maxCachedPiece  = 64
	maxCacheEntries = 1 << 17
)

// encoder holds one goroutine's scratch space and pre-token cache.
type encoder struct {
	t     *Tokenizer
	cls   *classTable
	cache map[string]uint64 // piece -> offset<<32 | length in arena
	arena []uint32

	syms, ranks, ids []uint32
	next, prev       []int32
	heap             []uint64

	countBuf []uint32
	counting bool // count mode: ids are dropped after each piece
	n        int
}

func newEncoder(t *Tokenizer) *encoder {
	plain, digits := classTables()
	e := &encoder{t: t, cls: plain, cache: make(map[string]uint64, 1024)}
	if t.digits {
		e.cls = digits
	}
	return e
}

func (e *encoder) count(text string) int {
	e.counting, e.n = true, 0
	buf := e.encode(text, e.countBuf[:0])
	e.countBuf = buf[:0]
	e.counting = false
	return e.n + len(buf)
}

// encode appends the ids of text to dst.
func (e *encoder) encode(text string, dst []uint32) []uint32 {
	text, _ = SanitizeUTF8(text)
	t := e.t
	for len(text) > 0 {
		at, n, id := t.nextAdded(text)
		if at < 0 {
			return e.segment(text, dst)
		}
		dst = e.segment(text[:at], dst)
		dst = append(dst, id)
		if e.counting {
			e.n += len(dst)
			dst = dst[:0]
		}
		text = text[at+n:]
	}
	return dst
}

// nextAdded finds the leftmost added token in s, longest on ties (the
// leftmost-longest rule of tokenizers' Aho-Corasick matcher).
func (t *Tokenizer) nextAdded(s string) (at, n int, id uint32) {
	if len(t.added) == 0 {
		return -1, 0, 0
	}
	for i := 0; i < len(s); i++ {
		if !t.addedFirst[s[i]] {
			continue
		}
		best := -1
		for k := range t.added {
			c := t.added[k].content
			if len(c) > n && strings.HasPrefix(s[i:], c) {
				best, n = k, len(c)
			}
		}
		if best >= 0 {
			return i, n, t.added[best].id
		}
	}
	return -1, 0, 0
}

// segment pre-tokenizes s (text between added tokens) and appends the ids of
// each pre-token. The scanner matches, at each position, the first
// alternative of the GPT-2 regex that matches, exactly as a backtracking
// engine would:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// With a Digits step, each numeric char (or run, without individual_digits)
// is its own pre-token and ends the regex's input, as tokenizers runs the
// regex on each Digits piece separately.
func (e *encoder) segment(s string, dst []uint32) []uint32 {
	ct := e.cls
	for i := 0; i < len(s); {
		c, n := ct.at(s, i)
		j := i + n
		switch c {
		case clsB:
			if !e.t.digitsEach {
				j = e.run(s, j, clsB)
			}
		case clsL, clsN:
			j = e.run(s, j, c)
		case clsO:
			if s[i] == '\'' {
				if k := contraction(s[i+1:]); k > 0 {
					j = i + 1 + k
					break
				}
			}
			j = e.run(s, j, clsO)
		case clsS:
			if s[i] == ' ' && j < len(s) {
				if c2, n2 := ct.at(s, j); c2 == clsL || c2 == clsN || c2 == clsO {
					j = e.run(s, j+n2, c2)
					break
				}
			}
			// \s+(?!\S) takes a run of 2+ chars minus its last when a non-space
			// follows; otherwise \s+ takes the whole run.
			chars, last := 1, n
			for j < len(s) {
				c2, n2 := ct.at(s, j)
				if c2 != clsS {
					if chars >= 2 && c2 != clsB {
						j -= last
					}
					break
				}
				j += n2
				chars, last = chars+1, n2
			}
		}
		dst = e.piece(s[i:j], dst)
		i = j
	}
	return dst
}

// run returns the end of the run of class c starting at j.
func (e *encoder) run(s string, j int, c uint8) int {
	ct := e.cls
	for j < len(s) {
		if b := s[j]; b < 0x80 {
			if ct.ascii[b] != c {
				return j
			}
			j++
			continue
		}
		c2, n2 := ct.at(s, j)
		if c2 != c {
			return j
		}
		j += n2
	}
	return j
}

// contraction returns the length of the contraction suffix ('s, 't, 're, 've,
// 'm, 'll, 'd; case-sensitive) at the start of s, the text after the quote.
func contraction(s string) int {
	if len(s) == 0 {
		return 0
	}
	switch s[0] {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(s) > 1 && s[1] == 'e' {
			return 2
		}
	case 'l':
		if len(s) > 1 && s[1] == 'l' {
			return 2
		}
	}
	return 0
}

// piece appends the ids of one pre-token, through the cache.
func (e *encoder) piece(p string, dst []uint32) []uint32 {
	start := len(dst)
	switch {
	case len(p) == 1:
		if id := e.t.byteID[p[0]]; id >= 0 {
			dst = append(dst, uint32(id))
		}
	case len(p) <= maxCachedPiece:
		if v, ok := e.cache[p]; ok {
			dst = append(dst, e.arena[v>>32:v>>32+v&0xffffffff]...)
			break
		}
		dst = e.bpe(p, dst)
		if len(e.cache) >= maxCacheEntries {
			clear(e.cache)
			e.arena = e.arena[:0]
		}
		off := len(e.arena)
		e.arena = append(e.arena, dst[start:]...)
		e.cache[strings.Clone(p)] = uint64(off)<<32 | uint64(len(dst)-start)
	default:
		dst = e.bpe(p, dst)
	}
	if e.counting {
		e.n += len(dst)
		dst = dst[:0]
	}
	return dst
}
