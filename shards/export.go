package shards

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Exports write the documents of packed sequences — each piece between two
// boundaries, padding dropped — in the formats other trainers read. Both
// formats are "tokens + document ends", so one pass over sequences serves
// both.

// Pieces returns the real-token document pieces of a sequence (aliasing its
// tokens).
func (s Sequence) Pieces() [][]uint32 {
	end := uint32(len(s.Tokens)) - s.Pad
	out := make([][]uint32, len(s.Starts))
	for i, st := range s.Starts {
		e := end
		if i+1 < len(s.Starts) {
			e = s.Starts[i+1]
		}
		out[i] = s.Tokens[st:e]
	}
	return out
}

// appendTokens encodes tokens little-endian at tokenSize bytes each.
func appendTokens(dst []byte, toks []uint32, tokenSize int) ([]byte, error) {
	switch tokenSize {
	case 2:
		for i, t := range toks {
			if t > math.MaxUint16 {
				return dst, fmt.Errorf("token %d at position %d does not fit in 2 bytes; use token size 4", t, i)
			}
			dst = binary.LittleEndian.AppendUint16(dst, uint16(t))
		}
	case 4:
		for _, t := range toks {
			dst = binary.LittleEndian.AppendUint32(dst, t)
		}
	default:
		return dst, fmt.Errorf("token size %d: want 2 or 4", tokenSize)
	}
	return dst, nil
}

// NanotronWriter writes a datatrove/nanotron tokenized file: X.ds
// (headerless token ids, uint16 or uint32 LE, documents back to back) and
// X.ds.index (headerless uint64 LE cumulative exclusive end offset of each
// document, in tokens, no leading 0).
type NanotronWriter struct {
	ds, index io.Writer
	tokenSize int
	eos       int64 // appended after every document when >= 0
	Tokens    int64
	Docs      int64
	buf       []byte
}

// NewNanotronWriter writes to ds and index. eos >= 0 is appended to every
// document, as datatrove's tokenizer does; pass -1 when documents already end
// with it.
func NewNanotronWriter(ds, index io.Writer, tokenSize int, eos int64) (*NanotronWriter, error) {
	if tokenSize != 2 && tokenSize != 4 {
		return nil, fmt.Errorf("nanotron: token size %d, want 2 or 4", tokenSize)
	}
	return &NanotronWriter{ds: ds, index: index, tokenSize: tokenSize, eos: eos}, nil
}

// WriteDoc appends one document.
func (w *NanotronWriter) WriteDoc(toks []uint32) error {
	var err error
	w.buf, err = appendTokens(w.buf[:0], toks, w.tokenSize)
	if err != nil {
		return fmt.Errorf("nanotron document %d: %w", w.Docs, err)
	}
	n := int64(len(toks))
	if w.eos >= 0 {
		if w.buf, err = appendTokens(w.buf, []uint32{uint32(w.eos)}, w.tokenSize); err != nil {
			return fmt.Errorf("nanotron eos: %w", err)
		}
		n++
	}
	if _, err := w.ds.Write(w.buf); err != nil {
		return err
	}
	w.Tokens += n
	w.Docs++
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(w.Tokens))
	_, err = w.index.Write(b[:])
	return err
}

// NanotronMetadata is the X.ds.metadata text: "<tokenizer>|<token size>",
// the token count and datatrove's humanized count (humanize.metric(n, "T")),
// joined by newlines with no trailing newline. nanotron loads the first field
// with AutoTokenizer, so it must be a real Hugging Face id or path.
func NanotronMetadata(tokenizer string, tokenSize int, tokens int64) string {
	return tokenizer + "|" + strconv.Itoa(tokenSize) + "\n" + strconv.FormatInt(tokens, 10) + "\n" + humanMetric(float64(tokens), "T")
}

// humanMetric reproduces Python humanize.metric(value, unit) with precision 3
// for the values a token count takes (0 and up to 1e33).
func humanMetric(v float64, unit string) string {
	exp := 0
	if v != 0 {
		exp = int(math.Floor(math.Log10(math.Abs(v))))
	}
	v /= math.Pow(10, float64(exp/3*3))
	ordinal := ""
	if exp >= 3 {
		ordinal = string("kMGTPEZYRQ"[exp/3-1])
	}
	prec := max(0, 3-exp%3-1)
	s := strconv.FormatFloat(v, 'f', prec, 64)
	space := " "
	if unit == "" && ordinal == "" {
		space = ""
	}
	return s + space + ordinal + unit
}

