package trainer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"

	"longctx/storage"
)

// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}
// padded with spaces to a multiple of 8, then the raw little-endian data.
// Only F32, BF16 and F16 are read and written; values are float32 in memory.

// Tensor is one named float32 tensor.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

func dtypeSize(dt string) (int, error) {
	switch dt {
	case "F32":
		return 4, nil
	case "BF16", "F16":
		return 2, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q (want F32, BF16 or F16)", dt)
}

// WriteSafetensors writes tensors in dtype ("F32", "BF16" or "F16") to path
// atomically (temp file + rename). Tensors are laid out in name order so the
// file is a pure function of its contents.
func WriteSafetensors(path string, ts []Tensor, dtype string, metadata map[string]string) error {
	size, err := dtypeSize(dtype)
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	sorted := slices.Clone(ts)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range sorted {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("safetensors %s: tensor %s has %d values for shape %v", path, t.Name, len(t.Data), t.Shape)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors %s: duplicate tensor %s", path, t.Name)
		}
		end := off + int64(n*size)
		header[t.Name] = stEntry{DType: dtype, Shape: t.Shape, DataOffsets: [2]int64{off, end}}
		off = end
	}
	hj, err := json.Marshal(header) // map keys are sorted: deterministic
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	return writeAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
		bw.Write(lenBuf[:])
		bw.Write(hj)
		buf := make([]byte, 0, 1<<16)
		for _, t := range sorted {
			for i, x := range t.Data {
				switch dtype {
				case "F32":
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
				case "BF16":
					buf = binary.LittleEndian.AppendUint16(buf, bfloat16.FromFloat32(x).Bits())
				case "F16":
					buf = binary.LittleEndian.AppendUint16(buf, float16.FromFloat32(x).Bits())
				}
				if len(buf) >= 1<<16-4 || i == len(t.Data)-1 {
					if _, err := bw.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		return bw.Flush()
	})
}

// ReadSafetensors reads every tensor of path as float32, streaming tensor by
// tensor (the file is never held in memory twice). It checks that offsets
// are in order, inside the file and match shape x dtype.
func ReadSafetensors(path string) ([]Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: reading header length: %w", path, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > uint64(st.Size())-8 || hlen > 100<<20 {
		return nil, nil, fmt.Errorf("safetensors %s: header length %d exceeds file size %d", path, hlen, st.Size())
	}
	hj := make([]byte, hlen)
	if _, err := io.ReadFull(f, hj); err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: reading header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: header is not JSON: %v", path, err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: __metadata__: %v", path, err)
		}
		delete(raw, "__metadata__")
	}
	dataStart := int64(8 + hlen)
	var out []Tensor
	for name, r := range raw {
		var e stEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: tensor %s: %v", path, name, err)
		}
		size, err := dtypeSize(e.DType)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: tensor %s: %w", path, name, err)
		}
		n := 1
		for _, d := range e.Shape {
			n *= d
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end-b != int64(n*size) || dataStart+end > st.Size() {
			return nil, nil, fmt.Errorf("safetensors %s: tensor %s: data_offsets %v do not fit shape %v %s in a %d-byte file",
				path, name, e.DataOffsets, e.Shape, e.DType, st.Size())
		}
		buf := make([]byte, end-b)
		if _, err := f.ReadAt(buf, dataStart+b); err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: tensor %s: %w", path, name, err)
		}
		data := make([]float32, n)
		for i := range data {
			switch e.DType {
			case "F32":
				data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			case "BF16":
				data[i] = bfloat16.FromBits(binary.LittleEndian.Uint16(buf[2*i:])).Float32()
			case "F16":
				data[i] = float16.FromBits(binary.LittleEndian.Uint16(buf[2*i:])).Float32()
			}
		}
		out = append(out, Tensor{Name: name, Shape: e.Shape, Data: data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, meta, nil
}

// writeAtomic streams path through storage's atomic write (temp + rename),
// so readers never see a partial file.
func writeAtomic(path string, fill func(io.Writer) error) error {
	return storage.WriteWith(context.Background(), path, fill)
}

// writeFileAtomic is os.WriteFile through storage's atomic write.
func writeFileAtomic(path string, data []byte) error {
	return storage.WriteFile(context.Background(), path, data)
}
