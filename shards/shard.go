package shards

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Shard file layout (little-endian; see README.md in this directory):
//
//	header  40 bytes: magic "LCTXSHRD", version u32, seq_len u32, sequences u64,
//	        chunks u32, chunk_seqs u32, index_crc u32, header_crc u32
//	index   chunks x 24 bytes: offset u64, compressed_len u32, sequences u32,
//	        crc32c(compressed) u32, crc32c(uncompressed) u32
//	chunks  one zstd frame each; uncompressed, per sequence: n_starts u32,
//	        pad u32, starts[n_starts] u32, tokens[seq_len] u32
const (
	ShardMagic     = "LCTXSHRD"
	ShardVersion   = 1
	ShardExt       = ".lcs"
	headerSize     = 40
	indexEntrySize = 24
)

// The encoder settings are fixed so the same sequences always compress to the
// same bytes: one frame per chunk (EncodeAll), default level, frame CRC on.
// (Token caches use castagnoli from tokencache.go and their own codecs; the
// shard decoder allows concurrent DecodeAll for the loader's workers.)
var (
	shardCodecOnce sync.Once
	enc            *zstd.Encoder
	dec            *zstd.Decoder
)

func codec() (*zstd.Encoder, *zstd.Decoder) {
	shardCodecOnce.Do(func() {
		var err error
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(true),
			zstd.WithEncoderConcurrency(4), zstd.WithLowerEncoderMem(false))
		if err != nil {
			panic(err)
		}
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<32))
		if err != nil {
			panic(err)
		}
	})
	return enc, dec
}

// ChunkEntry is one index entry.
type ChunkEntry struct {
	Offset    uint64
	Len       uint32
	Sequences uint32
	CRC       uint32 // crc32c of the compressed bytes
	RawCRC    uint32 // crc32c of the uncompressed bytes
}

