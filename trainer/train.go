package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/config"
	"longctx/shards"
)

// TrainConfig is everything `longctx train` reads from its YAML file.
type TrainConfig struct {
	ModelConfig  string  `yaml:"model_config" help:"model config YAML for a random init (configs/model/*.yaml)"`
	Init         string  `yaml:"init" help:"HF model directory to continue from (takes precedence over model_config)"`
	RopeTheta    float64 `yaml:"rope_theta" help:"new RoPE base, e.g. 273000 (0 keeps the model's)"`
	MaxPositions int     `yaml:"max_position_embeddings" help:"context length written to the exported config (0 = seq_len)"`
	Data         string  `yaml:"data" help:"training data for the CLI: a shard directory from 'longctx mix' (local or gs://) or a flat little-endian uint32 token file"`

	SeqLen    int    `yaml:"seq_len" help:"tokens per sequence"`
	BatchSize int    `yaml:"batch_size" help:"sequences per micro-batch"`
	GradAccum int    `yaml:"grad_accum" help:"micro-batches per optimizer step"`
	Steps     int    `yaml:"steps" help:"optimizer steps in total"`
	Seed      uint64 `yaml:"seed" help:"seed of the random init"`

	Rope      RopePlan        `yaml:"rope"`
	Eval      EvalSchedule    `yaml:"eval"`
	Optimizer OptimizerConfig `yaml:"optimizer"`
	Documents Documents       `yaml:"documents"`

	AttentionBlock int    `yaml:"attention_block" help:"attention block size (tokens; on CPU 256 is fastest at 16k, ~25% over 512)"`
	Recompute      bool   `yaml:"recompute" help:"recompute each layer's activations in the backward pass"`
	ComputeDType   string `yaml:"compute_dtype" help:"float32 or bfloat16 (linear layers; f32 master weights)"`

	Out             string  `yaml:"out" help:"output directory: checkpoints/, final/, metrics.jsonl, loss.png"`
	CheckpointEvery int     `yaml:"checkpoint_every" help:"steps between checkpoints (0 = only at the end)"`
	KeepCheckpoints int     `yaml:"keep_checkpoints" help:"checkpoints kept (older ones are deleted; 0 = all)"`
	Resume          bool    `yaml:"resume" help:"continue from the latest checkpoint in out/checkpoints"`
	Force           bool    `yaml:"force" help:"train into an out directory that holds a run, clearing its outputs"`
	ExportDType     string  `yaml:"export_dtype" help:"dtype of the final HF export: F32, BF16 or F16"`
	LogEvery        int     `yaml:"log_every" help:"steps between progress lines"`
	Backend         string  `yaml:"backend" help:"GoMLX backend (default $GOMLX_BACKEND, else the Go backend, its ops run as schedule says)"`
	PeakTFLOPS      float64 `yaml:"peak_tflops" help:"accelerator peak TFLOP/s for the MFU estimate (0 = not shown)"`
	Lanes           int     `yaml:"lanes,omitempty" help:"pieces of each micro-batch run at once, each on its own core (0 = 2 when batch_size is even, on the Go backend; 1 = off); results depend on lanes to float32 rounding, never on the machine"`
	MemoryLimit     string  `yaml:"memory_limit,omitempty" help:"soft limit of the Go heap while training, e.g. 3.5GiB: garbage is collected before crossing it (empty = GOMEMLIMIT if set, else 80% of physical memory)"`
	Schedule        string  `yaml:"schedule,omitempty" help:"how the Go backend runs a step's ops: parallel (independent ops at once), sequential (one at a time, in creation order), or auto (empty: parallel for one lane without recompute up to 4,096 tokens per micro-batch); results are bit-identical either way"`
}

// DefaultTrainConfig returns the defaults every config file starts from.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		SeqLen: 2048, BatchSize: 1, GradAccum: 1, Steps: 100, Optimizer: DefaultOptimizer(),
		Documents: Documents{Mask: true, ResetPositions: true}, AttentionBlock: 256, Recompute: true,
		ComputeDType: "float32", Out: "train-out", CheckpointEvery: 100, KeepCheckpoints: 2, ExportDType: "BF16", LogEvery: 10,
	}
}

