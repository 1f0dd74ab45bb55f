package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/storage"
	"longctx/storage/gcstest"
)

// roots returns a local temp dir and a gs:// bucket root, so every test runs
// against both backends.
func roots(t *testing.T) map[string]string {
	gcstest.Start(t, "bkt")
	return map[string]string{"local": t.TempDir(), "gcs": "gs://bkt/run"}
}

func TestWriteReadStat(t *testing.T) {
	ctx := context.Background()
	for name, root := range roots(t) {
		t.Run(name, func(t *testing.T) {
			p := storage.Join(root, "a", "b.txt")
			data := bytes.Repeat([]byte("longctx "), 100000) // 800 KB: several chunks
			if err := storage.WriteFile(ctx, p, data); err != nil {
				t.Fatal(err)
			}
			got, err := storage.ReadFile(ctx, p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadFile: err=%v, %d bytes, want %d", err, len(got), len(data))
			}
			fi, err := storage.Stat(ctx, p)
			if err != nil || fi.Size != int64(len(data)) || fi.ETag == "" {
				t.Fatalf("Stat = %+v, %v", fi, err)
			}
			ra, err := storage.OpenReaderAt(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			buf := make([]byte, 10)
			if n, err := ra.ReadAt(buf, 8); err != nil || n != 10 || string(buf) != "longctx lo" {
				t.Fatalf("ReadAt = %d %q %v", n, buf, err)
			}
			if n, err := ra.ReadAt(buf, ra.Size()-4); n != 4 || err != io.EOF {
				t.Fatalf("ReadAt at end = %d %v, want 4 EOF", n, err)
			}
			_, err = storage.Stat(ctx, storage.Join(root, "missing"))
			if !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("Stat missing: %v", err)
			}
			if _, err := storage.Open(ctx, storage.Join(root, "missing")); !errors.Is(err, storage.ErrNotExist) {
				t.Fatalf("Open missing: %v", err)
			}
		})
	}
}

func TestAtomicCreate(t *testing.T) {
	ctx := context.Background()
	for name, root := range roots(t) {
		t.Run(name, func(t *testing.T) {
			p := storage.Join(root, "atomic.bin")
			w, err := storage.Create(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("half"))
			// Before Close nothing is visible under the final name.
			if ok, _ := storage.Exists(ctx, p); ok {
				t.Fatal("file visible before Close")
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if ok, _ := storage.Exists(ctx, p); ok {
				t.Fatal("aborted file visible")
			}
			list, err := storage.List(ctx, storage.Join(root, "**"))
			if err != nil || len(list) != 0 {
				t.Fatalf("leftovers after abort: %v %v", list, err)
			}
			// An existing file is replaced whole.
			storage.WriteFile(ctx, p, []byte("old"))
			w, _ = storage.Create(ctx, p)
			w.Write([]byte("new"))
			if got, _ := storage.ReadFile(ctx, p); string(got) != "old" {
				t.Fatalf("old content changed before Close: %q", got)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := storage.ReadFile(ctx, p); string(got) != "new" {
				t.Fatalf("got %q after Close", got)
			}
			// A fill that fails halfway leaves the old file and no temporary.
			boom := errors.New("boom")
			err = storage.WriteWith(ctx, p, func(w io.Writer) error { w.Write([]byte("partial")); return boom })
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), p) {
				t.Fatalf("WriteWith error %v: want boom naming %s", err, p)
			}
			if got, _ := storage.ReadFile(ctx, p); string(got) != "new" {
				t.Fatalf("got %q after a failed WriteWith", got)
			}
			if list, _ := storage.List(ctx, storage.Join(root, "**")); len(list) != 1 {
				t.Fatalf("leftovers after a failed WriteWith: %v", list)
			}
		})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	files := []string{"x/a.json.gz", "x/b.json.gz", "x/c.parquet", "x/sub/d.json.gz", "y/e.json.gz"}
	for name, root := range roots(t) {
		t.Run(name, func(t *testing.T) {
			for _, f := range files {
				if err := storage.WriteFile(ctx, storage.Join(root, f), []byte(f)); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				pattern string
				want    []string
			}{
				{"x/*.json.gz", []string{"x/a.json.gz", "x/b.json.gz"}},
				{"x/**/*.json.gz", []string{"x/a.json.gz", "x/b.json.gz", "x/sub/d.json.gz"}},
				{"*/?.json.gz", []string{"x/a.json.gz", "x/b.json.gz", "y/e.json.gz"}},
				{"x/c.parquet", []string{"x/c.parquet"}},
				{"z/*", nil},
			} {
				got, err := storage.List(ctx, storage.Join(root, tc.pattern))
				if err != nil {
					t.Fatalf("List(%s): %v", tc.pattern, err)
				}
				var names []string
				for _, fi := range got {
					rel := strings.TrimPrefix(filepath.ToSlash(fi.Path), filepath.ToSlash(root)+"/")
					names = append(names, rel)
					if fi.Size != int64(len(rel)) {
						t.Errorf("%s size %d", fi.Path, fi.Size)
					}
				}
				if fmt.Sprint(names) != fmt.Sprint(tc.want) {
					t.Errorf("List(%s) = %v, want %v", tc.pattern, names, tc.want)
				}
			}
		})
	}
}

func TestGCSRetriesTransient503(t *testing.T) {
	ctx := context.Background()
	srv := gcstest.Start(t, "bkt")
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 300000) // 2.1 MB
	p := "gs://bkt/retry/data.bin"

	srv.FailRequests(2, 3) // two in a row, then every third request
	if err := storage.WriteFile(ctx, p, data); err != nil {
		t.Fatalf("write with 503s: %v", err)
	}
	got, err := storage.ReadFile(ctx, p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with 503s: err=%v len=%d", err, len(got))
	}
	if _, err := storage.List(ctx, "gs://bkt/retry/*"); err != nil {
		t.Fatalf("list with 503s: %v", err)
	}
	if _, err := storage.Stat(ctx, p); err != nil {
		t.Fatalf("stat with 503s: %v", err)
	}
	ra, err := storage.OpenReaderAt(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := ra.ReadAt(buf, 7*1000); err != nil || !bytes.Equal(buf, data[:7]) {
		t.Fatalf("ReadAt with 503s: %v %v", buf, err)
	}
	if srv.Failed() < 4 {
		t.Fatalf("only %d requests failed: the test did not exercise retries", srv.Failed())
	}

	// A persistent outage is reported, naming the path, not retried forever.
	srv.FailRequests(1000, 0)
	_, err = storage.ReadFile(ctx, p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("persistent 503: err = %v", err)
	}
}

func TestLocalTempFilesHiddenFromList(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := storage.Create(ctx, filepath.Join(dir, "out.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("want one temp file, got %d", len(entries))
	}
	list, err := storage.List(ctx, filepath.Join(dir, "*"))
	if err != nil || len(list) != 0 {
		t.Fatalf("temp file listed: %v %v", list, err)
	}
}

func TestJoinDirBase(t *testing.T) {
	if got := storage.Join("gs://b/x", "y", "z.txt"); got != "gs://b/x/y/z.txt" {
		t.Error(got)
	}
	if got := storage.Dir("gs://b/x/y.txt"); got != "gs://b/x" {
		t.Error(got)
	}
	if got := storage.Base("gs://b/x/y.txt"); got != "y.txt" {
		t.Error(got)
	}
	if got := storage.Join("/tmp", "a"); got != "/tmp/a" {
		t.Error(got)
	}
}
