package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// SuiteConfig runs several evaluations on several checkpoints and ranks
// them.
type SuiteConfig struct {
	Checkpoints []string      `yaml:"checkpoints" help:"model directories (HF layout) to evaluate"`
	Evals       []string      `yaml:"evals" help:"evaluations to run: gsm8k, passkey, niah, kv, ppl"`
	Out         string        `yaml:"out" help:"output directory: one folder per checkpoint plus selection.md"`
	GSM8k       GSM8kConfig   `yaml:"gsm8k"`
	Passkey     PasskeyConfig `yaml:"passkey"`
	NIAH        PasskeyConfig `yaml:"niah"`
	KV          PasskeyConfig `yaml:"kv"`
	PPL         PPLConfig     `yaml:"ppl"`
	Select      SelectConfig  `yaml:"select"`
}

// DefaultSuite has every eval's defaults and no checkpoints.
func DefaultSuite() SuiteConfig {
	niah := DefaultPasskey()
	niah.Task = "niah"
	kv := DefaultPasskey()
	kv.Task = "kv"
	return SuiteConfig{
		Evals: []string{"gsm8k", "passkey", "ppl"}, Out: "eval-out",
		GSM8k: DefaultGSM8k(), Passkey: DefaultPasskey(), NIAH: niah, KV: kv, PPL: DefaultPPL(),
	}
}

// Loader opens a checkpoint directory as an evaluation subject.
type Loader func(dir string) (Subject, error)

// SuiteResult is every report of a suite run and the ranking.
type SuiteResult struct {
	Reports map[string][]*Report // by checkpoint name
	Ranking []Ranked
}

// CheckpointName is the folder name a checkpoint's reports go to: the base
// name of its directory.
func CheckpointName(dir string) string { return filepath.Base(filepath.Clean(dir)) }

// RunSuite evaluates every checkpoint with every configured eval, writing
// reports under cfg.Out/<checkpoint>/, then ranks the checkpoints (when
// weights are configured) into cfg.Out/selection.md and selection.json.
func RunSuite(cfg SuiteConfig, load Loader, log func(format string, a ...any)) (*SuiteResult, error) {
	if len(cfg.Checkpoints) == 0 {
		return nil, fmt.Errorf("suite: no checkpoints")
	}
	for _, e := range cfg.Evals {
		if !slices.Contains([]string{"gsm8k", "passkey", "niah", "kv", "ppl"}, e) {
			return nil, fmt.Errorf("suite: unknown eval %q (want gsm8k, passkey, niah, kv, ppl)", e)
		}
	}
	names := map[string]string{}
	for _, c := range cfg.Checkpoints {
		n := CheckpointName(c)
		if prev, dup := names[n]; dup {
			return nil, fmt.Errorf("suite: checkpoints %s and %s share the name %s", prev, c, n)
		}
		names[n] = c
	}
	res := &SuiteResult{Reports: map[string][]*Report{}}
	var cands []Candidate
	for ci, dir := range cfg.Checkpoints {
		name := CheckpointName(dir)
		s, err := load(dir)
		if err != nil {
			return nil, fmt.Errorf("suite: %s: %w", dir, err)
		}
		prefix := fmt.Sprintf("suite: checkpoint %d/%d %s", ci+1, len(cfg.Checkpoints), name)
		reps, err := RunSubject(cfg, s, filepath.Join(cfg.Out, name), prefix, log)
		if err != nil {
			return nil, err
		}
		res.Reports[name] = reps
		m, err := MergeMetrics(res.Reports[name]...)
		if err != nil {
			return nil, fmt.Errorf("suite: %s: %w", name, err)
		}
		cands = append(cands, Candidate{Name: name, Metrics: m})
	}
	if len(cfg.Select.Weights) == 0 {
		return res, nil
	}
	ranked, err := Rank(cands, cfg.Select)
	if err != nil {
		return nil, err
	}
	res.Ranking = ranked
	if err := WriteRanking(cfg.Out, ranked, cfg.Select); err != nil {
		return nil, err
	}
	return res, nil
}

// RunSubject runs every configured eval of cfg on one subject, writing the
// reports under out; log gets about ten progress lines per eval, each
// starting with prefix.
func RunSubject(cfg SuiteConfig, s Subject, out, prefix string, log func(format string, a ...any)) ([]*Report, error) {
	var reps []*Report
	for _, e := range cfg.Evals {
		last := -1
		prog := func(done, total int) {
			if step := max(total/10, 1); done/step != last || done == total {
				last = done / step
				log("%s: %s %d/%d", prefix, e, done, total)
			}
		}
		var r *Report
		var err error
		switch e {
		case "gsm8k":
			r, err = RunGSM8kEval(s, cfg.GSM8k, out, prog)
		case "passkey":
			c := cfg.Passkey
			c.Task = "passkey"
			r, err = RunPasskeyEval(s, c, out, prog)
		case "niah":
			c := cfg.NIAH
			c.Task = "niah"
			r, err = RunPasskeyEval(s, c, out, prog)
		case "kv":
			c := cfg.KV
			c.Task = "kv"
			r, err = RunPasskeyEval(s, c, out, prog)
		case "ppl":
			r, err = RunPPLEval(s, cfg.PPL, out, prog)
		default:
			return nil, fmt.Errorf("suite: unknown eval %q (want gsm8k, passkey, niah, kv, ppl)", e)
		}
		if err != nil {
			return nil, fmt.Errorf("suite: %s: %s: %w", s.Name, e, err)
		}
		reps = append(reps, r)
	}
	return reps, nil
}

// WriteRanking writes selection.md (the ranking table) and selection.json.
func WriteRanking(dir string, ranked []Ranked, cfg SelectConfig) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md := "# Checkpoint selection\n\n" + RankTable(ranked).Markdown()
	md += fmt.Sprintf("\nScore = weighted mean of the metrics (weights %v); accuracies normalised by chance level %v; losses enter negated.\n", cfg.Weights, cfg.Random)
	if len(cfg.MaxDrop) > 0 {
		md += fmt.Sprintf("Gates against %s: %v (a failing checkpoint ranks below all passing ones).\n", cfg.Reference, cfg.MaxDrop)
	}
	if err := writeFileAtomic(filepath.Join(dir, "selection.md"), []byte(md)); err != nil {
		return err
	}
	type row struct {
		Rank       int                `json:"rank"`
		Checkpoint string             `json:"checkpoint"`
		Score      float64            `json:"score"`
		Parts      map[string]float64 `json:"parts"`
		Failed     []string           `json:"failed_gates,omitempty"`
	}
	rows := make([]row, len(ranked))
	for i, r := range ranked {
		rows[i] = row{i + 1, r.Name, r.Score, r.Parts, r.Failed}
	}
	return writeJSON(filepath.Join(dir, "selection.json"), map[string]any{"config": cfg, "ranking": rows})
}
