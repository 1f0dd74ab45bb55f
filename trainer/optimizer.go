package trainer

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/core/tensors"

	. "github.com/gomlx/gomlx/core/graph"
)

// OptimizerConfig is AdamW with global-norm clipping and an LR schedule.
type OptimizerConfig struct {
	LR          float64 `yaml:"lr" help:"peak learning rate"`
	MinLR       float64 `yaml:"min_lr" help:"learning rate at the end of the decay"`
	Schedule    string  `yaml:"schedule" help:"constant, cosine or linear (decay after warmup)"`
	WarmupSteps int     `yaml:"warmup_steps" help:"linear warmup steps from 0 to lr"`
	Beta1       float64 `yaml:"beta1" help:"AdamW beta1"`
	Beta2       float64 `yaml:"beta2" help:"AdamW beta2"`
	Eps         float64 `yaml:"eps" help:"AdamW epsilon"`
	WeightDecay float64 `yaml:"weight_decay" help:"decoupled weight decay (matrices only by default)"`
	// DecayNormsAndEmbeddings applies weight decay to every tensor; by
	// default norms, biases and embeddings are excluded.
	DecayNormsAndEmbeddings bool    `yaml:"decay_norms_and_embeddings" help:"also decay norms and embeddings"`
	ClipNorm                float64 `yaml:"clip_norm" help:"global gradient-norm clip (0 = off)"`
}

// DefaultOptimizer follows common SmolLM2/EasyContext continued-pretraining
// settings.
func DefaultOptimizer() OptimizerConfig {
	return OptimizerConfig{LR: 3e-4, MinLR: 3e-5, Schedule: "cosine", WarmupSteps: 10, Beta1: 0.9, Beta2: 0.95,
		Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 1.0}
}

// Validate checks the schedule name and ranges.
func (o OptimizerConfig) Validate() error {
	switch o.Schedule {
	case "constant", "cosine", "linear":
	default:
		return fmt.Errorf("optimizer: schedule %q, want constant, cosine or linear", o.Schedule)
	}
	if o.LR <= 0 || o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 || o.Eps <= 0 || o.WeightDecay < 0 || o.ClipNorm < 0 || o.WarmupSteps < 0 {
		return fmt.Errorf("optimizer: out-of-range settings %+v", o)
	}
	return nil
}

// LRAt returns the learning rate of step (0-based) out of total steps:
// linear warmup to LR, then constant, or cosine/linear decay to MinLR.
func (o OptimizerConfig) LRAt(step, total int) float64 {
	if step < o.WarmupSteps {
		return o.LR * float64(step+1) / float64(o.WarmupSteps)
	}
	if o.Schedule == "constant" || total <= o.WarmupSteps {
		return o.LR
	}
	frac := float64(step-o.WarmupSteps) / float64(max(1, total-o.WarmupSteps-1))
	frac = min(1, max(0, frac))
	switch o.Schedule {
	case "cosine":
		return o.MinLR + (o.LR-o.MinLR)*0.5*(1+math.Cos(math.Pi*frac))
	default: // linear
		return o.LR + (o.MinLR-o.LR)*frac
	}
}