// ReadNanotron decodes a .ds and its .ds.index into documents, checking that
// the index is non-decreasing and ends exactly at the end of the tokens.
func ReadNanotron(ds, index []byte, tokenSize int) ([][]uint32, error) {
	if tokenSize != 2 && tokenSize != 4 {
		return nil, fmt.Errorf("nanotron: token size %d, want 2 or 4", tokenSize)
	}
	if len(ds)%tokenSize != 0 {
		return nil, fmt.Errorf("nanotron .ds: %d bytes is not a multiple of token size %d", len(ds), tokenSize)
	}
	if len(index)%8 != 0 {
		return nil, fmt.Errorf("nanotron .ds.index: %d bytes is not a multiple of 8", len(index))
	}
	toks := decodeTokens(ds, tokenSize)
	var docs [][]uint32
	var prev uint64
	for i := 0; i < len(index); i += 8 {
		end := binary.LittleEndian.Uint64(index[i:])
		if end < prev || end > uint64(len(toks)) {
			return nil, fmt.Errorf("nanotron .ds.index entry %d: end %d after %d with %d tokens", i/8, end, prev, len(toks))
		}
		docs = append(docs, toks[prev:end])
		prev = end
	}
	if prev != uint64(len(toks)) {
		return nil, fmt.Errorf("nanotron: index ends at token %d, .ds holds %d", prev, len(toks))
	}
	return docs, nil
}

func decodeTokens(b []byte, tokenSize int) []uint32 {
	out := make([]uint32, len(b)/tokenSize)
	for i := range out {
		if tokenSize == 2 {
			out[i] = uint32(binary.LittleEndian.Uint16(b[2*i:]))
		} else {
			out[i] = binary.LittleEndian.Uint32(b[4*i:])
		}
	}
	return out
}

// Megatron-LM indexed dataset (megatron/core/datasets/indexed_dataset.py).
var megatronMagic = []byte("MMIDIDX\x00\x00")

// Megatron dtype codes for the token sizes we write.
const (
	megatronUint16 = 8
	megatronInt32  = 4
)

// MegatronWriter writes a .bin (token arrays back to back) and, at Finish, the
// .idx: magic, version 1, dtype code, sequence count, document count,
// int32 lengths, int64 byte pointers, int64 document indices [0, 1, ..., n]
// (one sequence per document, as datatrove's Megatron writer does).
type MegatronWriter struct {
	bin       io.Writer
	tokenSize int
	eos       int64
	lengths   []int32
	Tokens    int64
	buf       []byte
}

// NewMegatronWriter writes tokens to bin; tokenSize 2 is uint16 (code 8),
// 4 is int32 (code 4; ids must stay below 2^31).
func NewMegatronWriter(bin io.Writer, tokenSize int, eos int64) (*MegatronWriter, error) {
	if tokenSize != 2 && tokenSize != 4 {
		return nil, fmt.Errorf("megatron: token size %d, want 2 or 4", tokenSize)
	}
	return &MegatronWriter{bin: bin, tokenSize: tokenSize, eos: eos}, nil
}

// WriteDoc appends one document.
func (w *MegatronWriter) WriteDoc(toks []uint32) error {
	var err error
	if w.tokenSize == 4 {
		for i, t := range toks {
			if t > math.MaxInt32 {
				return fmt.Errorf("megatron document %d: token %d at %d does not fit int32", len(w.lengths), t, i)
			}
		}
	}
	w.buf, err = appendTokens(w.buf[:0], toks, w.tokenSize)
	if err != nil {
		return fmt.Errorf("megatron document %d: %w", len(w.lengths), err)
	}
	n := len(toks)
	if w.eos >= 0 {
		if w.buf, err = appendTokens(w.buf, []uint32{uint32(w.eos)}, w.tokenSize); err != nil {
			return fmt.Errorf("megatron eos: %w", err)
		}
		n++
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("megatron document %d: %d tokens exceed int32 lengths", len(w.lengths), n)
	}
	if _, err := w.bin.Write(w.buf); err != nil {
		return err
	}
	w.lengths = append(w.lengths, int32(n))
	w.Tokens += int64(n)
	return nil
}

