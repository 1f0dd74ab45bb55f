package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"longctx/storage"
)

// ManifestName is the shard directory's manifest file.
const ManifestName = "manifest.json"

// ManifestFormat names the format in the manifest.
const ManifestFormat = "longctx-shards"

// Manifest describes a shard directory: what it was made from (lineage),
// what the mixture realized, how packing went, and every shard with its
// checksum.
type Manifest struct {
	Format              string        `json:"format"`
	Version             int           `json:"version"`
	Name                string        `json:"name"`
	SeqLen              int           `json:"seq_len"`
	ChunkSeqs           int           `json:"chunk_seqs"`
	Seed                uint64        `json:"seed"`
	MixtureConfigHash   string        `json:"mixture_config_hash"`
	TokenizerHash       string        `json:"tokenizer_hash"`
	PrepareManifestHash string        `json:"prepare_manifest_hash"`
	Sources             []SourceStats `json:"sources"`
	Packing             PackStats     `json:"packing"`
	SplitDocs           int64         `json:"split_docs"`
	DocLengths          LengthHist    `json:"doc_lengths"`
	Shards              []ShardInfo   `json:"shards"`
}

// SourceStats is one source's line of the mixture report.
type SourceStats struct {
	Source          string  `json:"source"`
	Weight          float64 `json:"weight"`
	TargetTokens    int64   `json:"target_tokens"`
	AvailableTokens int64   `json:"available_tokens"`
	RealizedTokens  int64   `json:"realized_tokens"` // tokens packed into shards
	Docs            int64   `json:"docs"`            // document repetitions taken
	FullPasses      int     `json:"full_passes"`
	Repeats         float64 `json:"repeats"`
	TruncatedTokens int64   `json:"truncated_tokens"`
	Warning         string  `json:"warning,omitempty"`
	// Duplicates the mix found in the source: repeated ids (dropped, the
	// first occurrence kept) and repeated content under another id (counted
	// with dedup count/exact, dropped with exact).
	DuplicateIDs     int64 `json:"duplicate_id,omitempty"`
	DuplicateContent int64 `json:"duplicate_content,omitempty"`
	DroppedContent   int64 `json:"dropped_content,omitempty"`
}

// Sequences is the total over all shards.
func (m Manifest) Sequences() int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Sequences
	}
	return n
}

// Encode renders the manifest deterministically (indented JSON, newline).
func (m Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteManifest writes dir/manifest.json atomically.
func WriteManifest(ctx context.Context, dir string, m Manifest) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return storage.WriteFile(ctx, joinPath(dir, ManifestName), b)
}

// ReadManifest reads and checks dir/manifest.json.
func ReadManifest(ctx context.Context, dir string) (Manifest, error) {
	path := joinPath(dir, ManifestName)
	b, err := readFile(ctx, path)
	if err != nil {
		return Manifest{}, fmt.Errorf("shard manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("shard manifest %s: %w", path, err)
	}
	if m.Format != ManifestFormat || m.Version != ShardVersion {
		return Manifest{}, fmt.Errorf("shard manifest %s: format %q version %d, want %q version %d", path, m.Format, m.Version, ManifestFormat, ShardVersion)
	}
	if m.SeqLen <= 0 {
		return Manifest{}, fmt.Errorf("shard manifest %s: seq_len %d", path, m.SeqLen)
	}
	return m, nil
}

// WriteShard encodes sequences as the shard dir/name and writes it
// atomically.
func WriteShard(ctx context.Context, dir, name string, seqs []Sequence, seqLen, chunkSeqs int) (ShardInfo, error) {
	data, info, err := EncodeShard(seqs, seqLen, chunkSeqs)
	if err != nil {
		return info, fmt.Errorf("shard %s: %w", name, err)
	}
	info.Path = name
	if err := storage.WriteFile(ctx, joinPath(dir, name), data); err != nil {
		return info, err
	}
	return info, nil
}

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Shards    int      `json:"shards"`
	Chunks    int      `json:"chunks"`
	Sequences int64    `json:"sequences"`
	Problems  []string `json:"problems"`
}

