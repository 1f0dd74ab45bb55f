package rope

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseHFConfig(t *testing.T) {
	smol, err := os.ReadFile("testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		json string
		want Params
	}{
		{"smollm2-135m", string(smol), Params{Base: 100000, HeadDim: 64, MaxPositions: 8192}},
		{"head_dim wins", `{"head_dim": 128, "hidden_size": 576, "num_attention_heads": 9, "rope_theta": 1e6}`,
			Params{Base: 1e6, HeadDim: 128}},
		{"llama3.1", `{"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072, "rope_theta": 500000.0,
			"rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}}`,
			Params{Base: 500000, HeadDim: 128, MaxPositions: 131072, Scaling: Scaling{Type: "llama3", Factor: 8,
				LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}},
		{"legacy type", `{"head_dim": 64, "rope_theta": 10000, "rope_scaling": {"type": "linear", "factor": 4}}`,
			Params{Base: 10000, HeadDim: 64, Scaling: Scaling{Type: "linear", Factor: 4}}},
		{"yarn truncate false", `{"head_dim": 64, "rope_theta": 10000, "max_position_embeddings": 2048,
			"rope_scaling": {"rope_type": "yarn", "factor": 4, "beta_fast": 16, "truncate": false, "mscale": 0.707, "mscale_all_dim": 0.707}}`,
			Params{Base: 10000, HeadDim: 64, MaxPositions: 2048, Scaling: Scaling{Type: "yarn", Factor: 4, BetaFast: 16,
				NoTruncate: true, MScale: 0.707, MScaleAllDim: 0.707}}},
		{"transformers 5 rope_parameters", `{"head_dim": 64, "max_position_embeddings": 16384,
			"rope_parameters": {"rope_type": "default", "rope_theta": 273000.0}}`,
			Params{Base: 273000, HeadDim: 64, MaxPositions: 16384, Scaling: Scaling{Type: "default"}}},
		{"both dialects agree", `{"head_dim": 64, "rope_theta": 273000.0, "rope_scaling": null,
			"rope_parameters": {"rope_type": "default", "rope_theta": 273000.0}}`,
			Params{Base: 273000, HeadDim: 64, Scaling: Scaling{Type: "default"}}},
		{"phi3 longrope top-level L0", `{"head_dim": 4, "rope_theta": 10000, "max_position_embeddings": 131072,
			"original_max_position_embeddings": 4096, "rope_scaling": {"type": "su", "short_factor": [1, 1], "long_factor": [2, 3]}}`,
			Params{Base: 10000, HeadDim: 4, MaxPositions: 131072, Scaling: Scaling{Type: "longrope", OriginalMaxPositions: 4096,
				ShortFactor: []float64{1, 1}, LongFactor: []float64{2, 3}}}},
	}
	for _, c := range cases {
		got, err := ParseHFConfig([]byte(c.json))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestParseHFConfigErrors(t *testing.T) {
	cases := []struct{ json, want string }{
		{`[1]`, "not a JSON object"},
		{`{"head_dim": 64}`, "no rope_theta"},
		{`{"rope_theta": 10000}`, "no head_dim"},
		{`{"head_dim": 64, "rope_theta": "big"}`, `"rope_theta": want a number`},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_parameters": {"rope_type": "default", "rope_theta": 2e4}}`, "disagrees"},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 2},
			"rope_parameters": {"rope_type": "linear", "factor": 4, "rope_theta": 1e4}}`, "disagree"},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}}`, "unsupported keys mrope_section"},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"type": "magic", "factor": 2}}`, `unknown scaling type "magic"`},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"factor": 2}}`, "no rope_type"},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"rope_type": "linear"}}`, "needs factor"},
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"rope_type": "llama3", "factor": 8}}`, "original_max_position_embeddings"},
		{`{"head_dim": 63, "rope_theta": 1e4}`, "must be even"},
		{`{"head_dim": 64, "rope_theta": 1e4, "max_position_embeddings": 20.5}`, "want an integer"},
	}
	for _, c := range cases {
		_, err := ParseHFConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.json, err, c.want)
		}
	}
}
