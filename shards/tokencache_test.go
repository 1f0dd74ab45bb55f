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

	"longctx/storage"
	"longctx/storage/gcstest"
)

type testDoc struct {
	id     string
	tokens []uint32
}

func makeDocs(n int, seed uint64) []testDoc {
	r := rand.New(rand.NewPCG(seed, 1))
	docs := make([]testDoc, n)
	for i := range docs {
		toks := make([]uint32, r.IntN(300))
		for j := range toks {
			toks[j] = uint32(r.IntN(49152))
		}
		docs[i] = testDoc{id: fmt.Sprintf("doc-%04d", i), tokens: toks}
	}
	return docs
}

func writeCache(t *testing.T, path string, docs []testDoc, blockTokens int) CacheSummary {
	t.Helper()
	ctx := context.Background()
	cw, err := CreateCache(ctx, path, CacheHeader{Source: "books", Input: "in.json.gz", TokenizerHash: "abc", EOS: true})
	if err != nil {
		t.Fatal(err)
	}
	cw.blockTokens = blockTokens
	for _, d := range docs {
		if err := cw.Add(d.id, d.tokens); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := cw.Close()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestTokenCacheRoundTrip(t *testing.T) {
	ctx := context.Background()
	gcstest.Start(t, "bkt")
	docs := makeDocs(200, 1)
	docs[7].tokens = nil // an empty document survives too
	for name, path := range map[string]string{
		"local": filepath.Join(t.TempDir(), "c.tc"),
		"gcs":   "gs://bkt/caches/c.tc",
	} {
		t.Run(name, func(t *testing.T) {
			sum := writeCache(t, path, docs, 1000)
			var total int64
			for _, d := range docs {
				total += int64(len(d.tokens))
			}
			if sum.Docs != 200 || sum.Tokens != total || sum.Blocks < 10 {
				t.Fatalf("summary %+v, want 200 docs, %d tokens, >= 10 blocks", sum, total)
			}
			c, err := OpenCache(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Header().Source != "books" || !c.Header().EOS || c.NumTokens() != total || c.NumBlocks() != sum.Blocks {
				t.Fatalf("header %+v tokens %d blocks %d", c.Header(), c.NumTokens(), c.NumBlocks())
			}
			n := 0
			err = c.ForEach(func(i int, e CacheEntry, toks []uint32) error {
				if e.ID != docs[i].id || e.Tokens != len(docs[i].tokens) || !reflect.DeepEqual(append([]uint32{}, toks...), append([]uint32{}, docs[i].tokens...)) {
					return fmt.Errorf("doc %d differs: %s %d", i, e.ID, e.Tokens)
				}
				n++
				return nil
			})
			if err != nil || n != 200 {
				t.Fatalf("ForEach: %v after %d docs", err, n)
			}
			if err := c.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTokenCacheDeterministic(t *testing.T) {
	dir := t.TempDir()
	docs := makeDocs(500, 2)
	a, b := filepath.Join(dir, "a.tc"), filepath.Join(dir, "b.tc")
	sa, sb := writeCache(t, a, docs, 5000), writeCache(t, b, docs, 5000)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) || sa.XXH64 != sb.XXH64 {
		t.Fatal("same documents gave different token caches")
	}
}

func TestTokenCacheCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.tc")
	writeCache(t, path, makeDocs(100, 3), 2000)
	good, _ := os.ReadFile(path)

	// A flipped byte inside a block is caught by that block's checksum.
	c, err := OpenCache(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	off := c.blocks[2].offset + c.blocks[2].length/2
	c.Close()
	bad := bytes.Clone(good)
	bad[off] ^= 0x40
	os.WriteFile(path, bad, 0o644)
	c, err = OpenCache(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Verify()
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "block 2") || !strings.Contains(err.Error(), path) {
		t.Fatalf("flipped byte: Verify = %v", err)
	}

	// Truncation and a flipped index byte fail at open, naming the file.
	for name, data := range map[string][]byte{
		"truncated":   good[:len(good)-100],
		"index flip":  flip(good, len(good)-trailerSize-3),
		"bad magic":   flip(good, 0),
		"header only": good[:40],
	} {
		os.WriteFile(path, data, 0o644)
		if _, err := OpenCache(ctx, path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: OpenCache = %v", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestTokenCacheAbortLeavesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.tc")
	cw, err := CreateCache(ctx, path, CacheHeader{Source: "web"})
	if err != nil {
		t.Fatal(err)
	}
	cw.Add("a", []uint32{1, 2, 3})
	cw.Abort()
	if ok, _ := storage.Exists(ctx, path); ok {
		t.Fatal("aborted cache exists")
	}
}

func TestPrepareManifestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := &PrepareManifest{Version: 1, TokenizerHash: "t", ConfigHash: "c", Sources: []PreparedSource{{
		Name: "books", Docs: 2, Tokens: 30,
		Caches: []CacheRef{{Path: "caches/books/a.tc", Input: InputRef{Path: "/data/a.json.gz", Size: 10, ETag: "e"}, Docs: 2, Tokens: 30, XXH64: "s"}},
	}}}
	p := filepath.Join(dir, "prepare.json")
	if err := WritePrepareManifest(ctx, p, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPrepareManifest(ctx, p)
	gh, _ := got.Hash()
	mh, _ := m.Hash()
	if err != nil || !reflect.DeepEqual(got, m) || gh != mh || gh == "" {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	if cp := CachePath(p, got.Sources[0].Caches[0]); cp != filepath.Join(dir, "caches/books/a.tc") {
		t.Errorf("CachePath = %s", cp)
	}
	if cp := CachePath("gs://b/run/prepare.json", CacheRef{Path: "caches/x.tc"}); cp != "gs://b/run/caches/x.tc" {
		t.Errorf("CachePath gs = %s", cp)
	}
	if got.Source("books") == nil || got.Source("code") != nil {
		t.Error("Source lookup")
	}
	os.WriteFile(p, []byte(`{"version":1,"bogus":2}`), 0o644)
	if _, err := ReadPrepareManifest(ctx, p); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: %v", err)
	}
}

// TestTokenCacheEncodings: every token width and block codec reads back
// the same documents; a uint16 cache refuses an id that does not fit.
func TestTokenCacheEncodings(t *testing.T) {
	ctx := context.Background()
	docs := makeDocs(120, 3)
	for _, width := range []int{2, 4} {
		for _, codec := range []string{CodecRaw, CodecS2, CodecZstd} {
			path := filepath.Join(t.TempDir(), "c.tc")
			cw, err := CreateCache(ctx, path, CacheHeader{Source: "web", TokenBytes: width, Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			cw.blockTokens = 2000
			for _, d := range docs {
				if err := cw.Add(d.id, d.tokens); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cw.Close(); err != nil {
				t.Fatal(err)
			}
			c, err := OpenCache(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if h := c.Header(); h.TokenBytes != width || h.Codec != codec {
				t.Fatalf("header %+v", h)
			}
			err = c.ForEach(func(i int, e CacheEntry, toks []uint32) error {
				if !reflect.DeepEqual(append([]uint32{}, toks...), append([]uint32{}, docs[i].tokens...)) {
					return fmt.Errorf("width %d codec %s: doc %d differs", width, codec, i)
				}
				return nil
			})
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	cw, err := CreateCache(ctx, filepath.Join(t.TempDir(), "c.tc"), CacheHeader{TokenBytes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Abort()
	if err := cw.Add("big", []uint32{1, 70000}); err == nil || !strings.Contains(err.Error(), "70000") {
		t.Fatalf("uint16 cache took id 70000: %v", err)
	}
}
