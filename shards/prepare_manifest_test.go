package shards

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLengthHistogramBuckets(t *testing.T) {
	for _, c := range []struct {
		n      int
		bucket int
		label  string
	}{{0, 0, "<512"}, {511, 0, "<512"}, {512, 1, "512-1k"}, {8191, 4, "4k-8k"}, {8192, 5, "8k-16k"},
		{131071, 8, "64k-128k"}, {131072, 9, ">=128k"}, {1 << 30, 9, ">=128k"}} {
		var h LengthHistogram
		h.Observe(c.n)
		if h.Docs[c.bucket] != 1 || h.Tokens[c.bucket] != int64(c.n) {
			t.Errorf("Observe(%d): %+v, want bucket %d", c.n, h, c.bucket)
		}
		if got := BucketLabel(c.bucket); got != c.label {
			t.Errorf("BucketLabel(%d) = %q, want %q", c.bucket, got, c.label)
		}
	}
}

func TestPrepareStatsAccounting(t *testing.T) {
	var a, b PrepareStats
	a.Read, a.Written, a.Tokens = 3, 3, 700
	a.Lengths.Observe(100)
	a.Lengths.Observe(100)
	a.Lengths.Observe(500)
	b.Read = 3 // readers count records on their own; drops do not add to it
	b.Drop("bad_json", 2)
	b.Drop("too_short", 1)
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	a.Merge(b)
	if a.Read != 6 || a.Dropped() != 3 || a.Check() != nil {
		t.Fatalf("merged %+v: %v", a, a.Check())
	}
	a.Written++ // a document written without being read or observed
	if a.Check() == nil {
		t.Fatal("Check missed read != written + dropped")
	}
	a.Read++
	if a.Check() == nil {
		t.Fatal("Check missed a histogram that does not cover the written documents")
	}

	// Per-step counts must chain: read -> ... -> written.
	c := PrepareStats{Read: 4, Written: 2, Tokens: 10}
	c.Lengths.Observe(5)
	c.Lengths.Observe(5)
	c.Drop("bad_json", 1)
	c.Drop("too_short", 1)
	c.Steps = []StepStats{{Name: "read", In: 4, Out: 3, Drops: map[string]int64{"bad_json": 1}},
		{Name: "length_filter", In: 3, Out: 2, Drops: map[string]int64{"too_short": 1}}}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	c.Steps[1].In = 2 // a step lost a document between read and the filter
	c.Steps[1].Drops = map[string]int64{}
	if err := c.Check(); err == nil {
		t.Fatal("Check missed a step receiving less than the previous one passed on")
	}
}

func TestPrepareManifestStatsRoundTrip(t *testing.T) {
	var st PrepareStats
	st.Files, st.Read, st.Written, st.Tokens = 1, 2, 1, 9000
	st.Lengths.Observe(9000)
	st.Drop("missing_text", 1)
	m := &PrepareManifest{Version: 1, TokenizerHash: "t", ConfigHash: "c", DeadLetters: "dead_letters.jsonl", Report: "report.md",
		Sources: []PreparedSource{{Name: "code", Format: "stack", Docs: 1, Tokens: 9000, Stats: st,
			Caches: []CacheRef{{Path: "code/a.tokcache", Input: InputRef{Path: "gs://b/a.parquet", Size: 10, ETag: "e"},
				Docs: 1, Tokens: 9000, XXH64: "s", Stats: st, DeadLetters: "dead_letters/code/a.jsonl"}},
			Unreadable: []Unreadable{{Input: InputRef{Path: "gs://b/x.parquet"}, Error: "bad footer"}}}}}
	path := filepath.Join(t.TempDir(), "manifest.json")
	if err := WritePrepareManifest(context.Background(), path, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPrepareManifest(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n%+v\n%+v", got, m)
	}
	gh, err1 := got.Hash()
	mh, err2 := m.Hash()
	if err1 != nil || err2 != nil || gh != mh {
		t.Fatalf("hash changed over a round trip: %s %s %v %v", gh, mh, err1, err2)
	}
}
