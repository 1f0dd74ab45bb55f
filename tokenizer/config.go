package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// gpt2Pattern is the split regex of the ByteLevel pre-tokenizer (use_regex),
// which the scanner in pretokenize.go implements.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

type fileJSON struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         modelJSON       `json:"model"`
}

type addedJSON struct {
	ID         uint32 `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]uint32 `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// component is any normalizer/pre-tokenizer/processor/decoder object.
type component struct {
	Type             string            `json:"type"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
	IndividualDigits *bool             `json:"individual_digits"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Pattern          *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if !isNull(f.Truncation) {
		return nil, fmt.Errorf("tokenizer.json: truncation is set; only null is supported (truncate after encoding)")
	}
	if !isNull(f.Padding) {
		return nil, fmt.Errorf("tokenizer.json: padding is set; only null is supported")
	}
	if !isNull(f.Normalizer) {
		return nil, fmt.Errorf("tokenizer.json: normalizer %s is not implemented (only null)", brief(f.Normalizer))
	}
	t := &Tokenizer{}
	if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if err := t.setModel(&f.Model); err != nil {
		return nil, err
	}
	if err := t.setAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	return t, nil
}

func brief(raw json.RawMessage) string {
	var c component
	if json.Unmarshal(raw, &c) == nil && c.Type != "" {
		return fmt.Sprintf("%q", c.Type)
	}
	s := string(raw)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// setPreTokenizer accepts [Digits] + GPT-2 split + ByteLevel, in the forms
// SmolLM2 and GPT-2 use: Sequence[Digits, ByteLevel(use_regex)],
// ByteLevel(use_regex), Sequence[(Digits,) Split(GPT-2 regex, Isolated),
// ByteLevel(use_regex=false)].
func (t *Tokenizer) setPreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("tokenizer.json: pre_tokenizer is null; only byte-level BPE pre-tokenizers are implemented")
	}
	var top component
	if err := json.Unmarshal(raw, &top); err != nil {
		return fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	steps := []component{top}
	if top.Type == "Sequence" {
		steps = steps[:0]
		for i, r := range top.Pretokenizers {
			var c component
			if err := json.Unmarshal(r, &c); err != nil {
				return fmt.Errorf("tokenizer.json: pre_tokenizer.pretokenizers[%d]: %w", i, err)
			}
			if c.Type == "Sequence" {
				return fmt.Errorf("tokenizer.json: pre_tokenizer.pretokenizers[%d]: nested Sequence is not implemented", i)
			}
			steps = append(steps, c)
		}
	}
	split, byteLevel := false, false
	for i, c := range steps {
		where := fmt.Sprintf("tokenizer.json: pre_tokenizer step %d (%s)", i, c.Type)
		if byteLevel {
			return fmt.Errorf("%s: steps after ByteLevel are not implemented", where)
		}
		switch c.Type {
		case "Digits":
			if split || t.digits {
				return fmt.Errorf("%s: Digits must come once, before the regex split", where)
			}
			t.digits = true
			t.digitsEach = c.IndividualDigits != nil && *c.IndividualDigits
		case "Split":
			if split {
				return fmt.Errorf("%s: a second regex split is not implemented", where)
			}
			if c.Pattern == nil || c.Pattern.Regex == nil || *c.Pattern.Regex != gpt2Pattern {
				return fmt.Errorf("%s: only the GPT-2 pattern %q is implemented", where, gpt2Pattern)
			}
			if c.Behavior != "Isolated" || c.Invert {
				return fmt.Errorf("%s: only behavior Isolated, invert false is implemented", where)
			}
			split = true
		case "ByteLevel":
			if c.AddPrefixSpace != nil && *c.AddPrefixSpace {
				return fmt.Errorf("%s: add_prefix_space=true is not implemented", where)
			}
			useRegex := c.UseRegex == nil || *c.UseRegex
			if useRegex {
				if split {
					return fmt.Errorf("%s: use_regex=true after a Split step is not implemented", where)
				}
				split = true
			}
			byteLevel = true
		default:
			return fmt.Errorf("%s: pre-tokenizer type %q is not implemented", where, c.Type)
		}
	}
	if !byteLevel {
		return fmt.Errorf("tokenizer.json: pre_tokenizer has no ByteLevel step; only byte-level BPE is implemented")
	}
	if !split {
		return fmt.Errorf("tokenizer.json: pre_tokenizer has no GPT-2 regex split; not implemented")
	}
	return nil
}

func checkPostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("tokenizer.json: post_processor: %w", err)
	}
	// ByteLevel post-processing only adjusts offsets; it adds no ids.
	if c.Type != "ByteLevel" {
		return fmt.Errorf("tokenizer.json: post_processor %q is not implemented (only null or ByteLevel); "+
			"add BOS/EOS explicitly instead", c.Type)
	}
	return nil
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	if c.Type != "ByteLevel" {
		return fmt.Errorf("tokenizer.json: decoder %q is not implemented (only ByteLevel)", c.Type)
	}
	return nil
}

