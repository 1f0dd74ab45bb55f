package shards

// Token cache: the documents of one input file, tokenized once by `prepare`
// and read many times by `mix`.
//
// Layout (integers little-endian):
//
//	magic    "LCTCACHE" (8 bytes), version u32 (2; 1 is still read)
//	header   u32 length + JSON CacheHeader
//	blocks   blocks as the header codec says: "raw" (the ids as they are),
//	         "s2" blocks or zstd frames (version 1: zstd); each holds the
//	         token ids of consecutive
//	         documents as uint16 or uint32 (header token_bytes; version 1:
//	         uint32),
//	         closed once it has >= BlockTokens tokens, so a reader can
//	         decode any block alone
//	index    one zstd frame: uvarint docs; per doc uvarint len(id), id, uvarint
//	         tokens; uvarint blocks; per block uvarint offset, uvarint
//	         compressed length, uvarint docs, u32 crc32c of the block's
//	         decompressed bytes
//	trailer  u64 index offset, u64 index length, u32 crc32c(index frame),
//	         u32 crc32c(header JSON), magic "LCTCEND1" (32 bytes)
//
// The index sits at the end so the writer streams with bounded memory, and
// mix can read every document's id and length without touching the tokens.
// Compression settings are fixed, so equal inputs give byte-identical files.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"longctx/storage"
)

const (
	cacheMagic    = "LCTCACHE"
	cacheEndMagic = "LCTCEND1"
	cacheVersion  = 2
	trailerSize   = 32
	// BlockTokens is the size at which a block of documents is closed: 4 MiB
	// of raw ids, large enough to compress well, small enough to decode alone.
	BlockTokens = 1 << 20

	// Block codecs.
	CodecRaw  = "raw"
	CodecS2   = "s2"
	CodecZstd = "zstd"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CacheHeader says where a token cache came from.
type CacheHeader struct {
	Source        string `json:"source"`         // mixture source name, e.g. "books"
	Input         string `json:"input"`          // input file path or gs:// URL
	InputSize     int64  `json:"input_size"`     // bytes
	InputETag     string `json:"input_etag"`     // changes when the input changes
	TokenizerHash string `json:"tokenizer_hash"` // tokenizer.json sha256
	ConfigHash    string `json:"config_hash"`    // hash of the settings that shaped the tokens (filters etc.)
	EOS           bool   `json:"eos"`            // an EOS id ends every document
	// TokenBytes is the stored width of a token id: 2 when the vocabulary
	// fits in uint16 (half the bytes to compress and read), else 4. 0 in a
	// version 1 file means 4.
	TokenBytes int `json:"token_bytes,omitempty"`
	// Codec stores the blocks: "raw" (the default: the ids as they are,
	// nothing to encode or decode), "s2" (2.5x fewer bytes on the prepare
	// benchmark, 4x on Go source, for ~12% more prepare CPU: for remote
	// storage or a tight disk) or "zstd" (smallest, slowest; "" in a
	// version 1 file).
	Codec string `json:"codec,omitempty"`
}

// CacheEntry is one document in a token cache.
type CacheEntry struct {
	ID     string
	Tokens int
	Block  int // index of the block holding its tokens
}

// CacheSummary describes a finished token cache.
type CacheSummary struct {
	Docs   int64 `json:"docs"`
	Tokens int64 `json:"tokens"`
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"`
	// XXH64 is the xxhash64 of the whole file, for reuse checks: it finds
	// a flipped byte as a sha256 would, at ~10x the speed (sha256 was 0.1-0.3 s
	// of a 4 s prepare run).
	XXH64 string `json:"xxh64"`
}

type blockInfo struct {
	offset, length uint64
	docs           int
	crc            uint32
}

var (
	encOnce sync.Once
	encoder *zstd.Encoder
	decoder *zstd.Decoder
)

// codecs returns shared stateless zstd codecs (EncodeAll/DecodeAll are safe
// for concurrent use). One fixed level and single-threaded framing keep the
// output deterministic.
func codecs() (*zstd.Encoder, *zstd.Decoder) {
	encOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<32))
		if err != nil {
			panic(err)
		}
	})
	return encoder, decoder
}

