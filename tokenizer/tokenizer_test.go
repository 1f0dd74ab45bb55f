package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"longctx/tokenizer/corpus"
)

func TestSanitizeUTF8(t *testing.T) {
	// Expected outputs are what Rust's String::from_utf8_lossy gives: one
	// U+FFFD per maximal ill-formed subsequence.
	tests := []struct {
		in, want string
		replaced int
	}{
		{"", "", 0},
		{"héllo 🎉", "héllo 🎉", 0},
		{"\x80", "\uFFFD", 1},
		{"a\xffb", "a\uFFFDb", 1},
		{"\xe2\x82A", "\uFFFDA", 1},                         // truncated 3-byte sequence: one
		{"\xe2\x82", "\uFFFD", 1},                           // truncated at the end
		{"\xf0\x9f\x98", "\uFFFD", 1},                       // truncated 4-byte sequence
		{"\xc0\xaf", "\uFFFD\uFFFD", 2},                     // overlong lead never valid
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD", 3},           // E0 needs A0-BF next
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD", 3},           // surrogate
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD", 4}, // above U+10FFFF
		{"\xf5\x80", "\uFFFD\uFFFD", 2},                     // F5 never valid
		{"\xe2\x82\xac\xe2", "€\uFFFD", 1},                  // valid then truncated
		{"\xf0\x9f\x98\x80\x80", "😀\uFFFD", 1},              // stray continuation
		{"ok\xc3", "ok\uFFFD", 1},
	}
	for _, tc := range tests {
		got, n := SanitizeUTF8(tc.in)
		if got != tc.want || n != tc.replaced {
			t.Errorf("SanitizeUTF8(%q) = %q, %d; want %q, %d", tc.in, got, n, tc.want, tc.replaced)
		}
	}
	// Property: output is valid and valid input is untouched.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		got, n := SanitizeUTF8(string(b))
		if !utf8.ValidString(got) {
			t.Fatalf("SanitizeUTF8(%q) = %q is not valid UTF-8", b, got)
		}
		if utf8.Valid(b) != (n == 0) || (n == 0 && got != string(b)) {
			t.Fatalf("SanitizeUTF8(%q) = %q, %d", b, got, n)
		}
	}
}

func TestBasics(t *testing.T) {
	tok := loadTest(t)
	if tok.EOS() != 0 || tok.VocabSize() != 8192 {
		t.Fatalf("EOS %d VocabSize %d; want 0, 8192", tok.EOS(), tok.VocabSize())
	}
	if id, ok := tok.TokenID("<|im_end|>"); !ok || id != 2 {
		t.Fatalf("TokenID(<|im_end|>) = %d, %v", id, ok)
	}
	if len(tok.Hash()) != 64 {
		t.Fatalf("Hash %q", tok.Hash())
	}
	tests := []struct {
		in   string
		want []string // tokens
	}{
		{"        ", []string{"ĠĠĠĠĠĠĠĠ"}},
		{"a<|endoftext|>b", []string{"a", "<|endoftext|>", "b"}},
		{" 12", []string{"Ġ", "1", "2"}},
		{"a\n\nb", []string{"a", "Ċ", "Ċ", "b"}},
	}
	for _, tc := range tests {
		var got []string
		for _, id := range tok.Encode(tc.in) {
			s, _ := tok.Token(id)
			got = append(got, s)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Encode(%q) tokens %q; want %q", tc.in, got, tc.want)
		}
	}
	doc := tok.EncodeDoc("hello")
	if doc[len(doc)-1] != 0 || !reflect.DeepEqual(doc[:len(doc)-1], tok.Encode("hello")) {
		t.Errorf("EncodeDoc(hello) = %v", doc)
	}
	if tok.Count("") != 0 || len(tok.Encode("")) != 0 {
		t.Errorf("empty text gives ids")
	}
}