// Index returns the .idx bytes for the documents written so far.
func (w *MegatronWriter) Index() []byte {
	n := len(w.lengths)
	var b bytes.Buffer
	b.Grow(len(megatronMagic) + 8 + 1 + 16 + n*(4+8+8) + 8)
	b.Write(megatronMagic)
	le := binary.LittleEndian
	b.Write(le.AppendUint64(nil, 1))
	code := byte(megatronUint16)
	if w.tokenSize == 4 {
		code = megatronInt32
	}
	b.WriteByte(code)
	b.Write(le.AppendUint64(nil, uint64(n)))
	b.Write(le.AppendUint64(nil, uint64(n+1)))
	for _, l := range w.lengths {
		b.Write(le.AppendUint32(nil, uint32(l)))
	}
	var ptr int64
	for _, l := range w.lengths {
		b.Write(le.AppendUint64(nil, uint64(ptr)))
		ptr += int64(l) * int64(w.tokenSize)
	}
	for i := 0; i <= n; i++ {
		b.Write(le.AppendUint64(nil, uint64(i)))
	}
	return b.Bytes()
}

// ReadMegatron decodes a .bin/.idx pair into its sequences (documents),
// checking the header, pointers and document indices.
func ReadMegatron(bin, idx []byte) ([][]uint32, int, error) {
	le := binary.LittleEndian
	hdr := len(megatronMagic) + 8 + 1 + 8 + 8
	if len(idx) < hdr || !bytes.Equal(idx[:len(megatronMagic)], megatronMagic) {
		return nil, 0, fmt.Errorf("megatron .idx: missing magic %q", megatronMagic)
	}
	p := len(megatronMagic)
	if v := le.Uint64(idx[p:]); v != 1 {
		return nil, 0, fmt.Errorf("megatron .idx: version %d, want 1", v)
	}
	p += 8
	var tokenSize int
	switch idx[p] {
	case megatronUint16:
		tokenSize = 2
	case megatronInt32:
		tokenSize = 4
	default:
		return nil, 0, fmt.Errorf("megatron .idx: dtype code %d not supported (want 8 uint16 or 4 int32)", idx[p])
	}
	p++
	nseq, ndoc := le.Uint64(idx[p:]), le.Uint64(idx[p+8:])
	p += 16
	if want := uint64(hdr) + nseq*(4+8) + ndoc*8; uint64(len(idx)) != want {
		return nil, 0, fmt.Errorf("megatron .idx: %d bytes, want %d for %d sequences and %d documents", len(idx), want, nseq, ndoc)
	}
	if len(bin)%tokenSize != 0 {
		return nil, 0, fmt.Errorf("megatron .bin: %d bytes is not a multiple of %d", len(bin), tokenSize)
	}
	lens := idx[p : p+int(nseq)*4]
	ptrs := idx[p+int(nseq)*4 : p+int(nseq)*12]
	docIdx := idx[p+int(nseq)*12:]
	seqs := make([][]uint32, nseq)
	var next uint64
	for i := range seqs {
		l, ptr := uint64(le.Uint32(lens[4*i:])), le.Uint64(ptrs[8*i:])
		if ptr != next || ptr+l*uint64(tokenSize) > uint64(len(bin)) {
			return nil, 0, fmt.Errorf("megatron sequence %d: pointer %d length %d, want pointer %d within %d bytes", i, ptr, l, next, len(bin))
		}
		seqs[i] = decodeTokens(bin[ptr:ptr+l*uint64(tokenSize)], tokenSize)
		next = ptr + l*uint64(tokenSize)
	}
	if next != uint64(len(bin)) {
		return nil, 0, fmt.Errorf("megatron .bin: %d bytes, sequences cover %d", len(bin), next)
	}
	var prev uint64
	for i := uint64(0); i < ndoc; i++ {
		d := le.Uint64(docIdx[8*i:])
		if (i == 0 && d != 0) || d < prev || d > nseq {
			return nil, 0, fmt.Errorf("megatron .idx: document index %d is %d (after %d, %d sequences)", i, d, prev, nseq)
		}
		prev = d
	}
	return seqs, tokenSize, nil
}
