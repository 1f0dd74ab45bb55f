package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/core/graph"

	"longctx/config"
	"longctx/eval"
	"longctx/tokenizer"
)

// EvalSchedule runs an eval suite on the live weights during training: at
// step 0 (the baseline), every Every steps and at the end.
type EvalSchedule struct {
	Every        int    `yaml:"every" help:"steps between in-training evals (0 = none); also run at step 0 and at the end"`
	Suite        string `yaml:"suite" help:"eval suite config (longctx eval suite); its checkpoints and out are ignored, its select.max_drop is the gate"`
	OnRegression string `yaml:"on_regression" help:"warn or stop (exit 1) when a gated metric drops below step 0's"`
	Tokenizer    string `yaml:"tokenizer" help:"tokenizer.json for the evals, or 'bytes' (default: INIT/tokenizer.json)"`
	// SuiteConfig, when set by a caller (recipe points), is used instead
	// of reading Suite.
	SuiteConfig *eval.SuiteConfig `yaml:"-" json:"-"`
}

// Validate checks the schedule's settings.
func (e EvalSchedule) Validate() error {
	switch {
	case e.Every < 0:
		return fmt.Errorf("train config: eval.every %d must be >= 0", e.Every)
	case e.Every == 0:
		return nil
	case e.OnRegression != "" && e.OnRegression != "warn" && e.OnRegression != "stop":
		return fmt.Errorf("train config: eval.on_regression %q, want warn or stop", e.OnRegression)
	case e.Suite == "" && e.SuiteConfig == nil:
		return fmt.Errorf("train config: eval.every is set but eval.suite is not")
	}
	return nil
}

// EvalPoint is one line of OUT/evals.jsonl.
type EvalPoint struct {
	Step    int                    `json:"step"`
	Tokens  int64                  `json:"tokens"`
	Seconds float64                `json:"seconds"`
	Metrics map[string]eval.Metric `json:"metrics"`
	Gate    []GateResult           `json:"gate,omitempty"`
	Dir     string                 `json:"dir"` // reports, relative to OUT
}

// GateResult is one gated metric against step 0.
type GateResult struct {
	Metric  string  `json:"metric"`
	Drop    float64 `json:"drop"`
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	P       float64 `json:"p"`
	Limit   float64 `json:"limit"`
	Fail    bool    `json:"fail"`
	Method  string  `json:"method"`
	Allowed string  `json:"allowed"`
}

// trainEvals holds what the in-training evals need between steps.
type trainEvals struct {
	r      *run
	suite  eval.SuiteConfig
	gates  map[string]eval.Allowance
	tok    eval.Tokenizer
	gen    *Generator
	points []EvalPoint
	base   []*eval.Report // step 0's reports: the gate's baseline
}

// DefaultEvalGate gates GSM8k at two (paired) standard errors when the
// suite names no select.max_drop: the recipe's regression of interest.
var DefaultEvalGate = map[string]string{"gsm8k": "2se"}

