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
	if _, err := Verify(ctx, dir); err != nil {
		t.Fatalf("restored directory: %v", err)
	}
}
