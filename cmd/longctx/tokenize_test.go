package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"longctx/tokenizer"
)

const testTokenizerPath = "../../tokenizer/testdata/tokenizer.json"

func TestTokenizeCommand(t *testing.T) {
	tok, err := tokenizer.Load(testTokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	texts := []string{"hello world", "", "a<|endoftext|>b 12", "日本語 🎉\n\n  x"}
	var in bytes.Buffer
	for i := range 300 { // several lines per batch and many batches are both exercised by order checks
		b, _ := json.Marshal(map[string]any{"text": texts[i%len(texts)], "id": i})
		in.Write(b)
		in.WriteByte('\n')
	}
	inPath := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		check func(i int, line []byte)
	}{
		{[]string{"--workers", "3"}, func(i int, line []byte) {
			var got struct{ IDs []uint32 }
			json.Unmarshal(line, &got)
			if want := tok.Encode(texts[i%len(texts)]); !reflect.DeepEqual(got.IDs, want) && !(len(want) == 0 && len(got.IDs) == 0) {
				t.Errorf("line %d: ids %v, want %v", i+1, got.IDs, want)
			}
		}},
		{[]string{"--add-eos"}, func(i int, line []byte) {
			var got struct{ IDs []uint32 }
			json.Unmarshal(line, &got)
			if want := tok.EncodeDoc(texts[i%len(texts)]); !reflect.DeepEqual(got.IDs, want) {
				t.Errorf("line %d: ids %v, want %v", i+1, got.IDs, want)
			}
		}},
		{[]string{"--count", "--add-eos"}, func(i int, line []byte) {
			if want := `{"count":` + itoa(tok.Count(texts[i%len(texts)])+1) + `}`; string(line) != want {
				t.Errorf("line %d: %s, want %s", i+1, line, want)
			}
		}},
	} {
		outPath := filepath.Join(dir, "out.jsonl")
		args := append([]string{"tokenize", "--tokenizer", testTokenizerPath, "--in", inPath, "--out", outPath}, tc.args...)
		var stderr bytes.Buffer
		if code := runMain(args, &bytes.Buffer{}, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr.String())
		}
		data, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 300 {
			t.Fatalf("%v: %d output lines, want 300", tc.args, len(lines))
		}
		for i, l := range lines {
			tc.check(i, []byte(l))
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestTokenizeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, input, want string
		code              int
	}{
		{"bad json", "{\"text\": \"a\"}\n{\"text\": \n", "line 2: bad JSON", 1},
		{"no text", "{\"text\": \"a\"}\n{\"body\": \"x\"}\n", "line 2: no \"text\"", 1},
	} {
		inPath := filepath.Join(dir, "in.jsonl")
		os.WriteFile(inPath, []byte(tc.input), 0o644)
		outPath := filepath.Join(dir, "out.jsonl")
		var stderr bytes.Buffer
		code := runMain([]string{"tokenize", "--tokenizer", testTokenizerPath, "--in", inPath, "--out", outPath}, &bytes.Buffer{}, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, stderr.String(), tc.code, tc.want)
		}
		if _, err := os.Stat(outPath); err == nil {
			t.Errorf("%s: output file written despite the error", tc.name)
		}
	}
	var stderr bytes.Buffer
	if code := runMain([]string{"tokenize"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("missing --tokenizer: exit %d, want 2", code)
	}
}
