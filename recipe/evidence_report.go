package recipe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"

	"longctx/config"
	"longctx/eval"
	"longctx/storage"
	"longctx/trainer"
)

// The skill levels the pretrained model must reach for the experiments to
// have something to measure (issue: retrieval >= 80% on >= 100 items within
// the training length, GSM8k-format strict >= 30% on >= 200 items).
const (
	retrievalTarget  = 80.0
	retrievalTargetN = 100
	gsm8kTarget      = 30.0
	gsm8kTargetN     = 200
)

// Diff is one paired comparison: candidate − baseline on the same items,
// with its 95% interval (paired bootstrap) and p-value (McNemar exact for
// accuracies, bootstrap for losses).
type Diff struct {
	Experiment  string  `json:"experiment"`
	Metric      string  `json:"metric"`
	Baseline    string  `json:"baseline"`
	Candidate   string  `json:"candidate"`
	N           int     `json:"n"`
	Base        float64 `json:"base"`
	Cand        float64 `json:"cand"`
	Diff        float64 `json:"diff"`
	Lo          float64 `json:"lo"`
	Hi          float64 `json:"hi"`
	P           float64 `json:"p"`
	Significant bool    `json:"significant"` // the 95% interval excludes 0
	Method      string  `json:"method"`
}

// PairedDiff compares metric m of cand against base item by item (both
// points must carry the metric's items over the same item ids).
func PairedDiff(experiment, m string, base, cand PointResult) (Diff, error) {
	bm, ok1 := base.Metrics[m]
	cm, ok2 := cand.Metrics[m]
	if !ok1 || !ok2 {
		return Diff{}, fmt.Errorf("compare %s: metric %s missing (%s: %v, %s: %v)", experiment, m, base.Name, ok1, cand.Name, ok2)
	}
	bi, ok1 := base.Items[m]
	ci, ok2 := cand.Items[m]
	if !ok1 || !ok2 {
		return Diff{}, fmt.Errorf("compare %s: %s has no per-item scores (%s: %v, %s: %v)", experiment, m, base.Name, ok1, cand.Name, ok2)
	}
	pd, err := eval.ComparePaired(bi, ci, bm.HigherIsBetter)
	if err != nil {
		return Diff{}, fmt.Errorf("compare %s: %s: %w", experiment, m, err)
	}
	d := Diff{Experiment: experiment, Metric: m, Baseline: base.Name, Candidate: cand.Name, N: len(bi.IDs),
		Base: bm.Value, Cand: cm.Value, Diff: cm.Value - bm.Value, P: pd.P, Method: pd.Method}
	// ComparePaired reports a drop (positive = candidate worse); turn it
	// into candidate − baseline in the metric's own direction.
	if bm.HigherIsBetter {
		d.Lo, d.Hi = -pd.Hi, -pd.Lo
	} else {
		d.Lo, d.Hi = pd.Lo, pd.Hi
	}
	// One item has no spread: its "interval" is a point, not evidence.
	d.Significant = d.N >= 2 && (d.Lo > 0 || d.Hi < 0)
	// -0 prints as "-0.0"; keep zeros positive.
	d.Diff, d.Lo, d.Hi = d.Diff+0, d.Lo+0, d.Hi+0
	return d, nil
}

// experiment is one comparison of two points over some metrics.
type experiment struct {
	key, title, base, cand, question string
	metrics                          []string
}

// retrievalTask is the suite's retrieval eval (kv, passkey or niah) and its
// lengths; "" when the suite has none.
func retrievalTask(c DemoConfig) (string, []int) {
	for _, t := range []string{"kv", "passkey", "niah"} {
		if slices.Contains(c.Eval.Evals, t) {
			switch t {
			case "kv":
				return t, c.Eval.KV.Lengths
			case "passkey":
				return t, c.Eval.Passkey.Lengths
			default:
				return t, c.Eval.NIAH.Lengths
			}
		}
	}
	return "", nil
}

// lossBuckets are the loss@lo-hi metrics of a point, by lo.
func lossBuckets(p PointResult) []string {
	var out []string
	for k := range p.Metrics {
		if strings.HasPrefix(k, "loss@") {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		var a, b, x int
		fmt.Sscanf(out[i], "loss@%d-%d", &a, &x)
		fmt.Sscanf(out[j], "loss@%d-%d", &b, &x)
		return a < b
	})
	return out
}

