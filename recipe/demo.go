package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"longctx/config"
	"longctx/corpus"
	"longctx/eval"
	"longctx/mixture"
	"longctx/pipelines"
	"longctx/rope"
	"longctx/shards"
	"longctx/storage"
	"longctx/trainer"
)

// DemoConfig is the whole recipe at toy scale: the sample corpus, prepare,
// a short-context pretraining, the RoPE plan, continued pretraining at 4x the
// length, and evals before and after, plus the two experiments.
type DemoConfig struct {
	// Name titles the report ("demo", "evidence").
	Name    string `yaml:"name" help:"run name, in the report title"`
	Out     string `yaml:"out" help:"output directory (report: OUT/REPORT.md)"`
	Seed    uint64 `yaml:"seed" help:"seed of the corpus, mixtures, inits and eval data"`
	Prepare string `yaml:"prepare" help:"prepare config for the sample corpus (its output feeds the mixtures)"`
	Corpus  string `yaml:"corpus" help:"where the sample corpus is generated (must match the prepare config's inputs)"`
	// CorpusScale multiplies the generated corpus (more long books and
	// code files, more web pages), as corpus.GenerateCorpus does.
	CorpusScale int     `yaml:"corpus_scale" help:"corpus size multiplier (1 = the demo corpus)"`
	Tokenizer   string  `yaml:"tokenizer" help:"tokenizer.json used by the evals"`
	ShortLen    int     `yaml:"short_len" help:"pretraining context length"`
	LongLen     int     `yaml:"long_len" help:"continued-pretraining context length (the target)"`
	Base        float64 `yaml:"base" help:"RoPE base of pretraining"`
	// Mixture gives the sources and weights; seq_len and total_tokens are set
	// per stage from the fields below.
	Mixture        mixture.Spec `yaml:"mixture"`
	PretrainTokens int64        `yaml:"pretrain_tokens" help:"token budget of the pretraining mixture"`
	CPTTokens      int64        `yaml:"cpt_tokens" help:"token budget of each continued-pretraining mixture"`
	MathSource     string       `yaml:"math_source" help:"the math source (experiment 3 sets its weight to 0)"`
	// CPTMath is the math source's weight in the CPT and short-tuning
	// mixtures (the others rescaled); 0 keeps the mixture's own weight.
	CPTMath  float64             `yaml:"cpt_math" help:"math weight of the CPT mixtures (0 = the mixture's)"`
	Pretrain trainer.TrainConfig `yaml:"pretrain"`
	CPT      trainer.TrainConfig `yaml:"cpt"`
	// Short is Liu et al.'s claim: tuning at the original length with the
	// raised base (and, as its control, the kept base) on the same budget,
	// then testing beyond it. Steps 0 leaves these two points out.
	Short       trainer.TrainConfig `yaml:"short"`
	ShortTokens int64               `yaml:"short_tokens" help:"token budget of each short-length tuning mixture"`
	// TrainEvals are the evals the CPT points run in training (cpt.eval:
	// every N steps); empty runs the whole eval suite.
	TrainEvals []string `yaml:"train_evals" help:"evals run during CPT (default: the whole suite)"`
	// PretrainEvals are the evals pretraining runs in training (pretrain.eval:
	// every N steps): how the skills grow; empty runs the whole suite.
	PretrainEvals []string `yaml:"pretrain_evals" help:"evals run during pretraining (default: the whole suite)"`
	GSM8kTrain    int      `yaml:"gsm8k_train" help:"generated GSM8k-format few-shot pool size"`
	GSM8kTest     int      `yaml:"gsm8k_test" help:"generated GSM8k-format test questions"`
	// GSM8kGen sets the difficulty of the generated problems (its seed is
	// the demo seed); zero fields keep the generator's defaults.
	GSM8kGen eval.GSM8kGen    `yaml:"gsm8k_gen" help:"GSM8k-format generator: max_operand, steps (seed: the demo seed)"`
	Eval     eval.SuiteConfig `yaml:"eval"`
}

// DefaultDemoConfig is configs/demo.yaml's shape with the library defaults.
func DefaultDemoConfig() DemoConfig {
	return DemoConfig{Name: "demo", Out: "demo-out", Seed: 1, Prepare: "configs/sources/demo.yaml", Corpus: "demo-out/corpus",
		Tokenizer: "tokenizer/testdata/tokenizer.json", ShortLen: 256, LongLen: 1024, Base: 10000,
		Mixture: mixture.Spec{Name: "demo", Seed: 1, Upsample: mixture.UpsampleRepeat, MaxRepeats: 8}, MathSource: "math",
		Pretrain: trainer.DefaultTrainConfig(), CPT: trainer.DefaultTrainConfig(), Short: trainer.DefaultTrainConfig(), Eval: eval.DefaultSuite(),
		GSM8kTrain: 50, GSM8kTest: 40}
}

