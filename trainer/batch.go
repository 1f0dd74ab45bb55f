package trainer

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"longctx/shards"
)

// Documents says how packed documents see each other.
type Documents struct {
	// Mask forbids attention across document boundaries (and drops the loss
	// on the first token of each following document, which the model cannot
	// see coming).
	Mask bool `yaml:"mask" help:"no attention across documents in a packed sequence"`
	// ResetPositions restarts RoPE positions at 0 for every document.
	ResetPositions bool `yaml:"reset_positions" help:"RoPE positions restart at every document"`
}

// HostBatch is a batch of B packed sequences of S tokens as host tensors,
// each [B, S]: ids, positions, document index (int32), next-token targets
// (int32) and loss weights (float32, 1 where a target counts).
type HostBatch struct {
	IDs, Pos, Doc, Targets, Weights *tensors.Tensor
	Tokens                          int // positions with weight 1
}

// MakeBatch lays out sequences for the model. Every sequence must have seqLen
// tokens and valid boundaries.
func MakeBatch(seqs []shards.Sequence, seqLen int, docs Documents) (HostBatch, error) {
	B, S := len(seqs), seqLen
	ids := make([]int32, B*S)
	pos := make([]int32, B*S)
	doc := make([]int32, B*S)
	tgt := make([]int32, B*S)
	wts := make([]float32, B*S)
	n := 0
	for b, s := range seqs {
		if err := s.Validate(S); err != nil {
			return HostBatch{}, fmt.Errorf("batch sequence %d: %w", b, err)
		}
		d, p := s.DocIDs()
		real := S - int(s.Pad)
		for i := range S {
			j := b*S + i
			ids[j] = int32(s.Tokens[i])
			if docs.ResetPositions {
				pos[j] = p[i]
			} else {
				pos[j] = int32(i)
			}
			if docs.Mask {
				doc[j] = d[i]
			}
			if i+1 < real && (!docs.Mask || d[i+1] == d[i]) {
				tgt[j] = int32(s.Tokens[i+1])
				wts[j] = 1
				n++
			}
		}
	}
	return HostBatch{
		IDs:     tensors.FromFlatDataAndDimensions(ids, B, S),
		Pos:     tensors.FromFlatDataAndDimensions(pos, B, S),
		Doc:     tensors.FromFlatDataAndDimensions(doc, B, S),
		Targets: tensors.FromFlatDataAndDimensions(tgt, B, S),
		Weights: tensors.FromFlatDataAndDimensions(wts, B, S),
		Tokens:  n,
	}, nil
}

// Tensors returns the weights as host tensors in ParamSpecs order.
func (w *Weights) Tensors() []*tensors.Tensor {
	specs := w.Config.ParamSpecs()
	out := make([]*tensors.Tensor, len(specs))
	for i, s := range specs {
		out[i] = tensors.FromFlatDataAndDimensions(w.Data[i], s.Shape...)
	}
	return out
}

// WeightsFromTensors copies tensors (ParamSpecs order) back to the host.
func WeightsFromTensors(c ModelConfig, ts []*tensors.Tensor) (*Weights, error) {
	specs := c.ParamSpecs()
	if len(ts) != len(specs) {
		return nil, fmt.Errorf("weights: %d tensors, want %d", len(ts), len(specs))
	}
	w := &Weights{Config: c}
	for i, t := range ts {
		data, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, fmt.Errorf("weights %s: %w", specs[i].Name, err)
		}
		w.Data = append(w.Data, data)
	}
	return w, nil
}

// Forward returns the logits [len(ids)][vocab] of one sequence of token ids
// (positions 0.., one document).
func Forward(backend compute.Backend, w *Weights, ids []uint32, blockSize int) ([][]float32, error) {
	m, err := NewModel(w.Config, len(ids))
	if err != nil {
		return nil, err
	}
	m.BlockSize = blockSize
	b, err := MakeBatch([]shards.Sequence{{Tokens: ids, Starts: []uint32{0}}}, len(ids), Documents{})
	if err != nil {
		return nil, err
	}
	return m.forwardLogits(backend, w, b)
}

func (m *Model) forwardLogits(backend compute.Backend, w *Weights, b HostBatch) ([][]float32, error) {
	n := len(w.Data)
	exec, err := NewExec(backend, func(g *Graph, in []*Node) *Node {
		return m.Logits(in[:n], Batch{IDs: in[n], Pos: in[n+1], Doc: in[n+2]})
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	args := []any{}
	for _, t := range w.Tensors() {
		args = append(args, t)
	}
	args = append(args, b.IDs, b.Pos, b.Doc)
	out, err := exec.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	flat, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	rows := make([][]float32, len(flat)/V)
	for i := range rows {
		rows[i] = flat[i*V : (i+1)*V]
	}
	return rows, nil
}
