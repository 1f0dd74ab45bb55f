package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestModelInitAndForward(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	var stderr bytes.Buffer
	if code := runMain([]string{"model", "init", "--config", "../../configs/model/tiny.yaml", "--out", dir, "--seed", "3"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("model init: exit %d: %s", code, stderr.String())
	}
	r, w, _ := os.Pipe()
	old := os.Stdout
	os.Stdout = w
	read := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); read <- b }() // the pipe must be drained while forward writes
	code := runMain([]string{"model", "forward", "--model", dir, "--ids", "1,2,3", "--json"}, io.Discard, &stderr)
	w.Close()
	os.Stdout = old
	out := <-read
	if code != 0 {
		t.Fatalf("model forward: exit %d: %s", code, stderr.String())
	}
	var got struct {
		IDs    []uint32    `json:"ids"`
		Logits [][]float32 `json:"logits"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("forward output is not JSON: %v", err)
	}
	if len(got.Logits) != 3 || len(got.Logits[0]) != 49152 {
		t.Fatalf("logits shape %d x %d", len(got.Logits), len(got.Logits[0]))
	}
	// Out-of-vocabulary ids are an error naming the position, exit 1.
	if code := runMain([]string{"model", "forward", "--model", dir, "--ids", "1,99999"}, io.Discard, &stderr); code != 1 {
		t.Errorf("out-of-vocabulary id: exit %d", code)
	}
	if code := runMain([]string{"model", "init", "--out", dir}, io.Discard, &stderr); code != 2 {
		t.Errorf("missing --config: exit %d, want 2", code)
	}
}