func (c DemoConfig) experiments(d *DemoResult, newBase float64) []experiment {
	task, lengths := retrievalTask(c)
	var ret []string
	for _, l := range lengths {
		ret = append(ret, fmt.Sprintf("%s_acc@%d", task, l))
	}
	long := append(append([]string{}, ret...), lossBuckets(d.Points["cpt-raised"])...)
	long = append(long, "gsm8k_strict")
	exps := []experiment{
		{key: "cpt_base", title: fmt.Sprintf("Experiment 1: CPT at %d tokens, base raised to %.0f vs kept at %g", c.LongLen, newBase, c.Base),
			base: "cpt-kept", cand: "cpt-raised", metrics: long,
			question: "Does raising the RoPE base let the model use the longer context after the same continued pretraining?"},
		{key: "cpt_vs_start", title: "What CPT (raised base) changed relative to the pretrained start",
			base: "pretrain", cand: "cpt-raised", metrics: long,
			question: "How do retrieval, loss by position and GSM8k-format accuracy move from the start checkpoint?"},
	}
	if c.Short.Steps > 0 {
		exps = append(exps, experiment{key: "short_base",
			title: fmt.Sprintf("Experiment 2 (Liu et al.): tuning at the original %d tokens, base raised to %.0f vs kept at %g", c.ShortLen, newBase, c.Base),
			base:  "short-kept", cand: "short-raised", metrics: long,
			question: "Does a raised base alone, tuned at the original length, extrapolate beyond it?"})
	}
	math := append([]string{"gsm8k_strict", "gsm8k_flexible"}, ret...)
	exps = append(exps, experiment{key: "cpt_math",
		title: fmt.Sprintf("Experiment 3: CPT with %s at %.0f%% vs 0%% (both raised base)", c.MathSource, 100*d.Points["cpt-raised"].Weights[c.MathSource]),
		base:  "cpt-nomath", cand: "cpt-raised", metrics: math,
		question: "Does dropping math from the continued-pretraining mixture cost GSM8k-format accuracy?"})
	return exps
}

