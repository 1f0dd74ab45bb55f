package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"longctx/config"
	"longctx/eval"
	"longctx/trainer"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// errRegression makes `eval compare` exit 1 after printing its findings.
var errRegression = errors.New("regression")

func evalCompare(args []string) error {
	fs := newFlags("eval compare", "eval compare --baseline DIR|REPORT.json --candidate DIR|REPORT.json --max-drop METRIC=AMOUNT[,...] [--significant]")
	base := fs.String("baseline", "", "baseline report (.json) or directory of reports")
	cand := fs.String("candidate", "", "candidate report (.json) or directory of reports")
	var drops multiFlag
	fs.Var(&drops, "max-drop", "allowed drop, METRIC=AMOUNT (points; 'Nse' = N standard errors of the difference); a name covers metrics it prefixes (gsm8k -> gsm8k_strict, gsm8k_flexible); repeatable")
	sig := fs.Bool("significant", false, "fail only when the whole 95% interval of the drop exceeds the allowance")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *base == "" || *cand == "" || len(drops) == 0 {
		return usagef("--baseline, --candidate and at least one --max-drop are required")
	}
	md, err := eval.ParseMaxDrops(drops)
	if err != nil {
		return usagef("%v", err)
	}
	bm, bi, err := eval.ReadReports(*base)
	if err != nil {
		return err
	}
	cm, ci, err := eval.ReadReports(*cand)
	if err != nil {
		return err
	}
	cmps, err := eval.CompareWithItems(bm, cm, bi, ci, md, *sig)
	if err != nil {
		return err
	}
	var failed []string
	for _, c := range cmps {
		fmt.Println(c.String())
		if c.Fail {
			failed = append(failed, fmt.Sprintf("%s dropped %.3g (95%% CI %.3g..%.3g, allowed %.3g)", c.Metric, c.Drop, c.DropLo, c.DropHi, c.Limit))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %s", errRegression, strings.Join(failed, "; "))
	}
	fmt.Fprintf(os.Stderr, "eval compare: %d metrics within allowance\n", len(cmps))
	return nil
}

// selectConfig is the file `eval select` reads.
type selectConfig struct {
	Checkpoints []string          `yaml:"checkpoints" help:"report directories, one per checkpoint (from eval suite or the single evals)"`
	Evals       []string          `yaml:"evals" help:"in-training evals (TRAIN_OUT/evals.jsonl): every step evaluated is a candidate named RUN@STEP"`
	Out         string            `yaml:"out" help:"directory for selection.md and selection.json"`
	Select      eval.SelectConfig `yaml:"select"`
}

func evalSelect(args []string) error {
	fs := newFlags("eval select", "eval select --config SELECT.yaml")
	path := fs.String("config", "", "YAML: checkpoints (report directories), out, select {weights, random, reference, max_drop}")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required")
	}
	var cfg selectConfig
	if err := config.Load(*path, &cfg); err != nil {
		return err
	}
	if len(cfg.Checkpoints)+len(cfg.Evals) == 0 || cfg.Out == "" {
		return fmt.Errorf("config %s: checkpoints or evals, and out are required", *path)
	}
	var cands []eval.Candidate
	for _, dir := range cfg.Checkpoints {
		m, err := eval.ReadMetrics(dir)
		if err != nil {
			return err
		}
		cands = append(cands, eval.Candidate{Name: eval.CheckpointName(dir), Metrics: m})
	}
	for _, f := range cfg.Evals {
		pts, err := trainer.ReadEvalPoints(f)
		if err != nil {
			return err
		}
		if len(pts) == 0 {
			return fmt.Errorf("%s: no eval points", f)
		}
		run := eval.CheckpointName(filepath.Dir(f))
		for _, p := range pts {
			cands = append(cands, eval.Candidate{Name: fmt.Sprintf("%s@%d", run, p.Step), Metrics: p.Metrics})
		}
	}
	ranked, err := eval.Rank(cands, cfg.Select)
	if err != nil {
		return err
	}
	if err := eval.WriteRanking(cfg.Out, ranked, cfg.Select); err != nil {
		return err
	}
	fmt.Print(eval.RankTable(ranked).Markdown())
	fmt.Fprintf(os.Stderr, "eval select: best %s (score %.3f) -> %s\n", ranked[0].Name, ranked[0].Score, filepath.Join(cfg.Out, "selection.md"))
	return nil
}

// suiteConfig adds the model-loading settings to the eval suite.
type suiteConfig struct {
	eval.SuiteConfig `yaml:",inline"`
	Tokenizer        string `yaml:"tokenizer" help:"tokenizer.json path or 'bytes' (default: each checkpoint's tokenizer.json)"`
	Backend          string `yaml:"backend" help:"GoMLX backend"`
}

func evalSuite(args []string) error {
	fs := newFlags("eval suite", "eval suite --config SUITE.yaml")
	path := fs.String("config", "", "YAML: checkpoints, evals, out, gsm8k/passkey/niah/ppl settings, select")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required")
	}
	cfg := suiteConfig{SuiteConfig: eval.DefaultSuite()}
	if err := config.Load(*path, &cfg); err != nil {
		return err
	}
	res, err := eval.RunSuite(cfg.SuiteConfig, func(dir string) (eval.Subject, error) {
		return loadSubject(dir, cfg.Tokenizer, cfg.Backend)
	}, func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) })
	if err != nil {
		return err
	}
	for _, dir := range cfg.Checkpoints {
		for _, r := range res.Reports[eval.CheckpointName(dir)] {
			summarize(r, filepath.Join(cfg.Out, eval.CheckpointName(dir)))
		}
	}
	if len(res.Ranking) > 0 {
		fmt.Print(eval.RankTable(res.Ranking).Markdown())
		fmt.Fprintf(os.Stderr, "eval suite: best %s -> %s\n", res.Ranking[0].Name, filepath.Join(cfg.Out, "selection.md"))
	}
	return nil
}