// ValidCacheCodec reports whether codec names a block codec.
func ValidCacheCodec(codec string) bool {
	return codec == CodecRaw || codec == CodecS2 || codec == CodecZstd
}

// CacheWriter streams documents into a token cache.
type CacheWriter struct {
	path   string
	w      storage.Writer
	sum    hash.Hash
	off    uint64
	raw    []byte // current block's tokens, LE, width bytes each
	frame  []byte // compressed block, reused
	width  int
	codec  string
	ids    []string
	lens   []int
	blocks []blockInfo
	bdocs  int
	tokens int64
	// blockTokens closes a block; BlockTokens except in tests.
	blockTokens int
	err         error
}

// CreateCache starts writing a token cache at path (local or gs://). The file
// appears only when Close succeeds.
func CreateCache(ctx context.Context, path string, hdr CacheHeader) (*CacheWriter, error) {
	w, err := storage.Create(ctx, path)
	if err != nil {
		return nil, err
	}
	if hdr.TokenBytes == 0 {
		hdr.TokenBytes = 4
	}
	if hdr.TokenBytes != 2 && hdr.TokenBytes != 4 {
		w.Abort()
		return nil, fmt.Errorf("token cache %s: token_bytes %d, want 2 or 4", path, hdr.TokenBytes)
	}
	if hdr.Codec == "" {
		hdr.Codec = CodecRaw
	}
	if !ValidCacheCodec(hdr.Codec) {
		w.Abort()
		return nil, fmt.Errorf("token cache %s: codec %q, want %s, %s or %s", path, hdr.Codec, CodecRaw, CodecS2, CodecZstd)
	}
	cw := &CacheWriter{path: path, w: w, sum: xxhash.New(), blockTokens: BlockTokens, width: hdr.TokenBytes, codec: hdr.Codec}
	hj, err := json.Marshal(hdr)
	if err != nil {
		w.Abort()
		return nil, err
	}
	var pre bytes.Buffer
	pre.WriteString(cacheMagic)
	binary.Write(&pre, binary.LittleEndian, uint32(cacheVersion))
	binary.Write(&pre, binary.LittleEndian, uint32(len(hj)))
	pre.Write(hj)
	cw.write(pre.Bytes())
	if cw.err != nil {
		w.Abort()
		return nil, cw.err
	}
	return cw, nil
}

func (cw *CacheWriter) write(b []byte) {
	if cw.err != nil {
		return
	}
	if _, err := cw.w.Write(b); err != nil {
		cw.err = fmt.Errorf("token cache %s: %w", cw.path, err)
		return
	}
	cw.sum.Write(b)
	cw.off += uint64(len(b))
}

// Add appends one document.
func (cw *CacheWriter) Add(id string, tokens []uint32) error {
	if cw.err != nil {
		return cw.err
	}
	// Grow once and store in place: appending id by id was a third of
	// prepare's time.
	n := len(cw.raw)
	cw.raw = slices.Grow(cw.raw, cw.width*len(tokens))[:n+cw.width*len(tokens)]
	dst := cw.raw[n:]
	if cw.width == 2 {
		// One check per document, not per token: the ids are ORed together
		// and the first that does not fit is looked up only on failure.
		if pack16(dst, tokens) > 0xffff {
			cw.raw = cw.raw[:n]
			for _, t := range tokens {
				if t > 0xffff {
					cw.err = fmt.Errorf("token cache %s: document %q: token id %d does not fit in 16 bits", cw.path, id, t)
					break
				}
			}
			return cw.err
		}
	} else {
		for i, t := range tokens {
			binary.LittleEndian.PutUint32(dst[4*i:], t)
		}
	}
	cw.ids = append(cw.ids, id)
	cw.lens = append(cw.lens, len(tokens))
	cw.bdocs++
	cw.tokens += int64(len(tokens))
	if len(cw.raw) >= cw.width*cw.blockTokens {
		cw.flush()
	}
	return cw.err
}