// DemoPoints are the demo's experiment points in report order; the last
// two run only when the config has a short-length tuning (short.steps > 0).
var DemoPoints = []string{"pretrain", "cpt-raised", "cpt-kept", "cpt-nomath", "short-raised", "short-kept"}

// maxPositions is what every exported model accepts: the CPT length or the
// longest eval, whichever is longer, so that each model is tested beyond
// the length it was trained at (8x the pretraining length) rather than
// scored wrong for lack of positions.
func (c DemoConfig) maxPositions() int {
	m := c.LongLen
	for _, ls := range [][]int{c.Eval.KV.Lengths, c.Eval.Passkey.Lengths, c.Eval.NIAH.Lengths} {
		for _, l := range ls {
			m = max(m, l)
		}
	}
	if slices.Contains(c.Eval.Evals, "ppl") {
		m = max(m, c.Eval.PPL.Window)
	}
	return m
}

// inTraining is the suite run during training: the named evals (all when
// empty), with retrieval only at lengths up to the training length.
func inTraining(ev eval.SuiteConfig, evals []string, seqLen int) *eval.SuiteConfig {
	if len(evals) > 0 {
		ev.Evals = evals
	}
	within := func(ls []int) []int {
		var out []int
		for _, l := range ls {
			if l <= seqLen {
				out = append(out, l)
			}
		}
		return out
	}
	ev.KV.Lengths, ev.Passkey.Lengths, ev.NIAH.Lengths = within(ev.KV.Lengths), within(ev.Passkey.Lengths), within(ev.NIAH.Lengths)
	lengths := map[string]int{"kv": len(ev.KV.Lengths), "passkey": len(ev.Passkey.Lengths), "niah": len(ev.NIAH.Lengths)}
	ev.Evals = slices.DeleteFunc(slices.Clone(ev.Evals), func(e string) bool { n, ok := lengths[e]; return ok && n == 0 })
	return &ev
}

// cptWeights are the weight overrides of the CPT mixtures (nil: none).
func (c DemoConfig) cptWeights() map[string]float64 {
	if c.CPTMath > 0 {
		return map[string]float64{c.MathSource: c.CPTMath}
	}
	return nil
}

// Points are the points a config runs, in report order.
func (c DemoConfig) Points() []string {
	if c.Short.Steps > 0 {
		return DemoPoints
	}
	return DemoPoints[:4]
}

// DemoResult is everything the demo measured; OUT/REPORT.json holds it.
type DemoResult struct {
	Corpus   []corpus.DemoFile
	Prepare  *shards.PrepareManifest
	PrepPath string                 // prepare manifest path
	Plan     rope.PlanResult        // short_len -> long_len at the model's head_dim
	NewBase  float64                // the base CPT used: the critical base, rounded
	Points   map[string]PointResult // by name (DemoPoints)
	Timings  []string               // Markdown rows "| stage | wall time |"
	Run      RunInfo                // command, commit, machine, load
	Started  time.Time
}

// demo is one run's state: its config, where it prints and what it found.
type demo struct {
	cfg      DemoConfig
	out, log io.Writer
	stage    int
	res      DemoResult
	reused   *PointResult // set by point when the point was finished earlier
}

// Demo runs the recipe at toy scale and writes OUT/REPORT.md and
// OUT/REPORT.json. Tool output (the prepare summary, the RoPE plan, the
// report) goes to out, progress to log; command is the command line the
// report names. Finished points are reused on rerun.
func Demo(ctx context.Context, cfg DemoConfig, command string, out, log io.Writer) (*DemoResult, error) {
	d := &demo{cfg: cfg, out: out, log: log}
	d.res.Run = NewRunInfo(command)
	if err := d.run(ctx); err != nil {
		return nil, err
	}
	return &d.res, nil
}

func (d *demo) stepf(format string, a ...any) {
	d.stage++
	n := 8
	if d.cfg.Short.Steps > 0 {
		n = 10
	}
	fmt.Fprintf(d.log, "\n=== %s %d/%d: %s\n", d.cfg.Name, d.stage, n, fmt.Sprintf(format, a...))
}

func (d *demo) timed(name string, f func() error) error {
	t := time.Now()
	d.reused = nil
	err := f()
	took := time.Since(t).Round(100 * time.Millisecond).String()
	if d.reused != nil {
		// A point finished by an earlier run: this run only read it back,
		// so say so and give the training time it recorded.
		tr := d.reused.Train
		took = fmt.Sprintf("%s (point finished by an earlier run and reused: %d steps, %d tokens at %.0f tokens/s, %.0f s of in-training evals)",
			took, tr.Steps, tr.Tokens, tr.TokensPerS, tr.EvalSeconds)
	}
	d.res.Timings = append(d.res.Timings, fmt.Sprintf("| %s | %s |", name, took))
	return err
}