func (t *Tokenizer) setModel(m *modelJSON) error {
	switch {
	case m.Type != "BPE":
		return fmt.Errorf("tokenizer.json: model.type %q is not implemented (only BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("tokenizer.json: model.dropout=%v is not implemented", *m.Dropout)
	case m.UnkToken != nil:
		return fmt.Errorf("tokenizer.json: model.unk_token=%q is not implemented (only null: unknown bytes are dropped)", *m.UnkToken)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("tokenizer.json: model.continuing_subword_prefix is not implemented")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("tokenizer.json: model.end_of_word_suffix is not implemented")
	case m.FuseUnk:
		return fmt.Errorf("tokenizer.json: model.fuse_unk=true is not implemented")
	case m.ByteFallback:
		return fmt.Errorf("tokenizer.json: model.byte_fallback=true is not implemented")
	case m.IgnoreMerges:
		return fmt.Errorf("tokenizer.json: model.ignore_merges=true is not implemented")
	case len(m.Vocab) == 0:
		return fmt.Errorf("tokenizer.json: model.vocab is empty")
	}
	t.vocab = make(map[string]uint32, len(m.Vocab)+32)
	size := 0
	for tok, id := range m.Vocab {
		t.vocab[tok] = id
		size = max(size, int(id)+1)
	}
	if size > 1<<24 {
		return fmt.Errorf("tokenizer.json: model.vocab has id %d; too large", size-1)
	}
	t.tokens = make([]string, size)
	for tok, id := range m.Vocab {
		if t.tokens[id] != "" {
			return fmt.Errorf("tokenizer.json: model.vocab: id %d used by %q and %q", id, t.tokens[id], tok)
		}
		t.tokens[id] = tok
	}
	// Byte-level alphabet.
	t.decodeBytes = make([]byte, 512)
	for b := 0; b < 256; b++ {
		r := byteRune(byte(b))
		t.decodeBytes[r] = byte(b)
		t.byteID[b] = -1
		if id, ok := m.Vocab[string(r)]; ok {
			t.byteID[b] = int32(id)
		}
	}
	t.merges = newPairTable(len(m.Merges))
	for rank, raw := range m.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return fmt.Errorf("tokenizer.json: model.merges[%d]: %w", rank, err)
		}
		ia, oka := m.Vocab[a]
		ib, okb := m.Vocab[b]
		in, okn := m.Vocab[a+b]
		if !oka || !okb || !okn {
			return fmt.Errorf("tokenizer.json: model.merges[%d] %q %q: token not in vocab", rank, a, b)
		}
		// A repeated pair takes its last rank, as tokenizers' HashMap collect does.
		t.merges.put(ia, ib, uint32(rank), in)
	}
	return nil
}

func parseMerge(raw json.RawMessage) (a, b string, err error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("merge %q is not two space-separated tokens", s)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("merge %s is neither \"a b\" nor [\"a\", \"b\"]", raw)
	}
	return pair[0], pair[1], nil
}

func (t *Tokenizer) setAdded(added []addedJSON) error {
	sorted := append([]addedJSON(nil), added...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	eosSet := false
	for _, a := range sorted {
		where := fmt.Sprintf("tokenizer.json: added_tokens id %d %q", a.ID, a.Content)
		switch {
		case a.Content == "":
			return fmt.Errorf("%s: empty content", where)
		case a.SingleWord || a.LStrip || a.RStrip:
			return fmt.Errorf("%s: single_word/lstrip/rstrip are not implemented", where)
		case a.ID >= 1<<24:
			return fmt.Errorf("%s: id too large", where)
		}
		if int(a.ID) >= len(t.tokens) {
			t.tokens = append(t.tokens, make([]string, int(a.ID)+1-len(t.tokens))...)
		}
		if old := t.tokens[a.ID]; old != "" && old != a.Content {
			return fmt.Errorf("%s: id already names model token %q", where, old)
		}
		if old, ok := t.vocab[a.Content]; ok && old != a.ID {
			return fmt.Errorf("%s: content is model token id %d", where, old)
		}
		t.tokens[a.ID] = a.Content
		t.vocab[a.Content] = a.ID
		// With no normalizer, normalized and non-normalized added tokens are
		// matched in the same text, so one leftmost-longest pass suffices
		// unless both kinds exist (then tokenizers runs two passes).
		t.added = append(t.added, addedToken{content: a.Content, id: a.ID, special: a.Special})
		t.addedFirst[a.Content[0]] = true
		if a.Content == "<|endoftext|>" {
			t.eos, eosSet = a.ID, true
		}
	}
	t.setAddedFirst()
	mixed := false
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Normalized != sorted[0].Normalized {
			mixed = true
		}
	}
	if mixed {
		return fmt.Errorf("tokenizer.json: added_tokens mix normalized and non-normalized tokens; not implemented")
	}
	if !eosSet {
		for _, a := range sorted {
			if a.Special {
				t.eos, eosSet = a.ID, true
				break
			}
		}
	}
	if !eosSet {
		return fmt.Errorf("tokenizer.json: no <|endoftext|> or other special token to use as EOS")
	}
	return nil
}

// byteRune is GPT-2's bytes_to_unicode: printable Latin-1 bytes map to
// themselves, the rest to U+0100 onwards in byte order.
func byteRune(b byte) rune {
	if printableByte(b) {
		return rune(b)
	}
	n := 0
	for x := 0; x < int(b); x++ {
		if !printableByte(byte(x)) {
			n++
		}
	}
	return rune(256 + n)
}

func printableByte(b byte) bool {
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae)
}

// setAddedFirst records the first byte shared by all added tokens, if any.
func (t *Tokenizer) setAddedFirst() {
	t.addedOneFirst = -1
	for b := range 256 {
		if t.addedFirst[b] {
			if t.addedOneFirst >= 0 {
				t.addedOneFirst = -1
				return
			}
			t.addedOneFirst = b
		}
	}
}