func (cw *CacheWriter) flush() {
	if cw.bdocs == 0 {
		return
	}
	var frame []byte
	switch cw.codec {
	case CodecRaw:
		frame = cw.raw
	case CodecS2:
		// A destination of MaxEncodedLen is used as is: no 4 MiB allocation
		// per block.
		if n := s2.MaxEncodedLen(len(cw.raw)); cap(cw.frame) < n {
			cw.frame = make([]byte, n)
		}
		frame = s2.Encode(cw.frame[:cap(cw.frame)], cw.raw)
	default:
		enc, _ := codecs()
		frame = enc.EncodeAll(cw.raw, nil)
	}
	cw.blocks = append(cw.blocks, blockInfo{offset: cw.off, length: uint64(len(frame)), docs: cw.bdocs, crc: crc32.Checksum(cw.raw, castagnoli)})
	cw.write(frame)
	cw.raw, cw.bdocs = cw.raw[:0], 0
}

// Abort discards the cache.
func (cw *CacheWriter) Abort() error { return cw.w.Abort() }

// Close writes the index and trailer and commits the file.
func (cw *CacheWriter) Close() (CacheSummary, error) {
	cw.flush()
	var idx []byte
	idx = binary.AppendUvarint(idx, uint64(len(cw.ids)))
	for i, id := range cw.ids {
		idx = binary.AppendUvarint(idx, uint64(len(id)))
		idx = append(idx, id...)
		idx = binary.AppendUvarint(idx, uint64(cw.lens[i]))
	}
	idx = binary.AppendUvarint(idx, uint64(len(cw.blocks)))
	for _, b := range cw.blocks {
		idx = binary.AppendUvarint(idx, b.offset)
		idx = binary.AppendUvarint(idx, b.length)
		idx = binary.AppendUvarint(idx, uint64(b.docs))
		idx = binary.LittleEndian.AppendUint32(idx, b.crc)
	}
	enc, _ := codecs()
	frame := enc.EncodeAll(idx, nil)
	idxOff := cw.off
	cw.write(frame)
	var tr []byte
	tr = binary.LittleEndian.AppendUint64(tr, idxOff)
	tr = binary.LittleEndian.AppendUint64(tr, uint64(len(frame)))
	tr = binary.LittleEndian.AppendUint32(tr, crc32.Checksum(frame, castagnoli))
	tr = binary.LittleEndian.AppendUint32(tr, 0) // reserved
	tr = append(tr, cacheEndMagic...)
	cw.write(tr)
	if cw.err != nil {
		cw.w.Abort()
		return CacheSummary{}, cw.err
	}
	if err := cw.w.Close(); err != nil {
		return CacheSummary{}, err
	}
	return CacheSummary{
		Docs: int64(len(cw.ids)), Tokens: cw.tokens, Blocks: len(cw.blocks), Bytes: int64(cw.off),
		XXH64: hex.EncodeToString(cw.sum.Sum(nil)),
	}, nil
}