// ShardInfo describes one written shard; the manifest lists them.
type ShardInfo struct {
	Path      string `json:"path"` // relative to the shard directory
	Sequences int64  `json:"sequences"`
	Chunks    int    `json:"chunks"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
	Real      int64  `json:"real_tokens"`
	Pad       int64  `json:"pad_tokens"`
	Pieces    int64  `json:"pieces"` // document pieces (boundaries)
}

// ChunkSeqs is how many sequences of seqLen tokens go in one chunk so that a
// chunk holds about chunkTokens tokens (at least one sequence).
func ChunkSeqs(seqLen, chunkTokens int) int {
	return max(1, chunkTokens/seqLen)
}

// EncodeShard serializes sequences into one shard file. The output is a pure
// function of (seqs, seqLen, chunkSeqs).
func EncodeShard(seqs []Sequence, seqLen, chunkSeqs int) ([]byte, ShardInfo, error) {
	if chunkSeqs <= 0 {
		return nil, ShardInfo{}, fmt.Errorf("chunk_seqs must be > 0")
	}
	e, _ := codec()
	var info ShardInfo
	nchunks := (len(seqs) + chunkSeqs - 1) / chunkSeqs
	chunks := make([][]byte, nchunks)
	index := make([]ChunkEntry, nchunks)
	offset := uint64(headerSize + nchunks*indexEntrySize)
	var raw []byte
	for c := range chunks {
		lo, hi := c*chunkSeqs, min((c+1)*chunkSeqs, len(seqs))
		raw = raw[:0]
		for i := lo; i < hi; i++ {
			s := seqs[i]
			if err := s.Validate(seqLen); err != nil {
				return nil, info, fmt.Errorf("sequence %d: %w", i, err)
			}
			raw = binary.LittleEndian.AppendUint32(raw, uint32(len(s.Starts)))
			raw = binary.LittleEndian.AppendUint32(raw, s.Pad)
			for _, v := range s.Starts {
				raw = binary.LittleEndian.AppendUint32(raw, v)
			}
			for _, v := range s.Tokens {
				raw = binary.LittleEndian.AppendUint32(raw, v)
			}
			info.Real += int64(seqLen) - int64(s.Pad)
			info.Pad += int64(s.Pad)
			info.Pieces += int64(len(s.Starts))
		}
		chunks[c] = e.EncodeAll(raw, nil)
		index[c] = ChunkEntry{Offset: offset, Len: uint32(len(chunks[c])), Sequences: uint32(hi - lo),
			CRC: crc32.Checksum(chunks[c], castagnoli), RawCRC: crc32.Checksum(raw, castagnoli)}
		offset += uint64(len(chunks[c]))
	}
	idx := make([]byte, 0, nchunks*indexEntrySize)
	for _, ce := range index {
		idx = binary.LittleEndian.AppendUint64(idx, ce.Offset)
		idx = binary.LittleEndian.AppendUint32(idx, ce.Len)
		idx = binary.LittleEndian.AppendUint32(idx, ce.Sequences)
		idx = binary.LittleEndian.AppendUint32(idx, ce.CRC)
		idx = binary.LittleEndian.AppendUint32(idx, ce.RawCRC)
	}
	out := make([]byte, 0, offset)
	out = append(out, ShardMagic...)
	out = binary.LittleEndian.AppendUint32(out, ShardVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(seqLen))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(seqs)))
	out = binary.LittleEndian.AppendUint32(out, uint32(nchunks))
	out = binary.LittleEndian.AppendUint32(out, uint32(chunkSeqs))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(idx, castagnoli))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	out = append(out, idx...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	sum := sha256.Sum256(out)
	info.Sequences = int64(len(seqs))
	info.Chunks = nchunks
	info.Bytes = int64(len(out))
	info.SHA256 = hex.EncodeToString(sum[:])
	return out, info, nil
}

// ShardReader reads sequences from one shard through an io.ReaderAt (a local
// file or a remote object), one chunk at a time.
type ShardReader struct {
	name      string
	r         io.ReaderAt
	size      int64
	SeqLen    int
	Sequences int64
	ChunkSeqs int
	Index     []ChunkEntry
}

// ErrCorrupt marks shard content that fails a check.
var ErrCorrupt = errors.New("corrupt shard")

// OpenShard reads and checks the header and index of a shard of size bytes.
// name is used in errors.
func OpenShard(name string, r io.ReaderAt, size int64) (*ShardReader, error) {
	var h [headerSize]byte
	if size < headerSize {
		return nil, fmt.Errorf("shard %s: %d bytes, shorter than the %d-byte header (truncated): %w", name, size, headerSize, ErrCorrupt)
	}
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("shard %s: reading header: %w", name, err)
	}
	if string(h[:8]) != ShardMagic {
		return nil, fmt.Errorf("shard %s: bad magic %q (not a longctx shard): %w", name, h[:8], ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(h[36:]), crc32.Checksum(h[:36], castagnoli); got != want {
		return nil, fmt.Errorf("shard %s: header checksum %08x, want %08x: %w", name, got, want, ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != ShardVersion {
		return nil, fmt.Errorf("shard %s: format version %d, this reader knows %d", name, v, ShardVersion)
	}
	s := &ShardReader{name: name, r: r, size: size,
		SeqLen:    int(binary.LittleEndian.Uint32(h[12:])),
		Sequences: int64(binary.LittleEndian.Uint64(h[16:])),
		ChunkSeqs: int(binary.LittleEndian.Uint32(h[28:])),
	}
	nchunks := int64(binary.LittleEndian.Uint32(h[24:]))
	if headerSize+nchunks*indexEntrySize > size {
		return nil, fmt.Errorf("shard %s: index of %d chunks runs past the end of the %d-byte file (truncated): %w", name, nchunks, size, ErrCorrupt)
	}
	idx := make([]byte, nchunks*indexEntrySize)
	if _, err := r.ReadAt(idx, headerSize); err != nil {
		return nil, fmt.Errorf("shard %s: reading index: %w", name, err)
	}
	if got, want := crc32.Checksum(idx, castagnoli), binary.LittleEndian.Uint32(h[32:]); got != want {
		return nil, fmt.Errorf("shard %s: index checksum %08x, want %08x: %w", name, got, want, ErrCorrupt)
	}
	s.Index = make([]ChunkEntry, nchunks)
	next := uint64(headerSize + nchunks*indexEntrySize)
	var seqs int64
	for c := range s.Index {
		b := idx[c*indexEntrySize:]
		ce := ChunkEntry{Offset: binary.LittleEndian.Uint64(b), Len: binary.LittleEndian.Uint32(b[8:]),
			Sequences: binary.LittleEndian.Uint32(b[12:]), CRC: binary.LittleEndian.Uint32(b[16:]), RawCRC: binary.LittleEndian.Uint32(b[20:])}
		if ce.Offset != next {
			return nil, fmt.Errorf("shard %s chunk %d: offset %d, want %d (chunks must be contiguous): %w", name, c, ce.Offset, next, ErrCorrupt)
		}
		if ce.Sequences == 0 || int(ce.Sequences) > s.ChunkSeqs || (c < len(s.Index)-1 && int(ce.Sequences) != s.ChunkSeqs) {
			return nil, fmt.Errorf("shard %s chunk %d: %d sequences with chunk_seqs %d: %w", name, c, ce.Sequences, s.ChunkSeqs, ErrCorrupt)
		}
		next += uint64(ce.Len)
		seqs += int64(ce.Sequences)
		s.Index[c] = ce
	}
	if seqs != s.Sequences {
		return nil, fmt.Errorf("shard %s: index counts %d sequences, header %d: %w", name, seqs, s.Sequences, ErrCorrupt)
	}
	if int64(next) != size {
		if int64(next) > size {
			c := s.chunkAt(int64(size))
			return nil, fmt.Errorf("shard %s chunk %d: file is %d bytes, chunks end at %d (truncated): %w", name, c, size, next, ErrCorrupt)
		}
		return nil, fmt.Errorf("shard %s: %d trailing bytes after the last chunk: %w", name, size-int64(next), ErrCorrupt)
	}
	return s, nil
}

// chunkAt returns the chunk containing byte offset off (or the last chunk).
func (s *ShardReader) chunkAt(off int64) int {
	for c, ce := range s.Index {
		if uint64(off) < ce.Offset+uint64(ce.Len) {
			return c
		}
	}
	return len(s.Index) - 1
}

// ReadChunk reads, checks and decodes chunk c.
func (s *ShardReader) ReadChunk(c int) ([]Sequence, error) {
	if c < 0 || c >= len(s.Index) {
		return nil, fmt.Errorf("shard %s: chunk %d out of range [0,%d)", s.name, c, len(s.Index))
	}
	ce := s.Index[c]
	buf := make([]byte, ce.Len)
	if _, err := s.r.ReadAt(buf, int64(ce.Offset)); err != nil {
		return nil, fmt.Errorf("shard %s chunk %d: reading %d bytes at %d: %w", s.name, c, ce.Len, ce.Offset, err)
	}
	if got := crc32.Checksum(buf, castagnoli); got != ce.CRC {
		return nil, fmt.Errorf("shard %s chunk %d: checksum %08x, want %08x: %w", s.name, c, got, ce.CRC, ErrCorrupt)
	}
	_, d := codec()
	raw, err := d.DecodeAll(buf, make([]byte, 0, int(ce.Sequences)*(s.SeqLen+2)*4))
	if err != nil {
		return nil, fmt.Errorf("shard %s chunk %d: zstd: %v: %w", s.name, c, err, ErrCorrupt)
	}
	if got := crc32.Checksum(raw, castagnoli); got != ce.RawCRC {
		return nil, fmt.Errorf("shard %s chunk %d: decoded checksum %08x, want %08x: %w", s.name, c, got, ce.RawCRC, ErrCorrupt)
	}
	seqs, err := decodeSequences(raw, int(ce.Sequences), s.SeqLen)
	if err != nil {
		return nil, fmt.Errorf("shard %s chunk %d: %v: %w", s.name, c, err, ErrCorrupt)
	}
	return seqs, nil
}

func decodeSequences(raw []byte, n, seqLen int) ([]Sequence, error) {
	// One backing array for all tokens and starts of the chunk.
	words := make([]uint32, len(raw)/4)
	if len(raw)%4 != 0 {
		return nil, fmt.Errorf("decoded length %d is not a multiple of 4", len(raw))
	}
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	seqs := make([]Sequence, n)
	p := 0
	for i := range seqs {
		if p+2 > len(words) {
			return nil, fmt.Errorf("sequence %d: chunk ends early", i)
		}
		ns, pad := int(words[p]), words[p+1]
		p += 2
		if ns > seqLen || p+ns+seqLen > len(words) {
			return nil, fmt.Errorf("sequence %d: %d boundaries, chunk ends early", i, ns)
		}
		s := Sequence{Starts: words[p : p+ns : p+ns], Tokens: words[p+ns : p+ns+seqLen : p+ns+seqLen], Pad: pad}
		p += ns + seqLen
		if err := s.Validate(seqLen); err != nil {
			return nil, fmt.Errorf("sequence %d: %v", i, err)
		}
		seqs[i] = s
	}
	if p != len(words) {
		return nil, fmt.Errorf("%d bytes after the last sequence", 4*(len(words)-p))
	}
	return seqs, nil
}

// ReadAll decodes every sequence of the shard (tools and tests; the loader
// reads chunk by chunk).
func (s *ShardReader) ReadAll() ([]Sequence, error) {
	out := make([]Sequence, 0, s.Sequences)
	for c := range s.Index {
		seqs, err := s.ReadChunk(c)
		if err != nil {
			return nil, err
		}
		out = append(out, seqs...)
	}
	return out, nil
}

// OpenShardBytes opens a shard held in memory.
func OpenShardBytes(name string, data []byte) (*ShardReader, error) {
	return OpenShard(name, bytes.NewReader(data), int64(len(data)))
}
