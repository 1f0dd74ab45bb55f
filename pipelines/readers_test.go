package pipelines

import (
	"bytes"
	"errors"
	"longctx/corpus"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// readBytes runs the format's reader over an in-memory file.
func readBytes(t *testing.T, format, file string, data []byte) ([]Document, []Malformed, error) {
	t.Helper()
	f, err := LookupFormat(format)
	if err != nil {
		t.Fatal(err)
	}
	var docs []Document
	var bad []Malformed
	emit := Emit{
		Doc: func(d Document) error { docs = append(docs, d); return nil },
		Bad: func(m Malformed) error { bad = append(bad, m); return nil },
	}
	if f.Parquet != nil {
		err = ReadParquet(bytes.NewReader(data), int64(len(data)), f, file, "src", emit)
	} else {
		err = ReadJSONLines(bytes.NewReader(data), f, file, "src", emit)
	}
	return docs, bad, err
}

func gz(t *testing.T, groups ...[][]byte) []byte {
	var b bytes.Buffer
	if err := corpus.WriteGzipMembers(&b, groups...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zst(t *testing.T, groups ...[][]byte) []byte {
	var b bytes.Buffer
	if err := corpus.WriteZstdFrames(&b, groups...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pq[T any](t *testing.T, rows []T, perGroup int64) []byte {
	var b bytes.Buffer
	if err := corpus.WriteParquet(&b, rows, perGroup); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type want struct {
	ids     []string          // document ids in order
	meta    map[string]string // metadata of the first document (subset)
	reasons []string          // Malformed reasons in order
	records []int64           // Malformed record numbers in order (nil: unchecked)
}

func TestReaders(t *testing.T) {
	dolmaLine := func(id, text string) []byte {
		return corpus.JSONLine(map[string]any{"id": id, "text": text, "source": "gutenberg", "added": "2023-01-01",
			"metadata": map[string]any{"title": "T"}})
	}
	dclmLine := func(rid, text string) []byte {
		return corpus.JSONLine(map[string]any{"text": text, "url": "http://x/" + rid,
			"metadata": map[string]any{"WARC-Record-ID": "<urn:uuid:" + rid + ">", "WARC-Date": "2023-02-02T00:00:00Z"}})
	}
	good := strings.Repeat("A line of a book. ", 20)
	full := gz(t, [][]byte{dolmaLine("b1", good), dolmaLine("b2", good)}, [][]byte{dolmaLine("b3", good)})
	truncated := full[:len(full)-10]
	corrupt := append([]byte{}, full...)
	for i := 30; i < 60; i++ {
		corrupt[i] ^= 0x5a
	}
	dclmFull := zst(t, [][]byte{dclmLine("r1", good)}, [][]byte{dclmLine("r2", good),
		corpus.JSONLine(map[string]any{"id": "own", "text": good})})

	cases := []struct {
		name, format, file string
		data               []byte
		want               want
	}{
		{"dolma multi-member gzip", "dolma", "books-0000.json.gz", full,
			want{ids: []string{"b1", "b2", "b3"}, meta: map[string]string{"source": "gutenberg", "added": "2023-01-01", "metadata": `{"title":"T"}`}}},
		{"dolma malformed lines", "dolma", "books-0001.json.gz", gz(t, [][]byte{
			dolmaLine("ok1", good),
			corpus.JSONLine([]byte(`{"id": "x", "text": `)), // bad JSON
			corpus.JSONLine(map[string]any{"id": "nt"}),
			corpus.JSONLine(map[string]any{"id": "num", "text": 42}),
			corpus.JSONLine(map[string]any{"id": "empty", "text": "  \n "}),
			corpus.JSONLine([]byte(`[1,2,3]`)),
			corpus.JSONLine([]byte("")), // blank line: no record
			dolmaLine("ok2", good),
		}), want{ids: []string{"ok1", "ok2"},
			reasons: []string{ReasonBadJSON, ReasonMissingText, ReasonWrongType, ReasonEmptyText, ReasonBadJSON},
			records: []int64{2, 3, 4, 5, 6}}},
		{"dolma truncated gzip", "dolma", "books-0002.json.gz", truncated,
			want{ids: []string{"b1", "b2"}, reasons: []string{ReasonTruncatedStream}, records: []int64{3}}},
		{"dolma corrupt gzip", "dolma", "books-0003.json.gz", corrupt,
			want{reasons: []string{ReasonCorruptStream}}},
		{"dclm zstd frames, WARC id", "dclm", "shard_00000000_processed.jsonl.zstd", dclmFull,
			want{ids: []string{"<urn:uuid:r1>", "<urn:uuid:r2>", "own"},
				meta: map[string]string{"url": "http://x/r1", "metadata.WARC-Date": "2023-02-02T00:00:00Z"}}},
		{"dclm truncated zstd", "dclm", "shard_00000001_processed.jsonl.zst", dclmFull[:len(dclmFull)-7],
			// The cut falls in the last frame, whose block holds both of its lines.
			want{ids: []string{"<urn:uuid:r1>"}, reasons: []string{ReasonTruncatedStream}, records: []int64{2}}},
		{"dclm metadata wrong type, derived id", "dclm", "d.jsonl.zstd", zst(t, [][]byte{
			corpus.JSONLine(map[string]any{"text": good, "url": "http://u", "metadata": "oops"}),
			corpus.JSONLine(map[string]any{"text": 3.5, "url": "http://v"}),
		}), want{ids: []string{derivedID("http://u")}, reasons: []string{ReasonWrongType}}},
		{"stack parquet", "stack", "data-00000-of-00001.parquet", pq(t, []corpus.StackRow{
			{Hexsha: ptr("aa11"), Content: ptr("package main\n"), Lang: ptr("Go"), Ext: ptr("go"), Size: ptr(int64(13)),
				MaxStarsRepoName: ptr("o/r"), MaxStarsRepoPath: ptr("main.go"), MaxStarsCount: ptr(int64(7)),
				MaxStarsRepoLicenses: []string{"MIT"}},
			{Hexsha: ptr("bb22"), Content: nil},
			{Hexsha: nil, Content: ptr("x = 1\n"), MaxStarsRepoName: ptr("o/p"), MaxStarsRepoPath: ptr("a.py")},
			{Hexsha: ptr("cc33"), Content: ptr("   ")},
			{Hexsha: ptr("dd44"), Content: ptr("fn main() {}\n")},
		}, 2), want{ids: []string{"aa11", derivedID("o/p", "a.py"), "dd44"},
			meta:    map[string]string{"lang": "Go", "ext": "go", "size": "13", "max_stars_count": "7", "max_stars_repo_name": "o/r"},
			reasons: []string{ReasonMissingText, ReasonEmptyText}, records: []int64{1, 3}}},
		{"fineweb-edu parquet", "fineweb-edu", "000_00000.parquet", pq(t, []corpus.FineWebEduRow{
			{Text: ptr("Photosynthesis turns light into sugar."), ID: ptr("<urn:uuid:f1>"), URL: ptr("http://edu/1"),
				Dump: ptr("CC-MAIN-2024-10"), Score: ptr(3.25), IntScore: ptr(int64(3)), TokenCount: ptr(int64(8)), Date: nil},
			{Text: ptr("Cells divide."), ID: ptr("<urn:uuid:f2>")},
		}, 1), want{ids: []string{"<urn:uuid:f1>", "<urn:uuid:f2>"},
			meta: map[string]string{"url": "http://edu/1", "dump": "CC-MAIN-2024-10", "score": "3.25", "int_score": "3", "token_count": "8"}}},
		{"finemath parquet derived id", "finemath", "train-00000-of-00064.parquet", pq(t, []corpus.FineMathRow{
			{Text: ptr("2+2=4"), URL: ptr("http://m/1"), WarcFilename: ptr("w.gz"), WarcRecordOffset: ptr(int32(99)),
				Metadata: ptr(`{"a":1}`), Score: ptr(4.5)},
		}, 10), want{ids: []string{derivedID("http://m/1", "w.gz", "99")},
			meta: map[string]string{"metadata": `{"a":1}`, "warc_record_offset": "99", "score": "4.5"}}},
		{"finemath missing text column", "finemath", "bad.parquet", pq(t, []struct {
			URL string `parquet:"url"`
		}{{"a"}, {"b"}, {"c"}}, 10), want{reasons: []string{ReasonMissingColumn}}},
		{"fineweb wrong text type", "fineweb-edu", "bad2.parquet", pq(t, []struct {
			Text int64 `parquet:"text"`
		}{{1}, {2}}, 10), want{reasons: []string{ReasonWrongType}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			docs, bad, err := readBytes(t, c.format, c.file, c.data)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var ids []string
			for _, d := range docs {
				ids = append(ids, d.ID)
				if d.Source != "src" || d.File != c.file || blank(d.Text) {
					t.Errorf("doc %s: source %q file %q text %q", d.ID, d.Source, d.File, d.Text)
				}
			}
			if strings.Join(ids, ",") != strings.Join(c.want.ids, ",") {
				t.Errorf("ids = %q, want %q", ids, c.want.ids)
			}
			for k, v := range c.want.meta {
				if docs[0].Metadata[k] != v {
					t.Errorf("metadata[%s] = %q, want %q (all: %v)", k, docs[0].Metadata[k], v, docs[0].Metadata)
				}
			}
			var reasons []string
			for i, m := range bad {
				reasons = append(reasons, m.Reason)
				if m.File != c.file || m.Detail == "" || m.Records < 1 {
					t.Errorf("malformed %+v lacks file/detail/records", m)
				}
				if c.want.records != nil && i < len(c.want.records) && m.Record != c.want.records[i] {
					t.Errorf("malformed %d at %s %d, want %d (%s)", i, m.Unit, m.Record, c.want.records[i], m)
				}
			}
			if strings.Join(reasons, ",") != strings.Join(c.want.reasons, ",") {
				t.Errorf("reasons = %q, want %q (%v)", reasons, c.want.reasons, bad)
			}
		})
	}
}

func TestReadParquetMissingColumnCountsRows(t *testing.T) {
	data := pq(t, []struct {
		URL string `parquet:"url"`
	}{{"a"}, {"b"}, {"c"}}, 2)
	_, bad, err := readBytes(t, "finemath", "x.parquet", data)
	if err != nil || len(bad) != 1 || bad[0].Records != 3 || bad[0].Unit != "file" {
		t.Fatalf("got %v, %v; want one file-level drop of 3 rows", bad, err)
	}
}

func TestReadParquetNotParquetIsError(t *testing.T) {
	_, _, err := readBytes(t, "stack", "junk.parquet", []byte("this is not a parquet file at all"))
	if err == nil || !strings.Contains(err.Error(), "junk.parquet") {
		t.Fatalf("err = %v, want an error naming the file", err)
	}
}

func TestReadJSONLinesLongLine(t *testing.T) {
	long := strings.Repeat("word ", 1<<19) // 2.5 MB: longer than the line buffer
	data := gz(t, [][]byte{corpus.JSONLine(map[string]any{"id": "big", "text": long}), corpus.JSONLine(map[string]any{"id": "small", "text": "x"})})
	docs, bad, err := readBytes(t, "dolma", "big.json.gz", data)
	if err != nil || len(bad) != 0 || len(docs) != 2 || docs[0].Text != long || docs[1].Record != 2 {
		t.Fatalf("docs=%d bad=%v err=%v", len(docs), bad, err)
	}
}

// TestReadParquetCorruptBytes flips bytes all over a parquet file: the
// reader never panics, and every row is either a document or counted in a
// corrupt_parquet drop, unless the footer itself is hit (unreadable file).
func TestReadParquetCorruptBytes(t *testing.T) {
	var rows []corpus.FineWebEduRow
	for i := 0; i < 200; i++ {
		rows = append(rows, corpus.FineWebEduRow{Text: ptr(strings.Repeat("text "+strings.Repeat("x", i%7), 50)), ID: ptr(string(rune('a' + i%26)))})
	}
	data := pq(t, rows, 50)
	corrupt := 0
	for off := 4; off < len(data)-8; off += 97 {
		c := append([]byte{}, data...)
		for i := off; i < off+16 && i < len(c)-8; i++ {
			c[i] ^= 0xa5
		}
		docs, bad, err := readBytes(t, "fineweb-edu", "c.parquet", c)
		if err != nil {
			var ue *UnreadableError
			if !errors.As(err, &ue) {
				t.Fatalf("offset %d: %v is not an UnreadableError", off, err)
			}
			continue
		}
		n := int64(len(docs))
		for _, b := range bad {
			n += b.Records
			if b.Reason != ReasonCorruptParquet {
				t.Errorf("offset %d: reason %s", off, b.Reason)
			}
			corrupt++
		}
		if n != 200 {
			t.Errorf("offset %d: %d docs + drops, want 200", off, n)
		}
	}
	if corrupt == 0 {
		t.Fatal("no corruption was detected at any offset")
	}
}
