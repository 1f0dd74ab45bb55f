package shards

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File access for shards. Local paths for now; gs:// goes through the
// storage package once it lands on main (these three functions are the only
// places to change).

// readFile reads a whole file.
func readFile(_ context.Context, path string) ([]byte, error) {
	return os.ReadFile(path)
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so readers never see a partial file and a retried write overwrites.
func writeFileAtomic(_ context.Context, path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// readerAt is an open shard file.
type readerAt interface {
	io.ReaderAt
	io.Closer
}

// openReaderAt opens path for random access and returns its size.
func openReaderAt(_ context.Context, path string) (readerAt, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// joinPath joins a directory (local or gs://) and a relative name.
func joinPath(dir, name string) string {
	if len(dir) > 0 && dir[len(dir)-1] == '/' {
		return dir + name
	}
	return dir + "/" + name
}
