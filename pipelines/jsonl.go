package pipelines

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression returns the stream compression implied by a JSON Lines file
// name: "gzip" (.gz), "zstd" (.zst, .zstd) or "" (plain). The format (which
// fields mean what) always comes from the config, never from the name.
func Compression(file string) string {
	switch {
	case strings.HasSuffix(file, ".gz"):
		return "gzip"
	case strings.HasSuffix(file, ".zst"), strings.HasSuffix(file, ".zstd"):
		return "zstd"
	}
	return ""
}

// ReadJSONLines reads one JSON Lines file (gzip, zstd or plain, by name;
// multi-member gzip and multi-frame zstd are one stream) and emits a
// Document per good line and a Malformed per bad one. A corrupt or truncated
// stream ends the file with one Malformed for the line being read. It
// returns an error only when emit does.
func ReadJSONLines(r io.Reader, f Format, file, source string, emit Emit) error {
	_, err := CountJSONLines(r, f, file, source, emit)
	return err
}

// CountJSONLines is ReadJSONLines that also returns the records it saw:
// non-blank lines, and the line a stream fault cut.
func CountJSONLines(r io.Reader, f Format, file, source string, emit Emit) (records int64, err error) {
	if f.JSON == nil {
		return 0, fmt.Errorf("%s: format %s is not JSON Lines", file, f.Name)
	}
	var stream io.Reader = r
	switch Compression(file) {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 1, emit.Bad(streamFault(source, file, 1, err))
		}
		defer zr.Close()
		stream = zr
	case "zstd":
		// One decoder goroutine: measured faster than auto on few cores,
		// and a unit of work is one file per worker anyway.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return 1, emit.Bad(streamFault(source, file, 1, err))
		}
		defer zr.Close()
		stream = zr
	}
	br := bufio.NewReaderSize(stream, 1<<20)
	var line int64
	var buf []byte
	for {
		b, err := readLine(br, &buf)
		if err != nil && err != io.EOF {
			return records + 1, emit.Bad(streamFault(source, file, line+1, err))
		}
		if err == io.EOF && len(b) == 0 {
			return records, nil
		}
		line++
		if len(bytes.TrimSpace(b)) > 0 { // blank lines hold no record
			records++
			doc, bad := parseJSONLine(b, f.JSON, file, source, line)
			if bad != nil {
				if e := emit.Bad(*bad); e != nil {
					return records, e
				}
			} else if e := emit.Doc(doc); e != nil {
				return records, e
			}
		}
		if err == io.EOF {
			return records, nil
		}
	}
}