// Validate checks the settings that do not need any file.
func (c TrainConfig) Validate() error {
	switch {
	case c.Lanes < 0 || (c.Lanes > 0 && c.BatchSize%c.Lanes != 0):
		return fmt.Errorf("lanes = %d must divide batch_size %d", c.Lanes, c.BatchSize)
	case c.Schedule != "" && c.Schedule != "auto" && c.Schedule != "parallel" && c.Schedule != "sequential":
		return fmt.Errorf("train config: schedule %q, want auto, parallel or sequential", c.Schedule)
	case c.SeqLen < 2, c.BatchSize < 1, c.GradAccum < 1, c.Steps < 1:
		return fmt.Errorf("train config: seq_len, batch_size, grad_accum and steps must be positive (got %d, %d, %d, %d)",
			c.SeqLen, c.BatchSize, c.GradAccum, c.Steps)
	case c.ComputeDType != "float32" && c.ComputeDType != "bfloat16":
		return fmt.Errorf("train config: compute_dtype %q, want float32 or bfloat16", c.ComputeDType)
	case c.Out == "":
		return fmt.Errorf("train config: out is required")
	case c.Init == "" && c.ModelConfig == "":
		return fmt.Errorf("train config: one of init or model_config is required")
	}
	if c.MemoryLimit != "" {
		if _, err := ParseByteSize(c.MemoryLimit); err != nil {
			return fmt.Errorf("train config: memory_limit: %w", err)
		}
	}
	if err := c.Rope.Validate(c); err != nil {
		return err
	}
	if err := c.Eval.Validate(); err != nil {
		return err
	}
	return c.Optimizer.Validate()
}

// StepMetrics is one line of metrics.jsonl.
type StepMetrics struct {
	Step       int     `json:"step"`
	Loss       float64 `json:"loss"`
	LR         float64 `json:"lr"`
	GradNorm   float64 `json:"grad_norm"`
	Tokens     int64   `json:"tokens"` // target tokens seen so far
	TokensPerS float64 `json:"tokens_per_s"`
	MFU        float64 `json:"mfu,omitempty"`
}

// Result summarises a training run.
type Result struct {
	Steps       int      `json:"steps"`
	ResumedFrom int      `json:"resumed_from"`
	Tokens      int64    `json:"tokens"`
	FirstLoss   float64  `json:"first_loss"`
	FinalLoss   float64  `json:"final_loss"`
	TokensPerS  float64  `json:"tokens_per_s"` // sequence tokens/s over timed steps
	FLOPsPerS   float64  `json:"flops_per_s"`
	MFU         float64  `json:"mfu,omitempty"`
	Export      string   `json:"export"`
	Metrics     string   `json:"metrics"`
	Plot        string   `json:"plot"`
	ConfigHash  string   `json:"config_hash"`
	Weights     *Weights `json:"-"`
	// EvalSeconds is the time spent in in-training evals (EvalPoints of
	// them), kept out of the throughput figures.
	EvalSeconds float64 `json:"eval_seconds,omitempty"`
	EvalPoints  int     `json:"eval_points,omitempty"`
}

// trainState is what a checkpoint holds besides the config.
type trainState struct {
	Step        int             `json:"step"`
	Tokens      int64           `json:"tokens"`
	Seed        uint64          `json:"seed"`
	SourceState json.RawMessage `json:"source_state"`
	// RNG: the run draws random numbers only for the initial weights, from
	// (seed); nothing random happens per step, so the step alone fixes the
	// rest. Recorded so a future stochastic op has a place to keep state.
	RNGDraws   int64   `json:"rng_draws"`
	ConfigHash string  `json:"config_hash"`
	FirstLoss  float64 `json:"first_loss"`
}