// TestRoundTrip: decode(encode(x)) == x when every byte of x is in the
// vocabulary's byte alphabet.
func TestRoundTrip(t *testing.T) {
	tok := loadTest(t)
	docs := corpus.Generate(3000, 3)
	checked := 0
	for _, d := range append(docs, corpus.EdgeCases()...) {
		if !utf8.ValidString(d) || !allBytesKnown(tok, d) {
			continue
		}
		checked++
		if got := tok.Decode(tok.Encode(d)); got != d {
			t.Fatalf("Decode(Encode(%q)) = %q", clip(d, 200), clip(got, 200))
		}
	}
	if checked < 300 {
		t.Fatalf("only %d documents had all bytes in the vocabulary", checked)
	}
	// Random strings over the known bytes, assembled from valid UTF-8.
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		var b strings.Builder
		for range r.IntN(40) {
			c := rune(r.IntN(0x800))
			if r.IntN(4) == 0 {
				c = rune(r.IntN(0x80))
			}
			b.WriteRune(c)
		}
		s := b.String()
		if !allBytesKnown(tok, s) {
			continue
		}
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func allBytesKnown(tok *Tokenizer, s string) bool {
	for i := 0; i < len(s); i++ {
		if tok.byteID[s[i]] < 0 {
			return false
		}
	}
	return true
}

func TestDroppedBytes(t *testing.T) {
	tok := loadTest(t)
	missing := -1
	for b := range 256 {
		if tok.byteID[b] < 0 && b < 0x80 {
			missing = b
			break
		}
	}
	if missing < 0 {
		t.Fatal("test tokenizer has every ASCII byte; pick another case")
	}
	s := "ab" + string(rune(missing)) + "cd"
	if got, want := tok.Encode(s), tok.Encode("abcd"); !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(%q) = %v; want %v (byte %#x dropped before merging)", s, got, want, missing)
	}
}

func TestBatchAndConcurrency(t *testing.T) {
	tok := loadTest(t)
	docs := corpus.Generate(1500, 11)
	want := make([][]uint32, len(docs))
	for i, d := range docs {
		want[i] = tok.Encode(d)
	}
	for _, workers := range []int{1, 3, 0} {
		got := tok.EncodeBatch(docs, true, workers)
		for i := range docs {
			if !reflect.DeepEqual(got[i], append(append([]uint32{}, want[i]...), tok.EOS())) {
				t.Fatalf("workers %d: doc %d differs", workers, i)
			}
		}
	}
	// AppendDoc into a reused buffer (as prepare recycles them) keeps what
	// was there and appends exactly EncodeDoc.
	buf := []uint32{7}
	for i, d := range docs[:200] {
		buf = tok.AppendDoc(buf[:1], d)
		if !reflect.DeepEqual(buf[1:], tok.EncodeDoc(d)) || buf[0] != 7 {
			t.Fatalf("AppendDoc: doc %d differs from EncodeDoc", i)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(docs); i += 4 {
				if got := tok.Encode(docs[i]); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("goroutine %d: doc %d differs", g, i)
					return
				}
				if n := tok.Count(docs[i]); n != len(want[i]) {
					t.Errorf("goroutine %d: doc %d Count %d want %d", g, i, n, len(want[i]))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadRefuses(t *testing.T) {
	data, err := os.ReadFile(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	tests := []struct {
		name, wantErr string
		data          []byte
	}{
		{"normalizer", "normalizer", edit(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFC"} })},
		{"unk", "unk_token", edit(func(m map[string]any) { model(m)["unk_token"] = "<unk>" })},
		{"byte fallback", "byte_fallback", edit(func(m map[string]any) { model(m)["byte_fallback"] = true })},
		{"wordpiece", "model.type", edit(func(m map[string]any) { model(m)["type"] = "WordPiece" })},
		{"prefix space", "add_prefix_space", edit(func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}
		})},
		{"metaspace", "Metaspace", edit(func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Metaspace"}
		})},
		{"other regex", "GPT-2 pattern", edit(func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\w+`}, "behavior": "Isolated", "invert": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
			}}
		})},
		{"template", "post_processor", edit(func(m map[string]any) { m["post_processor"] = map[string]any{"type": "TemplateProcessing"} })},
		{"lstrip", "lstrip", edit(func(m map[string]any) { m["added_tokens"].([]any)[0].(map[string]any)["lstrip"] = true })},
		{"merge oov", "not in vocab", edit(func(m map[string]any) { model(m)["merges"] = []any{"Ġ zzzq"} })},
		{"truncation", "truncation", edit(func(m map[string]any) { m["truncation"] = map[string]any{"max_length": 5} })},
		{"not json", "tokenizer.json", []byte("{")},
	}
	for _, tc := range tests {
		_, err := LoadBytes(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v; want one mentioning %q", tc.name, err, tc.wantErr)
		}
	}
	// Equivalent forms load and encode the same: legacy "a b" merges, and
	// Split(GPT-2 regex) + ByteLevel(use_regex=false).
	alt := edit(func(m map[string]any) {
		var legacy []any
		for _, mg := range model(m)["merges"].([]any) {
			p := mg.([]any)
			legacy = append(legacy, p[0].(string)+" "+p[1].(string))
		}
		model(m)["merges"] = legacy
		m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true},
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}}
	})
	a, err := LoadBytes(alt)
	if err != nil {
		t.Fatal(err)
	}
	b := loadTest(t)
	for _, d := range corpus.EdgeCases() {
		if !reflect.DeepEqual(a.Encode(d), b.Encode(d)) {
			t.Fatalf("equivalent config encodes %q differently", d)
		}
	}
}

// FuzzEncode checks invariants on arbitrary bytes: no panic, Count agrees with
// Encode, ids are in range, and text whose bytes are all known round-trips.
// go test ./tokenizer -fuzz FuzzEncode explores further.
func FuzzEncode(f *testing.F) {
	for _, d := range corpus.EdgeCases() {
		if len(d) < 512 {
			f.Add(d)
		}
	}
	tok := loadTest(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if n := tok.Count(s); n != len(ids) {
			t.Fatalf("Count(%q) = %d, len(Encode) = %d", s, n, len(ids))
		}
		for _, id := range ids {
			if int(id) >= tok.VocabSize() {
				t.Fatalf("Encode(%q): id %d out of range", s, id)
			}
		}
		if utf8.ValidString(s) && allBytesKnown(tok, s) {
			if got := tok.Decode(ids); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	})
}
