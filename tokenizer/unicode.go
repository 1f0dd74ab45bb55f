package tokenizer

import (
	"sync"
	"unicode/utf8"
)

// Character classes of the GPT-2 split regex. Every code point is in exactly
// one of L, N, S, O (checked when unicode_tables.go was generated); B marks a
// char the Digits pre-tokenizer isolates, which the regex sees as a segment
// end.
const (
	clsO uint8 = iota // [^\s\p{L}\p{N}]
	clsL              // \p{L}
	clsN              // \p{N}
	clsS              // \s
	clsB              // Rust char::is_numeric, when a Digits step is present
)

// classTable is a two-level lookup from code point to class.
type classTable struct {
	ascii  [utf8.RuneSelf]uint8
	stage1 []uint16 // code point >> 7 -> block
	blocks []uint8  // block<<7 | code point & 127 -> class
}

var (
	tablesOnce             sync.Once
	plainTable, digitTable *classTable
)

// classTables returns the tables without and with the Digits boundary class.
func classTables() (plain, digits *classTable) {
	tablesOnce.Do(func() {
		plainTable = buildClassTable(false)
		digitTable = buildClassTable(true)
	})
	return plainTable, digitTable
}

func buildClassTable(withDigits bool) *classTable {
	const n = utf8.MaxRune + 1
	cls := make([]uint8, n) // default clsO
	fill := func(rs [][2]rune, c uint8) {
		for _, r := range rs {
			for x := r[0]; x <= r[1]; x++ {
				cls[x] = c
			}
		}
	}
	fill(rangesL, clsL)
	fill(rangesN, clsN)
	fill(rangesS, clsS)
	if withDigits {
		fill(rangesNumeric, clsB)
	}
	t := &classTable{stage1: make([]uint16, n>>7)}
	seen := map[string]uint16{}
	for b := 0; b < n>>7; b++ {
		blk := cls[b<<7 : (b+1)<<7]
		idx, ok := seen[string(blk)]
		if !ok {
			idx = uint16(len(t.blocks) >> 7)
			seen[string(blk)] = idx
			t.blocks = append(t.blocks, blk...)
		}
		t.stage1[b] = idx
	}
	copy(t.ascii[:], cls[:utf8.RuneSelf])
	return t
}

// at returns the class and byte length of the char at s[i] (s is valid UTF-8).
func (t *classTable) at(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return t.ascii[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return t.blocks[int(t.stage1[r>>7])<<7|int(r&127)], n
}