// CacheChecksum returns the XXH64 a CacheSummary records, of the file at
// path as it is now.
func CacheChecksum(ctx context.Context, path string) (string, error) {
	rc, err := storage.Open(ctx, path)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := xxhash.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", fmt.Errorf("token cache %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Cache is an open token cache.
type Cache struct {
	path      string
	r         storage.ReaderAt
	hdr       CacheHeader
	docs      []CacheEntry
	blocks    []blockInfo
	firstDoc  []int // index of each block's first document
	numTokens int64
	width     int    // bytes per stored token id
	codec     string // block compression
}

// OpenCache opens a token cache and reads its header and index.
func OpenCache(ctx context.Context, path string) (*Cache, error) {
	r, err := storage.OpenReaderAt(ctx, path)
	if err != nil {
		return nil, err
	}
	c, err := readCache(path, r)
	if err != nil {
		r.Close()
		return nil, err
	}
	return c, nil
}

func readCache(path string, r storage.ReaderAt) (*Cache, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("token cache %s: %s", path, fmt.Sprintf(format, a...))
	}
	size := r.Size()
	if size < 16+trailerSize {
		return nil, bad("truncated: %d bytes", size)
	}
	pre := make([]byte, 16)
	if _, err := r.ReadAt(pre, 0); err != nil {
		return nil, bad("read header: %v", err)
	}
	if string(pre[:8]) != cacheMagic {
		return nil, bad("not a token cache (bad magic)")
	}
	version := binary.LittleEndian.Uint32(pre[8:])
	if version != 1 && version != cacheVersion {
		return nil, bad("version %d, this build reads 1 and %d", version, cacheVersion)
	}
	hlen := int64(binary.LittleEndian.Uint32(pre[12:]))
	if 16+hlen > size-trailerSize {
		return nil, bad("header length %d past end", hlen)
	}
	hj := make([]byte, hlen)
	if _, err := r.ReadAt(hj, 16); err != nil {
		return nil, bad("read header: %v", err)
	}
	c := &Cache{path: path, r: r}
	if err := json.Unmarshal(hj, &c.hdr); err != nil {
		return nil, bad("header: %v", err)
	}
	switch {
	case version == 1 && c.hdr.TokenBytes == 0:
		c.width = 4
	case version >= 2 && (c.hdr.TokenBytes == 2 || c.hdr.TokenBytes == 4):
		c.width = c.hdr.TokenBytes
	default:
		return nil, bad("version %d with token_bytes %d", version, c.hdr.TokenBytes)
	}
	switch {
	case version == 1 && c.hdr.Codec == "":
		c.codec = CodecZstd
	case version >= 2 && ValidCacheCodec(c.hdr.Codec):
		c.codec = c.hdr.Codec
	default:
		return nil, bad("version %d with codec %q", version, c.hdr.Codec)
	}
	tr := make([]byte, trailerSize)
	if _, err := r.ReadAt(tr, size-trailerSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, bad("read trailer: %v", err)
	}
	if string(tr[24:]) != cacheEndMagic {
		return nil, bad("truncated or corrupt: no end marker")
	}
	idxOff := binary.LittleEndian.Uint64(tr[0:])
	idxLen := binary.LittleEndian.Uint64(tr[8:])
	if idxOff+idxLen != uint64(size-trailerSize) {
		return nil, bad("index at %d+%d does not end at the trailer (%d)", idxOff, idxLen, size-trailerSize)
	}
	frame := make([]byte, idxLen)
	if _, err := r.ReadAt(frame, int64(idxOff)); err != nil && !errors.Is(err, io.EOF) {
		return nil, bad("read index: %v", err)
	}
	if crc32.Checksum(frame, castagnoli) != binary.LittleEndian.Uint32(tr[16:]) {
		return nil, bad("index checksum mismatch")
	}
	_, dec := codecs()
	idx, err := dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, bad("index: %v", err)
	}
	if err := c.parseIndex(idx, idxOff); err != nil {
		return nil, bad("index: %v", err)
	}
	return c, nil
}

func (c *Cache) parseIndex(idx []byte, end uint64) error {
	p := idx
	next := func() (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, errors.New("truncated")
		}
		p = p[n:]
		return v, nil
	}
	nd, err := next()
	if err != nil || nd > uint64(len(idx)) {
		return fmt.Errorf("bad document count")
	}
	c.docs = make([]CacheEntry, nd)
	for i := range c.docs {
		l, err := next()
		if err != nil || l > uint64(len(p)) {
			return fmt.Errorf("document %d: bad id", i)
		}
		c.docs[i].ID = string(p[:l])
		p = p[l:]
		t, err := next()
		if err != nil {
			return fmt.Errorf("document %d: bad length", i)
		}
		c.docs[i].Tokens = int(t)
		c.numTokens += int64(t)
	}
	nb, err := next()
	if err != nil || nb > uint64(len(idx)) {
		return fmt.Errorf("bad block count")
	}
	c.blocks = make([]blockInfo, nb)
	c.firstDoc = make([]int, nb)
	doc := 0
	for i := range c.blocks {
		b := &c.blocks[i]
		var d uint64
		if b.offset, err = next(); err == nil {
			if b.length, err = next(); err == nil {
				d, err = next()
			}
		}
		if err != nil || len(p) < 4 {
			return fmt.Errorf("block %d: truncated", i)
		}
		b.docs = int(d)
		b.crc = binary.LittleEndian.Uint32(p)
		p = p[4:]
		if b.offset+b.length > end {
			return fmt.Errorf("block %d extends past the index", i)
		}
		c.firstDoc[i] = doc
		for j := doc; j < doc+b.docs && j < len(c.docs); j++ {
			c.docs[j].Block = i
		}
		doc += b.docs
	}
	if doc != len(c.docs) {
		return fmt.Errorf("blocks hold %d documents, index lists %d", doc, len(c.docs))
	}
	return nil
}

