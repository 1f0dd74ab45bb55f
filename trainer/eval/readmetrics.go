package eval

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadMetrics reads one report (.json), or every *.json report in a
// directory (skipping selection.json), merged: what compare and select
// take for a checkpoint.
func ReadMetrics(path string) (map[string]Metric, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		r, err := ReadReport(path)
		if err != nil {
			return nil, err
		}
		return r.Metrics, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, err
	}
	var reps []*Report
	for _, f := range files {
		if filepath.Base(f) == "selection.json" {
			continue
		}
		r, err := ReadReport(f)
		if err != nil {
			return nil, err
		}
		reps = append(reps, r)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("%s: no reports (*.json)", path)
	}
	return MergeMetrics(reps...)
}
