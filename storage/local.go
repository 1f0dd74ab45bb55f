package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func localErr(op, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, p, ErrNotExist)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

func localOpen(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, localErr("open", p, errors.Unwrap(err))
	}
	return f, nil
}

type localReaderAt struct {
	*os.File
	size int64
}

func (r localReaderAt) Size() int64 { return r.size }

func localOpenReaderAt(p string) (ReaderAt, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, localErr("open", p, errors.Unwrap(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, localErr("stat", p, err)
	}
	return localReaderAt{f, st.Size()}, nil
}

type localWriter struct {
	f    *os.File
	path string
	done bool
}

func localCreate(p string) (Writer, error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, localErr("create", p, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return nil, localErr("create", p, err)
	}
	return &localWriter{f: f, path: p}, nil
}

func (w *localWriter) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *localWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	tmp := w.f.Name()
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(tmp)
		return localErr("sync", w.path, err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(tmp)
		return localErr("close", w.path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return localErr("chmod", w.path, err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		os.Remove(tmp)
		return localErr("rename", w.path, err)
	}
	return nil
}

func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

func localInfo(p string, st fs.FileInfo) FileInfo {
	return FileInfo{
		Path:    p,
		Size:    st.Size(),
		ModTime: st.ModTime(),
		ETag:    strconv.FormatInt(st.Size(), 10) + "-" + strconv.FormatInt(st.ModTime().UnixNano(), 10),
	}
}

func localStat(p string) (FileInfo, error) {
	st, err := os.Stat(p)
	if err != nil {
		return FileInfo{}, localErr("stat", p, errors.Unwrap(err))
	}
	if st.IsDir() {
		return FileInfo{}, fmt.Errorf("stat %s: is a directory", p)
	}
	return localInfo(p, st), nil
}

func localRemove(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return localErr("remove", p, err)
	}
	return nil
}

func localList(pattern string) ([]FileInfo, error) {
	slashed := filepath.ToSlash(pattern)
	prefix, hasMeta := staticPrefix(slashed)
	if !hasMeta {
		fi, err := localStat(pattern)
		if errors.Is(err, ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []FileInfo{fi}, nil
	}
	root := filepath.FromSlash(prefix)
	if root == "" {
		root = "."
	}
	var out []FileInfo
	if err := walkFiles(root, map[string]bool{}, func(p string, st fs.FileInfo) error {
		ok, err := matchGlob(slashed, filepath.ToSlash(p))
		if err != nil || !ok {
			return err
		}
		out = append(out, localInfo(p, st))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", pattern, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// walkFiles calls fn for every regular file under root (temp files
// skipped), following symbolic links: a linked file is reported under its
// link's path with its target's size and time (so a change behind the link
// is seen), and a linked directory is walked like a real one. seen holds
// the real paths of directories walked, so a link cycle ends.
func walkFiles(root string, seen map[string]bool, fn func(p string, st fs.FileInfo) error) error {
	if real, err := filepath.EvalSymlinks(root); err == nil {
		if seen[real] {
			return nil
		}
		seen[real] = true
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipAll
			}
			return err
		}
		if d.IsDir() {
			if p != root {
				if real, err := filepath.EvalSymlinks(p); err == nil {
					seen[real] = true
				}
			}
			return nil
		}
		if isTemp(d.Name()) {
			return nil
		}
		var st fs.FileInfo
		if d.Type()&fs.ModeSymlink != 0 {
			st, err = os.Stat(p) // the target
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a dangling link names no file
			}
			if err != nil {
				return err
			}
			if st.IsDir() {
				return walkFiles(p+string(filepath.Separator), seen, fn)
			}
		} else if st, err = d.Info(); err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return nil
		}
		return fn(filepath.Clean(p), st)
	})
}

func localRemoveTemp(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipAll
			}
			return err
		}
		if !d.IsDir() && isTemp(d.Name()) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("remove temp files under %s: %w", root, err)
	}
	return n, nil
}

// isTemp reports whether name is an in-progress atomic write (".x.tmp-123").
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}
