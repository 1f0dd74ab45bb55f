package trainer

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"longctx/shards"
)

func TestShardSourceResumesSameOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const seqLen = 8
	var seqs []shards.Sequence
	for i := 0; i < 40; i++ {
		toks := make([]uint32, seqLen)
		for j := range toks {
			toks[j] = uint32(i*seqLen + j)
		}
		seqs = append(seqs, shards.Sequence{Tokens: toks, Starts: []uint32{0, 3}})
	}
	var infos []shards.ShardInfo
	for s := 0; s < 2; s++ {
		info, err := shards.WriteShard(ctx, dir, fmt.Sprintf("shard-%05d%s", s, shards.ShardExt), seqs[s*20:(s+1)*20], seqLen, 6)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	if err := shards.WriteManifest(ctx, dir, shards.Manifest{Format: shards.ManifestFormat, Version: shards.ShardVersion,
		Name: "t", SeqLen: seqLen, ChunkSeqs: 6, Shards: infos}); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenShardSource(ctx, dir, 7, seqLen*2); err == nil {
		t.Fatal("sequence length mismatch accepted")
	}
	a, err := OpenShardSource(ctx, dir, 7, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var first []shards.Sequence
	for i := 0; i < 55; i++ { // past one epoch of 40
		s, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, s)
	}
	st, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	var want []shards.Sequence
	for i := 0; i < 10; i++ {
		s, _ := a.Next()
		want = append(want, s)
	}

	b, err := OpenShardSource(ctx, dir, 7, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		got, err := b.Next()
		if err != nil || !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("after restore, sequence %d = %v (%v), want %v", i, got.Tokens, err, want[i].Tokens)
		}
	}
	// Every sequence appears once in the first epoch.
	seen := map[uint32]bool{}
	for _, s := range first[:40] {
		seen[s.Tokens[0]] = true
	}
	if len(seen) != 40 {
		t.Fatalf("first epoch covered %d of 40 sequences", len(seen))
	}
	c, _ := OpenShardSource(ctx, dir, 8, seqLen)
	defer c.Close()
	if err := c.Restore(st); err == nil {
		t.Fatal("state of another seed accepted")
	}
}
