package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

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

	Optimizer OptimizerConfig `yaml:"optimizer"`
	Documents Documents       `yaml:"documents"`

	AttentionBlock int    `yaml:"attention_block" help:"attention block size (tokens)"`
	Recompute      bool   `yaml:"recompute" help:"recompute each layer's activations in the backward pass"`
	ComputeDType   string `yaml:"compute_dtype" help:"float32 or bfloat16 (linear layers; f32 master weights)"`

	Out             string  `yaml:"out" help:"output directory: checkpoints/, final/, metrics.jsonl, loss.png"`
	CheckpointEvery int     `yaml:"checkpoint_every" help:"steps between checkpoints (0 = only at the end)"`
	KeepCheckpoints int     `yaml:"keep_checkpoints" help:"checkpoints kept (older ones are deleted; 0 = all)"`
	Resume          bool    `yaml:"resume" help:"continue from the latest checkpoint in out/checkpoints"`
	ExportDType     string  `yaml:"export_dtype" help:"dtype of the final HF export: F32, BF16 or F16"`
	LogEvery        int     `yaml:"log_every" help:"steps between progress lines"`
	Backend         string  `yaml:"backend" help:"GoMLX backend (default $GOMLX_BACKEND, else go:ops_sequential,creation_order)"`
	PeakTFLOPS      float64 `yaml:"peak_tflops" help:"accelerator peak TFLOP/s for the MFU estimate (0 = not shown)"`
}

// DefaultTrainConfig returns the defaults every config file starts from.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		SeqLen: 2048, BatchSize: 1, GradAccum: 1, Steps: 100, Optimizer: DefaultOptimizer(),
		Documents: Documents{Mask: true, ResetPositions: true}, AttentionBlock: 512, Recompute: true,
		ComputeDType: "float32", Out: "train-out", CheckpointEvery: 100, KeepCheckpoints: 2, ExportDType: "BF16", LogEvery: 10,
	}
}

