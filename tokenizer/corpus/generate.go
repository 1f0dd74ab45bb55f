package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// EdgeCases are fixed hand-picked documents for the rules tokenizers is
// known to be subtle about (see shared/reference/tokenizer.md section 3).
func EdgeCases() []string {
	cases := []string{
		"", " ", "  ", "\n", "\n\n", "\t\tx", "a\n\nb", "hello   world", "hello  \tworld", "a  1", " 12", "x 1 2 3",
		"12345678901234567890", "3.14159", "1,000,000", "v1.2.3-rc4", "0x1F", "1e-9",
		"aaaaaaaa", "aaaaaaaaa", "========", "        ", "         x", "\t\t\t\tif x {", "--------------------",
		"I'm", "you're", "we've", "they'll", "he'd", "it's", "can't", "'S", "'s", "''s", "x's'", "don't've", "'ll", "' s",
		"Hello, World!", " leading space", "trailing space ", "trailing spaces   ", "tab\tin\tside",
		"e\u0301", "cafe\u0301 au lait", "a\u0308\u0304", "\u0301start", "n\u0303o\u0303",
		"नमस्ते दुनिया", "สวัสดีชาวโลก", "مرحبا بالعالم", "שָׁלוֹם", "Привет, мир", "Γειά σου Κόσμε",
		"你好，世界。这是一个测试。", "日本語のテキストです", "한국어 텍스트", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ",
		"٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３", "²³¹", "½ ¼ ¾", "Ⅻ ⅻ ⅰⅱⅲ", "① ② ⑳", "x²+y²", "𝟘𝟙𝟚",
		"a 𑯱b", "x𑯀y", "𑯰𑯱𑯲", "a\U0001E5F1b", "\U00016D40\U00016D41", // Unicode 16 chars
		"🎉 ab", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "👍🏽", "1️⃣", "❤️", "😀😃😄", "a🎉b", " 🎉", "🎉 🎉  🎉",
		"a\u00a0b", "a\u3000b", "a\u2028b", "a\u0085b", "a\u200bb", "a\ufeffb", "\u00a0\u00a0x", "\u3000 x",
		"a \u00a0b", "a\u00a0 b", "x\u2029\u2029y", "\v\f\r\n", "\r\n\r\n", "line\r\nline",
		"<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
		"--out <filename>", "<<filename>>", "<filename", "<|endoftext", "<reponame><repo_name>", "<jupyter_output>x<empty_output>",
		"<file_sep>  <gh_stars>10", "<issue_start><issue_comment><issue_closed>", "<jupyter_start><jupyter_text><jupyter_code><jupyter_script>",
		"\x00", "\x01\x02\x03\x04\x05\x06", "a\x04b", "x\x06\x13\x14\x16\x1dy", "\x7f", "tab\x0bvt", "bell\x07",
		"\x80", "\xff", "a\xe2\x82b", "\xed\xa0\x80", "\xc0\xaf", "\xf5\x80\x80\x80", "\xf0\x9f\x98", "ok\xc3", "\xe0\x80\x80",
		"\uE000\uF8FF", "\U000F0000", "\uFFFE\uFFFF", "\U0010FFFF", "\u0378\u0379",
		"func main() {\n\tfmt.Println(\"hi\")\n}\n", "def f(x):\n    return x ** 2\n", "#include <stdio.h>\nint main(void) { return 0; }\n",
		"SELECT * FROM t WHERE id = 42;", "<div class=\"a\">&amp;</div>", "{\"k\": [1, 2, 3], \"s\": \"v\"}",
		"$ ls -la | grep foo && echo ok", "fn main() { let x: u32 = 5; }", "console.log(`${a}+${b}`);",
	}
	long := []string{
		strings.Repeat("a", 5000), strings.Repeat("=", 1000), strings.Repeat(" ", 3000), strings.Repeat("\n", 500),
		strings.Repeat(" ", 999) + "x", strings.Repeat("\t", 200) + "y", strings.Repeat("ab", 2000),
		strings.Repeat("9", 1000), strings.Repeat("中文", 1500), strings.Repeat("🎉", 500), strings.Repeat("e\u0301", 400),
		strings.Repeat("Supercalifragilisticexpialidocious", 100), strings.Repeat("<|endoftext|>", 50),
		strings.Repeat("'s", 300), strings.Repeat("!?", 700), strings.Repeat("\u00a0", 300) + "z",
	}
	cases = append(cases, long...)
	r := rng(1)
	for range 40 {
		cases = append(cases, base64ish(r, 200+r.IntN(3000)))
	}
	return cases
}

