package main

import (
	"longctx/tokenizer"
	"longctx/trainer/eval"
)

// loadTokenizerJSON opens a HF tokenizer.json.
func loadTokenizerJSON(path string) (eval.Tokenizer, error) {
	return tokenizer.Load(path)
}
