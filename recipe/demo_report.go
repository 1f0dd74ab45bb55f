package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"longctx/config"
	"longctx/eval"
	"longctx/storage"
	"longctx/trainer"
)

// WriteDemoReport writes OUT/REPORT.md (and REPORT.json) with every stage's
// figures and returns the Markdown.
func WriteDemoReport(ctx context.Context, c DemoConfig, d *DemoResult) (string, error) {
	cfgHash, err := config.Hash(c)
	if err != nil {
		return "", err
	}
	prepHash, err := d.Prepare.Hash()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	order := c.Points()
	rel := func(p string) string {
		r, err := filepath.Rel(c.Out, p)
		if err != nil {
			return p
		}
		return r
	}

	w("# longctx %s report\n\n", c.Name)
	w("The recipe at toy scale: a %s-token pretraining with RoPE base %g, the base raised to the critical base for %d tokens, "+
		"continued pretraining at %dx the length, and evals before and after. Config hash `%.12s`; seed %d; total %s.\n\n",
		fmt.Sprint(c.ShortLen), c.Base, c.LongLen, c.LongLen/c.ShortLen, cfgHash, c.Seed, time.Since(d.Started).Round(time.Second))

	w("## 1. Corpus and prepare\n\n")
	w("Sample corpus: %d files in the five real formats (gzip JSON Lines, parquet, zstd JSON Lines) under `%s`. "+
		"Prepare manifest `%s` (hash `%.12s`, tokenizer `%.12s`).\n\n", len(d.Corpus), c.Corpus, d.PrepPath, prepHash, d.Prepare.TokenizerHash)
	w("| source | files | records read | written | dropped | drop reasons | tokens |\n|---|---|---|---|---|---|---|\n")
	for _, s := range d.Prepare.Sources {
		st := s.Stats
		var reasons []string
		for k, v := range st.Drops {
			reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(reasons)
		w("| %s | %d | %d | %d | %d | %s | %d |\n", s.Name, st.Files, st.Read, st.Written, st.Dropped(), strings.Join(reasons, ", "), st.Tokens)
	}

	w("\n## 2. Mixtures and packing\n\n")
	w("| point | seq_len | source | weight | target tokens | realized | repeats |\n|---|---|---|---|---|---|---|\n")
	for _, name := range order {
		p := d.Points[name]
		for _, s := range p.Sources {
			w("| %s | %d | %s | %.3f | %d | %d | %.2f |\n", name, p.SeqLen, s.Source, s.Weight, s.Target, s.Realized, s.Repeats)
		}
	}
	w("\n| point | sequences | fill (real tokens) | mixture chart |\n|---|---|---|---|\n")
	for _, name := range order {
		p := d.Points[name]
		w("| %s | %d | %.2f%% | ![](%s) |\n", name, p.Sequences, 100*p.Fill, rel(filepath.Join(p.Dir, "shards", "mixture.png")))
	}

	w("\n## 3. Training\n\n")
	w("| point | init | rope_theta | seq_len | steps | tokens | loss first → final | tokens/s |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range order {
		p := d.Points[name]
		from := "random (" + c.Pretrain.ModelConfig + ")"
		if name != "pretrain" {
			from = "pretrain"
		}
		w("| %s | %s | %.0f | %d | %d | %d | %.3f → %.3f | %.0f |\n", name, from, p.RopeTheta, p.SeqLen, p.Train.Steps, p.Train.Tokens,
			p.Train.FirstLoss, p.Train.FinalLoss, p.Train.TokensPerS)
	}
	w("\n")
	for _, name := range order {
		w("![%s loss](%s) ", name, rel(filepath.Join(d.Points[name].Dir, "train", "loss.png")))
	}
	writeInTrainingEvals(w, c, d, order, rel)

	pl := d.Plan
	w("\n\n## 4. RoPE plan (`longctx rope plan --head-dim %d --base %g --train-len %d --target-len %d`)\n\n", pl.HeadDim, pl.Base, pl.TrainLen, pl.TargetLen)
	w("| critical dimension | critical base β0 | extrapolation bound at β0 | Men et al. lower bound b* |\n|---|---|---|---|\n")
	w("| %d of %d | %.1f | %.0f | %.1f |\n\n", pl.CriticalDimension, pl.HeadDim, pl.CriticalBase, pl.ExtrapolationBound, pl.MenLowerBound)
	w("Continued pretraining used base %.0f.", d.NewBase)
	if d.NewBase < pl.MenLowerBound {
		w(" It is below the Men et al. bound (%.0f): perplexity can look fine while retrieval fails.", pl.MenLowerBound)
	}
	w("\n\n![wavelengths](rope-plan.png)\n\n")

	w("## 5. Evaluations (before: pretrain; after: cpt-raised)\n\n")
	names := map[string]bool{}
	for _, n := range order {
		for k := range d.Points[n].Metrics {
			names[k] = true
		}
	}
	var metrics []string
	for k := range names {
		metrics = append(metrics, k)
	}
	sort.Strings(metrics)
	w("| metric | %s |\n|---|%s\n", strings.Join(order, " | "), strings.Repeat("---|", len(order)))
	for _, m := range metrics {
		row := []string{m}
		for _, n := range order {
			v, ok := d.Points[n].Metrics[m]
			switch {
			case !ok:
				row = append(row, "—")
			case v.N > 0:
				row = append(row, fmt.Sprintf("%.1f (n=%d)", v.Value, v.N))
			default:
				row = append(row, fmt.Sprintf("%.3f", v.Value))
			}
		}
		w("| %s |\n", strings.Join(row, " | "))
	}
	w("\n")
	for _, n := range order {
		dir := filepath.Join(d.Points[n].Dir, "eval", "final")
		for _, f := range []string{"passkey.png", "ppl.png"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				w("![%s %s](%s) ", n, f, rel(filepath.Join(dir, f)))
			}
		}
	}

	w("\n\n")
	ev, err := writeEvidence(w, c, d, order, rel)
	if err != nil {
		return "", err
	}
	w("## 8. Lineage\n\n| point | mixture | shards | checkpoint |\n|---|---|---|---|\n")
	for _, n := range order {
		l := d.Points[n].Lineage
		w("| %s | `%.12s` | `%.12s` | `%.12s` |\n", n, l.MixtureHash, l.ShardsHash, l.CheckpointHash)
	}
	d.Run.LoadEnd = loadAvg()
	w("\n## 9. Stage timings and where this ran\n\n| stage | wall time |\n|---|---|\n%s\n", strings.Join(d.Timings, "\n"))
	w("\nCommand `%s`; commit `%s`; machine %s; load average (1, 5, 15 min) %s at the start, %s at the end.\n",
		d.Run.Command, d.Run.Commit, d.Run.Machine, d.Run.LoadStart, d.Run.LoadEnd)

	if err := storage.WriteFile(ctx, filepath.Join(c.Out, "REPORT.md"), []byte(b.String())); err != nil {
		return "", err
	}
	// "metrics" is keyed by point, then metric: metrics.pretrain.kv_acc@256.
	metricsBy := map[string]map[string]eval.Metric{}
	for _, n := range order {
		metricsBy[n] = d.Points[n].Metrics
	}
	ev["metrics"], ev["run"] = metricsBy, d.Run
	js, err := json.MarshalIndent(map[string]any{"config": c, "prepare_hash": prepHash, "evidence": ev, "rope_plan": map[string]any{
		"critical_dimension": pl.CriticalDimension, "critical_base": pl.CriticalBase, "extrapolation_bound": pl.ExtrapolationBound,
		"men_lower_bound": pl.MenLowerBound, "new_base": d.NewBase}, "points": d.Points}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := storage.WriteFile(ctx, filepath.Join(c.Out, "REPORT.json"), append(js, '\n')); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeInTrainingEvals shows each CPT point's in-training evals (train
// config `eval: {every: N}`): the metric-vs-step curves, with 95% intervals,
// and the gate against step 0 at the last eval.
func writeInTrainingEvals(w func(string, ...any), c DemoConfig, d *DemoResult, order []string, rel func(string) string) {
	var any bool
	for _, name := range order {
		dir := filepath.Join(d.Points[name].Dir, "train")
		pts, err := trainer.ReadEvalPoints(filepath.Join(dir, "evals.jsonl"))
		if err != nil || len(pts) == 0 {
			continue
		}
		if !any {
			w("\n\n### In-training evals (on the live weights; gate paired against step 0)\n\n")
			w("| point | steps evaluated | eval time | last gate |\n|---|---|---|---|\n")
			any = true
		}
		var steps []string
		var secs float64
		for _, p := range pts {
			steps = append(steps, fmt.Sprint(p.Step))
			secs += p.Seconds
		}
		gate := "-"
		if last := pts[len(pts)-1]; len(last.Gate) > 0 {
			var parts []string
			for _, g := range last.Gate {
				v := "ok"
				if g.Fail {
					v = "REGRESSION"
				}
				parts = append(parts, fmt.Sprintf("%s %s: drop %+.3g (95%% CI %+.3g..%+.3g, p %.2g)", v, g.Metric, g.Drop, g.Lo, g.Hi, g.P))
			}
			gate = strings.Join(parts, "; ")
		}
		w("| %s | %s | %.0f s | %s |\n", name, strings.Join(steps, ", "), secs, gate)
	}
	if !any {
		return
	}
	w("\n")
	for _, name := range order {
		for _, f := range eval.EvalCurveFiles {
			p := filepath.Join(d.Points[name].Dir, "train", f)
			if _, err := os.Stat(p); err == nil {
				w("![%s %s](%s) ", name, f, rel(p))
			}
		}
	}
}
