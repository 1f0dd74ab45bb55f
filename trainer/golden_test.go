package trainer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/shards"
)

// Goldens from PyTorch (trainer/testdata/gen/torch_golden.py): an HF-convention
// Llama in float64 on longctx's packed-batch layout, trained two steps with
// torch.optim.AdamW. The tests below run the trainer's own graph and loop on
// the same weights and sequences and compare within float32 tolerance.

var goldenCases = []string{"tied_gqa", "untied_mqa"}

type goldenJSON struct {
	TorchVersion string          `json:"torch_version"`
	SeqLen       int             `json:"seq_len"`
	BatchSize    int             `json:"batch_size"`
	GradAccum    int             `json:"grad_accum"`
	Steps        int             `json:"steps"`
	Optimizer    goldenOptimizer `json:"optimizer"`
	Sequences    []struct {
		Tokens []uint32 `json:"tokens"`
		Starts []uint32 `json:"starts"`
		Pad    uint32   `json:"pad"`
	} `json:"sequences"`
	Layout struct {
		IDs     [][]int32   `json:"ids"`
		Pos     [][]int32   `json:"pos"`
		Doc     [][]int32   `json:"doc"`
		Targets [][]int32   `json:"targets"`
		Weights [][]float32 `json:"weights"`
	} `json:"layout"`
	StepResults []struct {
		Loss     float64 `json:"loss"`
		LR       float64 `json:"lr"`
		GradNorm float64 `json:"grad_norm"`
		Count    int     `json:"count"`
	} `json:"step_results"`
	Decay []string `json:"decay"`
}

