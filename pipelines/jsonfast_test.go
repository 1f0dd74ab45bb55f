package pipelines

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// scanStringRef is scanString one byte at a time (the word-at-a-time skip
// must not change any answer).
func scanStringRef(b []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, true
		case c < 0x20:
			return 0, false, false
		case c == '\\':
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
	}
	return 0, false, false
}

func TestScanStringWordSkip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab \"\\\x01\x1f\x7f\x80\xff/nu0A")
	for n := range 20000 {
		b := make([]byte, 1+r.IntN(40))
		b[0] = '"'
		for i := 1; i < len(b); i++ {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte('a' + r.IntN(26))
			}
		}
		e1, x1, o1 := scanString(b, 0)
		e2, x2, o2 := scanStringRef(b, 0)
		if e1 != e2 || x1 != x2 || o1 != o2 {
			t.Fatalf("case %d %q: got (%d %v %v), byte loop (%d %v %v)", n, b, e1, x1, o1, e2, x2, o2)
		}
	}
	// Every byte value, at every position of an 8-byte word.
	for c := range 256 {
		for pos := range 9 {
			b := []byte(`"` + strings.Repeat("x", pos) + string(rune(0)) + strings.Repeat("y", 9) + `"`)
			b[1+pos] = byte(c)
			e1, x1, o1 := scanString(b, 0)
			e2, x2, o2 := scanStringRef(b, 0)
			if e1 != e2 || x1 != x2 || o1 != o2 {
				t.Fatalf("byte %#x at %d: got (%d %v %v), byte loop (%d %v %v)", c, pos, e1, x1, o1, e2, x2, o2)
			}
		}
	}
}

// jsonField and nested lookups without encoding/json give what decoding
// into maps gives: repeated keys (last wins), escapes in keys and values,
// invalid UTF-8 (replaced by encoding/json), non-objects, null.
func TestJSONFieldMatchesDecoding(t *testing.T) {
	objs := []string{
		`{"id":"a1","meta":{"url":"http://x/y","n":3}}`,
		`{"id":"a\"1","meta":{"url":"u1","url":"u2"}}`,
		`{"id":"\u00e9t\u00e9","meta":{"u\u0072l":"esc-key","n":[1, 2]}}`,
		"{\"id\":\"bad\xff\xfeutf8\",\"meta\":{\"url\":\"ok\xc3\"}}",
		`{"id":null,"meta":null}`,
		`{"id":12.50,"meta":[{"url":"in array"}]}`,
		`{"id":{"k" : "v" , "z":true},"meta":{"deep":{"url":"d"}}}`,
		`{"meta":{ "url" : "spaced" , "x" : { "url":"inner" } }}`,
	}
	paths := []string{"id", "meta.url", "meta.n", "meta.deep.url", "meta.x.url", "missing", "meta.missing.url"}
	for _, o := range objs {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(o), &obj); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			got, gok := jsonField(obj, p)
			want, wok := refField(obj, p)
			if got != want || gok != wok {
				t.Errorf("%s in %s: got %q %v, decoding gives %q %v", p, o, got, gok, want, wok)
			}
		}
	}
}

// refField is jsonField by decoding every level into a map.
func refField(obj map[string]json.RawMessage, path string) (string, bool) {
	head, rest, nested := strings.Cut(path, ".")
	raw, ok := obj[head]
	for ok && nested {
		var sub map[string]json.RawMessage
		if json.Unmarshal(raw, &sub) != nil {
			return "", false
		}
		head, rest, nested = strings.Cut(rest, ".")
		raw, ok = sub[head]
	}
	if !ok || string(raw) == "null" {
		return "", false
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return compact(raw), true
}

// compact drops white space outside strings (json.Compact, written out).
func compact(raw []byte) string {
	var out []byte
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			out = append(out, c)
			if c == '\\' {
				i++
				out = append(out, raw[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		out = append(out, c)
	}
	return string(out)
}
