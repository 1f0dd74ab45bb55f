package pipelines

// Local intermediate storage of the in-process mix executor: the temp area
// next to the output, keyed record files in it, and the store that holds
// selected pieces until their group is packed.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"longctx/shards"
	"longctx/storage"
)

// mixTempDir is the local directory of one mix's spill and plan files: under
// the output when it is local, else under the system temp directory named by
// a hash of the output. Either way the next run to the same output finds, and
// removes, what a killed run left there.
func mixTempDir(output string) string {
	if !storage.IsGCS(output) {
		return filepath.Join(output, "_mix-tmp")
	}
	sum := sha256.Sum256([]byte(output))
	return filepath.Join(os.TempDir(), "longctx-mix-"+hex.EncodeToString(sum[:8]))
}

// freshTempDir removes what an earlier (killed) run left in dir and creates it
// empty.
func freshTempDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("mix temp area %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mix temp area %s: %w", dir, err)
	}
	return nil
}

// recordFiles appends batches of framed records to one local file per key.
// A file is opened per append, so thousands of keys need no open handles.
type recordFiles struct {
	dir string
	mu  []sync.Mutex
}

func newRecordFiles(dir string, keys int) (*recordFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mix temp area: %w", err)
	}
	return &recordFiles{dir: dir, mu: make([]sync.Mutex, keys)}, nil
}

func (s *recordFiles) path(k int) string { return filepath.Join(s.dir, fmt.Sprintf("%06d", k)) }

func (s *recordFiles) append(k int, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	s.mu[k].Lock()
	defer s.mu[k].Unlock()
	f, err := os.OpenFile(s.path(k), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("mix temp area: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("mix temp area %s: %w", s.path(k), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mix temp area %s: %w", s.path(k), err)
	}
	return nil
}

// read returns key k's records (nil when it has none).
func (s *recordFiles) read(k int) ([]byte, error) {
	s.mu[k].Lock()
	defer s.mu[k].Unlock()
	b, err := os.ReadFile(s.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mix temp area: %w", err)
	}
	return b, nil
}

func (s *recordFiles) remove(k int) error {
	err := os.Remove(s.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// pieceStore holds selected pieces by packing group until they are packed.
// The order pieces arrive in does not matter: Pack sorts them.
type pieceStore interface {
	add(g int, ps []shards.Piece) error
	take(g int) ([]shards.Piece, error) // all pieces of g, once
}

type memStore struct {
	mu      sync.Mutex
	buckets [][]shards.Piece
}

func (m *memStore) add(g int, ps []shards.Piece) error {
	m.mu.Lock()
	m.buckets[g] = append(m.buckets[g], ps...)
	m.mu.Unlock()
	return nil
}

func (m *memStore) take(g int) ([]shards.Piece, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.buckets[g]
	m.buckets[g] = nil
	return ps, nil
}

// spillStore appends piece records to one file per group in the temp area.
type spillStore struct{ files *recordFiles }

func newSpillStore(dir string, groups int) (*spillStore, error) {
	f, err := newRecordFiles(dir, groups)
	if err != nil {
		return nil, err
	}
	return &spillStore{files: f}, nil
}

func (s *spillStore) add(g int, ps []shards.Piece) error {
	var buf []byte
	for _, p := range ps {
		buf = appendFramed(buf, encodePiece(p))
	}
	if err := s.files.append(g, buf); err != nil {
		return fmt.Errorf("mix spill group %d: %w", g, err)
	}
	return nil
}

func (s *spillStore) take(g int) ([]shards.Piece, error) {
	data, err := s.files.read(g)
	if err != nil {
		return nil, fmt.Errorf("mix spill group %d: %w", g, err)
	}
	defer s.files.remove(g)
	var ps []shards.Piece
	err = forFramed(data, func(rec []byte) error {
		p, err := decodePiece(rec)
		if err != nil {
			return err
		}
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mix spill group %d: %s: %w", g, s.files.path(g), err)
	}
	return ps, nil
}