// goldenOptimizer is OptimizerConfig under the golden file's names (the
// trainer's config has YAML tags only).
type goldenOptimizer struct {
	LR          float64 `json:"lr"`
	MinLR       float64 `json:"min_lr"`
	Schedule    string  `json:"schedule"`
	WarmupSteps int     `json:"warmup_steps"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	ClipNorm    float64 `json:"clip_norm"`
}

type goldenCase struct {
	dir     string
	w       *Weights
	g       goldenJSON
	tensors map[string]Tensor
}

func loadGolden(t *testing.T, name string) goldenCase {
	t.Helper()
	dir := filepath.Join("testdata", "golden", name)
	w, err := LoadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	gc := goldenCase{dir: dir, w: w, tensors: map[string]Tensor{}}
	if err := json.Unmarshal(data, &gc.g); err != nil {
		t.Fatalf("%s/golden.json: %v", dir, err)
	}
	ts, _, err := ReadSafetensors(filepath.Join(dir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		gc.tensors[x.Name] = x
	}
	return gc
}

func (gc goldenCase) tensor(t *testing.T, name string) []float32 {
	t.Helper()
	x, ok := gc.tensors[name]
	if !ok {
		t.Fatalf("%s: golden tensor %s missing", gc.dir, name)
	}
	return x.Data
}

// sequences returns the sequences of micro-batch i (0-based over the run).
func (gc goldenCase) sequences(i int) []shards.Sequence {
	B := gc.g.BatchSize
	var out []shards.Sequence
	for _, s := range gc.g.Sequences[i*B : (i+1)*B] {
		out = append(out, shards.Sequence{Tokens: s.Tokens, Starts: s.Starts, Pad: s.Pad})
	}
	return out
}

// relErr is max|got - want| / max|want|: the error relative to the tensor's
// scale, so near-zero entries do not dominate.
func relErr(got, want []float32) (float64, int) {
	var maxDiff, maxRef float64
	at := -1
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > maxDiff || math.IsNaN(d) {
			maxDiff, at = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
		maxRef = max(maxRef, math.Abs(float64(want[i])))
	}
	if maxRef == 0 {
		return maxDiff, at
	}
	return maxDiff / maxRef, at
}

func TestGoldenBatchLayout(t *testing.T) {
	for _, name := range goldenCases {
		gc := loadGolden(t, name)
		B, S := gc.g.BatchSize, gc.g.SeqLen
		for mb := range len(gc.g.Sequences) / B {
			hb, err := MakeBatch(gc.sequences(mb), S, DefaultTrainConfig().Documents)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				name string
				got  *tensors.Tensor
				want [][]int32
			}{{"ids", hb.IDs, gc.g.Layout.IDs}, {"pos", hb.Pos, gc.g.Layout.Pos}, {"doc", hb.Doc, gc.g.Layout.Doc}, {"targets", hb.Targets, gc.g.Layout.Targets}} {
				got := tensors.MustCopyFlatData[int32](f.got)
				for b := range B {
					for i := range S {
						if w := f.want[mb*B+b][i]; got[b*S+i] != w {
							t.Fatalf("%s micro-batch %d: %s[%d][%d] = %d, PyTorch layout has %d", name, mb, f.name, b, i, got[b*S+i], w)
						}
					}
				}
			}
			wts := tensors.MustCopyFlatData[float32](hb.Weights)
			for b := range B {
				for i := range S {
					if w := gc.g.Layout.Weights[mb*B+b][i]; wts[b*S+i] != w {
						t.Fatalf("%s micro-batch %d: weights[%d][%d] = %g, PyTorch layout has %g", name, mb, b, i, wts[b*S+i], w)
					}
				}
			}
		}
	}
}

// Logits, first-step loss and every gradient, from the graph the training
// loop differentiates (Model.Loss with document masking), for block
// attention (several blocks; the default block, one block here) and the
// naive reference, with and without recompute and loss chunks.
func TestGoldenForwardAndGradients(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name      string
		block     int // -1: NewModel's default
		recompute bool
		lossChunk int
	}{
		{"block8", 8, false, 0},
		{"default-block", -1, false, 0},
		{"naive", 0, false, 0},
		{"block8-recompute-chunk8", 8, true, 8},
	}
	for _, name := range goldenCases {
		gc := loadGolden(t, name)
		specs := gc.w.Config.ParamSpecs()
		n := len(specs)
		wantLogits := gc.tensor(t, "logits")
		for _, v := range variants {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				m, err := NewModel(gc.w.Config, gc.g.SeqLen)
				if err != nil {
					t.Fatal(err)
				}
				if v.block >= 0 {
					m.BlockSize = v.block
				}
				m.Recompute, m.LossChunk = v.recompute, v.lossChunk
				exec, err := NewExec(backend, func(g *Graph, in []*Node) []*Node {
					b := Batch{IDs: in[n], Pos: in[n+1], Doc: in[n+2]}
					sum, count := m.Loss(in[:n], b, in[n+3], in[n+4])
					out := []*Node{m.Logits(in[:n], b), sum, count}
					return append(out, Gradient(sum, in[:n]...)...)
				})
				if err != nil {
					t.Fatal(err)
				}
				defer exec.Finalize()
				var lossSum, count float64
				grads := make([][]float64, n)
				for mb := range gc.g.GradAccum {
					hb, err := MakeBatch(gc.sequences(mb), gc.g.SeqLen, DefaultTrainConfig().Documents)
					if err != nil {
						t.Fatal(err)
					}
					var args []any
					for _, p := range gc.w.Tensors() {
						args = append(args, p)
					}
					args = append(args, hb.IDs, hb.Pos, hb.Doc, hb.Targets, hb.Weights)
					out, err := exec.Exec(args...)
					if err != nil {
						t.Fatal(err)
					}
					if mb == 0 {
						logits := tensors.MustCopyFlatData[float32](out[0])
						if e, at := relErr(logits, wantLogits); e > 2e-6 {
							t.Errorf("logits: relative error %.3g at %d (%g vs PyTorch %g)", e, at, logits[at], wantLogits[at])
						} else {
							t.Logf("logits: relative error %.3g", e)
						}
					}
					lossSum += float64(tensors.MustCopyFlatData[float32](out[1])[0])
					count += float64(tensors.MustCopyFlatData[float32](out[2])[0])
					for i := range n {
						gi := tensors.MustCopyFlatData[float32](out[3+i])
						if grads[i] == nil {
							grads[i] = make([]float64, len(gi))
						}
						for j, x := range gi {
							grads[i][j] += float64(x)
						}
					}
					for _, o := range out {
						o.FinalizeAll()
					}
				}
				want := gc.g.StepResults[0]
				if int(count) != want.Count {
					t.Fatalf("target count %g, PyTorch %d", count, want.Count)
				}
				if loss := lossSum / count; math.Abs(loss-want.Loss) > 2e-6*want.Loss {
					t.Errorf("loss %.7f, PyTorch %.7f", loss, want.Loss)
				}
				var worst float64
				var sq float64
				for i, s := range specs {
					got := make([]float32, len(grads[i]))
					for j, x := range grads[i] {
						got[j] = float32(x / count)
						sq += (x / count) * (x / count)
					}
					e, at := relErr(got, gc.tensor(t, "grad."+s.Name))
					if e > 2e-5 {
						t.Errorf("gradient of %s: relative error %.3g at %d (%g vs PyTorch %g)", s.Name, e, at, got[at], gc.tensor(t, "grad."+s.Name)[at])
					}
					worst = max(worst, e)
				}
				if gn := math.Sqrt(sq); math.Abs(gn-want.GradNorm) > 1e-5*want.GradNorm {
					t.Errorf("gradient norm %.7f, PyTorch %.7f", gn, want.GradNorm)
				}
				t.Logf("loss %.7f (PyTorch %.7f); worst gradient relative error %.3g", lossSum/count, want.Loss, worst)
			})
		}
	}
}

// goldenSource hands out the golden sequences in order.
type goldenSource struct {
	seqs []shards.Sequence
	next int
}

func (s *goldenSource) Next() (shards.Sequence, error) {
	if s.next >= len(s.seqs) {
		return shards.Sequence{}, fmt.Errorf("golden source: only %d sequences", len(s.seqs))
	}
	s.next++
	return s.seqs[s.next-1], nil
}
func (s *goldenSource) State() ([]byte, error) { return json.Marshal(s.next) }
func (s *goldenSource) Restore(b []byte) error { return json.Unmarshal(b, &s.next) }

// Two steps of the real training loop (Train: gradient accumulation over two
// micro-batches, warmup, clipping, AdamW with no-decay groups) against
// torch.optim.AdamW.
func TestGoldenTrainTwoSteps(t *testing.T) {
	for _, name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			gc := loadGolden(t, name)
			src := &goldenSource{}
			for mb := range len(gc.g.Sequences) / gc.g.BatchSize {
				src.seqs = append(src.seqs, gc.sequences(mb)...)
			}
			cfg := DefaultTrainConfig()
			cfg.Init, cfg.Out = gc.dir, t.TempDir()
			cfg.SeqLen, cfg.BatchSize, cfg.GradAccum, cfg.Steps = gc.g.SeqLen, gc.g.BatchSize, gc.g.GradAccum, gc.g.Steps
			o := gc.g.Optimizer
			cfg.Optimizer = OptimizerConfig{LR: o.LR, MinLR: o.MinLR, Schedule: o.Schedule, WarmupSteps: o.WarmupSteps,
				Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, ClipNorm: o.ClipNorm}
			cfg.AttentionBlock = 8
			cfg.CheckpointEvery, cfg.LogEvery, cfg.ExportDType = 0, 0, "F32"
			res, err := Train(context.Background(), cfg, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(filepath.Join(cfg.Out, "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for i := 0; sc.Scan(); i++ {
				var m StepMetrics
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				want := gc.g.StepResults[i]
				if math.Abs(m.Loss-want.Loss) > 2e-6*want.Loss {
					t.Errorf("step %d: loss %.7f, PyTorch %.7f", m.Step, m.Loss, want.Loss)
				}
				if math.Abs(m.LR-want.LR) > 1e-12 {
					t.Errorf("step %d: lr %g, PyTorch %g", m.Step, m.LR, want.LR)
				}
				if math.Abs(m.GradNorm-want.GradNorm) > 1e-5*want.GradNorm {
					t.Errorf("step %d: gradient norm %.7f, PyTorch %.7f", m.Step, m.GradNorm, want.GradNorm)
				}
				t.Logf("step %d: loss %.7f (PyTorch %.7f), grad norm %.6f (PyTorch %.6f), lr %g", m.Step, m.Loss, want.Loss, m.GradNorm, want.GradNorm, m.LR)
			}
			// The weights. Adam moves each weight by up to lr a step whatever
			// the gradient's size, and where |g| is near eps a float32
			// rounding of g shifts the move by a sizeable fraction of it, so
			// the bound is on the absolute error, as a fraction of the
			// largest possible move (the sum of the learning rates).
			var lrSum float64
			for _, r := range gc.g.StepResults {
				lrSum += r.LR
			}
			var worst float64
			for i, s := range gc.w.Config.ParamSpecs() {
				want := gc.tensor(t, "step2."+s.Name)
				got := res.Weights.Data[i]
				var e float64
				at := 0
				for j := range got {
					if d := math.Abs(float64(got[j]) - float64(want[j])); d > e || math.IsNaN(d) {
						e, at = d, j
					}
				}
				if e /= lrSum; !(e <= 1e-3) {
					t.Errorf("%s after 2 steps: error %.3g of the largest move at %d (%g vs PyTorch %g, initial %g)", s.Name, e, at, got[at], want[at], gc.w.Data[i][at])
				}
				worst = max(worst, e)
			}
			t.Logf("weights after 2 steps: worst error %.3g of the largest move", worst)
		})
	}
}