// readLine returns the next line without its newline. Lines may be longer
// than the bufio buffer (books are megabytes); buf is reused between calls.
func readLine(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == nil {
		return b[:len(b)-1], nil
	}
	if err != bufio.ErrBufferFull {
		return b, err
	}
	*buf = append((*buf)[:0], b...)
	for {
		b, err = br.ReadSlice('\n')
		*buf = append(*buf, b...)
		if err == nil {
			return (*buf)[:len(*buf)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return *buf, err
		}
	}
}

func streamFault(source, file string, line int64, err error) Malformed {
	reason := ReasonCorruptStream
	if errors.Is(err, io.ErrUnexpectedEOF) {
		reason = ReasonTruncatedStream
	}
	return Malformed{Source: source, File: file, Unit: "line", Record: line, Records: 1,
		Reason: reason, Detail: err.Error()}
}

func parseJSONLine(b []byte, spec *jsonSpec, file, source string, line int64) (Document, *Malformed) {
	bad := func(reason, detail, id string) (Document, *Malformed) {
		return Document{}, &Malformed{Source: source, File: file, Unit: "line", Record: line, Records: 1,
			Reason: reason, Detail: detail, ID: id}
	}
	d := spec.decoder()
	ff := fastFields{raw: make(map[string]json.RawMessage, len(d.heads))}
	if fastObject(b, spec.text, d.heads, &ff) {
		return docFromFields(ff, spec, file, source, line, bad)
	}
	return parseJSONLineSlow(b, spec, file, source, line)
}

// parseJSONLineSlow is the general path: decode into a struct holding only
// the fields the spec names (its errors name what is wrong). encoding/json
// replaces invalid UTF-8 in the text by U+FFFD one byte at a time, so valid
// records with such text take the fast path, which keeps the raw bytes.
func parseJSONLineSlow(b []byte, spec *jsonSpec, file, source string, line int64) (Document, *Malformed) {
	bad := func(reason, detail, id string) (Document, *Malformed) {
		return Document{}, &Malformed{Source: source, File: file, Unit: "line", Record: line, Records: 1,
			Reason: reason, Detail: detail, ID: id}
	}
	d := spec.decoder()
	v := reflect.New(d.typ)
	textTypeErr := false
	if err := json.Unmarshal(b, v.Interface()); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == spec.text:
			textTypeErr = true
		case errors.As(err, &te) && te.Field == "":
			return bad(ReasonBadJSON, "record is a JSON "+te.Value+", not an object", "")
		default:
			return bad(ReasonBadJSON, err.Error(), "")
		}
	}
	e := v.Elem()
	obj := make(map[string]json.RawMessage, len(d.heads))
	for i, h := range d.heads {
		if raw := e.Field(i + 1).Bytes(); raw != nil {
			obj[h] = raw
		}
	}
	id := ""
	for _, k := range spec.ids {
		if v, ok := jsonField(obj, k); ok {
			id = v
			break
		}
	}
	if textTypeErr {
		return bad(ReasonWrongType, fmt.Sprintf("field %q is not a string", spec.text), id)
	}
	tp := e.Field(0).Interface().(*string)
	if tp == nil {
		return bad(ReasonMissingText, fmt.Sprintf("no %q field (or null)", spec.text), id)
	}
	text := *tp
	if blank(text) {
		return bad(ReasonEmptyText, fmt.Sprintf("field %q is empty", spec.text), id)
	}
	meta := make(map[string]string, len(spec.meta))
	for _, k := range spec.meta {
		if v, ok := jsonField(obj, k); ok {
			meta[k] = v
		}
	}
	if id == "" {
		id = deriveFrom(meta, obj, spec.derive, text)
	}
	return Document{ID: id, Source: source, Text: text, Metadata: meta, File: file, Unit: "line", Record: line}, nil
}

// docFromFields builds the document from the fast path's fields.
func docFromFields(ff fastFields, spec *jsonSpec, file, source string, line int64,
	bad func(reason, detail, id string) (Document, *Malformed)) (Document, *Malformed) {
	id := ""
	for _, k := range spec.ids {
		if v, ok := jsonField(ff.raw, k); ok {
			id = v
			break
		}
	}
	if !ff.hasText {
		return bad(ReasonMissingText, fmt.Sprintf("no %q field (or null)", spec.text), id)
	}
	if blankBytes(ff.text) {
		return bad(ReasonEmptyText, fmt.Sprintf("field %q is empty", spec.text), id)
	}
	var text string
	if ff.owned {
		// unescape's fresh copy, referenced by nothing else: no second copy.
		text = unsafe.String(unsafe.SliceData(ff.text), len(ff.text))
	} else {
		text = string(ff.text) // a view of the reader's buffer
	}
	meta := make(map[string]string, len(spec.meta))
	for _, k := range spec.meta {
		if v, ok := jsonField(ff.raw, k); ok {
			meta[k] = v
		}
	}
	if id == "" {
		id = deriveFrom(meta, ff.raw, spec.derive, text)
	}
	return Document{ID: id, Source: source, Text: text, Metadata: meta, File: file, Unit: "line", Record: line}, nil
}