// adamWUpdate builds the AdamW step in the graph. grads are gradient sums
// over count target tokens; lr, bc1 = 1-β1^t and bc2 = 1-β2^t are scalar
// inputs so one compiled graph serves every step. It returns new params,
// first and second moments, and the global gradient norm before clipping.
func adamWUpdate(o OptimizerConfig, decay []bool, params, m, v, grads []*Node, lr, bc1, bc2, count *Node) (np, nm, nv []*Node, gnorm *Node) {
	g := make([]*Node, len(grads))
	var sq *Node
	for i, gr := range grads {
		g[i] = Div(gr, count)
		s := ReduceAllSum(Square(g[i]))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	gnorm = Sqrt(sq)
	scale := OnesLike(gnorm)
	if o.ClipNorm > 0 {
		// min(1, clip / norm): gradients are scaled only when the norm exceeds clip.
		scale = Min(scale, Div(ConstAs(gnorm, o.ClipNorm), Max(gnorm, ConstAs(gnorm, 1e-12))))
	}
	for i := range params {
		gi := Mul(g[i], scale)
		mi := Add(MulScalar(m[i], o.Beta1), MulScalar(gi, 1-o.Beta1))
		vi := Add(MulScalar(v[i], o.Beta2), MulScalar(Square(gi), 1-o.Beta2))
		p := params[i]
		if decay[i] && o.WeightDecay > 0 {
			// PyTorch AdamW order: p ← p·(1 − lr·wd), then the Adam step.
			p = Mul(p, OneMinus(MulScalar(lr, o.WeightDecay)))
		}
		denom := AddScalar(Sqrt(Div(vi, bc2)), o.Eps)
		p = Sub(p, Mul(lr, Div(Div(mi, bc1), denom)))
		np, nm, nv = append(np, p), append(nm, mi), append(nv, vi)
	}
	return np, nm, nv, gnorm
}

// hostAdamW is adamWUpdate on host memory, for the Go backend whose tensors
// already live there: one fused pass per tensor that reads the gradient,
// both moments and the weights once and writes them in place, split over
// every core. In the graph the same update is ~19 single-threaded passes
// over every parameter (the Go backend runs elementwise ops on one core),
// a large share of a step for small models. The arithmetic is
// adamWUpdate's, operation for operation in float32; only the gradient
// norm is summed in float64. Chunks are fixed, so the result does not
// depend on the number of cores.
func hostAdamW(o OptimizerConfig, decay []bool, params, m, v, grads []*tensors.Tensor, lr float64, step int, count float64) (gnorm float64, err error) {
	g := make([][]float32, len(grads))
	for i, t := range grads {
		if err := t.ConstFlatData(func(flat any) { g[i] = flat.([]float32) }); err != nil {
			return 0, fmt.Errorf("gradient %d: %w", i, err)
		}
	}
	cnt := float32(count)
	var sq float64
	for _, gi := range g {
		parts := make([]float64, (len(gi)+hostChunk-1)/hostChunk)
		parallelChunks(len(gi), func(c, from, to int) {
			var s float64
			for _, x := range gi[from:to] {
				x /= cnt
				s += float64(x) * float64(x)
			}
			parts[c] = s
		})
		for _, s := range parts {
			sq += s
		}
	}
	gnorm = math.Sqrt(sq)
	scale := float32(1)
	if o.ClipNorm > 0 {
		scale = min(1, float32(o.ClipNorm)/float32(max(gnorm, 1e-12)))
	}
	t := float64(step)
	k := adamwStep{cnt: cnt, scale: scale, b1: float32(o.Beta1), b2: float32(o.Beta2),
		bc1: float32(1 - math.Pow(o.Beta1, t)), bc2: float32(1 - math.Pow(o.Beta2, t)), lr: float32(lr), eps: float32(o.Eps)}
	for i := range params {
		k.keep = 1
		if decay[i] && o.WeightDecay > 0 {
			k.keep = 1 - k.lr*float32(o.WeightDecay)
		}
		err := mutable3(params[i], m[i], v[i], func(p, mi, vi []float32) {
			gi := g[i]
			parallelChunks(len(p), func(_, from, to int) {
				adamwRange(p[from:to], mi[from:to], vi[from:to], gi[from:to], k)
			})
		})
		if err != nil {
			return 0, fmt.Errorf("parameter %d: %w", i, err)
		}
	}
	return gnorm, nil
}

// hostChunk is the number of elements one goroutine updates at a time.
const hostChunk = 1 << 16

// parallelChunks calls fn for every hostChunk-sized range of [0, n) on all
// cores; c is the chunk index.
func parallelChunks(n int, fn func(c, from, to int)) {
	chunks := (n + hostChunk - 1) / hostChunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		for c := range chunks {
			fn(c, c*hostChunk, min(n, (c+1)*hostChunk))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				fn(c, c*hostChunk, min(n, (c+1)*hostChunk))
			}
		})
	}
	wg.Wait()
}

// mutable3 gives fn write access to three float32 tensors' host data.
func mutable3(a, b, c *tensors.Tensor, fn func(a, b, c []float32)) error {
	var errB, errC error
	errA := a.MutableFlatData(func(fa any) {
		errB = b.MutableFlatData(func(fb any) {
			errC = c.MutableFlatData(func(fc any) { fn(fa.([]float32), fb.([]float32), fc.([]float32)) })
		})
	})
	return errors.Join(errA, errB, errC)
}
