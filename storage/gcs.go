package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
)

// Retry policy for transient GCS errors. Our writes are idempotent (outputs
// are named from their inputs and rewritten whole), so uploads are retried
// too, not only reads.
var retryOptions = []gcs.RetryOption{
	gcs.WithBackoff(gax.Backoff{Initial: 20 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}),
	gcs.WithPolicy(gcs.RetryAlways),
	gcs.WithMaxAttempts(8),
}

var (
	clientMu   sync.Mutex
	client     *gcs.Client
	clientHost string // STORAGE_EMULATOR_HOST the client was made for
)

// gcsClient returns a shared client, remade when STORAGE_EMULATOR_HOST
// changes (tests start fresh emulators).
func gcsClient(ctx context.Context) (*gcs.Client, error) {
	clientMu.Lock()
	defer clientMu.Unlock()
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if client != nil && host == clientHost {
		return client, nil
	}
	if client != nil {
		client.Close()
	}
	c, err := gcs.NewClient(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("gcs client: %w", err)
	}
	c.SetRetry(retryOptions...)
	client, clientHost = c, host
	return c, nil
}

// splitGCS splits gs://bucket/object.
func splitGCS(p string) (bucket, object string, err error) {
	rest := strings.TrimPrefix(p, "gs://")
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("bad gs:// path %q: no bucket", p)
	}
	return bucket, object, nil
}

func gcsObject(ctx context.Context, p string) (*gcs.ObjectHandle, error) {
	bucket, object, err := splitGCS(p)
	if err != nil {
		return nil, err
	}
	if object == "" {
		return nil, fmt.Errorf("bad gs:// path %q: no object name", p)
	}
	c, err := gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	return c.Bucket(bucket).Object(object), nil
}

func gcsErr(op, p string, err error) error {
	if errors.Is(err, gcs.ErrObjectNotExist) || errors.Is(err, gcs.ErrBucketNotExist) {
		return fmt.Errorf("%s %s: %w", op, p, ErrNotExist)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

func gcsOpen(ctx context.Context, p string) (io.ReadCloser, error) {
	o, err := gcsObject(ctx, p)
	if err != nil {
		return nil, err
	}
	// ReadCompressed keeps gzip-encoded objects byte-identical to what was
	// uploaded (no decompressive transcoding), like a local file.
	r, err := o.ReadCompressed(true).NewReader(ctx)
	if err != nil {
		return nil, gcsErr("open", p, err)
	}
	return r, nil
}

type gcsReaderAt struct {
	ctx  context.Context
	obj  *gcs.ObjectHandle
	path string
	size int64
	gen  int64
}

func gcsOpenReaderAt(ctx context.Context, p string) (ReaderAt, error) {
	o, err := gcsObject(ctx, p)
	if err != nil {
		return nil, err
	}
	attrs, err := o.Attrs(ctx)
	if err != nil {
		return nil, gcsErr("stat", p, err)
	}
	// Pin the generation so a concurrent overwrite cannot mix two versions.
	return &gcsReaderAt{ctx: ctx, obj: o.Generation(attrs.Generation).ReadCompressed(true), path: p, size: attrs.Size, gen: attrs.Generation}, nil
}

func (r *gcsReaderAt) Size() int64  { return r.size }
func (r *gcsReaderAt) Close() error { return nil }

func (r *gcsReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := int64(len(b))
	if off+n > r.size {
		n = r.size - off
	}
	rr, err := r.obj.NewRangeReader(r.ctx, off, n)
	if err != nil {
		return 0, gcsErr("read", r.path, err)
	}
	defer rr.Close()
	got, err := io.ReadFull(rr, b[:n])
	if err != nil {
		return got, gcsErr("read", r.path, err)
	}
	if got < len(b) {
		return got, io.EOF
	}
	return got, nil
}

type gcsWriter struct {
	w      *gcs.Writer
	cancel context.CancelFunc
	path   string
	done   bool
}

func gcsCreate(ctx context.Context, p string) (Writer, error) {
	o, err := gcsObject(ctx, p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := o.NewWriter(ctx)
	w.ChunkSize = 8 << 20
	return &gcsWriter{w: w, cancel: cancel, path: p}, nil
}

func (w *gcsWriter) Write(b []byte) (int, error) { return w.w.Write(b) }

func (w *gcsWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return gcsErr("create", w.path, err)
	}
	return nil
}

// Abort cancels the upload; GCS never finalises the object.
func (w *gcsWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.cancel()
	w.w.Close()
	return nil
}

func gcsInfo(bucket string, a *gcs.ObjectAttrs) FileInfo {
	return FileInfo{Path: "gs://" + bucket + "/" + a.Name, Size: a.Size, ETag: a.Etag, ModTime: a.Updated}
}

func gcsStat(ctx context.Context, p string) (FileInfo, error) {
	o, err := gcsObject(ctx, p)
	if err != nil {
		return FileInfo{}, err
	}
	a, err := o.Attrs(ctx)
	if err != nil {
		return FileInfo{}, gcsErr("stat", p, err)
	}
	return gcsInfo(a.Bucket, a), nil
}

func gcsRemove(ctx context.Context, p string) error {
	o, err := gcsObject(ctx, p)
	if err != nil {
		return err
	}
	if err := o.Delete(ctx); err != nil && !errors.Is(err, gcs.ErrObjectNotExist) {
		return gcsErr("remove", p, err)
	}
	return nil
}

func gcsList(ctx context.Context, pattern string) ([]FileInfo, error) {
	bucket, objPattern, err := splitGCS(pattern)
	if err != nil {
		return nil, err
	}
	c, err := gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	prefix, hasMeta := staticPrefix(objPattern)
	if !hasMeta {
		fi, err := gcsStat(ctx, pattern)
		if errors.Is(err, ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []FileInfo{fi}, nil
	}
	if prefix != "" {
		prefix += "/"
	}
	it := c.Bucket(bucket).Objects(ctx, &gcs.Query{Prefix: prefix})
	var out []FileInfo
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, gcsErr("list", pattern, err)
		}
		ok, err := matchGlob(objPattern, a.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, gcsInfo(bucket, a))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