func newTrainEvals(r *run) (*trainEvals, error) {
	cfg := r.cfg.Eval
	suite := eval.DefaultSuite()
	if cfg.SuiteConfig != nil {
		suite = *cfg.SuiteConfig
	} else if err := config.Load(cfg.Suite, &suite); err != nil {
		return nil, fmt.Errorf("train eval: %w", err)
	}
	drops := suite.Select.MaxDrop
	if len(drops) == 0 {
		drops = DefaultEvalGate
	}
	var items []string
	for k, v := range drops {
		items = append(items, k+"="+v)
	}
	gates, err := eval.ParseMaxDrops(items)
	if err != nil {
		return nil, fmt.Errorf("train eval: %w", err)
	}
	var tok eval.Tokenizer = eval.Bytes{}
	if tp := cfg.Tokenizer; tp != "bytes" {
		if tp == "" {
			if r.cfg.Init == "" {
				return nil, fmt.Errorf("train eval: eval.tokenizer is required without init")
			}
			tp = filepath.Join(r.cfg.Init, "tokenizer.json")
		}
		t, err := tokenizer.Load(tp)
		if err != nil {
			return nil, fmt.Errorf("train eval: %w", err)
		}
		tok = t
	}
	// The generator runs on the training parameters themselves (set
	// before each eval): no copy, no reload.
	m, err := NewModel(r.mc, max(r.mc.MaxPositionEmbeddings, 1))
	if err != nil {
		return nil, err
	}
	gen := &Generator{model: m, backend: r.backend, EOS: r.mc.EOSTokenID, prefill: map[[2]int]*graph.Exec{}, step: map[int]*graph.Exec{}}
	te := &trainEvals{r: r, suite: suite, gates: gates, tok: tok, gen: gen}
	if te.points, err = readEvalPoints(te.path(), r.st.Step); err != nil {
		return nil, err
	}
	if err := writeEvalPoints(te.path(), te.points); err != nil {
		return nil, err
	}
	if len(te.points) > 0 { // resumed: the baseline is on disk
		if te.base, err = readReports(filepath.Join(r.cfg.Out, te.points[0].Dir)); err != nil {
			return nil, fmt.Errorf("train eval: baseline: %w", err)
		}
	}
	return te, nil
}

func (te *trainEvals) path() string { return filepath.Join(te.r.cfg.Out, "evals.jsonl") }

// evalIfDue runs the evals at step 0 (first, before any step), every
// Every steps and at the last step.
func (r *run) evalIfDue(first bool) error {
	if r.evals == nil {
		return nil
	}
	s := r.st.Step
	if n := len(r.evals.points); n > 0 && r.evals.points[n-1].Step == s {
		return nil // done before a resume
	}
	if (first && s == 0) || (!first && (s%r.cfg.Eval.Every == 0 || s == r.cfg.Steps)) {
		return r.evals.run()
	}
	return nil
}

// run evaluates the live weights, appends the point to evals.jsonl,
// redraws the curves and applies the gate against step 0.
func (te *trainEvals) run() error {
	r := te.r
	t0 := time.Now()
	te.gen.params = r.params
	defer func() { te.gen.params = nil }()
	dir := fmt.Sprintf("evals/step-%08d", r.st.Step)
	s := eval.Subject{LM: te.gen, Tok: te.tok, Name: fmt.Sprintf("%s@step-%d", r.cfg.Out, r.st.Step), Hash: fmt.Sprintf("step-%d", r.st.Step)}
	logf := func(string, ...any) {} // one summary line below instead
	reps, err := eval.RunSubject(te.suite, s, filepath.Join(r.cfg.Out, dir), fmt.Sprintf("eval step %d", r.st.Step), logf)
	if err != nil {
		return fmt.Errorf("step %d: eval: %w", r.st.Step, err)
	}
	metrics, err := eval.MergeMetrics(reps...)
	if err != nil {
		return fmt.Errorf("step %d: eval: %w", r.st.Step, err)
	}
	pt := EvalPoint{Step: r.st.Step, Tokens: r.st.Tokens, Metrics: metrics, Dir: dir}
	if te.base == nil {
		te.base = reps
	}
	cmps, err := eval.CompareWithItems(mustMerge(te.base), metrics, eval.MergeItems(te.base...), eval.MergeItems(reps...), te.gates, false)
	if err != nil {
		return fmt.Errorf("step %d: eval gate: %w", r.st.Step, err)
	}
	var failed []string
	for _, c := range cmps {
		pt.Gate = append(pt.Gate, GateResult{Metric: c.Metric, Drop: c.Drop, Lo: c.DropLo, Hi: c.DropHi, P: c.P, Limit: c.Limit, Fail: c.Fail, Method: c.Method, Allowed: c.Allowed.String()})
		if c.Fail {
			failed = append(failed, fmt.Sprintf("%s dropped %.3g at step %d (95%% CI %.3g..%.3g, p %.3g; allowed %.3g = %s)",
				c.Metric, c.Drop, pt.Step, c.DropLo, c.DropHi, c.P, c.Limit, c.Allowed))
		}
	}
	pt.Seconds = time.Since(t0).Seconds()
	r.res.EvalSeconds += pt.Seconds
	r.res.EvalPoints++
	te.points = append(te.points, pt)
	if err := appendEvalPoint(te.path(), pt); err != nil {
		return err
	}
	if err := eval.PlotEvalCurves(r.cfg.Out, evalSeries(te.points)); err != nil {
		return err
	}
	fmt.Fprintf(r.progress, "eval step %d/%d  %s  [%.1f s, not in tok/s]\n", pt.Step, r.cfg.Steps, summarizeMetrics(metrics), pt.Seconds)
	if len(failed) == 0 {
		return nil
	}
	msg := "regression against step 0: " + strings.Join(failed, "; ")
	if r.cfg.Eval.OnRegression == "stop" {
		return errors.New(msg)
	}
	fmt.Fprintf(r.progress, "WARNING %s\n", msg)
	return nil
}

