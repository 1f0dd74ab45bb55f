package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"longctx/config"
	"longctx/corpus"
	"longctx/eval"
	"longctx/mixture"
	"longctx/pipelines"
	"longctx/recipe"
	"longctx/rope"
	"longctx/shards"
	"longctx/storage"
	"longctx/trainer"
)

// demoConfig is the whole recipe at toy scale: the sample corpus, prepare,
// a short-context pretraining, the RoPE plan, continued pretraining at 4x the
// length, and evals before and after, plus the two experiments.
type demoConfig struct {
	Out       string  `yaml:"out" help:"output directory (report: OUT/REPORT.md)"`
	Seed      uint64  `yaml:"seed" help:"seed of the corpus, mixtures, inits and eval data"`
	Prepare   string  `yaml:"prepare" help:"prepare config for the sample corpus (its output feeds the mixtures)"`
	Corpus    string  `yaml:"corpus" help:"where the sample corpus is generated (must match the prepare config's inputs)"`
	Tokenizer string  `yaml:"tokenizer" help:"tokenizer.json used by the evals"`
	ShortLen  int     `yaml:"short_len" help:"pretraining context length"`
	LongLen   int     `yaml:"long_len" help:"continued-pretraining context length (the target)"`
	Base      float64 `yaml:"base" help:"RoPE base of pretraining"`
	// Mixture gives the sources and weights; seq_len and total_tokens are set
	// per stage from the fields below.
	Mixture        mixture.Spec        `yaml:"mixture"`
	PretrainTokens int64               `yaml:"pretrain_tokens" help:"token budget of the pretraining mixture"`
	CPTTokens      int64               `yaml:"cpt_tokens" help:"token budget of each continued-pretraining mixture"`
	MathSource     string              `yaml:"math_source" help:"the math source (experiment 2 sets its weight to 0)"`
	Pretrain       trainer.TrainConfig `yaml:"pretrain"`
	CPT            trainer.TrainConfig `yaml:"cpt"`
	GSM8kTrain     int                 `yaml:"gsm8k_train" help:"generated GSM8k-format few-shot pool size"`
	GSM8kTest      int                 `yaml:"gsm8k_test" help:"generated GSM8k-format test questions"`
	Eval           eval.SuiteConfig    `yaml:"eval"`
}

func defaultDemoConfig() demoConfig {
	return demoConfig{Out: "demo-out", Seed: 1, Prepare: "configs/sources/demo.yaml", Corpus: "demo-out/corpus",
		Tokenizer: "tokenizer/testdata/tokenizer.json", ShortLen: 256, LongLen: 1024, Base: 10000,
		Mixture: mixture.Spec{Name: "demo", Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 8}, MathSource: "math",
		Pretrain: trainer.DefaultTrainConfig(), CPT: trainer.DefaultTrainConfig(), Eval: eval.DefaultSuite(),
		GSM8kTrain: 50, GSM8kTest: 40}
}

func init() {
	register(&command{name: "demo", summary: "the whole recipe at toy scale on a generated corpus, with a report", run: runDemo})
}

func runDemo(args []string) error {
	cfg := defaultDemoConfig()
	if p := config.ConfigPath(args); p != "" {
		if err := config.Load(p, &cfg); err != nil {
			return err
		}
	}
	fs := newFlags("demo", "demo [--config configs/demo.yaml] [--FIELD value ...]")
	fs.String("config", "", "YAML demo config (configs/demo.yaml)")
	config.BindFlags(fs, "", &cfg)
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	d := &demo{cfg: cfg, log: os.Stderr}
	if err := d.run(ctx); err != nil {
		return err
	}
	fmt.Printf("demo done in %s; report: %s\n", time.Since(start).Round(time.Second), filepath.Join(cfg.Out, "REPORT.md"))
	return nil
}

type demo struct {
	cfg   demoConfig
	log   io.Writer
	stage int

	corpus   []corpus.DemoFile
	prepare  *shards.PrepareManifest
	plan     rope.PlanResult
	newBase  float64
	points   map[string]recipe.PointResult
	timings  []string
	started  time.Time
	prepPath string
}

