package eval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"longctx/storage"
)

// Metric is one number of a report. Accuracies are percentages with N the
// number of trials, so a gate can put a confidence interval on a difference.
type Metric struct {
	Value float64 `json:"value"`
	// N is the number of questions behind a proportion; 0 for other metrics.
	N int `json:"n,omitempty"`
	// HigherIsBetter is false for losses and perplexities.
	HigherIsBetter bool `json:"higher_is_better"`
	// StdErr is the standard error of Value when known (binomial for
	// proportions).
	StdErr float64 `json:"stderr,omitempty"`
}

// Proportion is an accuracy metric: correct out of n, in percent.
func Proportion(correct, n int) Metric {
	if n == 0 {
		return Metric{HigherIsBetter: true}
	}
	p := float64(correct) / float64(n)
	return Metric{Value: 100 * p, N: n, HigherIsBetter: true, StdErr: 100 * math.Sqrt(p*(1-p)/float64(n))}
}

// Report is the JSON form of one evaluation of one checkpoint. Every report
// names the hashes of what it was made from.
type Report struct {
	Eval       string            `json:"eval"`
	Model      string            `json:"model"`
	ModelHash  string            `json:"model_hash"`
	DataHash   string            `json:"data_hash,omitempty"`
	ConfigHash string            `json:"config_hash,omitempty"`
	Config     any               `json:"config,omitempty"`
	Metrics    map[string]Metric `json:"metrics"`
	// Items are the per-item scores behind the metrics (for paired gates).
	Items map[string]Items `json:"items,omitempty"`
	// Tables are rendered in the Markdown report, in order.
	Tables []Table `json:"tables,omitempty"`
	// Files lists the other outputs (records, plots) by base name.
	Files []string `json:"files,omitempty"`
}

// Table is a small titled table for the Markdown report.
type Table struct {
	Title  string     `json:"title"`
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

// Markdown renders a table as GitHub Markdown.
func (t Table) Markdown() string {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "### %s\n\n", t.Title)
	}
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(t.Header)) + "\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// Markdown renders the whole report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n\n", r.Eval, r.Model)
	fmt.Fprintf(&b, "- model hash: `%s`\n", r.ModelHash)
	if r.DataHash != "" {
		fmt.Fprintf(&b, "- data hash: `%s`\n", r.DataHash)
	}
	if r.ConfigHash != "" {
		fmt.Fprintf(&b, "- config hash: `%s`\n", r.ConfigHash)
	}
	b.WriteString("\n")
	mt := Table{Header: []string{"metric", "value", "n", "± s.e."}}
	for _, name := range sortedKeys(r.Metrics) {
		m := r.Metrics[name]
		n, se := "", ""
		if m.N > 0 {
			n = fmt.Sprint(m.N)
		}
		if m.StdErr > 0 {
			se = fmt.Sprintf("%.2f", m.StdErr)
		}
		mt.Rows = append(mt.Rows, []string{name, fmt.Sprintf("%.4g", m.Value), n, se})
	}
	b.WriteString(mt.Markdown())
	for _, t := range r.Tables {
		b.WriteString("\n")
		b.WriteString(t.Markdown())
	}
	for _, f := range r.Files {
		if strings.HasSuffix(f, ".png") {
			fmt.Fprintf(&b, "\n![%s](%s)\n", f, f)
		}
	}
	return b.String()
}

// Write stores the report as base.json and base.md in dir.
func (r *Report) Write(dir, base string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, base+".json"), append(js, '\n')); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, base+".md"), []byte(r.Markdown()))
}

// ReadReport loads a report written by Write.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Eval == "" || r.Metrics == nil {
		return nil, fmt.Errorf("%s: not an eval report (no eval name or metrics)", path)
	}
	return &r, nil
}

// HashFiles returns the SHA-256 over the names and contents of the given
// files, so a report names exactly the data it was made from.
func HashFiles(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		f, err := storage.Open(context.Background(), p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", filepath.Base(p))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashDir hashes every regular file directly in dir (sorted by name): the
// model hash of a checkpoint directory.
func HashDir(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var paths []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return "", fmt.Errorf("hash %s: no files", dir)
	}
	return HashFiles(paths...)
}

// HashStrings hashes generated inputs (prompts of a synthetic eval).
func HashStrings(ss []string) string {
	h := sha256.New()
	for _, s := range ss {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	return storage.WriteFile(context.Background(), path, data)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