// Validate checks the settings that do not need any file.
func (c TrainConfig) Validate() error {
	switch {
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
// is checked by the source) and reporting settings are left out, and so is
// steps, so a finished run can be extended.
func resumeHash(c TrainConfig) (string, error) {
	c.ModelConfig, c.Init, c.Data, c.Out, c.ExportDType = "", "", "", "", ""
	c.Resume, c.Steps, c.LogEvery, c.CheckpointEvery, c.KeepCheckpoints, c.Backend, c.PeakTFLOPS = false, 0, 0, 0, 0, "", 0
	return config.Hash(c)
}

// Train runs continued pretraining on src and returns a summary. Progress
// lines go to progress (nil for none). It writes checkpoints, metrics.jsonl,
// loss.png, summary.json and the final HF export under cfg.Out.
func Train(ctx context.Context, cfg TrainConfig, src SequenceSource, progress io.Writer) (Result, error) {
	if progress == nil {
		progress = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	backend, err := NewBackend(cfg.Backend)
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return Result{}, err
	}
	ckDir := filepath.Join(cfg.Out, "checkpoints")
	rh, err := resumeHash(cfg)
	if err != nil {
		return Result{}, err
	}
	st := trainState{Seed: cfg.Seed, ConfigHash: rh}
	var w *Weights
	var moments [][]float32 // m then v, ParamSpecs order
	if cfg.Resume {
		w, moments, st, err = loadLatestCheckpoint(ckDir)
		if err != nil {
			return Result{}, err
		}
		if w != nil {
			if st.ConfigHash != rh {
				return Result{}, fmt.Errorf("resume %s: checkpoint was written with different training settings", ckDir)
			}
			if err := src.Restore(st.SourceState); err != nil {
				return Result{}, fmt.Errorf("resume %s: %w", ckDir, err)
			}
			fmt.Fprintf(progress, "resumed from %s at step %d\n", ckDir, st.Step)
		}
	}
	if w == nil {
		st = trainState{Seed: cfg.Seed, ConfigHash: rh}
		if w, err = initialWeights(cfg); err != nil {
			return Result{}, err
		}
	}
	res := Result{ResumedFrom: st.Step, ConfigHash: st.ConfigHash, FirstLoss: st.FirstLoss}
	mc := w.Config

	model, err := NewModel(mc, cfg.SeqLen)
	if err != nil {
		return Result{}, err
	}
	model.BlockSize, model.Recompute = cfg.AttentionBlock, cfg.Recompute
	if cfg.ComputeDType == "bfloat16" {
		model.ComputeDType = dtypes.BFloat16
	}
	specs := mc.ParamSpecs()
	n := len(specs)
	decay := make([]bool, n)
	for i, s := range specs {
		decay[i] = s.Decay || (cfg.Optimizer.DecayNormsAndEmbeddings)
	}

	loss := func(in []*Node, batch []*Node) (*Node, *Node) {
		return model.Loss(in, Batch{IDs: batch[0], Pos: batch[1], Doc: batch[2]}, batch[3], batch[4])
	}
	gradFirst, err := NewExec(backend, func(g *Graph, in []*Node) []*Node {
		sum, _ := loss(in[:n], in[n:])
		return append([]*Node{sum}, Gradient(sum, in[:n]...)...)
	})
	if err != nil {
		return Result{}, err
	}
	gradAcc, err := NewExec(backend, func(g *Graph, in []*Node) []*Node {
		sum, _ := loss(in[:n], in[2*n:])
		grads := Gradient(sum, in[:n]...)
		out := []*Node{sum}
		for i, gr := range grads {
			out = append(out, Add(in[n+i], gr))
		}
		return out
	})
	if err != nil {
		return Result{}, err
	}
	update, err := NewExec(backend, func(g *Graph, in []*Node) []*Node {
		s := in[4*n:]
		np, nm, nv, gnorm := adamWUpdate(cfg.Optimizer, decay, in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n], s[0], s[1], s[2], s[3])
		return append(append(append(np, nm...), nv...), gnorm)
	})
	if err != nil {
		return Result{}, err
	}
	defer gradFirst.Finalize()
	defer gradAcc.Finalize()
	defer update.Finalize()

	params := w.Tensors()
	mom := make([]*tensors.Tensor, 2*n)
	for i := range mom {
		s := specs[i%n]
		if moments != nil {
			mom[i] = tensors.FromFlatDataAndDimensions(moments[i], s.Shape...)
		} else {
			mom[i] = tensors.FromShape(paramShapes(mc)[i%n])
		}
	}

	metricsPath := filepath.Join(cfg.Out, "metrics.jsonl")
	history, err := readMetrics(metricsPath, st.Step)
	if err != nil {
		return Result{}, err
	}
	if err := rewriteMetrics(metricsPath, history); err != nil {
		return Result{}, err
	}
	mf, err := os.OpenFile(metricsPath, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return Result{}, err
	}
	defer mf.Close()

	flopsPerToken := mc.FlopsPerToken(cfg.SeqLen)
	seqTokensPerStep := int64(cfg.BatchSize * cfg.GradAccum * cfg.SeqLen)
	var timed time.Duration
	var timedSteps int
	start := time.Now()
	saveCk := func() error {
		ss, err := src.State()
		if err != nil {
			return err
		}
		st.SourceState = ss
		return saveCheckpoint(ckDir, cfg.KeepCheckpoints, mc, w.SourceConfig, params, mom, st)
	}
	for st.Step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		t0 := time.Now()
		var lossSum float64
		var count int
		var acc []*tensors.Tensor
		for micro := range cfg.GradAccum {
			seqs := make([]shards.Sequence, cfg.BatchSize)
			for i := range seqs {
				if seqs[i], err = src.Next(); err != nil {
					return res, fmt.Errorf("step %d: data: %w", st.Step+1, err)
				}
			}
			hb, err := MakeBatch(seqs, cfg.SeqLen, cfg.Documents)
			if err != nil {
				return res, fmt.Errorf("step %d: %w", st.Step+1, err)
			}
			for _, s := range seqs {
				for _, tok := range s.Tokens {
					if int(tok) >= mc.VocabSize {
						return res, fmt.Errorf("step %d: token %d outside the vocabulary of %d", st.Step+1, tok, mc.VocabSize)
					}
				}
			}
			args := make([]any, 0, 2*n+5)
			for _, p := range params {
				args = append(args, p)
			}
			ex := gradFirst
			if micro > 0 {
				ex = gradAcc
				for _, a := range acc {
					args = append(args, a)
				}
			}
			args = append(args, hb.IDs, hb.Pos, hb.Doc, hb.Targets, hb.Weights)
			out, err := ex.Exec(args...)
			if err != nil {
				return res, fmt.Errorf("step %d: gradient: %w", st.Step+1, err)
			}
			lossSum += float64(tensors.MustCopyFlatData[float32](out[0])[0])
			out[0].FinalizeAll()
			for _, a := range acc {
				a.FinalizeAll()
			}
			acc = out[1:]
			count += hb.Tokens
		}
		lr := cfg.Optimizer.LRAt(st.Step, cfg.Steps)
		t := float64(st.Step + 1)
		args := make([]any, 0, 4*n+4)
		for _, p := range params {
			args = append(args, p)
		}
		for _, p := range mom {
			args = append(args, p)
		}
		for _, a := range acc {
			args = append(args, a)
		}
		args = append(args, tensors.FromScalar(float32(lr)),
			tensors.FromScalar(float32(1-math.Pow(cfg.Optimizer.Beta1, t))), tensors.FromScalar(float32(1-math.Pow(cfg.Optimizer.Beta2, t))),
			tensors.FromScalar(float32(max(count, 1))))
		out, err := update.Exec(args...)
		if err != nil {
			return res, fmt.Errorf("step %d: update: %w", st.Step+1, err)
		}
		for _, x := range append(append(params, mom...), acc...) {
			x.FinalizeAll()
		}
		params, mom = out[:n], out[n:3*n]
		gnorm := float64(tensors.MustCopyFlatData[float32](out[3*n])[0])
		out[3*n].FinalizeAll()
		st.Step++
		st.Tokens += int64(count)
		dt := time.Since(t0)
		if st.Step > res.ResumedFrom+1 || cfg.Steps-res.ResumedFrom == 1 { // the first step compiles
			timed += dt
			timedSteps++
		}
		lossAvg := lossSum / float64(max(count, 1))
		if st.Step == 1 {
			st.FirstLoss = lossAvg
			res.FirstLoss = lossAvg
		}
		m := StepMetrics{Step: st.Step, Loss: lossAvg, LR: lr, GradNorm: gnorm, Tokens: st.Tokens,
			TokensPerS: float64(seqTokensPerStep) / dt.Seconds()}
		if cfg.PeakTFLOPS > 0 {
			m.MFU = m.TokensPerS * flopsPerToken / (cfg.PeakTFLOPS * 1e12)
		}
		line, _ := json.Marshal(m)
		if _, err := mf.Write(append(line, '\n')); err != nil {
			return res, err
		}
		history = append(history, m)
		if cfg.LogEvery > 0 && (st.Step%cfg.LogEvery == 0 || st.Step == cfg.Steps || st.Step == res.ResumedFrom+1) {
			eta := "?"
			if timedSteps > 0 {
				eta = (timed / time.Duration(timedSteps) * time.Duration(cfg.Steps-st.Step)).Round(time.Second).String()
			}
			mfu := ""
			if m.MFU > 0 {
				mfu = fmt.Sprintf("  MFU %.1f%%", 100*m.MFU)
			}
			fmt.Fprintf(progress, "step %d/%d  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  %.2f TFLOP/s%s  ETA %s\n",
				st.Step, cfg.Steps, lossAvg, lr, gnorm, m.TokensPerS, m.TokensPerS*flopsPerToken/1e12, mfu, eta)
		}
		if cfg.CheckpointEvery > 0 && st.Step%cfg.CheckpointEvery == 0 && st.Step < cfg.Steps {
			if err := saveCk(); err != nil {
				return res, fmt.Errorf("step %d: checkpoint: %w", st.Step, err)
			}
		}
	}
	if err := saveCk(); err != nil {
		return res, fmt.Errorf("final checkpoint: %w", err)
	}
	final, err := WeightsFromTensors(mc, params)
	if err != nil {
		return res, err
	}
	final.SourceConfig = w.SourceConfig
	res.Steps, res.Tokens, res.Weights = st.Step, st.Tokens, final
	if len(history) > 0 {
		res.FinalLoss = history[len(history)-1].Loss
	}
	if timedSteps > 0 {
		res.TokensPerS = float64(seqTokensPerStep) * float64(timedSteps) / timed.Seconds()
		res.FLOPsPerS = res.TokensPerS * flopsPerToken
		if cfg.PeakTFLOPS > 0 {
			res.MFU = res.FLOPsPerS / (cfg.PeakTFLOPS * 1e12)
		}
	}
	res.Export = filepath.Join(cfg.Out, "final")
	if err := SaveHF(res.Export, final, strings.ToUpper(cfg.ExportDType)); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	res.Metrics = metricsPath
	res.Plot = filepath.Join(cfg.Out, "loss.png")
	if err := PlotLoss(res.Plot, history); err != nil {
		return res, fmt.Errorf("loss plot: %w", err)
	}
	sum, _ := json.MarshalIndent(res, "", "  ")
	if err := writeFileAtomic(filepath.Join(cfg.Out, "summary.json"), append(sum, '\n')); err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "trained %d steps (%d target tokens) in %s: loss %.4f -> %.4f, %.0f tok/s; export %s\n",
		st.Step-res.ResumedFrom, st.Tokens, time.Since(start).Round(time.Second), res.FirstLoss, res.FinalLoss, res.TokensPerS, res.Export)
	return res, nil
}

// initialWeights loads cfg.Init or draws a random model, then applies the
// new RoPE base and context.
func initialWeights(cfg TrainConfig) (*Weights, error) {
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
	if cfg.RopeTheta > 0 {
		w.Config.RopeTheta = cfg.RopeTheta
	}
	w.Config.MaxPositionEmbeddings = cfg.MaxPositions
	if cfg.MaxPositions == 0 {
		w.Config.MaxPositionEmbeddings = max(cfg.SeqLen, w.Config.MaxPositionEmbeddings)
	}
	return w, w.Config.Validate()
}