func (d *demo) run(ctx context.Context) error {
	c := d.cfg
	d.res.Points = map[string]PointResult{}
	d.res.Started = time.Now()

	d.stepf("sample corpus in five real formats -> %s", c.Corpus)
	if err := d.timed("corpus", func() error { return d.generateCorpus(ctx) }); err != nil {
		return err
	}
	for _, f := range d.res.Corpus {
		fmt.Fprintf(d.log, "  %-60s %-12s %4d records (%d malformed) %8d bytes\n", f.Path, f.Format, f.Records, f.Malformed, f.Bytes)
	}

	d.stepf("prepare (Beam): tokenize, filter, token caches (%s)", c.Prepare)
	pcfg := pipelines.DefaultPrepareConfig()
	if err := config.Load(c.Prepare, &pcfg); err != nil {
		return err
	}
	if err := d.timed("prepare", func() error {
		_, err := pipelines.RunPrepare(ctx, pcfg, "direct", false, d.out, d.log)
		return err
	}); err != nil {
		return err
	}
	d.res.PrepPath = storage.Join(pcfg.Output, "manifest.json")
	var err error
	if d.res.Prepare, err = shards.ReadPrepareManifest(ctx, d.res.PrepPath); err != nil {
		return err
	}

	// Evaluation data: generated GSM8k-format splits and held-out long
	// documents for perplexity by position.
	ev, err := d.evalData(ctx)
	if err != nil {
		return err
	}
	env := Env{Prepare: d.res.PrepPath, Tokenizer: c.Tokenizer, Backend: c.Pretrain.Backend, Log: d.log}

	d.stepf("pretrain a tiny model at %d tokens, RoPE base %g (mix -> train -> eval)", c.ShortLen, c.Base)
	pre := Point{Name: "pretrain", Mixture: d.mixture("pretrain", c.ShortLen, c.PretrainTokens, nil), Train: c.Pretrain, Eval: ev}
	// The export accepts the long length so the "before" evals can measure
	// how the short-context model does past its training length.
	pre.Train.RopeTheta, pre.Train.MaxPositions = c.Base, c.maxPositions()
	pre.Train.Eval.SuiteConfig = inTraining(ev, c.PretrainEvals, c.ShortLen)
	if err := d.timed("pretrain (mix+train+eval)", func() error { return d.point(ctx, env, pre) }); err != nil {
		return err
	}
	mc, err := trainer.LoadModelConfig(c.Pretrain.ModelConfig)
	if err != nil {
		return err
	}

	d.stepf("rope plan: %d -> %d tokens at head_dim %d", c.ShortLen, c.LongLen, mc.HeadDimension())
	if err := d.ropePlan(ctx, mc.HeadDimension()); err != nil {
		return err
	}

	startCkpt := filepath.Join(c.Out, "points", "pretrain", "train", "final")
	cpt := func(name string, base float64, zeroMath bool) Point {
		w := c.cptWeights()
		if zeroMath {
			w = map[string]float64{c.MathSource: 0}
		}
		p := Point{Name: name, Mixture: d.mixture(name, c.LongLen, c.CPTTokens, w), Train: c.CPT, Eval: ev}
		p.Train.Init, p.Train.ModelConfig, p.Train.RopeTheta, p.Train.MaxPositions = startCkpt, "", base, c.maxPositions()
		p.Train.Eval.SuiteConfig = inTraining(ev, c.TrainEvals, c.LongLen)
		return p
	}
	newBase := d.res.NewBase
	d.stepf("continued pretraining at %d tokens with the base raised to %.0f (the critical base)", c.LongLen, newBase)
	if err := d.timed("CPT raised base (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-raised", newBase, false)) }); err != nil {
		return err
	}
	d.stepf("experiment 1: the same CPT with the base kept at %g", c.Base)
	if err := d.timed("CPT base kept (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-kept", c.Base, false)) }); err != nil {
		return err
	}
	d.stepf("experiment 3: the same CPT (raised base) with no %s in the mixture", c.MathSource)
	if err := d.timed("CPT no math (mix+train+eval)", func() error { return d.point(ctx, env, cpt("cpt-nomath", newBase, true)) }); err != nil {
		return err
	}

	if c.Short.Steps > 0 {
		short := func(name string, base float64) Point {
			p := Point{Name: name, Mixture: d.mixture(name, c.ShortLen, c.ShortTokens, c.cptWeights()), Train: c.Short, Eval: ev}
			// Trained at the original length; exported to accept the long
			// one, so the evals test it beyond what it was tuned on.
			p.Train.Init, p.Train.ModelConfig, p.Train.RopeTheta, p.Train.MaxPositions = startCkpt, "", base, c.maxPositions()
			return p
		}
		d.stepf("experiment 2 (Liu et al.): tuning at the original %d tokens with the base raised to %.0f", c.ShortLen, newBase)
		if err := d.timed("short tuning, raised base (mix+train+eval)", func() error { return d.point(ctx, env, short("short-raised", newBase)) }); err != nil {
			return err
		}
		d.stepf("experiment 2 control: the same tuning at %d tokens with the base kept at %g", c.ShortLen, c.Base)
		if err := d.timed("short tuning, base kept (mix+train+eval)", func() error { return d.point(ctx, env, short("short-kept", c.Base)) }); err != nil {
			return err
		}
	}

	d.stepf("report")
	md, err := WriteDemoReport(ctx, c, &d.res)
	if err != nil {
		return err
	}
	fmt.Fprint(d.log, "\n"+md)
	return nil
}

// ropePlan derives the critical base for short_len -> long_len, prints the
// plan as `longctx rope plan` does and draws OUT/rope-plan.png.
func (d *demo) ropePlan(ctx context.Context, headDim int) error {
	c := d.cfg
	pl, err := rope.Plan(headDim, c.Base, c.ShortLen, c.LongLen, 0)
	if err != nil {
		return err
	}
	d.res.Plan, d.res.NewBase = pl, math.Round(pl.CriticalBase)
	png := filepath.Join(c.Out, "rope-plan.png")
	if err := storage.WriteWith(ctx, png, func(w io.Writer) error { return rope.PlotWavelengths(w, pl) }); err != nil {
		return fmt.Errorf("plot %s: %w", png, err)
	}
	rope.WritePlan(d.out, pl)
	if pl.NewBase < pl.MenLowerBound {
		fn := rope.FirstNegative(pl.HeadDim, pl.NewBase, pl.TargetLen)
		fmt.Fprintf(d.log, "longctx rope plan: warning: base %s is below the Men et al. lower bound %s for %d tokens "+
			"(the score turns negative at distance %d); long context may be superficial: check retrieval, not only perplexity\n",
			rope.FormatBase(pl.NewBase), rope.FormatBase(pl.MenLowerBound), pl.TargetLen, fn)
	}
	fmt.Fprintf(d.log, "longctx rope plan: wrote %s\n", png)
	return nil
}

// mixture returns the demo mixture for a stage; weights overrides some
// sources' weights (0 removes the source) and rescales the others to keep
// the total at 1.
func (d *demo) mixture(name string, seqLen int, tokens int64, weights map[string]float64) mixture.Spec {
	s := d.cfg.Mixture
	s.Name, s.SeqLen, s.TotalTokens, s.Sweep = s.Name+"-"+name, seqLen, tokens, nil
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

func (d *demo) point(ctx context.Context, env Env, p Point) error {
	r, err := RunPoint(ctx, env, p, filepath.Join(d.cfg.Out, "points", p.Name))
	if err != nil {
		return err
	}
	d.res.Points[p.Name] = r
	if r.Skipped {
		d.reused = &r
	}
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
	gen := eval.DefaultGSM8kGen(c.Seed)
	if c.GSM8kGen.MaxOperand > 0 {
		gen.MaxOperand = c.GSM8kGen.MaxOperand
	}
	if c.GSM8kGen.Steps > 0 {
		gen.Steps = c.GSM8kGen.Steps
	}
	train, test, err := gen.GenerateSplits(c.GSM8kTrain, c.GSM8kTest)
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
	key := fmt.Sprintf("seed=%d gsm8k_train=%d gsm8k_test=%d max_operand=%d steps=%d corpus=%s scale=%d", c.Seed, c.GSM8kTrain, c.GSM8kTest,
		gen.MaxOperand, gen.Steps, corpus.DemoVersion, max(1, c.CorpusScale))
	var m corpusMarker
	if b, err := os.ReadFile(markerPath); err == nil && json.Unmarshal(b, &m) == nil && m.Key == key {
		d.res.Corpus = m.Files
		fmt.Fprintf(d.log, "  corpus generated earlier with %s: kept\n", key)
		return nil
	}
	if d.res.Corpus, err = corpus.GenerateCorpus(ctx, c.Corpus, c.Seed, max(1, c.CorpusScale)); err != nil {
		return err
	}
	if err := d.gsm8kCorpus(ctx, train); err != nil {
		return err
	}
	b, err := json.MarshalIndent(corpusMarker{Key: key, Files: d.res.Corpus}, "", "  ")
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
	d.res.Corpus = append(d.res.Corpus, corpus.DemoFile{Path: rel, Format: "finemath", Records: len(rows), Bytes: buf.Len()})
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
