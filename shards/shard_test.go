package shards

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testDir packs random documents and writes them as nshards shards plus a
// manifest, returning the directory and all sequences in shard order.
func testDir(t *testing.T, seqLen, chunkSeqs, nshards int) (string, []Sequence) {
	t.Helper()
	return writeTestDir(t, t.TempDir(), seqLen, chunkSeqs, nshards)
}

func writeTestDir(t *testing.T, dir string, seqLen, chunkSeqs, nshards int) (string, []Sequence) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	ps, _ := randomPieces(r, 300, seqLen, seqLen/3)
	seqs, st, err := Pack(ps, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	m := Manifest{Format: ManifestFormat, Version: ShardVersion, Name: "test", SeqLen: seqLen, ChunkSeqs: chunkSeqs, Packing: st,
		Sources: []SourceStats{{Source: "s", RealizedTokens: st.Real}}}
	per := (len(seqs) + nshards - 1) / nshards
	for i := 0; i < nshards; i++ {
		lo, hi := i*per, min((i+1)*per, len(seqs))
		info, err := WriteShard(context.Background(), dir, fmt.Sprintf("shard-%05d%s", i, ShardExt), seqs[lo:hi], seqLen, chunkSeqs)
		if err != nil {
			t.Fatal(err)
		}
		m.Shards = append(m.Shards, info)
	}
	if err := WriteManifest(context.Background(), dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, seqs
}

func TestShardRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ps, _ := randomPieces(r, 100, 64, 40)
	seqs, _, err := Pack(ps, 64)
	if err != nil {
		t.Fatal(err)
	}
	data, info, err := EncodeShard(seqs, 64, 7)
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := EncodeShard(seqs, 64, 7)
	if !bytes.Equal(data, again) {
		t.Fatal("encoding the same sequences twice gave different bytes")
	}
	sr, err := OpenShardBytes("x", data)
	if err != nil {
		t.Fatal(err)
	}
	if sr.Sequences != int64(len(seqs)) || len(sr.Index) != (len(seqs)+6)/7 || info.Chunks != len(sr.Index) {
		t.Fatalf("header: %d sequences %d chunks", sr.Sequences, len(sr.Index))
	}
	got, err := sr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, seqs) {
		t.Fatal("decoded sequences differ")
	}
	// Chunks are independently readable.
	last, err := sr.ReadChunk(len(sr.Index) - 1)
	if err != nil || !reflect.DeepEqual(last, seqs[7*(len(sr.Index)-1):]) {
		t.Fatalf("last chunk alone: %v", err)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	dir, _ := testDir(t, 128, 4, 3)
	rep, err := Verify(ctx, dir)
	if err != nil {
		t.Fatalf("clean directory: %v (%v)", err, rep.Problems)
	}
	if rep.Shards != 3 || rep.Sequences == 0 {
		t.Fatalf("report %+v", rep)
	}
	m, _ := ReadManifest(ctx, dir)
	victim := filepath.Join(dir, m.Shards[1].Path)
	orig, _ := os.ReadFile(victim)
	sr, _ := OpenShardBytes("v", orig)

	t.Run("flipped byte", func(t *testing.T) {
		data := bytes.Clone(orig)
		c := 2
		data[sr.Index[c].Offset+uint64(sr.Index[c].Len)/2] ^= 0x40
		os.WriteFile(victim, data, 0o644)
		defer os.WriteFile(victim, orig, 0o644)
		_, err := Verify(ctx, dir)
		if err == nil || !IsCorrupt(err) {
			t.Fatalf("flipped byte not caught: %v", err)
		}
		if !strings.Contains(err.Error(), "sha256") {
			t.Errorf("error %q does not mention the sha256", err)
		}
		rep, _ := Verify(ctx, dir)
		if !strings.Contains(strings.Join(rep.Problems, "\n"), "shard shard-00001.lcs chunk 2: checksum") {
			t.Errorf("problems %q do not name shard-00001.lcs chunk 2", rep.Problems)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		cut := sr.Index[3].Offset + 5
		os.WriteFile(victim, orig[:cut], 0o644)
		defer os.WriteFile(victim, orig, 0o644)
		rep, err := Verify(ctx, dir)
		if err == nil {
			t.Fatal("truncated shard not caught")
		}
		if !strings.Contains(strings.Join(rep.Problems, "\n"), "shard shard-00001.lcs chunk 3: file is") {
			t.Errorf("problems %q do not name shard-00001.lcs chunk 3 as truncated", rep.Problems)
		}
	})
	t.Run("header byte", func(t *testing.T) {
		data := bytes.Clone(orig)
		data[13] ^= 1 // seq_len
		os.WriteFile(victim, data, 0o644)
		defer os.WriteFile(victim, orig, 0o644)
		if _, err := Verify(ctx, dir); err == nil || !strings.Contains(err.Error(), "header checksum") && !strings.Contains(err.Error(), "sha256") {
			t.Fatalf("header corruption: %v", err)
		}
	})
	t.Run("missing shard", func(t *testing.T) {
		os.Remove(victim)
		defer os.WriteFile(victim, orig, 0o644)
		if _, err := Verify(ctx, dir); err == nil || !strings.Contains(err.Error(), "shard-00001.lcs") {
			t.Fatalf("missing shard: %v", err)
		}
	})
	// Every manifest field the loader relies on is checked against the
	// shards: a wrong value in the manifest alone must fail verify.
	manifestPath := filepath.Join(dir, ManifestName)
	origManifest, _ := os.ReadFile(manifestPath)
	for _, tc := range []struct {
		name, want string
		edit       func(m *Manifest)
	}{
		{"chunk_seqs", "chunk_seqs", func(m *Manifest) { m.ChunkSeqs++ }},
		{"seq_len", "seq_len", func(m *Manifest) { m.SeqLen *= 2 }},
		{"format", "format", func(m *Manifest) { m.Format = "other" }},
		{"version", "version", func(m *Manifest) { m.Version++ }},
		{"shard sequences", "sequences", func(m *Manifest) { m.Shards[0].Sequences++ }},
		{"shard chunks", "chunks", func(m *Manifest) { m.Shards[0].Chunks++ }},
		{"shard pieces", "pieces", func(m *Manifest) { m.Shards[2].Pieces-- }},
		{"listed twice", "twice", func(m *Manifest) { m.Shards[1] = m.Shards[0] }},
		{"packing", "packing", func(m *Manifest) { m.Packing.Pad++ }},
	} {
		t.Run("manifest "+tc.name, func(t *testing.T) {
			m, _ := ReadManifest(ctx, dir)
			tc.edit(&m)
			if err := WriteManifest(ctx, dir, m); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(manifestPath, origManifest, 0o644)
			rep, err := Verify(ctx, dir)
			if err == nil {
				t.Fatalf("a wrong %s in the manifest passes verify", tc.name)
			}
			if all := err.Error() + strings.Join(rep.Problems, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("error %q does not mention %q", all, tc.want)
			}
		})
	}
	if _, err := Verify(ctx, dir); err != nil {
		t.Fatalf("restored directory: %v", err)
	}
}