// resumeHash hashes the settings a resumed run must share with the
// original. Paths (the model comes from the checkpoint, the data position
// is checked by the source), reporting settings, the memory limit, lanes
// (a resumed run may move to another machine) and the schedule (results do
// not depend on it) are left out, and so is
// steps, so a finished run can be extended.
func resumeHash(c TrainConfig) (string, error) {
	c.ModelConfig, c.Init, c.Data, c.Out, c.ExportDType = "", "", "", "", ""
	c.Resume, c.Steps, c.LogEvery, c.CheckpointEvery, c.KeepCheckpoints, c.Backend, c.PeakTFLOPS = false, 0, 0, 0, 0, "", 0
	c.Force, c.Eval, c.MemoryLimit, c.Lanes, c.Schedule = false, EvalSchedule{}, "", 0, ""
	return config.Hash(c)
}

// run is one training run's state, shared by the pieces of the loop below
// (setup, step, log, checkpoint, evals, export).
type run struct {
	cfg      TrainConfig
	src      SequenceSource
	progress io.Writer
	backend  compute.Backend
	ckDir    string

	st      trainState
	res     Result
	mc      ModelConfig
	srcConf []byte // the config.json the weights came from (kept in exports)
	n       int    // parameter tensors
	params  []*tensors.Tensor
	mom     []*tensors.Tensor // m then v, ParamSpecs order

	gradFirst, gradAcc, update *Exec  // update is nil when AdamW runs on the host
	lanes                      int    // concurrent pieces of a micro-batch
	decay                      []bool // per parameter: AdamW applies weight decay

	metrics       *os.File
	history       []StepMetrics
	flopsPerToken float64
	seqTokens     int64 // sequence tokens per optimizer step
	timed         time.Duration
	timedSteps    int
	evals         *trainEvals // nil without in-training evals
	restoreLimit  func()      // puts back the heap limit the run replaced
}

// Train runs continued pretraining on src and returns a summary. Progress
// lines go to progress (nil for none). It writes checkpoints, metrics.jsonl,
// loss.png, summary.json and the final HF export under cfg.Out, and with
// cfg.Eval.Every the in-training evals (evals.jsonl, evals/, eval PNGs).
func Train(ctx context.Context, cfg TrainConfig, src SequenceSource, progress io.Writer) (Result, error) {
	start := time.Now()
	r, err := newRun(cfg, src, progress)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	if err := r.evalIfDue(true); err != nil {
		return r.res, err
	}
	for r.st.Step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return r.res, err
		}
		m, err := r.step()
		if err != nil {
			return r.res, err
		}
		if err := r.log(m); err != nil {
			return r.res, err
		}
		if cfg.CheckpointEvery > 0 && r.st.Step%cfg.CheckpointEvery == 0 && r.st.Step < cfg.Steps {
			if err := r.checkpoint(); err != nil {
				return r.res, fmt.Errorf("step %d: checkpoint: %w", r.st.Step, err)
			}
		}
		if err := r.evalIfDue(false); err != nil {
			return r.res, err
		}
	}
	if err := r.checkpoint(); err != nil {
		return r.res, fmt.Errorf("final checkpoint: %w", err)
	}
	return r.export(start)
}