// Generate returns n generated documents mixing the hard categories.
func Generate(n int, seed uint64) []string {
	r := rng(seed)
	edge := EdgeCases()
	out := make([]string, 0, n)
	for i := range n {
		if i < len(edge) {
			out = append(out, edge[i])
			continue
		}
		var b strings.Builder
		parts := 5 + r.IntN(60)
		for range parts {
			gens[r.IntN(len(gens))](r, &b)
		}
		out = append(out, b.String())
	}
	return out
}

var (
	wordsLatin = strings.Fields("the of and to in is was for on that with as by at from this it be are an or not " +
		"tokenizer sequence document mixture budget shard rope base context window training evaluation " +
		"naïve café résumé façade Ångström Straße jalapeño coöperate œuvre ďábel Łódź İstanbul ÆØÅ")
	wordsOther = strings.Fields("Привет мир пример текста Γειά σου Κόσμε παράδειγμα مرحبا بالعالم نص عربي " +
		"שלום עולם नमस्ते दुनिया हिन्दी สวัสดี ภาษาไทย 你好 世界 中文文本 日本語 カタカナ ひらがな 한국어 텍스트 " +
		"Việt Nam tiếng Việt ქართული Հայերեն ελληνικά ትግርኛ ᏣᎳᎩ ꦗꦮ 𐌰𐌱𐌲")
	spaces   = []string{" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\ufeff", "\v", "\f", "    ", "\t\t"}
	numerals = []string{"0", "7", "42", "2024", "3.14", "٣", "٤٥", "७", "໒", "๓", "０", "²", "½", "Ⅻ", "①", "𝟙", "𑯱", "፲", "〇", "一二三", "١٢٣"}
	emoji    = []string{"🎉", "👨‍👩‍👧‍👦", "🇯🇵", "👍🏽", "1️⃣", "❤️", "🤖", "🧑🏿‍💻", "🏳️‍🌈", "☕", "✨", "🔥"}
	marks    = []string{"\u0301", "\u0308", "\u0303", "\u0327", "\u093f", "\u0e31", "\u064e", "\u05b8", "\u200d", "\u20dd", "\ufe0f"}
	punct    = []string{".", ",", "!", "?", ";", ":", "'", "\"", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "-", "--", "...", "…", "—", "«", "»", "“", "”", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "|", "~", "`", "'s", "'t", "'re", "'ll", "'D"}
	specials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>", "<jupyter_code>", "<empty_output>", "<|endof", "<file", "name>", "<<filename>>"}
	codeBits = []string{"func (t *T) Encode(s string) []uint32 {", "\treturn nil\n}", "if err != nil {\n\t\treturn err\n\t}", "def __init__(self):", "    self.x = 0", "for (int i = 0; i < n; i++) {", "#include <stdint.h>", "SELECT id, name FROM users;", "let x = vec![1, 2, 3];", "const f = (a) => a * 2;", "<div class=\"x\">", "</div>", "{\"key\": \"value\"}", "x := map[string]int{}", "    ", "\t\t", "// comment", "/* block */", "# heading", "- [ ] item", "| a | b |", "```go", "$ make test"}
)

