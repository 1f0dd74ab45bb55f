package pipelines

// Codecs of the mix stage's intermediate records: pieces (select -> pack,
// through a Beam shuffle or a spill file) and document records (the plan's
// partitions). Records are framed by a uvarint length in spill files.

import (
	"encoding/binary"
	"errors"

	"longctx/shards"
)

// encodePiece and decodePiece carry a piece through a Beam shuffle.
func encodePiece(p shards.Piece) []byte {
	b := make([]byte, 0, 40+len(p.Source)+len(p.DocID)+4*len(p.Tokens))
	b = binary.AppendUvarint(b, uint64(len(p.Source)))
	b = append(b, p.Source...)
	b = binary.AppendUvarint(b, uint64(len(p.DocID)))
	b = append(b, p.DocID...)
	b = binary.AppendUvarint(b, uint64(p.Rep))
	b = binary.AppendUvarint(b, uint64(p.Offset))
	b = binary.LittleEndian.AppendUint64(b, p.Order)
	b = binary.AppendUvarint(b, uint64(len(p.Tokens)))
	for _, t := range p.Tokens {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	return b
}

func decodePiece(b []byte) (shards.Piece, error) {
	var p shards.Piece
	bad := errors.New("malformed piece record")
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	var ok bool
	if p.Source, ok = str(); !ok {
		return p, bad
	}
	if p.DocID, ok = str(); !ok {
		return p, bad
	}
	rep, ok1 := num()
	off, ok2 := num()
	if !ok1 || !ok2 || len(b) < 8 {
		return p, bad
	}
	p.Rep, p.Offset = int(rep), int64(off)
	p.Order = binary.LittleEndian.Uint64(b)
	b = b[8:]
	n, ok := num()
	if !ok || uint64(len(b)) != 4*n {
		return p, bad
	}
	p.Tokens = make([]uint32, n)
	for i := range p.Tokens {
		p.Tokens[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return p, nil
}

// docRec is one document of a source as the plan sees it: where it is (file
// and position, which also order duplicates: the first occurrence wins), its
// id and length, and with content dedup its content hash.
type docRec struct {
	Src     uint16 // index of the source in the spec
	File    uint32 // index in the mix's file list (manifest order within a source)
	Doc     uint32 // position in the file
	Tokens  uint32
	ID      string
	Content [16]byte // zero unless content hashing is on
}

func appendDocRec(b []byte, r docRec, content bool) []byte {
	b = binary.AppendUvarint(b, uint64(r.Src))
	b = binary.AppendUvarint(b, uint64(r.File))
	b = binary.AppendUvarint(b, uint64(r.Doc))
	b = binary.AppendUvarint(b, uint64(r.Tokens))
	b = binary.AppendUvarint(b, uint64(len(r.ID)))
	b = append(b, r.ID...)
	if content {
		b = append(b, r.Content[:]...)
	}
	return b
}

func decodeDocRec(b []byte, content bool) (docRec, error) {
	var r docRec
	var v [5]uint64
	for i := range v {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return r, errors.New("malformed document record")
		}
		v[i], b = n, b[k:]
	}
	if uint64(len(b)) < v[4] {
		return r, errors.New("malformed document record: id past end")
	}
	r.Src, r.File, r.Doc, r.Tokens = uint16(v[0]), uint32(v[1]), uint32(v[2]), uint32(v[3])
	r.ID, b = string(b[:v[4]]), b[v[4]:]
	if content {
		if len(b) != 16 {
			return r, errors.New("malformed document record: content hash")
		}
		copy(r.Content[:], b)
	} else if len(b) != 0 {
		return r, errors.New("malformed document record: trailing bytes")
	}
	return r, nil
}

// appendFramed appends rec with its uvarint length.
func appendFramed(b, rec []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(rec)))
	return append(b, rec...)
}

// forFramed calls fn for every framed record of data.
func forFramed(data []byte, fn func(rec []byte) error) error {
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || uint64(len(data)-k) < n {
			return errors.New("truncated record")
		}
		if err := fn(data[k : k+int(n)]); err != nil {
			return err
		}
		data = data[k+int(n):]
	}
	return nil
}
