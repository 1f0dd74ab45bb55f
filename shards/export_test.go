package shards

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNanotronBytes(t *testing.T) {
	var ds, idx bytes.Buffer
	w, err := NewNanotronWriter(&ds, &idx, 2, 0) // SmolLM2: uint16, EOS id 0 appended
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range [][]uint32{{1, 2, 3}, {0x1234}} {
		if err := w.WriteDoc(d); err != nil {
			t.Fatal(err)
		}
	}
	wantDS := []byte{
		0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, // doc 0 + EOS
		0x34, 0x12, 0x00, 0x00, // doc 1 + EOS
	}
	wantIdx := []byte{
		0x04, 0, 0, 0, 0, 0, 0, 0,
		0x06, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(ds.Bytes(), wantDS) {
		t.Errorf(".ds = % x\nwant % x", ds.Bytes(), wantDS)
	}
	if !bytes.Equal(idx.Bytes(), wantIdx) {
		t.Errorf(".ds.index = % x\nwant % x", idx.Bytes(), wantIdx)
	}
	meta := NanotronMetadata("HuggingFaceTB/cosmo2-tokenizer", 2, w.Tokens)
	if want := "HuggingFaceTB/cosmo2-tokenizer|2\n6\n6.00 T"; meta != want {
		t.Errorf("metadata %q, want %q", meta, want)
	}
	docs, err := ReadNanotron(ds.Bytes(), idx.Bytes(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]uint32{{1, 2, 3, 0}, {0x1234, 0}}; !reflect.DeepEqual(docs, want) {
		t.Errorf("round trip %v, want %v", docs, want)
	}
	// uint32 tokens, no EOS.
	ds.Reset()
	idx.Reset()
	w, _ = NewNanotronWriter(&ds, &idx, 4, -1)
	if err := w.WriteDoc([]uint32{70000, 5}); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x70, 0x11, 0x01, 0x00, 0x05, 0, 0, 0}; !bytes.Equal(ds.Bytes(), want) {
		t.Errorf("uint32 .ds = % x, want % x", ds.Bytes(), want)
	}
	// A token that does not fit uint16 is refused.
	w, _ = NewNanotronWriter(&ds, &idx, 2, -1)
	if err := w.WriteDoc([]uint32{70000}); err == nil {
		t.Error("token 70000 accepted at token size 2")
	}
	// Corrupt index.
	if _, err := ReadNanotron(wantDS, wantIdx[:8], 2); err == nil {
		t.Error("index ending before the tokens accepted")
	}
}

func TestHumanMetric(t *testing.T) {
	for _, tc := range []struct {
		n    float64
		want string
	}{{0, "0.00 T"}, {6, "6.00 T"}, {999, "999 T"}, {1000, "1.00 kT"}, {12345, "12.3 kT"}, {1234567, "1.23 MT"},
		{1_230_000_000, "1.23 GT"}, {54_500_000_000, "54.5 GT"}, {300e9, "300 GT"}} {
		if got := humanMetric(tc.n, "T"); got != tc.want {
			t.Errorf("humanMetric(%v) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestMegatronBytes(t *testing.T) {
	var bin bytes.Buffer
	w, err := NewMegatronWriter(&bin, 2, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range [][]uint32{{1, 2, 3}, {0x0102}} {
		if err := w.WriteDoc(d); err != nil {
			t.Fatal(err)
		}
	}
	wantBin := []byte{1, 0, 2, 0, 3, 0, 0x02, 0x01}
	wantIdx := []byte{
		'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0, // magic
		1, 0, 0, 0, 0, 0, 0, 0, // version
		8,                      // dtype uint16
		2, 0, 0, 0, 0, 0, 0, 0, // sequences
		3, 0, 0, 0, 0, 0, 0, 0, // documents = sequences + 1
		3, 0, 0, 0, 1, 0, 0, 0, // int32 lengths
		0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, // int64 byte pointers
		0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, // document indices
	}
	if !bytes.Equal(bin.Bytes(), wantBin) {
		t.Errorf(".bin = % x\nwant % x", bin.Bytes(), wantBin)
	}
	if got := w.Index(); !bytes.Equal(got, wantIdx) {
		t.Errorf(".idx = % x\nwant % x", got, wantIdx)
	}
	docs, size, err := ReadMegatron(wantBin, wantIdx)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]uint32{{1, 2, 3}, {0x0102}}; size != 2 || !reflect.DeepEqual(docs, want) {
		t.Errorf("round trip %v (size %d), want %v", docs, size, want)
	}
	// int32 with EOS.
	bin.Reset()
	w, _ = NewMegatronWriter(&bin, 4, 0)
	_ = w.WriteDoc([]uint32{70000})
	if want := []byte{0x70, 0x11, 0x01, 0, 0, 0, 0, 0}; !bytes.Equal(bin.Bytes(), want) {
		t.Errorf("int32 .bin = % x, want % x", bin.Bytes(), want)
	}
	if idx := w.Index(); idx[17] != 4 {
		t.Errorf("dtype code %d, want 4 (int32)", idx[17])
	}
	bad := append([]byte(nil), wantIdx...)
	bad[len(bad)-8] = 9 // last document index past the sequence count
	if _, _, err := ReadMegatron(wantBin, bad); err == nil {
		t.Error("bad document index accepted")
	}
	if _, _, err := ReadMegatron(wantBin[:6], wantIdx); err == nil {
		t.Error("short .bin accepted")
	}
}

// Exporting a shard directory and importing it back gives the document
// pieces of every sequence, in order.
func TestExportDirRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir, seqs := testDir(t, 64, 4, 2)
	var want [][]uint32
	m, _ := ReadManifest(ctx, dir)
	for _, s := range seqs {
		for _, p := range s.Pieces() {
			want = append(want, p)
		}
	}
	// Test tokens exceed uint16 (doc<<20), so use 4-byte tokens.
	for _, format := range []string{"nanotron", "megatron"} {
		out := t.TempDir()
		files, err := Export(ctx, dir, out, ExportOptions{Format: format, Tokenizer: "HuggingFaceTB/SmolLM2-135M", TokenSize: 4, EOS: -1})
		if err != nil {
			t.Fatal(err)
		}
		var got [][]uint32
		for _, si := range m.Shards {
			base := filepath.Join(out, strings.TrimSuffix(si.Path, ShardExt))
			var docs [][]uint32
			if format == "nanotron" {
				ds, _ := os.ReadFile(base + ".ds")
				idx, _ := os.ReadFile(base + ".ds.index")
				docs, err = ReadNanotron(ds, idx, 4)
				meta, _ := os.ReadFile(base + ".ds.metadata")
				if !strings.HasPrefix(string(meta), "HuggingFaceTB/SmolLM2-135M|4\n") {
					t.Errorf("metadata %q", meta)
				}
			} else {
				bin, _ := os.ReadFile(base + ".bin")
				idx, _ := os.ReadFile(base + ".idx")
				docs, _, err = ReadMegatron(bin, idx)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", format, si.Path, err)
			}
			got = append(got, docs...)
		}
		if len(files) != len(m.Shards)*map[string]int{"nanotron": 3, "megatron": 2}[format] {
			t.Errorf("%s wrote %v", format, files)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip: %d docs, want %d", format, len(got), len(want))
		}
	}
}
