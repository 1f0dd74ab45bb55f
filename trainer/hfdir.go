package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"longctx/rope"
)

// An HF model directory holds config.json and model.safetensors (or shards
// listed in model.safetensors.index.json) with HF tensor names.

// LoadHF reads an HF Llama model directory. The original config.json bytes
// are kept so a later SaveHF changes only the RoPE fields.
func LoadHF(dir string) (*Weights, error) {
	cj, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	c, err := ParseHFConfig(cj)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	files := []string{filepath.Join(dir, "model.safetensors")}
	if idx, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &index); err != nil {
			return nil, fmt.Errorf("model %s: model.safetensors.index.json: %v", dir, err)
		}
		seen := map[string]bool{}
		files = files[:0]
		for _, f := range index.WeightMap {
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		sort.Strings(files)
	}
	byName := map[string]Tensor{}
	for _, f := range files {
		ts, _, err := ReadSafetensors(f)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			byName[t.Name] = t
		}
	}
	w := &Weights{Config: c, SourceConfig: cj}
	for _, s := range c.ParamSpecs() {
		t, ok := byName[s.Name]
		if !ok {
			return nil, fmt.Errorf("model %s: tensor %s missing", dir, s.Name)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(s.Shape) {
			return nil, fmt.Errorf("model %s: tensor %s has shape %v, config wants %v", dir, s.Name, t.Shape, s.Shape)
		}
		w.Data = append(w.Data, t.Data)
		delete(byName, s.Name)
	}
	if lm, ok := byName["lm_head.weight"]; ok && c.TieWordEmbeddings {
		// Some tied checkpoints store a copy; it must be the embedding.
		emb := w.Data[0]
		if fmt.Sprint(lm.Shape) != fmt.Sprint(c.ParamSpecs()[0].Shape) {
			return nil, fmt.Errorf("model %s: tensor lm_head.weight has shape %v, tied embeddings want %v", dir, lm.Shape, c.ParamSpecs()[0].Shape)
		}
		for i := range emb {
			if emb[i] != lm.Data[i] {
				return nil, fmt.Errorf("model %s: tensor lm_head.weight differs from model.embed_tokens.weight at %d (%g vs %g) though tie_word_embeddings is true", dir, i, lm.Data[i], emb[i])
			}
		}
		delete(byName, "lm_head.weight")
	}
	for name := range byName {
		if !isRotaryBuffer(name) {
			return nil, fmt.Errorf("model %s: unexpected tensor %s", dir, name)
		}
	}
	return w, nil
}

// DataEOS is the end-of-sequence id that splits flat token files: the
// start checkpoint's (config.json) with init, else the model config's.
func DataEOS(cfg TrainConfig) (uint32, error) {
	if cfg.Init != "" {
		cj, err := os.ReadFile(filepath.Join(cfg.Init, "config.json"))
		if err != nil {
			return 0, fmt.Errorf("model %s: %w", cfg.Init, err)
		}
		c, err := ParseHFConfig(cj)
		if err != nil {
			return 0, fmt.Errorf("model %s: %w", cfg.Init, err)
		}
		return uint32(c.EOSTokenID), nil
	}
	mc, err := LoadModelConfig(cfg.ModelConfig)
	if err != nil {
		return 0, err
	}
	return uint32(mc.EOSTokenID), nil
}

// isRotaryBuffer matches the inv_freq buffers old checkpoints saved.
func isRotaryBuffer(name string) bool {
	return filepath.Ext(name) == ".inv_freq"
}

// ConfigJSON returns the config.json to write for w: the source file with
// its RoPE fields updated through rope.ExtendHFConfig when w came from an HF
// directory and uses plain RoPE, else a fresh one from the model config.
func (w *Weights) ConfigJSON(torchDType string) ([]byte, error) {
	if w.SourceConfig != nil && len(w.Config.RopeScaling) == 0 {
		p, err := rope.ParseHFConfig(w.SourceConfig)
		if err == nil && p.ScalingType() == rope.TypeDefault {
			return rope.ExtendHFConfig(w.SourceConfig, w.Config.RopeTheta, w.Config.MaxPositionEmbeddings)
		}
	}
	return w.Config.HFConfigJSON(torchDType)
}

// SaveHF writes w as an HF model directory (config.json, model.safetensors
// in dtype F32, BF16 or F16). The directory is written under a temporary
// name and renamed into place; an existing dir is replaced.
func SaveHF(dir string, w *Weights, dtype string) error {
	torch := map[string]string{"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
	if torch == "" {
		return fmt.Errorf("save model %s: unsupported dtype %q", dir, dtype)
	}
	return writeDirAtomic(dir, func(tmp string) error {
		return writeHFFiles(tmp, w, dtype, torch)
	})
}

func writeHFFiles(dir string, w *Weights, dtype, torch string) error {
	cj, err := w.ConfigJSON(torch)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), cj); err != nil {
		return err
	}
	specs := w.Config.ParamSpecs()
	ts := make([]Tensor, len(specs))
	for i, s := range specs {
		ts[i] = Tensor{Name: s.Name, Shape: s.Shape, Data: w.Data[i]}
	}
	return WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, dtype, map[string]string{"format": "pt"})
}

// writeDirAtomic fills a fresh temporary sibling of dir and renames it to
// dir, replacing any previous dir only once the new one is complete.
func writeDirAtomic(dir string, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