// Verify checks a shard directory end to end: the manifest, every shard's
// size and SHA-256, header and index invariants, every chunk's checksums and
// sequences, and that the counts agree with the manifest. It reports every
// problem (naming shard and chunk), not just the first; the error is non-nil
// when there is any.
func Verify(ctx context.Context, dir string) (VerifyReport, error) {
	var r VerifyReport
	m, err := ReadManifest(ctx, dir)
	if err != nil {
		return r, err
	}
	bad := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }
	if m.Format != ManifestFormat {
		bad("manifest format %q, want %q", m.Format, ManifestFormat)
	}
	if m.Version != ShardVersion {
		bad("manifest version %d, this build writes shards of version %d", m.Version, ShardVersion)
	}
	if m.SeqLen <= 0 || m.ChunkSeqs <= 0 {
		bad("manifest seq_len %d, chunk_seqs %d: both must be > 0", m.SeqLen, m.ChunkSeqs)
	}
	seen := map[string]bool{}
	var tot ShardInfo
	for _, si := range m.Shards {
		r.Shards++
		if seen[si.Path] {
			bad("shard %s listed twice in the manifest", si.Path)
		}
		seen[si.Path] = true
		got, err := verifyShard(ctx, dir, si, m, bad)
		if err != nil {
			bad("%v", err)
			continue
		}
		r.Chunks += got.Chunks
		r.Sequences += got.Sequences
		tot.Sequences += got.Sequences
		tot.Real += got.Real
		tot.Pad += got.Pad
		tot.Pieces += got.Pieces
	}
	if len(r.Problems) == 0 {
		if tot.Sequences != m.Packing.Sequences || tot.Real != m.Packing.Real || tot.Pad != m.Packing.Pad || tot.Pieces != m.Packing.Pieces {
			bad("shards hold %d sequences, %d real, %d pad tokens, %d pieces; manifest packing says %d, %d, %d, %d",
				tot.Sequences, tot.Real, tot.Pad, tot.Pieces, m.Packing.Sequences, m.Packing.Real, m.Packing.Pad, m.Packing.Pieces)
		}
		var realized int64
		for _, s := range m.Sources {
			realized += s.RealizedTokens
		}
		if realized != tot.Real {
			bad("sources realized %d tokens, shards hold %d real tokens", realized, tot.Real)
		}
	}
	if len(r.Problems) > 0 {
		return r, fmt.Errorf("%s: %d problems, first: %s: %w", dir, len(r.Problems), r.Problems[0], ErrCorrupt)
	}
	return r, nil
}

// verifyShard checks one shard against its manifest entry and the manifest's
// shard-wide fields (seq_len, chunk_seqs), which the loader relies on.
func verifyShard(ctx context.Context, dir string, si ShardInfo, m Manifest, bad func(string, ...any)) (ShardInfo, error) {
	seqLen := m.SeqLen
	path := joinPath(dir, si.Path)
	data, err := readFile(ctx, path)
	if err != nil {
		return si, fmt.Errorf("shard %s: %w", si.Path, err)
	}
	if int64(len(data)) != si.Bytes {
		bad("shard %s: %d bytes, manifest says %d", si.Path, len(data), si.Bytes)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != si.SHA256 {
		bad("shard %s: sha256 %s, manifest says %s", si.Path, hex.EncodeToString(sum[:]), si.SHA256)
	}
	sr, err := OpenShardBytes(si.Path, data)
	if err != nil {
		return si, err
	}
	if sr.SeqLen != seqLen {
		return si, fmt.Errorf("shard %s: seq_len %d, manifest says %d: %w", si.Path, sr.SeqLen, seqLen, ErrCorrupt)
	}
	if sr.ChunkSeqs != m.ChunkSeqs {
		bad("shard %s: chunk_seqs %d, manifest says %d", si.Path, sr.ChunkSeqs, m.ChunkSeqs)
	}
	if sr.Sequences != si.Sequences {
		bad("shard %s: header counts %d sequences, manifest says %d", si.Path, sr.Sequences, si.Sequences)
	}
	got := ShardInfo{Path: si.Path, Chunks: len(sr.Index)}
	var chunkErrs int
	for c := range sr.Index {
		seqs, err := sr.ReadChunk(c)
		if err != nil {
			bad("%v", err)
			chunkErrs++
			continue
		}
		for _, s := range seqs {
			got.Sequences++
			got.Real += int64(seqLen) - int64(s.Pad)
			got.Pad += int64(s.Pad)
			got.Pieces += int64(len(s.Starts))
		}
	}
	if chunkErrs > 0 {
		return got, fmt.Errorf("shard %s: %d of %d chunks corrupt: %w", si.Path, chunkErrs, len(sr.Index), ErrCorrupt)
	}
	if got.Sequences != si.Sequences || got.Real != si.Real || got.Pad != si.Pad || got.Pieces != si.Pieces || got.Chunks != si.Chunks {
		return got, fmt.Errorf("shard %s: holds %d sequences/%d chunks/%d real/%d pad/%d pieces, manifest says %d/%d/%d/%d/%d: %w",
			si.Path, got.Sequences, got.Chunks, got.Real, got.Pad, got.Pieces, si.Sequences, si.Chunks, si.Real, si.Pad, si.Pieces, ErrCorrupt)
	}
	return got, nil
}

// IsCorrupt reports whether err marks corrupt shard content.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }
