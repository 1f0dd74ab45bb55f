package tokenizer

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
)

// load64 reads 8 bytes of s at i, little-endian.
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64([]byte(s[i : i+8]))
}

// Cache limits: a pre-token longer than maxCachedPiece bytes is merged each
// time; the cache has cacheSlots direct-mapped slots and is cleared when its
// arenas reach maxCacheIDs entries.
const (
	maxCachedPiece = 255
	cacheBits      = 15
	cacheSlots     = 1 << cacheBits
	maxCacheIDs    = 1 << 20
)

// pieceCache maps pre-token bytes to ids: a direct-mapped table of 32-byte
// slots small enough to stay in the CPU caches. Pieces of up to 16 bytes are
// stored packed in the slot (no hashing or byte comparison), and up to two
// ids inline; longer keys and id lists go to arenas. A Go map costs about a
// third of the encoder's time here.
type pieceCache struct {
	seed  maphash.Seed
	slots []cacheSlot
	keys  []byte
	ids   []uint32
}

type cacheSlot struct {
	lo, hi uint64 // packed bytes (<= 16 bytes); or hash and key arena offset
	a, b   uint32 // the ids (idLen <= 2) or a = id arena offset
	keyLen uint8  // 0: empty
	idLen  uint8
}

func newPieceCache() pieceCache {
	return pieceCache{seed: maphash.MakeSeed(), slots: make([]cacheSlot, cacheSlots)}
}

// key packs p (little-endian) when it has at most 16 bytes, else hashes it.
func (c *pieceCache) key(p string) (lo, hi uint64, slot int) {
	n := len(p)
	switch {
	case n >= 8 && n <= 16:
		lo = load64(p, 0)
		hi = load64(p, n-8) >> (8 * (16 - n)) // the bytes after the first 8
	case n < 8:
		for k := 0; k < n; k++ {
			lo |= uint64(p[k]) << (8 * k)
		}
	default:
		lo = maphash.String(c.seed, p)
	}
	h := (lo ^ hi*0x9E3779B97F4A7C15 ^ uint64(n)) * 0xBF58476D1CE4E5B9
	return lo, hi, int(h >> (64 - cacheBits))
}

// appendCached appends the cached ids of p to dst. On a miss it returns ok
// false and the key for put.
func (c *pieceCache) appendCached(dst []uint32, p string) (_ []uint32, lo, hi uint64, slot int, ok bool) {
	lo, hi, slot = c.key(p)
	s := &c.slots[slot]
	if s.lo != lo || int(s.keyLen) != len(p) {
		return dst, lo, hi, slot, false
	}
	if len(p) <= 16 {
		if s.hi != hi {
			return dst, lo, hi, slot, false
		}
	} else if string(c.keys[s.hi:s.hi+uint64(s.keyLen)]) != p {
		return dst, lo, hi, slot, false
	}
	switch s.idLen {
	case 1:
		dst = append(dst, s.a)
	case 2:
		dst = append(dst, s.a, s.b)
	default:
		dst = append(dst, c.ids[s.a:s.a+uint32(s.idLen)]...)
	}
	return dst, lo, hi, slot, true
}

func (c *pieceCache) put(p string, lo, hi uint64, slot int, ids []uint32) {
	if len(ids) == 0 || len(ids) > 255 || len(p) > 255 {
		return
	}
	if len(c.ids)+len(ids) > maxCacheIDs || len(c.keys)+len(p) > maxCacheIDs {
		clear(c.slots)
		c.keys, c.ids = c.keys[:0], c.ids[:0]
	}
	s := cacheSlot{lo: lo, hi: hi, keyLen: uint8(len(p)), idLen: uint8(len(ids))}
	if len(p) > 16 {
		s.hi = uint64(len(c.keys))
		c.keys = append(c.keys, p...)
	}
	switch len(ids) {
	case 1:
		s.a = ids[0]
	case 2:
		s.a, s.b = ids[0], ids[1]
	default:
		s.a = uint32(len(c.ids))
		c.ids = append(c.ids, ids...)
	}
	c.slots[slot] = s
}

// encoder holds one goroutine's scratch space and pre-token cache.
type encoder struct {
	t     *Tokenizer
	cls   *classTable
	cache pieceCache

	syms, ranks, ids []uint32
	next, prev       []int32
	heap             []uint64

	countBuf []uint32
	counting bool // count mode: ids are dropped after each piece
	n        int
}

func newEncoder(t *Tokenizer) *encoder {
	plain, digits := classTables()
	e := &encoder{t: t, cls: plain, cache: newPieceCache()}
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
		if t.addedOneFirst >= 0 {
			// All added tokens start with the same byte ('<' for SmolLM2):
			// let IndexByte skip to candidates.
			k := strings.IndexByte(s[i:], byte(t.addedOneFirst))
			if k < 0 {
				return -1, 0, 0
			}
			i += k
		} else if !t.addedFirst[s[i]] {
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
		var lo, hi uint64
		var slot int
		var ok bool
		if dst, lo, hi, slot, ok = e.cache.appendCached(dst, p); ok {
			break
		}
		dst = e.bpe(p, dst)
		e.cache.put(p, lo, hi, slot, dst[start:])
	default:
		dst = e.bpe(p, dst)
	}
	if e.counting {
		e.n += len(dst)
		dst = dst[:0]
	}
	return dst
}
