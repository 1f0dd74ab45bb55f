package shards

import (
	"context"
	"io"

	"longctx/storage"
)

// File access for shards goes through storage: local paths and gs:// URLs.

func readFile(ctx context.Context, path string) ([]byte, error) {
	return storage.ReadFile(ctx, path)
}

// readerAt is an open shard file.
type readerAt interface {
	io.ReaderAt
	io.Closer
}

// openReaderAt opens path for random access and returns its size.
func openReaderAt(ctx context.Context, path string) (readerAt, int64, error) {
	r, err := storage.OpenReaderAt(ctx, path)
	if err != nil {
		return nil, 0, err
	}
	return r, r.Size(), nil
}

// joinPath joins a shard directory (local or gs://) and a file name.
func joinPath(dir, name string) string { return storage.Join(dir, name) }
