package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"longctx/storage"
)

// PrepareManifest is what the prepare stage hands to mix: for every source,
// the token caches it wrote and where they came from. Mix reads this, never a
// directory listing.
type PrepareManifest struct {
	Version       int              `json:"version"`
	TokenizerHash string           `json:"tokenizer_hash"`
	ConfigHash    string           `json:"config_hash"`
	Sources       []PreparedSource `json:"sources"` // sorted by Name
}

// PreparedSource is one mixture source's token caches.
type PreparedSource struct {
	Name   string     `json:"name"`
	Docs   int64      `json:"docs"`   // documents written to caches
	Tokens int64      `json:"tokens"` // tokens written to caches
	Caches []CacheRef `json:"caches"` // sorted by Path
}

// CacheRef is one token cache and the input file it was made from.
type CacheRef struct {
	Path   string   `json:"path"` // relative to the manifest's directory, or absolute/gs://
	Input  InputRef `json:"input"`
	Docs   int64    `json:"docs"`
	Tokens int64    `json:"tokens"`
	SHA256 string   `json:"sha256"`
}

// InputRef identifies an input file's content.
type InputRef struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

// Source returns the named source, or nil.
func (m *PrepareManifest) Source(name string) *PreparedSource {
	for i := range m.Sources {
		if m.Sources[i].Name == name {
			return &m.Sources[i]
		}
	}
	return nil
}

// Encode renders the manifest as indented JSON (deterministic).
func (m *PrepareManifest) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Hash returns the sha256 of the encoded manifest, for lineage.
func (m *PrepareManifest) Hash() string {
	b, err := m.Encode()
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// WritePrepareManifest writes m to path atomically.
func WritePrepareManifest(ctx context.Context, path string, m *PrepareManifest) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("prepare manifest %s: %w", path, err)
	}
	return storage.WriteFile(ctx, path, b)
}

// ReadPrepareManifest reads a manifest written by WritePrepareManifest.
func ReadPrepareManifest(ctx context.Context, path string) (*PrepareManifest, error) {
	b, err := storage.ReadFile(ctx, path)
	if err != nil {
		return nil, err
	}
	var m PrepareManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("prepare manifest %s: %w", path, err)
	}
	return &m, nil
}

// CachePath resolves a cache reference against the manifest's location.
func CachePath(manifestPath string, ref CacheRef) string {
	if storage.IsGCS(ref.Path) || len(ref.Path) > 0 && ref.Path[0] == '/' {
		return ref.Path
	}
	return storage.Join(storage.Dir(manifestPath), ref.Path)
}