// newRun validates cfg, guards the output directory, loads the start
// weights (a checkpoint to resume, cfg.Init or a random init) and compiles
// the three training graphs.
func newRun(cfg TrainConfig, src SequenceSource, progress io.Writer) (*run, error) {
	if progress == nil {
		progress = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := guardOut(cfg); err != nil {
		return nil, err
	}
	restoreLimit, limitDesc, err := applyMemoryLimit(cfg.MemoryLimit)
	if err != nil {
		return nil, err
	}
	spec, schedDesc := trainBackendSpec(cfg)
	backend, err := NewBackend(spec)
	if err != nil {
		restoreLimit()
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, src: src, progress: progress, backend: backend, ckDir: filepath.Join(cfg.Out, "checkpoints"), restoreLimit: restoreLimit}
	if limitDesc != "" {
		fmt.Fprintf(progress, "memory limit: %s\n", limitDesc)
	}
	if schedDesc != "" {
		fmt.Fprintf(progress, "schedule: %s\n", schedDesc)
	}
	w, moments, err := r.startWeights()
	if err != nil {
		r.close()
		return nil, err
	}
	r.res = Result{ResumedFrom: r.st.Step, ConfigHash: r.st.ConfigHash, FirstLoss: r.st.FirstLoss}
	r.mc, r.srcConf, r.n = w.Config, w.SourceConfig, len(w.Config.ParamSpecs())
	r.params = w.Tensors()
	r.mom = make([]*tensors.Tensor, 2*r.n)
	specs, shapes := r.mc.ParamSpecs(), paramShapes(r.mc)
	for i := range r.mom {
		if moments != nil {
			r.mom[i] = tensors.FromFlatDataAndDimensions(moments[i], specs[i%r.n].Shape...)
		} else {
			r.mom[i] = tensors.FromShape(shapes[i%r.n])
		}
	}
	if err := r.compile(); err != nil {
		r.close()
		return nil, err
	}
	if err := r.openMetrics(); err != nil {
		r.close()
		return nil, err
	}
	r.flopsPerToken = r.mc.FlopsPerToken(cfg.SeqLen)
	r.seqTokens = int64(cfg.BatchSize * cfg.GradAccum * cfg.SeqLen)
	r.lanes = lanes(cfg, r.hostUpdate())
	if r.lanes > 1 {
		fmt.Fprintf(progress, "lanes: %d (each micro-batch runs as %d pieces of %d sequences at once)\n", r.lanes, r.lanes, cfg.BatchSize/r.lanes)
	}
	if cfg.Eval.Every > 0 {
		if r.evals, err = newTrainEvals(r); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

// guardOut refuses to train into a directory that holds a run unless told
// to resume it or to start over (--force clears the old run's outputs).
func guardOut(cfg TrainConfig) error {
	var found []string
	for _, name := range runOutputs {
		if _, err := os.Stat(filepath.Join(cfg.Out, name)); err == nil {
			found = append(found, name)
		}
	}
	switch {
	case len(found) == 0 || cfg.Resume:
		return nil
	case !cfg.Force:
		return fmt.Errorf("train: %s already holds a run (%s); pass --resume to continue it or --force to start over",
			cfg.Out, strings.Join(found, ", "))
	}
	for _, name := range found {
		if err := os.RemoveAll(filepath.Join(cfg.Out, name)); err != nil {
			return err
		}
	}
	return nil
}

// runOutputs are what a run leaves in its out directory.
var runOutputs = []string{"checkpoints", "final", "metrics.jsonl", "summary.json", "loss.png", "evals.jsonl", "evals"}

// startWeights returns the latest checkpoint's weights and optimizer
// moments when resuming one, else the initial weights (nil moments).
func (r *run) startWeights() (*Weights, [][]float32, error) {
	cfg := r.cfg
	rh, err := resumeHash(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Resume {
		w, moments, st, err := loadLatestCheckpoint(r.ckDir)
		if err != nil {
			return nil, nil, err
		}
		if w != nil {
			if st.ConfigHash != rh {
				return nil, nil, fmt.Errorf("resume %s: checkpoint was written with different training settings", r.ckDir)
			}
			if err := r.src.Restore(st.SourceState); err != nil {
				return nil, nil, fmt.Errorf("resume %s: %w", r.ckDir, err)
			}
			r.st = st
			fmt.Fprintf(r.progress, "resumed from %s at step %d\n", r.ckDir, st.Step)
			return w, moments, nil
		}
	}
	r.st = trainState{Seed: cfg.Seed, ConfigHash: rh}
	w, err := initialWeights(cfg, r.progress)
	return w, nil, err
}

// compile builds the three graphs of a step: the gradient of the first
// micro-batch, the gradient added to an accumulator for the others, and
// the AdamW update (which also returns the gradient norm).
func (r *run) compile() error {
	model, err := NewModel(r.mc, r.cfg.SeqLen)
	if err != nil {
		return err
	}
	model.BlockSize, model.Recompute = r.cfg.AttentionBlock, r.cfg.Recompute
	if r.cfg.ComputeDType == "bfloat16" {
		model.ComputeDType = dtypes.BFloat16
	}
	n := r.n
	decay := make([]bool, n)
	for i, s := range r.mc.ParamSpecs() {
		decay[i] = s.Decay || r.cfg.Optimizer.DecayNormsAndEmbeddings
	}
	loss := func(in []*Node, batch []*Node) *Node {
		sum, _ := model.Loss(in, Batch{IDs: batch[0], Pos: batch[1], Doc: batch[2]}, batch[3], batch[4])
		return sum
	}
	if r.gradFirst, err = NewExec(r.backend, func(g *Graph, in []*Node) []*Node {
		sum := loss(in[:n], in[n:])
		return append([]*Node{sum}, Gradient(sum, in[:n]...)...)
	}); err != nil {
		return err
	}
	if r.gradAcc, err = NewExec(r.backend, func(g *Graph, in []*Node) []*Node {
		sum := loss(in[:n], in[2*n:])
		out := []*Node{sum}
		for i, gr := range Gradient(sum, in[:n]...) {
			out = append(out, Add(in[n+i], gr))
		}
		return out
	}); err != nil {
		return err
	}
	r.decay = decay
	if r.hostUpdate() {
		if !AsyncPreemptOff() {
			fmt.Fprintln(r.progress, "warning: asynchronous preemption is on: math.Exp runs ~300x slower under GOEXPERIMENT=simd; build with make or set GODEBUG=asyncpreemptoff=1")
		}
		return nil
	}
	r.update, err = NewExec(r.backend, func(g *Graph, in []*Node) []*Node {
		s := in[4*n:]
		np, nm, nv, gnorm := adamWUpdate(r.cfg.Optimizer, decay, in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n], s[0], s[1], s[2], s[3])
		return append(append(append(np, nm...), nv...), gnorm)
	})
	return err
}

// hostUpdate is whether AdamW runs on the host (hostAdamW): on the Go
// backend tensors live in host memory, and one fused pass on all cores
// beats ~19 single-threaded graph passes over every parameter.
func (r *run) hostUpdate() bool { return r.backend.String() == "go" }

func (r *run) close() {
	for _, e := range []*Exec{r.gradFirst, r.gradAcc, r.update} {
		if e != nil {
			e.Finalize()
		}
	}
	if r.metrics != nil {
		r.metrics.Close()
	}
	if r.restoreLimit != nil {
		r.restoreLimit()
	}
}

// openMetrics keeps the metrics.jsonl lines up to the resumed step and
// opens the file for appending.
func (r *run) openMetrics() error {
	path := filepath.Join(r.cfg.Out, "metrics.jsonl")
	history, err := readMetrics(path, r.st.Step)
	if err != nil {
		return err
	}
	if err := rewriteMetrics(path, history); err != nil {
		return err
	}
	r.history = history
	r.metrics, err = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	return err
}

// step runs one optimizer step (GradAccum micro-batches, then AdamW) and
// returns its metrics. A non-finite loss or gradient norm is an error
// naming the step.
func (r *run) step() (StepMetrics, error) {
	cfg := r.cfg
	step := r.st.Step + 1
	t0 := time.Now()
	var lossSum float64
	var count int
	// Each lane accumulates its own pieces; the lanes are summed in lane
	// order at the end, so the result does not depend on timing.
	accs := make([][]*tensors.Tensor, r.lanes)
	losses := make([]float64, r.lanes)
	errs := make([]error, r.lanes)
	if r.lanes > 1 {
		// Lanes share the parameters: each is moved to the device here, once,
		// because two executions converting the same host tensor at once race
		// inside GoMLX (one sees it with neither copy).
		for i, p := range r.params {
			if err := p.MaterializeOnDevice(r.backend, true, 0); err != nil {
				return StepMetrics{}, fmt.Errorf("step %d: parameter %d: %w", step, i, err)
			}
		}
	}
	for range cfg.GradAccum {
		pieces, tokens, err := r.batch(step)
		if err != nil {
			return StepMetrics{}, err
		}
		var wg sync.WaitGroup
		for l, hb := range pieces {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var loss float64
				loss, accs[l], errs[l] = r.gradient(hb, accs[l])
				losses[l] += loss
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return StepMetrics{}, fmt.Errorf("step %d: gradient: %w", step, err)
		}
		count += tokens
	}
	for _, l := range losses {
		lossSum += l
	}
	acc, err := sumLanes(accs)
	if err != nil {
		return StepMetrics{}, fmt.Errorf("step %d: %w", step, err)
	}
	lr := cfg.Optimizer.LRAt(r.st.Step, cfg.Steps)
	gnorm, err := r.applyUpdate(step, lr, acc, count)
	if err != nil {
		return StepMetrics{}, err
	}
	lossAvg := lossSum / float64(max(count, 1))
	if math.IsNaN(lossAvg) || math.IsInf(lossAvg, 0) || math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
		return StepMetrics{}, fmt.Errorf("step %d: non-finite loss %v or gradient norm %v (lr %.3g); stopped, the last checkpoint is intact", step, lossAvg, gnorm, lr)
	}
	r.st.Step = step
	r.st.Tokens += int64(count)
	dt := time.Since(t0)
	if step > r.res.ResumedFrom+1 || cfg.Steps-r.res.ResumedFrom == 1 { // the first step compiles
		r.timed += dt
		r.timedSteps++
	}
	if step == 1 {
		r.st.FirstLoss, r.res.FirstLoss = lossAvg, lossAvg
	}
	m := StepMetrics{Step: step, Loss: lossAvg, LR: lr, GradNorm: gnorm, Tokens: r.st.Tokens,
		TokensPerS: float64(r.seqTokens) / dt.Seconds()}
	if cfg.PeakTFLOPS > 0 {
		m.MFU = m.TokensPerS * r.flopsPerToken / (cfg.PeakTFLOPS * 1e12)
	}
	return m, nil
}

// applyUpdate runs AdamW on the accumulated gradients (summed over count
// target tokens), replaces the parameters and moments, and returns the
// gradient norm.
func (r *run) applyUpdate(step int, lr float64, acc []*tensors.Tensor, count int) (float64, error) {
	if r.hostUpdate() {
		n := r.n
		gnorm, err := hostAdamW(r.cfg.Optimizer, r.decay, r.params, r.mom[:n], r.mom[n:], acc, lr, step, float64(max(count, 1)))
		if err != nil {
			return 0, fmt.Errorf("step %d: update: %w", step, err)
		}
		for _, a := range acc {
			a.FinalizeAll()
		}
		return gnorm, nil
	}
	n, t := r.n, float64(step)
	args := make([]any, 0, 4*n+4)
	for _, x := range append(append(append([]*tensors.Tensor(nil), r.params...), r.mom...), acc...) {
		args = append(args, x)
	}
	args = append(args, tensors.FromScalar(float32(lr)),
		tensors.FromScalar(float32(1-math.Pow(r.cfg.Optimizer.Beta1, t))), tensors.FromScalar(float32(1-math.Pow(r.cfg.Optimizer.Beta2, t))),
		tensors.FromScalar(float32(max(count, 1))))
	out, err := r.update.Exec(args...)
	if err != nil {
		return 0, fmt.Errorf("step %d: update: %w", step, err)
	}
	for _, x := range append(append(r.params, r.mom...), acc...) {
		x.FinalizeAll()
	}
	r.params, r.mom = out[:n], out[n:3*n]
	gnorm := float64(tensors.MustCopyFlatData[float32](out[3*n])[0])
	out[3*n].FinalizeAll()
	return gnorm, nil
}

// gradient runs one piece of a micro-batch: the loss sum and the gradients,
// added to acc (nil for the first piece of a lane, whose gradients start
// the sum). It is safe for concurrent use: Exec runs a compiled graph from
// several goroutines.
func (r *run) gradient(hb HostBatch, acc []*tensors.Tensor) (float64, []*tensors.Tensor, error) {
	args := make([]any, 0, 2*r.n+5)
	for _, p := range r.params {
		args = append(args, p)
	}
	ex := r.gradFirst
	if acc != nil {
		ex = r.gradAcc
		for _, a := range acc {
			args = append(args, a)
		}
	}
	args = append(args, hb.IDs, hb.Pos, hb.Doc, hb.Targets, hb.Weights)
	out, err := ex.Exec(args...)
	if err != nil {
		return 0, acc, err
	}
	loss := float64(tensors.MustCopyFlatData[float32](out[0])[0])
	out[0].FinalizeAll()
	for _, a := range acc {
		a.FinalizeAll()
	}
	return loss, out[1:], nil
}

// lanes is how many pieces of a micro-batch run at once. The Go backend
// runs every op but matmul on one core and cannot overlap ops within a
// graph, so independent pieces of the batch, each its own execution, are
// what fills the other cores. Elsewhere (XLA) one execution already uses
// the device. The default does not look at the machine: lanes change the
// float rounding, and a config must train the same everywhere.
func lanes(cfg TrainConfig, goBackend bool) int {
	switch {
	case cfg.Lanes > 0:
		return cfg.Lanes
	case goBackend && cfg.BatchSize%2 == 0:
		return 2
	}
	return 1
}

// sumLanes adds every lane's gradients into the first lane's, in lane
// order, and frees the others.
func sumLanes(accs [][]*tensors.Tensor) ([]*tensors.Tensor, error) {
	for _, other := range accs[1:] {
		for i, t := range other {
			var src []float32
			if err := t.ConstFlatData(func(flat any) { src = flat.([]float32) }); err != nil {
				return nil, fmt.Errorf("gradient %d: %w", i, err)
			}
			err := accs[0][i].MutableFlatData(func(flat any) {
				dst := flat.([]float32)
				parallelChunks(len(dst), func(_, from, to int) {
					for j := from; j < to; j++ {
						dst[j] += src[j]
					}
				})
			})
			if err != nil {
				return nil, fmt.Errorf("gradient %d: %w", i, err)
			}
			t.FinalizeAll()
		}
	}
	return accs[0], nil
}

// batch reads one micro-batch, checks its tokens against the vocabulary
// and lays it out as r.lanes pieces; it returns the pieces and their target
// tokens in total.
func (r *run) batch(step int) ([]HostBatch, int, error) {
	seqs := make([]shards.Sequence, r.cfg.BatchSize)
	for i := range seqs {
		var err error
		if seqs[i], err = r.src.Next(); err != nil {
			return nil, 0, fmt.Errorf("step %d: data: %w", step, err)
		}
		for _, tok := range seqs[i].Tokens {
			if int(tok) >= r.mc.VocabSize {
				return nil, 0, fmt.Errorf("step %d: token %d outside the vocabulary of %d", step, tok, r.mc.VocabSize)
			}
		}
	}
	per := len(seqs) / r.lanes
	pieces := make([]HostBatch, r.lanes)
	tokens := 0
	for l := range pieces {
		hb, err := MakeBatch(seqs[l*per:(l+1)*per], r.cfg.SeqLen, r.cfg.Documents)
		if err != nil {
			return nil, 0, fmt.Errorf("step %d: %w", step, err)
		}
		pieces[l], tokens = hb, tokens+hb.Tokens
	}
	return pieces, tokens, nil
}

// log appends the step's metrics to metrics.jsonl and prints a progress
// line every LogEvery steps, at the first and at the last.
func (r *run) log(m StepMetrics) error {
	line, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("step %d: metrics: %w", m.Step, err)
	}
	if _, err := r.metrics.Write(append(line, '\n')); err != nil {
		return err
	}
	r.history = append(r.history, m)
	cfg := r.cfg
	if cfg.LogEvery <= 0 || (m.Step%cfg.LogEvery != 0 && m.Step != cfg.Steps && m.Step != r.res.ResumedFrom+1) {
		return nil
	}
	eta := "?"
	if r.timedSteps > 0 {
		eta = (r.timed / time.Duration(r.timedSteps) * time.Duration(cfg.Steps-m.Step)).Round(time.Second).String()
	}
	mfu := ""
	if m.MFU > 0 {
		mfu = fmt.Sprintf("  MFU %.1f%%", 100*m.MFU)
	}
	fmt.Fprintf(r.progress, "step %d/%d  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  %.2f TFLOP/s%s  ETA %s%s\n",
		m.Step, cfg.Steps, m.Loss, m.LR, m.GradNorm, m.TokensPerS, m.TokensPerS*r.flopsPerToken/1e12, mfu, eta, r.evals.latest())
	return nil
}

// checkpoint saves weights, moments and the data position.
func (r *run) checkpoint() error {
	ss, err := r.src.State()
	if err != nil {
		return err
	}
	r.st.SourceState = ss
	return saveCheckpoint(r.ckDir, r.cfg.KeepCheckpoints, r.mc, r.srcConf, r.params, r.mom, r.st)
}

// export writes the final HF model, loss.png and summary.json.
func (r *run) export(start time.Time) (Result, error) {
	cfg, res := r.cfg, &r.res
	final, err := WeightsFromTensors(r.mc, r.params)
	if err != nil {
		return *res, err
	}
	final.SourceConfig = r.srcConf
	res.Steps, res.Tokens, res.Weights = r.st.Step, r.st.Tokens, final
	if len(r.history) > 0 {
		res.FinalLoss = r.history[len(r.history)-1].Loss
	}
	if r.timedSteps > 0 {
		res.TokensPerS = float64(r.seqTokens) * float64(r.timedSteps) / r.timed.Seconds()
		res.FLOPsPerS = res.TokensPerS * r.flopsPerToken
		if cfg.PeakTFLOPS > 0 {
			res.MFU = res.FLOPsPerS / (cfg.PeakTFLOPS * 1e12)
		}
	}
	res.Export = filepath.Join(cfg.Out, "final")
	if err := SaveHF(res.Export, final, strings.ToUpper(cfg.ExportDType)); err != nil {
		return *res, fmt.Errorf("export: %w", err)
	}
	res.Metrics = filepath.Join(cfg.Out, "metrics.jsonl")
	res.Plot = filepath.Join(cfg.Out, "loss.png")
	if err := PlotLoss(res.Plot, r.history); err != nil {
		return *res, fmt.Errorf("loss plot: %w", err)
	}
	sum, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return *res, err
	}
	if err := writeFileAtomic(filepath.Join(cfg.Out, "summary.json"), append(sum, '\n')); err != nil {
		return *res, err
	}
	evals := ""
	if res.EvalSeconds > 0 {
		evals = fmt.Sprintf(" (+ %s in %d evals, not in tok/s)", (time.Duration(res.EvalSeconds * float64(time.Second))).Round(time.Second), res.EvalPoints)
	}
	fmt.Fprintf(r.progress, "trained %d steps (%d target tokens) in %s%s: loss %.4f -> %.4f, %.0f tok/s; export %s\n",
		r.st.Step-res.ResumedFrom, r.st.Tokens, time.Since(start).Round(time.Second), evals, res.FirstLoss, res.FinalLoss, res.TokensPerS, res.Export)
	return *res, nil
}

// initialWeights loads cfg.Init or draws a random model, then applies the
// new RoPE base and context.
func initialWeights(cfg TrainConfig, progress io.Writer) (*Weights, error) {
	var w *Weights
	var err error
	if cfg.Init != "" {
		w, err = LoadHF(cfg.Init)
	} else {
		var mc ModelConfig
		if mc, err = LoadModelConfig(cfg.ModelConfig); err == nil {
			w, err = InitWeights(mc, cfg.Seed)
		}
	}
	if err != nil {
		return nil, err
	}
	if cfg.Rope.Plan != "" {
		if err := applyRopePlan(cfg.Rope, &w.Config, progress); err != nil {
			return nil, err
		}
		return w, w.Config.Validate()
	}
	if cfg.RopeTheta > 0 {
		w.Config.RopeTheta = cfg.RopeTheta
	}
	w.Config.MaxPositionEmbeddings = cfg.MaxPositions
	if cfg.MaxPositions == 0 {
		w.Config.MaxPositionEmbeddings = max(cfg.SeqLen, w.Config.MaxPositionEmbeddings)
	}
	return w, w.Config.Validate()
}
