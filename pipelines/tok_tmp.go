package pipelines

import "strings"

// TEMPORARY until the tokenizer branch lands: replaced by tokenizer.SanitizeUTF8.
func sanitizeUTF8(s string) (string, int) {
	t := strings.ToValidUTF8(s, "\uFFFD")
	if t == s {
		return s, 0
	}
	return t, 1
}
