package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metrics.jsonl and evals.jsonl: a line a crash cut short (the last, without
// its newline) is dropped; a bad line anywhere else is an error naming it.
func TestReadStepLines(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		upTo       int
		steps      []int
		err        string
	}{
		{"all", "{\"step\":1}\n{\"step\":2}\n", -1, []int{1, 2}, ""},
		{"up to", "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n", 2, []int{1, 2}, ""},
		{"cut last line", "{\"step\":1}\n{\"step\":2}\n{\"st", -1, []int{1, 2}, ""},
		{"bad middle line", "{\"step\":1}\nnot json\n{\"step\":3}\n", -1, nil, ":2:"},
		{"bad last line with newline", "{\"step\":1}\n{\"st\n", -1, nil, ":2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.jsonl")
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readMetrics(path, tc.upTo)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming line %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var steps []int
			for _, m := range got {
				steps = append(steps, m.Step)
			}
			if len(steps) != len(tc.steps) || (len(steps) > 0 && steps[len(steps)-1] != tc.steps[len(tc.steps)-1]) {
				t.Fatalf("steps %v, want %v", steps, tc.steps)
			}
		})
	}
	if got, err := readMetrics(filepath.Join(t.TempDir(), "missing.jsonl"), -1); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
}
