package pipelines

import (
	"context"
	"fmt"

	"longctx/storage"
	"longctx/tokenizer"
)

var sanitizeUTF8 = tokenizer.SanitizeUTF8

// loadTokenizer loads tokenizer.json from a local path or gs:// (workers on
// Dataflow read it from the bucket).
func loadTokenizer(ctx context.Context, path string) (*tokenizer.Tokenizer, error) {
	b, err := storage.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := tokenizer.LoadBytes(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// LoadTokenizer is loadTokenizer for the CLI and benchmarks.
func LoadTokenizer(ctx context.Context, path string) (*tokenizer.Tokenizer, error) {
	return loadTokenizer(ctx, path)
}

// SanitizeUTF8 is the sanitising prepare applies before tokenizing.
func SanitizeUTF8(s string) (string, int) { return sanitizeUTF8(s) }
