package pipelines

import (
	"fmt"
	"io"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// ReadParquet reads one parquet file row group by row group, decoding only
// the columns the format names (text, id, metadata), one page at a time per
// column, so memory is bounded by page size, not file size.
//
// A file parquet cannot open (bad footer, not parquet) is an error: the
// caller fails the job or, with --skip-unreadable, records it. A file whose
// text column is missing or not a string column drops every row under
// missing_column / wrong_type; pages that fail to decode drop the rest of
// their row group under corrupt_parquet.
func ReadParquet(r io.ReaderAt, size int64, f Format, file, source string, emit Emit) error {
	_, err := CountParquet(r, size, f, file, source, emit)
	return err
}

// CountParquet is ReadParquet that also returns the file's row count from
// its footer, counted apart from what it emits.
func CountParquet(r io.ReaderAt, size int64, f Format, file, source string, emit Emit) (int64, error) {
	spec := f.Parquet
	if spec == nil {
		return 0, fmt.Errorf("%s: format %s is not parquet", file, f.Name)
	}
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, &UnreadableError{Input: file, Err: fmt.Errorf("open parquet: %w", err)}
	}
	return pf.NumRows(), readParquetRows(pf, spec, file, source, emit)
}

func readParquetRows(pf *parquet.File, spec *parquetSpec, file, source string, emit Emit) error {
	schema := pf.Schema()
	fileFault := func(reason, detail string) error {
		return emit.Bad(Malformed{Source: source, File: file, Unit: "file", Records: pf.NumRows(),
			Reason: reason, Detail: detail})
	}
	textCol, ok := schema.Lookup(spec.text)
	if !ok {
		if pf.NumRows() == 0 {
			return nil
		}
		return fileFault(ReasonMissingColumn, fmt.Sprintf("no column %q (schema: %s)", spec.text, columnNames(schema)))
	}
	if k := textCol.Node.Type().Kind(); k != parquet.ByteArray || textCol.MaxRepetitionLevel > 0 {
		return fileFault(ReasonWrongType, fmt.Sprintf("column %q is %s, want a flat string column", spec.text, textCol.Node.Type()))
	}

	// Projection: text first, then id and metadata columns that exist and
	// are flat. Absent optional columns are simply not read.
	type proj struct {
		name  string
		index int
	}
	cols := []proj{{spec.text, textCol.ColumnIndex}}
	seen := map[string]bool{spec.text: true}
	add := func(names []string) {
		for _, n := range names {
			if seen[n] {
				continue
			}
			if lc, ok := schema.Lookup(n); ok && lc.MaxRepetitionLevel == 0 {
				cols = append(cols, proj{n, lc.ColumnIndex})
				seen[n] = true
			}
		}
	}
	add(spec.ids)
	add(spec.meta)
	add(spec.derive)

	var row int64 // row number in the file, 0-based
	for gi, rg := range pf.RowGroups() {
		start, n := row, rg.NumRows()
		// parquet-go reports bad pages as errors; a panic on input it did
		// not foresee must not end the job either: the rest of the row
		// group is dropped as corrupt, like a page error.
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = emit.Bad(Malformed{Source: source, File: file, Unit: "row", Record: row, Records: start + n - row,
						Reason: ReasonCorruptParquet, Detail: fmt.Sprintf("row group %d: decoder panic: %v", gi, r)})
					row = start + n
				}
			}()
			chunks := rg.ColumnChunks()
			readers := make([]*columnCursor, len(cols))
			for i, c := range cols {
				readers[i] = &columnCursor{r: parquet.NewColumnChunkValueReader(chunks[c.index])}
			}
			vals := make(map[string]string, len(cols))
			var i int64
			for ; i < n; i++ {
				clear(vals)
				var text string
				hasText := false
				var rerr error
				for ci, c := range cols {
					v, err := readers[ci].next()
					if err != nil {
						rerr = fmt.Errorf("column %q row group %d: %w", c.name, gi, err)
						break
					}
					if v.IsNull() {
						continue
					}
					if ci == 0 {
						text, hasText = string(v.ByteArray()), true
						continue
					}
					vals[c.name] = renderValue(v)
				}
				if rerr != nil {
					if e := emit.Bad(Malformed{Source: source, File: file, Unit: "row", Record: row, Records: n - i,
						Reason: ReasonCorruptParquet, Detail: rerr.Error()}); e != nil {
						return e
					}
					row += n - i
					break
				}
				id := ""
				for _, k := range spec.ids {
					if v, ok := vals[k]; ok {
						id = v
						break
					}
				}
				var m *Malformed
				switch {
				case !hasText:
					m = &Malformed{Reason: ReasonMissingText, Detail: fmt.Sprintf("column %q is null", spec.text)}
				case blank(text):
					m = &Malformed{Reason: ReasonEmptyText, Detail: fmt.Sprintf("column %q is empty", spec.text)}
				}
				if m != nil {
					m.Source, m.File, m.Unit, m.Record, m.Records, m.ID = source, file, "row", row, 1, id
					if e := emit.Bad(*m); e != nil {
						return e
					}
					row++
					continue
				}
				meta := make(map[string]string, len(spec.meta))
				for _, k := range spec.meta {
					if v, ok := vals[k]; ok {
						meta[k] = v
					}
				}
				if id == "" {
					id = deriveFromValues(vals, spec.derive, text)
				}
				if e := emit.Doc(Document{ID: id, Source: source, Text: text, Metadata: meta,
					File: file, Unit: "row", Record: row}); e != nil {
					return e
				}
				row++
			}
			for _, r := range readers {
				r.r.Close()
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func deriveFromValues(vals map[string]string, keys []string, text string) string {
	fields := make([]string, len(keys))
	any := false
	for i, k := range keys {
		v, ok := vals[k]
		any = any || ok
		fields[i] = v
	}
	if !any {
		return derivedID("text", text)
	}
	return derivedID(fields...)
}

// columnCursor hands out one value at a time from a column chunk, holding
// at most one small batch (values reference the current page only).
type columnCursor struct {
	r   parquet.ColumnChunkValueReader
	buf [64]parquet.Value
	n   int
	pos int
}

func (c *columnCursor) next() (parquet.Value, error) {
	if c.pos == c.n {
		n, err := c.r.ReadValues(c.buf[:])
		if n == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // fewer values than the row group's rows
			}
			return parquet.Value{}, err
		}
		c.n, c.pos = n, 0
	}
	v := c.buf[c.pos]
	c.pos++
	return v, nil
}

func renderValue(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	}
	return v.String()
}

func columnNames(s *parquet.Schema) string {
	out := ""
	for i, p := range s.Columns() {
		if i > 0 {
			out += ", "
		}
		for j, e := range p {
			if j > 0 {
				out += "."
			}
			out += e
		}
	}
	return out
}