// writeEvidence writes the skill check, the paired comparisons and the
// summary plots (sections of REPORT.md) and returns what REPORT.json holds
// of them.
func writeEvidence(w func(string, ...any), c DemoConfig, d *DemoResult, order []string, rel func(string) string) (map[string]any, error) {
	out := map[string]any{}
	task, lengths := retrievalTask(c)

	// Skill check of the start checkpoint.
	pre := d.Points["pretrain"]
	w("## 6. The pretrained model's skills (targets: retrieval ≥ %.0f%% on ≥ %d items within the training length; GSM8k-format strict ≥ %.0f%% on ≥ %d held-out items)\n\n",
		retrievalTarget, retrievalTargetN, gsm8kTarget, gsm8kTargetN)
	w("| skill | metric | value | 95%% interval | n | target | met |\n|---|---|---|---|---|---|---|\n")
	skills := map[string]any{}
	check := func(skill, m string, target float64, targetN int) {
		v, ok := pre.Metrics[m]
		if !ok {
			w("| %s | %s | — | — | — | ≥ %.0f%% (n ≥ %d) | not measured |\n", skill, m, target, targetN)
			return
		}
		met := v.Value >= target && v.N >= targetN
		verdict := "yes"
		if !met {
			verdict = "**no**"
		}
		w("| %s | %s | %.1f%% | %.1f..%.1f | %d | ≥ %.0f%% (n ≥ %d) | %s |\n", skill, m, v.Value,
			v.Value-1.96*v.StdErr, v.Value+1.96*v.StdErr, v.N, target, targetN, verdict)
		skills[m] = map[string]any{"value": v.Value, "stderr": v.StdErr, "n": v.N, "target": target, "target_n": targetN, "met": met}
	}
	if task != "" {
		check("retrieval ("+task+") at the training length", fmt.Sprintf("%s_acc@%d", task, c.ShortLen), retrievalTarget, retrievalTargetN)
	}
	check("GSM8k-format arithmetic", "gsm8k_strict", gsm8kTarget, gsm8kTargetN)
	out["skills"] = skills

	// Plots: retrieval accuracy vs length per point; loss by position per
	// point; GSM8k-format accuracy vs CPT step.
	var plots []string
	if task != "" {
		var series []eval.Series
		for _, n := range order {
			s := eval.Series{Metric: n, HigherIsBetter: true}
			for _, l := range lengths {
				if m, ok := d.Points[n].Metrics[fmt.Sprintf("%s_acc@%d", task, l)]; ok {
					s.Steps, s.Values, s.StdErrs = append(s.Steps, l), append(s.Values, m.Value), append(s.StdErrs, m.StdErr)
				}
			}
			if len(s.Steps) > 0 {
				series = append(series, s)
			}
		}
		if len(series) > 0 {
			p := filepath.Join(c.Out, "retrieval-vs-length.png")
			if err := eval.PlotSeries(p, fmt.Sprintf("%s retrieval accuracy by context length (95%% intervals)", task),
				"context length (tokens)", "accuracy (%)", series, true); err != nil {
				return nil, err
			}
			plots = append(plots, p)
		}
	}
	var lossSeries []eval.Series
	for _, n := range order {
		s := eval.Series{Metric: n}
		for _, m := range lossBuckets(d.Points[n]) {
			var lo, hi int
			fmt.Sscanf(m, "loss@%d-%d", &lo, &hi)
			v := d.Points[n].Metrics[m]
			s.Steps, s.Values, s.StdErrs = append(s.Steps, hi), append(s.Values, v.Value), append(s.StdErrs, v.StdErr)
		}
		if len(s.Steps) > 0 {
			lossSeries = append(lossSeries, s)
		}
	}
	if len(lossSeries) > 0 {
		p := filepath.Join(c.Out, "loss-by-position.png")
		if err := eval.PlotSeries(p, "held-out book loss by position (bucket end; 95% intervals)", "position (tokens)", "mean loss (nats)", lossSeries, true); err != nil {
			return nil, err
		}
		plots = append(plots, p)
	}
	var stepSeries []eval.Series
	steps := map[string]any{}
	for _, n := range order {
		pts, err := trainer.ReadEvalPoints(filepath.Join(d.Points[n].Dir, "train", "evals.jsonl"))
		if err != nil {
			return nil, err
		}
		s := eval.Series{Metric: n, HigherIsBetter: true}
		var rows []map[string]any
		for _, pt := range pts {
			if m, ok := pt.Metrics["gsm8k_strict"]; ok {
				s.Steps, s.Values, s.StdErrs = append(s.Steps, pt.Step), append(s.Values, m.Value), append(s.StdErrs, m.StdErr)
				rows = append(rows, map[string]any{"step": pt.Step, "gsm8k_strict": m.Value, "stderr": m.StdErr, "n": m.N})
			}
		}
		if len(s.Steps) > 0 {
			stepSeries = append(stepSeries, s)
			steps[n] = rows
		}
	}
	if len(stepSeries) > 0 {
		p := filepath.Join(c.Out, "gsm8k-vs-step.png")
		if err := eval.PlotSeries(p, "GSM8k-format strict accuracy during CPT (95% intervals)", "CPT step", "accuracy (%)", stepSeries, false); err != nil {
			return nil, err
		}
		plots = append(plots, p)
		out["gsm8k_by_step"] = steps
	}
	if len(plots) > 0 {
		w("\n")
		for _, p := range plots {
			w("![%s](%s)\n", strings.TrimSuffix(filepath.Base(p), ".png"), rel(p))
		}
	}

	// Paired comparisons.
	w("\n## 7. Experiments, paired (same start checkpoint, same token budget, same eval items)\n\n")
	w("%s", "Each row is candidate − baseline on the same items: accuracies in points, losses in nats (lower is better). "+
		"The 95% interval is a paired bootstrap over items (4,000 resamples, fixed seed); p is McNemar's exact test for accuracies "+
		"and the bootstrap's two-sided p for losses (< 0.00025 when no resample crossed 0). A difference is called significant when its "+
		"95% interval excludes 0 and n ≥ 2 (one document gives no interval). Nothing is left out: every metric compared is listed.\n\n")
	var all []Diff
	for _, e := range c.experiments(d, d.NewBase) {
		b, okB := d.Points[e.base]
		cand, okC := d.Points[e.cand]
		if !okB || !okC {
			continue
		}
		w("### %s\n\n%s Baseline `%s`, candidate `%s`.\n\n", e.title, e.question, e.base, e.cand)
		w("| metric | n | %s | %s | difference | 95%% interval | p | significant |\n|---|---|---|---|---|---|---|---|\n", e.base, e.cand)
		var sig, not []string
		for _, m := range e.metrics {
			df, err := PairedDiff(e.key, m, b, cand)
			if err != nil {
				return nil, err
			}
			all = append(all, df)
			verdict := "no"
			if df.Significant {
				verdict = "**yes**"
			}
			f := "%.1f"
			if !b.Metrics[m].HigherIsBetter {
				f = "%.3f"
			}
			p := fmt.Sprintf("%.3g", df.P)
			if df.P == 0 {
				p = "< 0.00025"
			}
			w("| %s | %d | "+f+" | "+f+" | "+strings.Replace(f, "%", "%+", 1)+" | "+f+" .. "+f+" | %s | %s |\n",
				m, df.N, df.Base, df.Cand, df.Diff, df.Lo, df.Hi, p, verdict)
			desc := fmt.Sprintf("%s (%+.3g)", m, df.Diff)
			if df.Significant {
				sig = append(sig, desc)
			} else {
				not = append(not, m)
			}
		}
		w("\nIn words: ")
		if len(sig) > 0 {
			w("significant at 95%%: %s. ", strings.Join(sig, ", "))
		} else {
			w("no difference is significant at 95%%. ")
		}
		if len(not) > 0 {
			w("Not significant (interval includes 0): %s.", strings.Join(not, ", "))
		}
		w("\n\n")
	}
	out["comparisons"] = all
	return out, nil
}

