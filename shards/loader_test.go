package shards

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"longctx/storage/gcstest"
)

func readN(t *testing.T, l *Loader, n int) []Sequence {
	t.Helper()
	out := make([]Sequence, n)
	for i := range out {
		s, err := l.Next()
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		out[i] = s
	}
	return out
}

func TestLoaderOrderAndResume(t *testing.T) {
	ctx := context.Background()
	dir, seqs := testDir(t, 32, 3, 4) // small sequences, several per chunk, 4 shards
	n := len(seqs)
	l, err := OpenLoader(ctx, dir, 7, LoaderState{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Len() != int64(n) || l.SeqLen() != 32 {
		t.Fatalf("Len %d SeqLen %d, want %d, 32", l.Len(), l.SeqLen(), n)
	}
	// Epoch 0 is the seeded permutation of all sequences, each once.
	epoch0 := readN(t, l, n)
	perm := Permutation(7, 0, int64(n))
	for p, g := range perm {
		if !reflect.DeepEqual(epoch0[p], seqs[g]) {
			t.Fatalf("position %d: not sequence %d", p, g)
		}
	}
	if st := l.State(); st != (LoaderState{Epoch: 1}) {
		t.Fatalf("state after one epoch %+v", st)
	}
	epoch1 := readN(t, l, n)
	if reflect.DeepEqual(epoch0, epoch1) {
		t.Error("epochs 0 and 1 have the same order")
	}

	// Resume mid-epoch and across the epoch boundary.
	for _, at := range []int{0, 5, n - 2} {
		a, err := OpenLoader(ctx, dir, 7, LoaderState{})
		if err != nil {
			t.Fatal(err)
		}
		readN(t, a, at)
		st := a.State()
		want := readN(t, a, 10)
		a.Close()
		b, err := OpenLoader(ctx, dir, 7, st)
		if err != nil {
			t.Fatal(err)
		}
		got := readN(t, b, 10)
		b.Close()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("resume at %+v gave a different order", st)
		}
	}
	// Another seed, another order.
	o, _ := OpenLoader(ctx, dir, 8, LoaderState{})
	defer o.Close()
	if reflect.DeepEqual(readN(t, o, n), epoch0) {
		t.Error("seeds 7 and 8 give the same order")
	}
	if _, err := OpenLoader(ctx, dir, 7, LoaderState{Position: int64(n) + 1}); err == nil {
		t.Error("out-of-range state accepted")
	}
}

func TestLoaderGCS(t *testing.T) {
	srv := gcstest.Start(t, "bkt")
	ctx := context.Background()
	dir, seqs := writeTestDir(t, "gs://bkt/mix/demo", 64, 2, 2)
	if _, err := Verify(ctx, dir); err != nil {
		t.Fatal(err)
	}
	srv.FailRequests(1, 7) // transient 503s are retried by storage
	l, err := OpenLoader(ctx, dir, 3, LoaderState{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := readN(t, l, len(seqs))
	for p, g := range Permutation(3, 0, int64(len(seqs))) {
		if !reflect.DeepEqual(got[p], seqs[g]) {
			t.Fatalf("gs:// position %d: not sequence %d", p, g)
		}
	}
}

// A corrupt chunk fails Next with the shard and chunk named, and the loader
// does not skip past it.
func TestLoaderCorruptChunk(t *testing.T) {
	ctx := context.Background()
	dir, _ := testDir(t, 64, 2, 1)
	m, _ := ReadManifest(ctx, dir)
	path := filepath.Join(dir, m.Shards[0].Path)
	data, _ := os.ReadFile(path)
	data[len(data)-2] ^= 0xff // inside the last chunk
	os.WriteFile(path, data, 0o644)
	l, err := OpenLoader(ctx, dir, 1, LoaderState{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var failed error
	for i := int64(0); i < l.Len() && failed == nil; i++ {
		_, failed = l.Next()
	}
	if failed == nil || !strings.Contains(failed.Error(), "shard-00000.lcs chunk") {
		t.Fatalf("corrupt chunk: %v", failed)
	}
	st := l.State()
	if _, err := l.Next(); err == nil || l.State() != st {
		t.Errorf("after a failure Next = %v, state %+v -> %+v", err, st, l.State())
	}
}
