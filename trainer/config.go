package trainer

import (
	"fmt"
	"os"

	"longctx/config"
)

// ModelConfig describes a Llama-architecture model as SmolLM2 uses it. Field
// names mirror HF LlamaConfig (config.json) so a YAML model config reads like
// the HF file.
type ModelConfig struct {
	VocabSize             int            `yaml:"vocab_size" json:"vocab_size" help:"vocabulary size"`
	HiddenSize            int            `yaml:"hidden_size" json:"hidden_size" help:"model width"`
	IntermediateSize      int            `yaml:"intermediate_size" json:"intermediate_size" help:"SwiGLU inner width"`
	NumHiddenLayers       int            `yaml:"num_hidden_layers" json:"num_hidden_layers" help:"transformer layers"`
	NumAttentionHeads     int            `yaml:"num_attention_heads" json:"num_attention_heads" help:"query heads"`
	NumKeyValueHeads      int            `yaml:"num_key_value_heads" json:"num_key_value_heads" help:"key/value heads (grouped-query attention)"`
	HeadDim               int            `yaml:"head_dim,omitempty" json:"head_dim,omitempty" help:"head dimension; 0 means hidden_size/num_attention_heads"`
	RopeTheta             float64        `yaml:"rope_theta" json:"rope_theta" help:"RoPE base"`
	MaxPositionEmbeddings int            `yaml:"max_position_embeddings" json:"max_position_embeddings" help:"context length the model is meant for"`
	RMSNormEps            float64        `yaml:"rms_norm_eps" json:"rms_norm_eps" help:"RMSNorm epsilon"`
	TieWordEmbeddings     bool           `yaml:"tie_word_embeddings" json:"tie_word_embeddings" help:"share the input embedding with the output head"`
	RopeScaling           map[string]any `yaml:"rope_scaling" json:"rope_scaling" help:"HF rope_scaling dict (null for plain RoPE)"`
	InitializerRange      float64        `yaml:"initializer_range" json:"initializer_range" help:"std of the normal init of matrices"`
	BOSTokenID            int            `yaml:"bos_token_id" json:"bos_token_id" help:"beginning-of-sequence token id"`
	EOSTokenID            int            `yaml:"eos_token_id" json:"eos_token_id" help:"end-of-sequence token id"`
}

// HeadDimension returns head_dim, defaulting to hidden_size/num_attention_heads.
func (c ModelConfig) HeadDimension() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// Validate checks the shape constraints the model code relies on.
func (c ModelConfig) Validate() error {
	switch {
	case c.VocabSize <= 0, c.HiddenSize <= 0, c.IntermediateSize <= 0, c.NumHiddenLayers <= 0,
		c.NumAttentionHeads <= 0, c.NumKeyValueHeads <= 0:
		return fmt.Errorf("model config: sizes must be positive: %+v", c)
	case c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("model config: num_attention_heads %d not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("model config: hidden_size %d not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.HeadDimension()%2 != 0:
		return fmt.Errorf("model config: head_dim %d must be even for RoPE", c.HeadDimension())
	case c.RopeTheta <= 0:
		return fmt.Errorf("model config: rope_theta %g must be positive", c.RopeTheta)
	case c.RMSNormEps <= 0:
		return fmt.Errorf("model config: rms_norm_eps %g must be positive", c.RMSNormEps)
	}
	return nil
}

// LoadModelConfig reads a YAML model config (configs/model/*.yaml).
func LoadModelConfig(path string) (ModelConfig, error) {
	if _, err := os.Stat(path); err != nil {
		return ModelConfig{}, fmt.Errorf("model config: %w", err)
	}
	c := ModelConfig{RMSNormEps: 1e-5, RopeTheta: 10000, InitializerRange: 0.02, TieWordEmbeddings: true}
	if err := config.Load(path, &c); err != nil {
		return ModelConfig{}, err
	}
	if err := c.Validate(); err != nil {
		return ModelConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// NumParams counts the model's parameters (tied embeddings counted once).
func (c ModelConfig) NumParams() int64 {
	var n int64
	for _, s := range c.ParamSpecs() {
		k := int64(1)
		for _, d := range s.Shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}