func (d *demo) stepf(format string, a ...any) {
	d.stage++
	fmt.Fprintf(d.log, "\n=== demo %d/8: %s\n", d.stage, fmt.Sprintf(format, a...))
}

func (d *demo) timed(name string, f func() error) error {
	t := time.Now()
	err := f()
	d.timings = append(d.timings, fmt.Sprintf("| %s | %s |", name, time.Since(t).Round(100*time.Millisecond)))
	return err
}

func (d *demo) run(ctx context.Context) error {
	c := d.cfg
	d.points = map[string]recipe.PointResult{}
	d.started = time.Now()

	d.stepf("sample corpus in five real formats -> %s", c.Corpus)
	if err := d.timed("corpus", func() error { return d.generateCorpus(ctx) }); err != nil {
		return err
	}
	for _, f := range d.corpus {
		fmt.Fprintf(d.log, "  %-60s %-12s %4d records (%d malformed) %8d bytes\n", f.Path, f.Format, f.Records, f.Malformed, f.Bytes)
	}

	d.stepf("prepare (Beam): tokenize, filter, token caches (%s)", c.Prepare)
	pcfg := pipelines.DefaultPrepareConfig()
	if err := config.Load(c.Prepare, &pcfg); err != nil {
		return err
	}
	// Beam logs its execution plan at info level; keep the demo readable
	// unless the user asked for a log level.
	if os.Getenv("LONGCTX_LOG") == "" {
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		defer slog.SetDefault(prev)
	}
	if err := d.timed("prepare", func() error { return runPrepare([]string{"--config", c.Prepare}) }); err != nil {
		return err
	}
	d.prepPath = storage.Join(pcfg.Output, "manifest.json")
	var err error
	if d.prepare, err = shards.ReadPrepareManifest(ctx, d.prepPath); err != nil {
		return err
	}

	// Evaluation data: generated GSM8k-format splits and held-out long
	// documents for perplexity by position.
	ev, err := d.evalData(ctx)
	if err != nil {
		return err
	}
	env := recipe.Env{Prepare: d.prepPath, Tokenizer: c.Tokenizer, Backend: c.Pretrain.Backend, Log: d.log}

	d.stepf("pretrain a tiny model at %d tokens, RoPE base %g (mix -> train -> eval)", c.ShortLen, c.Base)
	pre := recipe.Point{Name: "pretrain", Mixture: d.mixture("pretrain", c.ShortLen, c.PretrainTokens, nil), Train: c.Pretrain, Eval: ev}
	// The export accepts the long length so the "before" evals can measure
	// how the short-context model does past its training length.
	pre.Train.RopeTheta, pre.Train.MaxPositions = c.Base, c.LongLen
	if err := d.timed("pretrain (mix+train+eval)", func() error { return d.point(ctx, env, pre) }); err != nil {
		return err
	}
	mc, err := trainer.LoadModelConfig(c.Pretrain.ModelConfig)
	if err != nil {
		return err
	}

	d.stepf("rope plan: %d -> %d tokens at head_dim %d", c.ShortLen, c.LongLen, mc.HeadDimension())
	if d.plan, err = rope.Plan(mc.HeadDimension(), c.Base, c.ShortLen, c.LongLen, 0); err != nil {
		return err
	}
	d.newBase = math.Round(d.plan.CriticalBase)
	if err := ropePlan([]string{"--head-dim", fmt.Sprint(mc.HeadDimension()), "--base", fmt.Sprint(c.Base), "--train-len", fmt.Sprint(c.ShortLen),
		"--target-len", fmt.Sprint(c.LongLen), "--plot", filepath.Join(c.Out, "rope-plan.png")}); err != nil {
		return err
	}

	startCkpt := filepath.Join(c.Out, "points", "pretrain", "train", "final")
	cpt := func(name string, base float64, zeroMath bool) recipe.Point {
		var w map[string]float64
		if zeroMath {
			w = map[string]float64{c.MathSource: 0}
		}
		p := recipe.Point{Name: name, Mixture: d.mixture(name, c.LongLen, c.CPTTokens, w), Train: c.CPT, Eval: ev}
		p.Train.Init, p.Train.ModelConfig, p.Train.RopeTheta, p.Train.MaxPositions = startCkpt, "", base, c.LongLen
		return p
	}
	d.stepf("continued pretraining at %d tokens with the base raised to %.0f (the critical base)", c.LongLen, d.newBase)
	if err := d.timed("CPT raised base (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-raised", d.newBase, false)) }); err != nil {
		return err
	}
	d.stepf("experiment 1: the same CPT with the base kept at %g", c.Base)
	if err := d.timed("CPT base kept (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-kept", c.Base, false)) }); err != nil {
		return err
	}
	d.stepf("experiment 2: the same CPT (raised base) with no %s in the mixture", c.MathSource)
	if err := d.timed("CPT no math (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-nomath", d.newBase, true)) }); err != nil {
		return err
	}

	d.stepf("report")
	return d.report(ctx)
}

