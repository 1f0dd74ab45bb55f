package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"longctx/config"
	"longctx/eval"
	"longctx/recipe"
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
	if err := config.BindFlags(fs, "", mf); err != nil {
		return err
	}
	if err := config.BindFlags(fs, "", cfg); err != nil {
		return err
	}
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
	sort.Strings(ks)
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

func evalGen(args []string) error {
	g := eval.DefaultGSM8kGen(1)
	fs := newFlags("eval gen", "eval gen --out DIR [--train N] [--test N] [--seed S]")
	out := fs.String("out", "", "directory for train.jsonl and test.jsonl")
	nTrain := fs.Int("train", 2000, "train problems")
	nTest := fs.Int("test", 200, "test problems")
	nDocs := fs.Int("docs", 0, "also write docs.jsonl: this many long documents of train problems in the few-shot layout (for eval ppl)")
	if err := config.BindFlags(fs, "", &g); err != nil {
		return err
	}
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
