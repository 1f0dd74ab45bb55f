// Package storage opens, creates, lists and stats files that are either local
// paths or gs://bucket/object URLs, so every stage reads and writes both the
// same way.
//
// Creation is atomic: a local file is written to a temporary name in the same
// directory and renamed on Close; a GCS object becomes visible only when its
// upload is finalised on Close (an aborted or crashed upload leaves nothing),
// which is the object-store form of temp + rename. Transient GCS errors (429,
// 5xx, connection resets) are retried with exponential backoff.
//
// gs:// access honours STORAGE_EMULATOR_HOST (as Beam's gs filesystem does),
// which is how the tests run against an in-process fake-gcs-server.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// FileInfo describes one file or object.
type FileInfo struct {
	Path    string    // as given or listed: local path or gs://bucket/object
	Size    int64     // bytes
	ETag    string    // GCS etag or, locally, size+mtime; changes when content changes
	ModTime time.Time // last modification
}

// ReaderAt is a random-access reader with a known size (parquet needs it).
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Writer writes a new file. Close commits it atomically; Abort discards it.
// After a failed Write, call Abort.
type Writer interface {
	io.Writer
	Close() error
	Abort() error
}

// ErrNotExist is returned (wrapped) for a missing file or object.
var ErrNotExist = errors.New("file does not exist")

// IsGCS reports whether p is a gs:// URL.
func IsGCS(p string) bool { return strings.HasPrefix(p, "gs://") }

// Join joins path elements, keeping the gs:// scheme intact.
func Join(elem ...string) string {
	if len(elem) > 0 && IsGCS(elem[0]) {
		rest := path.Join(append([]string{strings.TrimPrefix(elem[0], "gs://")}, elem[1:]...)...)
		return "gs://" + rest
	}
	return filepath.Join(elem...)
}

// Dir returns all but the last element of p.
func Dir(p string) string {
	if IsGCS(p) {
		d := path.Dir(strings.TrimPrefix(p, "gs://"))
		return "gs://" + d
	}
	return filepath.Dir(p)
}

// Base returns the last element of p.
func Base(p string) string {
	if IsGCS(p) {
		return path.Base(p)
	}
	return filepath.Base(p)
}

// Open opens p for streaming reads.
func Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if IsGCS(p) {
		return gcsOpen(ctx, p)
	}
	return localOpen(p)
}

// OpenReaderAt opens p for random access.
func OpenReaderAt(ctx context.Context, p string) (ReaderAt, error) {
	if IsGCS(p) {
		return gcsOpenReaderAt(ctx, p)
	}
	return localOpenReaderAt(p)
}

// Create starts an atomic write of p, creating parent directories locally.
func Create(ctx context.Context, p string) (Writer, error) {
	if IsGCS(p) {
		return gcsCreate(ctx, p)
	}
	return localCreate(p)
}

// Stat describes p.
func Stat(ctx context.Context, p string) (FileInfo, error) {
	if IsGCS(p) {
		return gcsStat(ctx, p)
	}
	return localStat(p)
}

// List returns the files matching the glob pattern, sorted by path. Patterns
// use path.Match syntax per path segment ('*' does not cross '/'), and a
// segment of '**' matches any number of segments.
func List(ctx context.Context, pattern string) ([]FileInfo, error) {
	if IsGCS(pattern) {
		return gcsList(ctx, pattern)
	}
	return localList(pattern)
}

// RemoveTemp deletes the in-progress atomic writes (temp files) that a
// killed process left anywhere under root, and returns how many. gs://
// writes are single objects that appear only when complete, so there is
// nothing to remove there.
func RemoveTemp(ctx context.Context, root string) (int, error) {
	if IsGCS(root) {
		return 0, nil
	}
	return localRemoveTemp(root)
}

// Remove deletes p; a missing file is not an error.
func Remove(ctx context.Context, p string) error {
	if IsGCS(p) {
		return gcsRemove(ctx, p)
	}
	return localRemove(p)
}

// ReadFile reads all of p.
func ReadFile(ctx context.Context, p string) ([]byte, error) {
	r, err := Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// WriteFile writes data to p atomically.
func WriteFile(ctx context.Context, p string, data []byte) error {
	return WriteWith(ctx, p, func(w io.Writer) error { _, err := w.Write(data); return err })
}

// WriteWith writes p atomically from fill, which streams the content: p
// appears, complete, only when fill succeeds; on any error nothing is left.
func WriteWith(ctx context.Context, p string, fill func(io.Writer) error) error {
	w, err := Create(ctx, p)
	if err != nil {
		return err
	}
	if err := fill(w); err != nil {
		w.Abort()
		return fmt.Errorf("write %s: %w", p, err)
	}
	return w.Close()
}

// Exists reports whether p exists.
func Exists(ctx context.Context, p string) (bool, error) {
	_, err := Stat(ctx, p)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// staticPrefix returns the part of a glob pattern before its first segment
// with a metacharacter, and the remaining pattern.
func staticPrefix(pattern string) (prefix string, hasMeta bool) {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.ContainsAny(s, "*?[\\") {
			return strings.Join(segs[:i], "/"), true
		}
	}
	return pattern, false
}

// matchGlob matches a slash-separated name against a pattern where '**' is a
// whole segment matching zero or more segments.
func matchGlob(pattern, name string) (bool, error) {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) (bool, error) {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				ok, err := matchSegs(pat[1:], name[i:])
				if ok || err != nil {
					return ok, err
				}
			}
			return false, nil
		}
		if len(name) == 0 {
			return false, nil
		}
		ok, err := path.Match(pat[0], name[0])
		if err != nil {
			return false, fmt.Errorf("bad glob pattern segment %q: %w", pat[0], err)
		}
		if !ok {
			return false, nil
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0, nil
}