// mixture returns the demo mixture for a stage; weights overrides some
// sources' weights (0 removes the source) and rescales the others to keep
// the total at 1.
func (d *demo) mixture(name string, seqLen int, tokens int64, weights map[string]float64) mixture.Spec {
	s := d.cfg.Mixture
	s.Name, s.SeqLen, s.TotalTokens, s.Sweep = "demo-"+name, seqLen, tokens, nil
	var fixed, rest float64
	for _, src := range s.Sources {
		if w, ok := weights[src.Name]; ok {
			fixed += w
		} else {
			rest += src.Weight
		}
	}
	var out []mixture.Source
	for _, src := range s.Sources {
		w, ok := weights[src.Name]
		if !ok {
			w = src.Weight * (1 - fixed) / rest
		}
		if w > 0 {
			out = append(out, mixture.Source{Name: src.Name, Weight: w})
		}
	}
	s.Sources = out
	return s
}

func (d *demo) point(ctx context.Context, env recipe.Env, p recipe.Point) error {
	r, err := recipe.RunPoint(ctx, env, p, filepath.Join(d.cfg.Out, "points", p.Name))
	if err != nil {
		return err
	}
	d.points[p.Name] = r
	return nil
}

// corpusMarker records what generated a corpus directory, so a rerun keeps
// the files (and their etags) and prepare and every finished point are reused.
type corpusMarker struct {
	Key   string            `json:"key"`
	Files []corpus.DemoFile `json:"files"`
}

// generateCorpus writes the sample corpus and the GSM8k-format splits, or
// keeps a corpus generated earlier with the same settings.
func (d *demo) generateCorpus(ctx context.Context) error {
	c := d.cfg
	train, test, err := eval.GenerateGSM8kSplits(c.Seed, c.GSM8kTrain, c.GSM8kTest)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Out, "eval-data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := eval.WriteGSM8kJSONL(filepath.Join(dir, "gsm8k-train.jsonl"), train); err != nil {
		return err
	}
	if err := eval.WriteGSM8kJSONL(filepath.Join(dir, "gsm8k-test.jsonl"), test); err != nil {
		return err
	}
	markerPath := filepath.Join(c.Corpus, ".longctx-demo-corpus.json")
	key := fmt.Sprintf("seed=%d gsm8k_train=%d gsm8k_test=%d", c.Seed, c.GSM8kTrain, c.GSM8kTest)
	var m corpusMarker
	if b, err := os.ReadFile(markerPath); err == nil && json.Unmarshal(b, &m) == nil && m.Key == key {
		d.corpus = m.Files
		fmt.Fprintf(d.log, "  corpus generated earlier with %s: kept\n", key)
		return nil
	}
	if d.corpus, err = corpus.GenerateDemo(ctx, c.Corpus, c.Seed); err != nil {
		return err
	}
	if err := d.gsm8kCorpus(ctx, train); err != nil {
		return err
	}
	b, err := json.MarshalIndent(corpusMarker{Key: key, Files: d.corpus}, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFile(ctx, markerPath, b)
}