// RunInfo says where a report came from: the command, the commit the
// binary was built from, the machine and its load.
type RunInfo struct {
	Command   string `json:"command"`
	Commit    string `json:"commit"`
	Machine   string `json:"machine"`
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// NewRunInfo fills the commit and machine fields; command is the caller's.
func NewRunInfo(command string) RunInfo {
	r := RunInfo{Command: command, Commit: "unknown (not built from a git checkout)", Machine: machine(), LoadStart: loadAvg()}
	if rev, modified := config.VCS(); rev != "" {
		r.Commit = rev
		if modified {
			r.Commit += " (with uncommitted changes)"
		}
	}
	return r
}

// machine is the CPU model, core count and memory, from /proc on Linux.
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.Index(l, ":"); i >= 0 {
					cpu = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", kb/(1<<20))
		}
	}
	return fmt.Sprintf("%s/%s, %s, %d cores%s", runtime.GOOS, runtime.GOARCH, cpu, runtime.NumCPU(), mem)
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages ("" elsewhere).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

var imageLink = regexp.MustCompile(`!\[[^\]]*\]\(([^)]+\.png)\)`)

// PublishReport copies OUT/REPORT.md, OUT/REPORT.json and every PNG the
// report links to into dst, keeping the relative paths, so the copy reads
// the same (docs/evidence is one run's report, committed as generated). It
// returns the files copied and the linked plots that no longer exist under
// OUT (left out, so the caller can say so); a missing report is an error.
func PublishReport(ctx context.Context, out, dst string) (copied, missing []string, err error) {
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if err != nil {
		return nil, nil, err
	}
	files := []string{"REPORT.md", "REPORT.json"}
	for _, m := range imageLink.FindAllSubmatch(md, -1) {
		rel := filepath.Clean(string(m[1]))
		if filepath.IsAbs(rel) || strings.HasPrefix(rel, "..") {
			return nil, nil, fmt.Errorf("publish: %s links outside %s: %s", filepath.Join(out, "REPORT.md"), out, rel)
		}
		if !slices.Contains(files, rel) {
			files = append(files, rel)
		}
	}
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(out, f))
		if errors.Is(err, fs.ErrNotExist) && i >= 2 {
			missing = append(missing, f)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("publish: %w", err)
		}
		if err := storage.WriteFile(ctx, filepath.Join(dst, f), b); err != nil {
			return nil, nil, err
		}
		copied = append(copied, f)
	}
	return copied, missing, nil
}
