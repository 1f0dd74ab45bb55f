package main

import (
	"fmt"

	"longctx/trainer/eval"
)

// loadTokenizerJSON opens a HF tokenizer.json. Until the tokenizer package
// is merged, only byte-level models (--tokenizer bytes) can be evaluated.
func loadTokenizerJSON(path string) (eval.Tokenizer, error) {
	return nil, fmt.Errorf("tokenizer %s: tokenizer.json loading is not available in this build; pass --tokenizer bytes for byte-level models", path)
}
