package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"longctx/config"
	"longctx/eval"
	"longctx/recipe"
	"longctx/trainer"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "evaluate checkpoints: GSM8k, passkey/NIAH, perplexity by position; gate and select",
		run: func(args []string) error {
			return dispatch("eval", args, map[string]subcommand{
				"gsm8k":   {"GSM8k, lm-evaluation-harness protocol (5-shot, greedy, strict + flexible match)", evalGSM8k},
				"passkey": {"passkey retrieval / needle in a haystack over a length x depth grid", evalPasskey},
				"ppl":     {"mean loss by position bucket on long documents", evalPPL},
				"compare": {"regression gate: fail when a metric drops more than allowed", evalCompare},
				"select":  {"rank checkpoints by a weighted metric over their reports", evalSelect},
				"suite":   {"run several evals on several checkpoints and rank them", evalSuite},
				"gen":     {"write a synthetic GSM8k-format train/test split (JSONL)", evalGen},
			})
		},
	})
}

// modelFlags are the flags every eval that loads a model shares.
type modelFlags struct {
	Model     string `yaml:"model" help:"model directory (HF layout: config.json, model.safetensors)"`
	Tokenizer string `yaml:"tokenizer" help:"tokenizer.json path, or 'bytes' for byte-level models (default: MODEL/tokenizer.json)"`
	Backend   string `yaml:"backend" help:"GoMLX backend (default $GOMLX_BACKEND or the pure Go backend)"`
	Out       string `yaml:"out" help:"output directory for the report"`
}

// loadSubject opens a checkpoint for evaluation (recipe.LoadSubject: the
// tokenizer is MODEL/tokenizer.json unless given, "bytes" for byte-level models).
func loadSubject(dir, tokPath, backendSpec string) (eval.Subject, error) {
	return recipe.LoadSubject(dir, tokPath, backendSpec)
}

// progressLine prints a progress line to stderr at most every tenth of the
// work and at the end.
func progressLine(label string) eval.Progress {
	last := -1
	return func(done, total int) {
		step := max(total/10, 1)
		if done/step != last || done == total {
			last = done / step
			fmt.Fprintf(os.Stderr, "%s: %d/%d\n", label, done, total)
		}
	}
}

func parseModelCmd(name, usage string, args []string, cfg any, mf *modelFlags) error {
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, cfg); err != nil {
			return err
		}
	}
	fs := newFlags(name, usage)
	fs.String("config", "", "YAML config file (keys as the flags)")
	config.BindFlags(fs, "", mf)
	config.BindFlags(fs, "", cfg)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if mf.Model == "" || mf.Out == "" {
		return usagef("--model and --out are required")
	}
	return nil
}

func summarize(r *eval.Report, out string) {
	var parts []string
	for _, k := range sortedMetricNames(r.Metrics) {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, r.Metrics[k].Value))
	}
	fmt.Fprintf(os.Stderr, "eval %s: %s -> %s\n", r.Eval, strings.Join(parts, " "), filepath.Join(out, r.Eval+".md"))
}

func sortedMetricNames(m map[string]eval.Metric) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func evalGSM8k(args []string) error {
	cfg := eval.DefaultGSM8k()
	var mf modelFlags
	if err := parseModelCmd("eval gsm8k", "eval gsm8k --model DIR --train TRAIN.jsonl --test TEST.jsonl --out DIR [flags]", args, &cfg, &mf); err != nil {
		return err
	}
	s, err := loadSubject(mf.Model, mf.Tokenizer, mf.Backend)
	if err != nil {
		return err
	}
	r, err := eval.RunGSM8kEval(s, cfg, mf.Out, progressLine("eval gsm8k"))
	if err != nil {
		return err
	}
	summarize(r, mf.Out)
	return nil
}

func evalPasskey(args []string) error {
	cfg := eval.DefaultPasskey()
	var mf modelFlags
	if err := parseModelCmd("eval passkey", "eval passkey --model DIR --out DIR [--task passkey|niah] [--lengths 1024,2048] [--depths 0,0.5,1] [flags]", args, &cfg, &mf); err != nil {
		return err
	}
	s, err := loadSubject(mf.Model, mf.Tokenizer, mf.Backend)
	if err != nil {
		return err
	}
	r, err := eval.RunPasskeyEval(s, cfg, mf.Out, progressLine("eval "+cfg.Task))
	if err != nil {
		return err
	}
	summarize(r, mf.Out)
	return nil
}

func evalPPL(args []string) error {
	cfg := eval.DefaultPPL()
	var mf modelFlags
	if err := parseModelCmd("eval ppl", "eval ppl --model DIR --data DOCS.jsonl[,MORE.txt] --out DIR [--window N] [--buckets 2048,4096]", args, &cfg, &mf); err != nil {
		return err
	}
	s, err := loadSubject(mf.Model, mf.Tokenizer, mf.Backend)
	if err != nil {
		return err
	}
	r, err := eval.RunPPLEval(s, cfg, mf.Out, progressLine("eval ppl"))
	if err != nil {
		return err
	}
	summarize(r, mf.Out)
	return nil
}

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
	bm, bi, err := readReports(*base)
	if err != nil {
		return err
	}
	cm, ci, err := readReports(*cand)
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

// readMetrics reads one report, or every *.json report in a directory
// (skipping selection.json), merged.
func readMetrics(path string) (map[string]eval.Metric, error) {
	m, _, err := readReports(path)
	return m, err
}

// readReports is readMetrics with the reports' per-item scores.
func readReports(path string) (map[string]eval.Metric, map[string]eval.Items, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		r, err := eval.ReadReport(path)
		if err != nil {
			return nil, nil, err
		}
		return r.Metrics, r.Items, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	var reps []*eval.Report
	for _, f := range files {
		if filepath.Base(f) == "selection.json" {
			continue
		}
		r, err := eval.ReadReport(f)
		if err != nil {
			return nil, nil, err
		}
		reps = append(reps, r)
	}
	if len(reps) == 0 {
		return nil, nil, fmt.Errorf("%s: no reports (*.json)", path)
	}
	m, err := eval.MergeMetrics(reps...)
	return m, eval.MergeItems(reps...), err
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
		m, err := readMetrics(dir)
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

func evalGen(args []string) error {
	g := eval.DefaultGSM8kGen(1)
	fs := newFlags("eval gen", "eval gen --out DIR [--train N] [--test N] [--seed S]")
	out := fs.String("out", "", "directory for train.jsonl and test.jsonl")
	nTrain := fs.Int("train", 2000, "train problems")
	nTest := fs.Int("test", 200, "test problems")
	nDocs := fs.Int("docs", 0, "also write docs.jsonl: this many long documents of train problems in the few-shot layout (for eval ppl)")
	config.BindFlags(fs, "", &g)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	train, test, err := g.GenerateSplits(*nTrain, *nTest)
	if err != nil {
		return err
	}
	if err := eval.WriteGSM8kJSONL(filepath.Join(*out, "train.jsonl"), train); err != nil {
		return err
	}
	if err := eval.WriteGSM8kJSONL(filepath.Join(*out, "test.jsonl"), test); err != nil {
		return err
	}
	if *nDocs > 0 {
		docs := eval.GSM8kDocuments(train, *nDocs)
		if err := eval.WriteJSONL(filepath.Join(*out, "docs.jsonl"), docs); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "eval gen: %d train + %d test problems (seed %d) -> %s\n", len(train), len(test), g.Seed, *out)
	return nil
}