// Path returns where the cache was opened from.
func (c *Cache) Path() string { return c.path }

// Header returns the cache header.
func (c *Cache) Header() CacheHeader { return c.hdr }

// Docs returns every document's id, length and block, in file order.
func (c *Cache) Docs() []CacheEntry { return c.docs }

// NumTokens returns the total tokens in the cache.
func (c *Cache) NumTokens() int64 { return c.numTokens }

// NumBlocks returns the number of independently readable blocks.
func (c *Cache) NumBlocks() int { return len(c.blocks) }

// BlockDocs returns the range [first, end) of documents in block b.
func (c *Cache) BlockDocs(b int) (first, end int) {
	return c.firstDoc[b], c.firstDoc[b] + c.blocks[b].docs
}

// Block decodes block b, checks its checksum, and returns one token slice per
// document of the block (sub-slices of one buffer).
func (c *Cache) Block(b int) ([][]uint32, error) {
	if b < 0 || b >= len(c.blocks) {
		return nil, fmt.Errorf("token cache %s: block %d out of range", c.path, b)
	}
	bi := c.blocks[b]
	frame := make([]byte, bi.length)
	if _, err := c.r.ReadAt(frame, int64(bi.offset)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("token cache %s: block %d: %w", c.path, b, err)
	}
	var raw []byte
	var err error
	switch c.codec {
	case CodecRaw:
		raw = frame
	case CodecS2:
		raw, err = s2.Decode(nil, frame)
	default:
		_, dec := codecs()
		raw, err = dec.DecodeAll(frame, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("token cache %s: block %d: %w", c.path, b, err)
	}
	if crc32.Checksum(raw, castagnoli) != bi.crc {
		return nil, fmt.Errorf("token cache %s: block %d: checksum mismatch", c.path, b)
	}
	first, end := c.BlockDocs(b)
	want := 0
	for _, d := range c.docs[first:end] {
		want += d.Tokens
	}
	if len(raw) != c.width*want {
		return nil, fmt.Errorf("token cache %s: block %d holds %d tokens, index says %d", c.path, b, len(raw)/c.width, want)
	}
	all := make([]uint32, want)
	if c.width == 2 {
		for i := range all {
			all[i] = uint32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	} else {
		for i := range all {
			all[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
	}
	out := make([][]uint32, 0, end-first)
	off := 0
	for _, d := range c.docs[first:end] {
		out = append(out, all[off:off+d.Tokens:off+d.Tokens])
		off += d.Tokens
	}
	return out, nil
}

// ForEach calls fn for every document in file order with its tokens (valid
// only during the call's block).
func (c *Cache) ForEach(fn func(i int, e CacheEntry, tokens []uint32) error) error {
	for b := range c.blocks {
		docs, err := c.Block(b)
		if err != nil {
			return err
		}
		first, _ := c.BlockDocs(b)
		for j, toks := range docs {
			if err := fn(first+j, c.docs[first+j], toks); err != nil {
				return err
			}
		}
	}
	return nil
}

// Verify decodes every block and checks every checksum and count.
func (c *Cache) Verify() error {
	for b := range c.blocks {
		if _, err := c.Block(b); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the underlying file.
func (c *Cache) Close() error { return c.r.Close() }
