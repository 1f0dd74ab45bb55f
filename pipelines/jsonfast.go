package pipelines

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// The fast path for one JSON Lines record. encoding/json scans a line twice
// (validate, then decode) and replaces every invalid UTF-8 byte inside a
// string by U+FFFD before prepare can count it. Here one pass finds the
// top-level fields the spec reads; the text literal (the bulk of the line)
// is checked by its own tight loop and unescaped with its raw bytes kept
// (so sanitise counts and replaces ill-formed sequences as for parquet);
// json.Valid checks the rest of the line with the text replaced by "".
// Anything unusual (not an object, a key differing only in case, text not a
// string, invalid JSON) returns ok=false and the caller takes the
// encoding/json path, which words the error exactly as before.

// fastFields is what fastObject found.
type fastFields struct {
	text    []byte // unescaped, raw bytes; nil when absent or null
	hasText bool
	owned   bool                       // text is a fresh copy (unescaped), not a view of the line
	raw     map[string]json.RawMessage // other wanted heads
}

// fastObject parses the JSON object b and returns the text field and the
// raw values of heads. ok is false when the record needs the general
// decoder (including whenever b is not valid JSON).
func fastObject(b []byte, text string, heads []string, out *fastFields) (ok bool) {
	textAt, textEnd := -1, -1
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return json.Valid(b)
	}
	for i < len(b) {
		if b[i] != '"' {
			return false
		}
		ks, ke, esc := stringEnd(b, i)
		if esc || ke >= len(b) {
			return false // escaped key: rare, let encoding/json decide what it names
		}
		key := b[ks:ke]
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		vs := i
		if string(key) == text && i < len(b) && b[i] == '"' {
			// The bulk of the line: one pass checks it and finds its end.
			end, escaped, ok := scanString(b, i)
			if !ok {
				return false
			}
			i = end
			textAt, textEnd = vs, i
			if escaped {
				out.text, out.owned = unescape(b[vs:i]), true
			} else {
				out.text, out.owned = b[vs+1:i-1], false
			}
			out.hasText = true
		} else if i = skipValue(b, i); i < 0 || i > len(b) || i == vs {
			return false
		}
		val := b[vs:i]
		switch {
		case string(key) == text:
			switch val[0] {
			case '"': // done above
			case 'n':
				textAt, textEnd = -1, -1
				out.text, out.hasText, out.owned = nil, false, false
			default:
				return false // wrong type: the general path reports it
			}
		case wanted(key, heads):
			out.raw[string(key)] = val
		case foldsTo(key, text, heads):
			return false // encoding/json matches keys case-insensitively
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			if textAt < 0 {
				return json.Valid(b)
			}
			// The text literal is valid on its own; the line is valid iff it
			// is with any other string in its place.
			rest := make([]byte, 0, len(b)-(textEnd-textAt)+2)
			rest = append(append(append(rest, b[:textAt]...), '"', '"'), b[textEnd:]...)
			return json.Valid(rest)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
	return false
}

// scanString checks the JSON string literal starting at b[i] == '"' (no
// control characters, only valid escapes; bytes >= 0x80 are left to
// sanitise) and returns the index just past its closing quote and whether
// it holds escapes.
func scanString(b []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(b); j++ {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character: the text literal is most of the line.
		for j+8 <= len(b) && !specialInWord(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			break
		}
		c := b[j]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		switch {
		case c == '"':
			return j + 1, escaped, true
		case c < 0x20:
			return 0, false, false
		}
		escaped = true
		j++
		if j >= len(b) {
			return 0, false, false
		}
		switch b[j] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if j+5 > len(b) {
				return 0, false, false
			}
			for _, h := range b[j+1 : j+5] {
				if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
					return 0, false, false
				}
			}
			j += 4
		default:
			return 0, false, false
		}
	}
	return 0, false, false
}

// specialInWord reports whether any byte of x may be '"', '\\' or below
// 0x20 (a flagged word only sends the scan to the byte loop).
func specialInWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return (hasZero(q) | hasZero(bs) | ((x - ones*0x20) & ^x & highs)) != 0
}

func wanted(key []byte, heads []string) bool {
	for _, h := range heads {
		if string(key) == h {
			return true
		}
	}
	return false
}

// foldsTo reports whether key names text or a head under case folding
// (the caller checked exact equality first).
func foldsTo(key []byte, text string, heads []string) bool {
	if bytes.EqualFold(key, []byte(text)) {
		return true
	}
	for _, h := range heads {
		if bytes.EqualFold(key, []byte(h)) {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the content bounds of the string starting at b[i] == '"'
// and whether it holds escapes. The input is valid JSON, so it terminates.
func stringEnd(b []byte, i int) (start, end int, escaped bool) {
	start = i + 1
	for j := start; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return start, j, escaped
		}
	}
	return start, len(b), escaped
}

// skipValue returns the index just past the value at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		_, e, _ := stringEnd(b, i)
		return e + 1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, e, _ := stringEnd(b, j)
				j = e
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// unescape decodes a valid JSON string literal (quotes included), keeping
// bytes that are not valid UTF-8 as they are. A lone surrogate escape
// becomes U+FFFD, as encoding/json does.
func unescape(lit []byte) []byte {
	s := lit[1 : len(lit)-1]
	j := bytes.IndexByte(s, '\\')
	if j < 0 {
		return s // no escapes: the common case for long text is a sub-slice
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:j]...)
	for j < len(s) {
		c := s[j]
		if c != '\\' {
			k := bytes.IndexByte(s[j:], '\\')
			if k < 0 {
				k = len(s)
			} else {
				k += j
			}
			out = append(out, s[j:k]...)
			j = k
			continue
		}
		j++
		switch s[j] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[j+1:])
			j += 4
			if utf16.IsSurrogate(r) {
				if j+6 < len(s) && s[j+1] == '\\' && s[j+2] == 'u' {
					if r2 := hex4(s[j+3:]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
						j += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, s[j])
		}
		j++
	}
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