// gsm8kCorpus adds the GSM8k-format train split to the corpus as a
// FineMath-layout parquet file of worked problems, so the math share of a
// mixture is what GSM8k measures. Test questions never appear in training.
func (d *demo) gsm8kCorpus(ctx context.Context, train []eval.GSM8kExample) error {
	c := d.cfg
	docs := eval.GSM8kDocuments(train, max(1, len(train)/10))
	rows := make([]corpus.FineMathRow, len(docs))
	for i := range docs {
		url, warc, off, text := fmt.Sprintf("https://example.org/gsm8k-format/%d", i), "demo-gsm8k-format.warc.gz", int32(i), docs[i].Text
		rows[i] = corpus.FineMathRow{URL: &url, WarcFilename: &warc, WarcRecordOffset: &off, Text: &text}
	}
	var buf bytes.Buffer
	if err := corpus.WriteParquet(&buf, rows, 64); err != nil {
		return err
	}
	rel := "finemath/finemath-4plus/train-gsm8k-format.parquet"
	if err := storage.WriteFile(ctx, filepath.Join(c.Corpus, rel), buf.Bytes()); err != nil {
		return err
	}
	d.corpus = append(d.corpus, corpus.DemoFile{Path: rel, Format: "finemath", Records: len(rows), Bytes: buf.Len()})
	return nil
}

// evalData writes the GSM8k-format splits and the perplexity documents and
// returns the eval suite pointing at them.
func (d *demo) evalData(ctx context.Context) (eval.SuiteConfig, error) {
	c := d.cfg
	ev := c.Eval
	dir := filepath.Join(c.Out, "eval-data")
	ev.GSM8k.Train, ev.GSM8k.Test = filepath.Join(dir, "gsm8k-train.jsonl"), filepath.Join(dir, "gsm8k-test.jsonl")
	// Held-out books: the same generator with another seed, so no document
	// was trained on.
	held := filepath.Join(dir, "heldout")
	files, err := corpus.GenerateDemo(ctx, held, c.Seed+1000)
	if err != nil {
		return ev, err
	}
	format, err := pipelines.LookupFormat("dolma")
	if err != nil {
		return ev, err
	}
	var lines []byte
	for _, f := range files {
		if f.Format != "dolma" {
			continue
		}
		p := filepath.Join(held, f.Path)
		r, err := storage.Open(ctx, p)
		if err != nil {
			return ev, err
		}
		err = pipelines.ReadJSONLines(r, format, p, "books", pipelines.Emit{
			Doc: func(doc pipelines.Document) error {
				b, _ := json.Marshal(map[string]string{"id": doc.ID, "text": doc.Text})
				lines = append(append(lines, b...), '\n')
				return nil
			},
			Bad: func(pipelines.Malformed) error { return nil }, // the generator's deliberate faults
		})
		r.Close()
		if err != nil {
			return ev, err
		}
	}
	ev.PPL.Data = []string{filepath.Join(dir, "ppl-books.jsonl")}
	if err := storage.WriteFile(ctx, ev.PPL.Data[0], lines); err != nil {
		return ev, err
	}
	if err := os.RemoveAll(held); err != nil {
		return ev, err
	}
	return ev, nil
}

