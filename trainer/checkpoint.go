package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
)

// A checkpoint is a directory checkpoints/step-NNNNNNNN holding an HF model
// (config.json, model.safetensors in F32), optimizer.safetensors (AdamW
// moments named exp_avg.<param> and exp_avg_sq.<param>) and state.json
// (step, tokens, data-source position, seed). It is written under a
// temporary name and renamed; then checkpoints/latest is rewritten
// atomically to name it. A crash at any point leaves the previous
// checkpoint intact and named by latest.

func checkpointName(step int) string { return fmt.Sprintf("step-%08d", step) }

func saveCheckpoint(dir string, keep int, mc ModelConfig, sourceConfig []byte, params, mom []*tensors.Tensor, st trainState) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w, err := WeightsFromTensors(mc, params)
	if err != nil {
		return err
	}
	w.SourceConfig = sourceConfig
	specs := mc.ParamSpecs()
	var opt []Tensor
	for i, t := range mom {
		data, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return err
		}
		prefix := "exp_avg."
		if i >= len(specs) {
			prefix = "exp_avg_sq."
		}
		s := specs[i%len(specs)]
		opt = append(opt, Tensor{Name: prefix + s.Name, Shape: s.Shape, Data: data})
	}
	stj, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	name := checkpointName(st.Step)
	if err := writeDirAtomic(filepath.Join(dir, name), func(tmp string) error {
		if err := writeHFFiles(tmp, w, "F32", "float32"); err != nil {
			return err
		}
		if err := WriteSafetensors(filepath.Join(tmp, "optimizer.safetensors"), opt, "F32", nil); err != nil {
			return err
		}
		return writeFileAtomic(filepath.Join(tmp, "state.json"), append(stj, '\n'))
	}); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "latest"), []byte(name+"\n")); err != nil {
		return err
	}
	if keep > 0 {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".step-") {
				os.RemoveAll(filepath.Join(dir, e.Name())) // left by a killed run
			}
			if e.IsDir() && strings.HasPrefix(e.Name(), "step-") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for len(names) > keep {
			if names[0] != name {
				os.RemoveAll(filepath.Join(dir, names[0]))
			}
			names = names[1:]
		}
	}
	return nil
}

// loadLatestCheckpoint returns nil weights (and no error) when dir has no
// checkpoint yet, so --resume on a fresh run just starts.
func loadLatestCheckpoint(dir string) (*Weights, [][]float32, trainState, error) {
	latest, err := os.ReadFile(filepath.Join(dir, "latest"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, trainState{}, nil
	}
	if err != nil {
		return nil, nil, trainState{}, err
	}
	ck := filepath.Join(dir, strings.TrimSpace(string(latest)))
	w, err := LoadHF(ck)
	if err != nil {
		return nil, nil, trainState{}, fmt.Errorf("checkpoint: %w", err)
	}
	var st trainState
	stj, err := os.ReadFile(filepath.Join(ck, "state.json"))
	if err != nil {
		return nil, nil, trainState{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(stj, &st); err != nil {
		return nil, nil, trainState{}, fmt.Errorf("checkpoint %s/state.json: %v", ck, err)
	}
	opt, _, err := ReadSafetensors(filepath.Join(ck, "optimizer.safetensors"))
	if err != nil {
		return nil, nil, trainState{}, fmt.Errorf("checkpoint: %w", err)
	}
	byName := map[string][]float32{}
	for _, t := range opt {
		byName[t.Name] = t.Data
	}
	specs := w.Config.ParamSpecs()
	moments := make([][]float32, 2*len(specs))
	for i := range moments {
		prefix := "exp_avg."
		if i >= len(specs) {
			prefix = "exp_avg_sq."
		}
		name := prefix + specs[i%len(specs)].Name
		d, ok := byName[name]
		if !ok || len(d) != len(w.Data[i%len(specs)]) {
			return nil, nil, trainState{}, fmt.Errorf("checkpoint %s: optimizer tensor %s missing or mis-sized", ck, name)
		}
		moments[i] = d
	}
	// The checkpoint's config.json is the training config (rope already
	// extended); the original source config is not needed to continue.
	return w, moments, st, nil
}
