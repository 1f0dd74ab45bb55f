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
	m, _, err := ReadReports(path)
	return m, err
}

// ReadReports is ReadMetrics with the reports' per-item scores, which the
// paired comparison uses.
func ReadReports(path string) (map[string]Metric, map[string]Items, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		r, err := ReadReport(path)
		if err != nil {
			return nil, nil, err
		}
		return r.Metrics, r.Items, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	var reps []*Report
	for _, f := range files {
		if filepath.Base(f) == "selection.json" {
			continue
		}
		r, err := ReadReport(f)
		if err != nil {
			return nil, nil, err
		}
		reps = append(reps, r)
	}
	if len(reps) == 0 {
		return nil, nil, fmt.Errorf("%s: no reports (*.json)", path)
	}
	m, err := MergeMetrics(reps...)
	return m, MergeItems(reps...), err
}