// report writes OUT/REPORT.md (and REPORT.json) with every stage's figures.
func (d *demo) report(ctx context.Context) error {
	c := d.cfg
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	order := []string{"pretrain", "cpt-raised", "cpt-kept", "cpt-nomath"}
	rel := func(p string) string {
		r, err := filepath.Rel(c.Out, p)
		if err != nil {
			return p
		}
		return r
	}

	w("# longctx demo report\n\n")
	w("The recipe at toy scale: a %s-token pretraining with RoPE base %g, the base raised to the critical base for %d tokens, "+
		"continued pretraining at %dx the length, and evals before and after. Config hash `%.12s`; seed %d; total %s.\n\n",
		fmt.Sprint(c.ShortLen), c.Base, c.LongLen, c.LongLen/c.ShortLen, config.Hash(c), c.Seed, time.Since(d.started).Round(time.Second))

	w("## 1. Corpus and prepare\n\n")
	w("Sample corpus: %d files in the five real formats (gzip JSON Lines, parquet, zstd JSON Lines) under `%s`. "+
		"Prepare manifest `%s` (hash `%.12s`, tokenizer `%.12s`).\n\n", len(d.corpus), c.Corpus, d.prepPath, d.prepare.Hash(), d.prepare.TokenizerHash)
	w("| source | files | records read | written | dropped | drop reasons | tokens |\n|---|---|---|---|---|---|---|\n")
	for _, s := range d.prepare.Sources {
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
		p := d.points[name]
		for _, s := range p.Sources {
			w("| %s | %d | %s | %.3f | %d | %d | %.2f |\n", name, p.SeqLen, s.Source, s.Weight, s.Target, s.Realized, s.Repeats)
		}
	}
	w("\n| point | sequences | fill (real tokens) | mixture chart |\n|---|---|---|---|\n")
	for _, name := range order {
		p := d.points[name]
		w("| %s | %d | %.2f%% | ![](%s) |\n", name, p.Sequences, 100*p.Fill, rel(filepath.Join(p.Dir, "shards", "mixture.png")))
	}

	w("\n## 3. Training\n\n")
	w("| point | init | rope_theta | seq_len | steps | tokens | loss first → final | tokens/s |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range order {
		p := d.points[name]
		from := "random (" + c.Pretrain.ModelConfig + ")"
		if name != "pretrain" {
			from = "pretrain"
		}
		w("| %s | %s | %.0f | %d | %d | %d | %.3f → %.3f | %.0f |\n", name, from, p.RopeTheta, p.SeqLen, p.Train.Steps, p.Train.Tokens,
			p.Train.FirstLoss, p.Train.FinalLoss, p.Train.TokensPerS)
	}
	w("\n")
	for _, name := range order {
		w("![%s loss](%s) ", name, rel(filepath.Join(d.points[name].Dir, "train", "loss.png")))
	}
	d.writeInTrainingEvals(w, order, rel)

	pl := d.plan
	w("\n\n## 4. RoPE plan (`longctx rope plan --head-dim %d --base %g --train-len %d --target-len %d`)\n\n", pl.HeadDim, pl.Base, pl.TrainLen, pl.TargetLen)
	w("| critical dimension | critical base β0 | extrapolation bound at β0 | Men et al. lower bound b* |\n|---|---|---|---|\n")
	w("| %d of %d | %.1f | %.0f | %.1f |\n\n", pl.CriticalDimension, pl.HeadDim, pl.CriticalBase, pl.ExtrapolationBound, pl.MenLowerBound)
	w("Continued pretraining used base %.0f.", d.newBase)
	if d.newBase < pl.MenLowerBound {
		w(" It is below the Men et al. bound (%.0f): perplexity can look fine while retrieval fails.", pl.MenLowerBound)
	}
	w("\n\n![wavelengths](rope-plan.png)\n\n")

	w("## 5. Evaluations (before: pretrain; after: cpt-raised)\n\n")
	names := map[string]bool{}
	for _, n := range order {
		for k := range d.points[n].Metrics {
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
			v, ok := d.points[n].Metrics[m]
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
		dir := filepath.Join(d.points[n].Dir, "eval", "final")
		for _, f := range []string{"passkey.png", "ppl.png"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				w("![%s %s](%s) ", n, f, rel(filepath.Join(dir, f)))
			}
		}
	}

	w("\n\n## 6. Experiments\n\n")
	w("**(1) Retrieval and loss beyond the original length (%d tokens): base kept (%g) vs raised (%.0f), same CPT budget.**\n\n", c.ShortLen, c.Base, d.newBase)
	w("| metric | start (pretrain) | base kept | base raised | raised − kept |\n|---|---|---|---|---|\n")
	for _, m := range metrics {
		if !beyond(m, c.ShortLen) {
			continue
		}
		s, k, r := d.points["pretrain"].Metrics[m], d.points["cpt-kept"].Metrics[m], d.points["cpt-raised"].Metrics[m]
		w("| %s | %.3f | %.3f | %.3f | %+.3f |\n", m, s.Value, k.Value, r.Value, r.Value-k.Value)
	}
	w("\n**(2) Math share in the CPT mixture: GSM8k-format accuracy relative to the start checkpoint.**\n\n")
	w("| metric | start | CPT with %s %.0f%% | drop | CPT with %s 0%% | drop |\n|---|---|---|---|---|---|\n",
		c.MathSource, 100*d.points["cpt-raised"].Weights[c.MathSource], c.MathSource)
	for _, m := range []string{"gsm8k_flexible", "gsm8k_strict"} {
		s, ok := d.points["pretrain"].Metrics[m]
		if !ok {
			continue
		}
		wm, nm := d.points["cpt-raised"].Metrics[m], d.points["cpt-nomath"].Metrics[m]
		w("| %s | %.1f (n=%d) | %.1f | %+.1f | %.1f | %+.1f |\n", m, s.Value, s.N, wm.Value, s.Value-wm.Value, nm.Value, s.Value-nm.Value)
	}
	w("\nAt this scale (a tiny model, minutes of CPU) differences within about two standard errors "+
		"(±%.1f points for n=%d) are noise; the numbers are reported whatever they show.\n", 200*math.Sqrt(0.25/float64(max(c.GSM8kTest, 1))), c.GSM8kTest)

	w("\n## 7. Lineage\n\n| point | mixture | shards | checkpoint |\n|---|---|---|---|\n")
	for _, n := range order {
		l := d.points[n].Lineage
		w("| %s | `%.12s` | `%.12s` | `%.12s` |\n", n, l.MixtureHash, l.ShardsHash, l.CheckpointHash)
	}
	w("\n## 8. Stage timings\n\n| stage | wall time |\n|---|---|\n%s\n", strings.Join(d.timings, "\n"))

	if err := storage.WriteFile(ctx, filepath.Join(c.Out, "REPORT.md"), []byte(b.String())); err != nil {
		return err
	}
	js, err := json.MarshalIndent(map[string]any{"config": c, "prepare_hash": d.prepare.Hash(), "rope_plan": map[string]any{
		"critical_dimension": pl.CriticalDimension, "critical_base": pl.CriticalBase, "extrapolation_bound": pl.ExtrapolationBound,
		"men_lower_bound": pl.MenLowerBound, "new_base": d.newBase}, "points": d.points}, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.WriteFile(ctx, filepath.Join(c.Out, "REPORT.json"), append(js, '\n')); err != nil {
		return err
	}
	fmt.Fprint(d.log, "\n"+b.String())
	return nil
}

// beyond reports whether metric m measures positions past n tokens
// (passkey_acc@L with L > n, loss@lo-hi with lo >= n).
func beyond(m string, n int) bool {
	var x, y int
	if _, err := fmt.Sscanf(m, "passkey_acc@%d", &x); err == nil {
		return x > n
	}
	if _, err := fmt.Sscanf(m, "loss@%d-%d", &x, &y); err == nil {
		return x >= n
	}
	return false
}

// writeInTrainingEvals shows each CPT point's in-training evals (train
// config `eval: {every: N}`): the metric-vs-step curves, with 95% intervals,
// and the gate against step 0 at the last eval.
func (d *demo) writeInTrainingEvals(w func(string, ...any), order []string, rel func(string) string) {
	var any bool
	for _, name := range order {
		dir := filepath.Join(d.points[name].Dir, "train")
		pts, err := trainer.ReadEvalPoints(filepath.Join(dir, "evals.jsonl"))
		if err != nil || len(pts) == 0 {
			continue
		}
		if !any {
			w("\n\n### In-training evals (every %d steps, on the live weights; gate paired against step 0)\n\n", d.cfg.CPT.Eval.Every)
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
			p := filepath.Join(d.points[name].Dir, "train", f)
			if _, err := os.Stat(p); err == nil {
				w("![%s %s](%s) ", name, f, rel(p))
			}
		}
	}
}