// blankBytes is blank for raw bytes: only Unicode white space (invalid
// UTF-8 is not white space).
func blankBytes(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// lineDecoder is a struct type built from a jsonSpec: field 0 is the text
// (*string), then one json.RawMessage per top-level key the spec reads.
type lineDecoder struct {
	typ   reflect.Type
	heads []string
}

var decoders sync.Map // *jsonSpec -> *lineDecoder

func (spec *jsonSpec) decoder() *lineDecoder {
	if d, ok := decoders.Load(spec); ok {
		return d.(*lineDecoder)
	}
	d := &lineDecoder{}
	fields := []reflect.StructField{{Name: "F0", Type: reflect.TypeOf((*string)(nil)), Tag: reflect.StructTag(`json:"` + spec.text + `"`)}}
	seen := map[string]bool{spec.text: true}
	for _, k := range slices.Concat(spec.ids, spec.meta, spec.derive) {
		head, _, _ := strings.Cut(k, ".")
		if seen[head] {
			continue
		}
		seen[head] = true
		d.heads = append(d.heads, head)
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%d", len(fields)), Type: reflect.TypeOf(json.RawMessage{}),
			Tag: reflect.StructTag(`json:"` + head + `"`)})
	}
	d.typ = reflect.StructOf(fields)
	decoders.Store(spec, d)
	return d
}

func deriveFrom(meta map[string]string, obj map[string]json.RawMessage, keys []string, text string) string {
	fields := make([]string, 0, len(keys))
	any := false
	for _, k := range keys {
		v, ok := meta[k]
		if !ok && obj != nil {
			v, ok = jsonField(obj, k)
		}
		any = any || ok
		fields = append(fields, v)
	}
	if !any {
		// Nothing stable but the text itself.
		return derivedID("text", text)
	}
	return derivedID(fields...)
}

// lookupRaw follows a dotted path through nested objects.
func lookupRaw(obj map[string]json.RawMessage, path string) (json.RawMessage, bool) {
	head, rest, nested := strings.Cut(path, ".")
	raw, ok := obj[head]
	if !ok {
		return nil, false
	}
	if !nested {
		return raw, true
	}
	return lookupIn(raw, rest)
}

// lookupIn is lookupRaw inside the raw object raw.
func lookupIn(raw json.RawMessage, path string) (json.RawMessage, bool) {
	head, rest, nested := strings.Cut(path, ".")
	v, ok, sure := memberOf(raw, head)
	if !sure {
		var sub map[string]json.RawMessage
		if json.Unmarshal(raw, &sub) != nil {
			return nil, false
		}
		return lookupRaw(sub, path)
	}
	if !ok {
		return nil, false
	}
	if !nested {
		return v, true
	}
	return lookupIn(v, rest)
}

// memberOf finds key among the members of the valid JSON object raw without
// decoding it into a map (the last of repeated keys wins, as in a map).
// sure is false when a key holds escapes: then encoding/json decides.
func memberOf(raw []byte, key string) (v json.RawMessage, ok, sure bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false, true // not an object: nothing is in it
	}
	i = skipWS(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		ks, ke, esc := stringEnd(raw, i)
		if esc {
			return nil, false, false
		}
		i = skipWS(raw, ke+1)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false, false
		}
		i = skipWS(raw, i+1)
		vs := i
		if i = skipValue(raw, i); i < 0 || i > len(raw) {
			return nil, false, false
		}
		if string(raw[ks:ke]) == key {
			v, ok = raw[vs:i], true
		}
		i = skipWS(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return v, ok, true
}

// jsonField renders a field as a string: JSON strings unquoted, anything else
// as compact JSON. Missing and null fields are absent.
func jsonField(obj map[string]json.RawMessage, path string) (string, bool) {
	raw, ok := lookupRaw(obj, path)
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		// Most ids and metadata are plain strings: no escapes, valid UTF-8
		// (encoding/json would replace invalid bytes), already validated.
		if len(raw) >= 2 && raw[len(raw)-1] == '"' {
			if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
				return string(in), true
			}
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
	}
	var c bytes.Buffer
	if json.Compact(&c, raw) == nil {
		return c.String(), true
	}
	return string(raw), true
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
