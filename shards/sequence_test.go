package shards

import (
	"reflect"
	"testing"
)

func TestSequenceValidate(t *testing.T) {
	tests := []struct {
		name   string
		s      Sequence
		seqLen int
		ok     bool
	}{
		{"one doc", Sequence{Tokens: make([]uint32, 4), Starts: []uint32{0}}, 4, true},
		{"two docs and pad", Sequence{Tokens: make([]uint32, 6), Starts: []uint32{0, 3}, Pad: 1}, 6, true},
		{"short", Sequence{Tokens: make([]uint32, 3), Starts: []uint32{0}}, 4, false},
		{"no start", Sequence{Tokens: make([]uint32, 4)}, 4, false},
		{"unordered", Sequence{Tokens: make([]uint32, 6), Starts: []uint32{0, 3, 2}}, 6, false},
		{"boundary in pad", Sequence{Tokens: make([]uint32, 6), Starts: []uint32{0, 5}, Pad: 2}, 6, false},
		{"all pad", Sequence{Tokens: make([]uint32, 4), Starts: []uint32{0}, Pad: 4}, 4, false},
	}
	for _, tc := range tests {
		if err := tc.s.Validate(tc.seqLen); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSequenceDocIDs(t *testing.T) {
	s := Sequence{Tokens: make([]uint32, 7), Starts: []uint32{0, 2, 5}, Pad: 1}
	doc, pos := s.DocIDs()
	if want := []int32{0, 0, 1, 1, 1, 2, 3}; !reflect.DeepEqual(doc, want) {
		t.Errorf("doc = %v, want %v", doc, want)
	}
	if want := []int32{0, 1, 0, 1, 2, 0, 1}; !reflect.DeepEqual(pos, want) {
		t.Errorf("pos = %v, want %v", pos, want)
	}
}
