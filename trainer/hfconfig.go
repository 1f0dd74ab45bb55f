package trainer

import (
	"encoding/json"
	"fmt"

	"longctx/rope"
)

// HFConfigJSON renders the model config as an HF LlamaForCausalLM
// config.json. RoPE fields come from the rope package: the transformers 4.x
// fields (rope_theta, max_position_embeddings, rope_scaling) and the 5.x
// rope_parameters block, which agree by construction.
func (c ModelConfig) HFConfigJSON(torchDType string) ([]byte, error) {
	p, err := c.RopeParams()
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_act":              "silu",
		"attention_bias":          false,
		"attention_dropout":       0.0,
		"mlp_bias":                false,
		"pretraining_tp":          1,
		"use_cache":               true,
		"vocab_size":              c.VocabSize,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumHiddenLayers,
		"num_attention_heads":     c.NumAttentionHeads,
		"num_key_value_heads":     c.NumKeyValueHeads,
		"head_dim":                c.HeadDimension(),
		"rms_norm_eps":            c.RMSNormEps,
		"tie_word_embeddings":     c.TieWordEmbeddings,
		"initializer_range":       c.InitializerRange,
		"bos_token_id":            c.BOSTokenID,
		"eos_token_id":            c.EOSTokenID,
		"torch_dtype":             torchDType,
		"rope_parameters":         p.HFRopeParameters(),
		"max_position_embeddings": c.MaxPositionEmbeddings,
	}
	for k, v := range p.HFFields() {
		m[k] = v
	}
	return json.MarshalIndent(m, "", "  ")
}

// ropeJSON is the minimal config.json the rope package needs.
func (c ModelConfig) ropeJSON() ([]byte, error) {
	var scaling any
	if len(c.RopeScaling) > 0 { // an empty map (YAML "{}") means none
		scaling = c.RopeScaling
	}
	return json.Marshal(map[string]any{
		"head_dim":                c.HeadDimension(),
		"rope_theta":              c.RopeTheta,
		"max_position_embeddings": c.MaxPositionEmbeddings,
		"rope_scaling":            scaling,
	})
}

// RopeParams returns the RoPE settings of the config, parsed by the rope
// package so every scaling type HF knows is understood the same way.
func (c ModelConfig) RopeParams() (rope.Params, error) {
	data, err := c.ropeJSON()
	if err != nil {
		return rope.Params{}, err
	}
	p, err := rope.ParseHFConfig(data)
	if err != nil {
		return rope.Params{}, fmt.Errorf("model config: %w", err)
	}
	return p, nil
}

// ParseHFConfig reads an HF Llama config.json into a ModelConfig. RoPE
// settings are read by the rope package (both 4.x and 5.x layouts).
func ParseHFConfig(data []byte) (ModelConfig, error) {
	var raw struct {
		ModelType         string   `json:"model_type"`
		HiddenAct         string   `json:"hidden_act"`
		AttentionBias     bool     `json:"attention_bias"`
		MLPBias           bool     `json:"mlp_bias"`
		VocabSize         int      `json:"vocab_size"`
		HiddenSize        int      `json:"hidden_size"`
		IntermediateSize  int      `json:"intermediate_size"`
		NumHiddenLayers   int      `json:"num_hidden_layers"`
		NumAttentionHeads int      `json:"num_attention_heads"`
		NumKeyValueHeads  int      `json:"num_key_value_heads"`
		HeadDim           int      `json:"head_dim"`
		RMSNormEps        float64  `json:"rms_norm_eps"`
		TieWordEmbeddings *bool    `json:"tie_word_embeddings"`
		InitializerRange  float64  `json:"initializer_range"`
		BOSTokenID        *int     `json:"bos_token_id"`
		EOSTokenID        any      `json:"eos_token_id"`
		RopeScaling       any      `json:"rope_scaling"`
		Architectures     []string `json:"architectures"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return ModelConfig{}, fmt.Errorf("config.json: %v", err)
	}
	if raw.ModelType != "" && raw.ModelType != "llama" {
		return ModelConfig{}, fmt.Errorf("config.json: model_type %q, want llama", raw.ModelType)
	}
	if raw.HiddenAct != "" && raw.HiddenAct != "silu" {
		return ModelConfig{}, fmt.Errorf("config.json: hidden_act %q, want silu", raw.HiddenAct)
	}
	if raw.AttentionBias || raw.MLPBias {
		return ModelConfig{}, fmt.Errorf("config.json: attention_bias/mlp_bias are not supported")
	}
	p, err := rope.ParseHFConfig(withDefaultRopeTheta(data))
	if err != nil {
		return ModelConfig{}, fmt.Errorf("config.json: %w", err)
	}
	if p.PartialRotaryFactor != 0 && p.PartialRotaryFactor != 1 {
		return ModelConfig{}, fmt.Errorf("config.json: partial_rotary_factor %g is not supported", p.PartialRotaryFactor)
	}
	c := ModelConfig{
		VocabSize: raw.VocabSize, HiddenSize: raw.HiddenSize, IntermediateSize: raw.IntermediateSize,
		NumHiddenLayers: raw.NumHiddenLayers, NumAttentionHeads: raw.NumAttentionHeads, NumKeyValueHeads: raw.NumKeyValueHeads,
		HeadDim: raw.HeadDim, RopeTheta: p.Base, MaxPositionEmbeddings: p.MaxPositions, RMSNormEps: raw.RMSNormEps,
		InitializerRange: raw.InitializerRange,
	}
	// HF LlamaConfig defaults: tie_word_embeddings false, rms_norm_eps 1e-6,
	// rope_theta 10000 (the rope package), bos 1, eos 2.
	c.BOSTokenID, c.EOSTokenID = 1, 2
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if raw.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *raw.TieWordEmbeddings
	}
	if raw.BOSTokenID != nil {
		c.BOSTokenID = *raw.BOSTokenID
	}
	switch e := raw.EOSTokenID.(type) {
	case float64:
		c.EOSTokenID = int(e)
	case []any: // several end tokens: the first splits documents and ends generation
		if len(e) > 0 {
			if f, ok := e[0].(float64); ok {
				c.EOSTokenID = int(f)
			}
		}
	}
	if p.ScalingType() != rope.TypeDefault {
		if m, ok := p.HFFields()["rope_scaling"].(map[string]any); ok {
			c.RopeScaling = m
		}
	}
	if err := c.Validate(); err != nil {
		return ModelConfig{}, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

// withDefaultRopeTheta adds HF LlamaConfig's default rope_theta (10000)
// to a config.json that has neither rope_theta nor rope_parameters.
func withDefaultRopeTheta(data []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return data // the rope package reports the syntax error
	}
	if _, ok := m["rope_theta"]; ok {
		return data
	}
	if _, ok := m["rope_parameters"]; ok {
		return data
	}
	m["rope_theta"] = json.RawMessage("10000")
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}

// NewModel returns the model graph builder for sequences of seqLen tokens,
// with RoPE frequencies from the rope package.
func NewModel(c ModelConfig, seqLen int) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p, err := c.RopeParams()
	if err != nil {
		return nil, err
	}
	inv, att, err := p.InvFreq(seqLen)
	if err != nil {
		return nil, fmt.Errorf("model rope: %w", err)
	}
	return &Model{Config: c, InvFreq: inv, AttentionFactor: att, BlockSize: 512}, nil
}