// latest is the last eval's headline for the progress line ("" if none).
func (te *trainEvals) latest() string {
	if te == nil || len(te.points) == 0 {
		return ""
	}
	p := te.points[len(te.points)-1]
	return fmt.Sprintf("  | eval@%d %s", p.Step, summarizeMetrics(p.Metrics))
}

// summarizeMetrics shows the headline metrics: overall accuracies and loss.
func summarizeMetrics(m map[string]eval.Metric) string {
	var parts []string
	for _, k := range []string{"gsm8k_strict", "gsm8k_flexible", "passkey_acc", "niah_acc", "kv_acc", "loss"} {
		if v, ok := m[k]; ok {
			if v.StdErr > 0 {
				parts = append(parts, fmt.Sprintf("%s %.4g±%.2g", k, v.Value, v.StdErr))
			} else {
				parts = append(parts, fmt.Sprintf("%s %.4g", k, v.Value))
			}
		}
	}
	return strings.Join(parts, "  ")
}

func mustMerge(reps []*eval.Report) map[string]eval.Metric {
	m, _ := eval.MergeMetrics(reps...) // merged once already without error
	return m
}

// evalSeries turns the eval points into one curve per metric.
func evalSeries(pts []EvalPoint) []eval.Series {
	byName := map[string]*eval.Series{}
	var names []string
	for _, p := range pts {
		for k, m := range p.Metrics {
			s := byName[k]
			if s == nil {
				s = &eval.Series{Metric: k, HigherIsBetter: m.HigherIsBetter}
				byName[k] = s
				names = append(names, k)
			}
			s.Steps = append(s.Steps, p.Step)
			s.Values = append(s.Values, m.Value)
			s.StdErrs = append(s.StdErrs, m.StdErr)
		}
	}
	out := make([]eval.Series, 0, len(names))
	for _, k := range names {
		out = append(out, *byName[k])
	}
	return out
}

// ReadEvalPoints reads OUT/evals.jsonl.
func ReadEvalPoints(path string) ([]EvalPoint, error) { return readEvalPoints(path, -1) }

// readEvalPoints reads the points up to step upTo (all when upTo < 0); a
// missing file is no points.
func readEvalPoints(path string, upTo int) ([]EvalPoint, error) {
	return readStepLines(path, upTo, func(p EvalPoint) int { return p.Step })
}

func writeEvalPoints(path string, pts []EvalPoint) error {
	var b []byte
	for _, p := range pts {
		line, err := json.Marshal(p)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	return writeFileAtomic(path, b)
}

func appendEvalPoint(path string, p EvalPoint) error {
	line, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("%s: step %d: %w", path, p.Step, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readReports reads every report (*.json) in dir.
func readReports(dir string) ([]*eval.Report, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var reps []*eval.Report
	for _, f := range files {
		rep, err := eval.ReadReport(f)
		if err != nil {
			return nil, err
		}
		reps = append(reps, rep)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("%s: no reports", dir)
	}
	return reps, nil
}