var gens = []func(r *rand.Rand, b *strings.Builder){
	func(r *rand.Rand, b *strings.Builder) { // prose
		for range 3 + r.IntN(20) {
			b.WriteString(wordsLatin[r.IntN(len(wordsLatin))])
			b.WriteString(pick(r, []string{" ", " ", " ", ", ", ". ", "\n", "  "}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // other scripts
		for range 2 + r.IntN(12) {
			b.WriteString(wordsOther[r.IntN(len(wordsOther))])
			b.WriteString(pick(r, []string{" ", "", "。", "، ", " ", "\n"}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // whitespace soup
		for range 2 + r.IntN(15) {
			b.WriteString(pick(r, spaces))
			if r.IntN(2) == 0 {
				b.WriteString(pick(r, []string{"a", "word", "1", "!", "é", "中", "'s", "🎉", "x1"}))
			}
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // numerals
		for range 1 + r.IntN(10) {
			b.WriteString(pick(r, numerals))
			b.WriteString(pick(r, []string{"", " ", "x", ".", ",", " a", "\u00a0"}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // emoji
		for range 1 + r.IntN(8) {
			b.WriteString(pick(r, emoji))
			b.WriteString(pick(r, []string{"", " ", "a", "!", "  "}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // combining marks
		for range 1 + r.IntN(8) {
			b.WriteString(pick(r, []string{"a", "e", "o", "n", "क", "ก", "ب", "ש", " ", "1"}))
			for range r.IntN(3) {
				b.WriteString(pick(r, marks))
			}
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // punctuation and contractions
		for range 2 + r.IntN(12) {
			b.WriteString(pick(r, punct))
			if r.IntN(3) == 0 {
				b.WriteString(pick(r, []string{" ", "s", "t", "x", "ll", "re"}))
			}
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // special-token strings
		b.WriteString(pick(r, []string{"", " ", "x", "\n", "--out "}))
		b.WriteString(pick(r, specials))
		b.WriteString(pick(r, []string{"", " ", "y", "\n", "1"}))
	},
	func(r *rand.Rand, b *strings.Builder) { // code
		for range 1 + r.IntN(6) {
			b.WriteString(pick(r, codeBits))
			b.WriteString(pick(r, []string{"\n", "\n\t", "\n    ", " ", "\n\n"}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // control and invalid bytes
		for range 1 + r.IntN(6) {
			switch r.IntN(3) {
			case 0:
				b.WriteByte(byte(r.IntN(0x20)))
			case 1:
				b.WriteByte(byte(0x80 + r.IntN(0x80)))
			default:
				b.WriteByte(0x7f)
			}
			b.WriteString(pick(r, []string{"", "a", " ", "\xe2\x82", "é"}))
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // random code points, any plane
		for range 1 + r.IntN(10) {
			var c rune
			switch r.IntN(4) {
			case 0:
				c = rune(0x80 + r.IntN(0x800-0x80))
			case 1:
				c = rune(0x800 + r.IntN(0x10000-0x800))
			case 2:
				c = rune(0x10000 + r.IntN(0x20000))
			default:
				c = rune(r.IntN(0x110000))
			}
			if c >= 0xd800 && c <= 0xdfff {
				c = 'x'
			}
			b.WriteRune(c)
			if r.IntN(3) == 0 {
				b.WriteString(pick(r, []string{" ", "a", "1"}))
			}
		}
	},
	func(r *rand.Rand, b *strings.Builder) { // long words
		switch r.IntN(5) {
		case 0:
			b.WriteString(strings.Repeat(pick(r, []string{"a", "=", "-", " ", "中", "ab"}), 50+r.IntN(600)))
		case 1:
			b.WriteString(base64ish(r, 100+r.IntN(1500)))
		case 2:
			fmt.Fprintf(b, "%d", r.Uint64())
		case 3:
			for range 20 + r.IntN(200) {
				b.WriteString(pick(r, []string{"var", "a", "=", "function", "(", ")", "{", "}", ";", "return", "."}))
			}
		default:
			for range 30 + r.IntN(300) {
				b.WriteRune(rune(0x4e00 + r.IntN(0x5000)))
			}
		}
	},
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

func base64ish(r *rand.Rand, n int) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return string(b)
}
