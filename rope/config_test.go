package rope

import (
	"encoding/json"
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

func TestExtendHFConfig(t *testing.T) {
	smol, err := os.ReadFile("testdata/smollm2-135m.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := ExtendHFConfig(smol, 273000, 16384)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(smol), `"max_position_embeddings": 8192`, `"max_position_embeddings": 16384`, 1)
	want = strings.Replace(want, `"rope_theta": 100000,`, `"rope_theta": 273000.0,`, 1)
	if string(out) != want {
		t.Errorf("extended config:\n%s\nwant:\n%s", out, want)
	}

	cases := []struct{ name, in, want string }{
		{"compact, unsorted, keys missing", `{"rope_theta":10000,"head_dim":64}`,
			`{"rope_theta":273768.4,"head_dim":64,"max_position_embeddings":16384}`},
		{"sorted insert", "{\n  \"head_dim\": 64,\n  \"rope_theta\": 1e4,\n  \"vocab_size\": 5\n}",
			"{\n  \"head_dim\": 64,\n  \"max_position_embeddings\": 16384,\n  \"rope_theta\": 273768.4,\n  \"vocab_size\": 5\n}"},
		{"rope_scaling default block becomes null", `{"head_dim": 64, "rope_theta": 1e4, "max_position_embeddings": 2048, "rope_scaling": {"rope_type": "default"}}`,
			`{"head_dim": 64, "rope_theta": 273768.4, "max_position_embeddings": 16384, "rope_scaling": null}`},
		{"transformers 5 only", `{"head_dim": 64, "max_position_embeddings": 2048, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}`,
			`{"head_dim": 64, "max_position_embeddings": 16384, "rope_parameters": {"rope_theta": 273768.4, "rope_type": "default"}}`},
		{"both dialects", `{"head_dim": 64, "rope_theta": 10000.0, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}`,
			`{"head_dim": 64, "rope_theta": 273768.4, "rope_parameters": {"rope_type": "default", "rope_theta": 273768.4}, "max_position_embeddings": 16384}`},
		{"strings with braces are skipped", `{"note": "a } \" { b", "head_dim": 64, "rope_theta": 1e4, "max_position_embeddings": 1}`,
			`{"note": "a } \" { b", "head_dim": 64, "rope_theta": 273768.4, "max_position_embeddings": 16384}`},
	}
	for _, c := range cases {
		got, err := ExtendHFConfig([]byte(c.in), 273768.4, 16384)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{`{"head_dim": 64, "rope_theta": 1e4, "rope_scaling": {"rope_type": "yarn", "factor": 4}, "max_position_embeddings": 2048}`, "uses yarn scaling"},
		{`{"head_dim": 64, "rope_theta": 1e4, "head_dim": 64}`, "duplicate key"},
		{`{"head_dim": 64}`, "no rope_theta"},
	} {
		if _, err := ExtendHFConfig([]byte(c.in), 273000, 16384); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := ExtendHFConfig(smol, 273000, 0); err == nil {
		t.Error("max_position_embeddings 0 accepted")
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{273000: "273000.0", 273768.4: "273768.4", 1e6: "1000000.0", 1e16: "1e+16", 0.5: "0.5", 1e-5: "1e-05", 0: "0.0"} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestHFFieldsRoundTrip(t *testing.T) {
	for _, p := range []Params{
		{Base: 273000, HeadDim: 64, MaxPositions: 16384},
		{Base: 500000, HeadDim: 64, MaxPositions: 131072, Scaling: Scaling{Type: "llama3", Factor: 8, OriginalMaxPositions: 8192, LowFreqFactor: 1, HighFreqFactor: 4}},
		{Base: 10000, HeadDim: 64, MaxPositions: 16384, Scaling: Scaling{Type: "yarn", Factor: 8, OriginalMaxPositions: 2048, BetaFast: 16, NoTruncate: true}},
	} {
		f := p.HFFields()
		f["head_dim"] = p.HeadDim
		data, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHFConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		want := p
		want.Scaling.Type = normType(p.Scaling.Type)
		if want.Scaling.Type == TypeDefault {
			want.Scaling.Type = ""
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip %s: got %+v, want %+v", data, got, want)
		}
		v5 := map[string]any{"head_dim": p.HeadDim, "max_position_embeddings": p.MaxPositions, "rope_parameters": p.HFRopeParameters()}
		data, _ = json.Marshal(v5)
		got, err = ParseHFConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		want.Scaling.Type = normType(p.Scaling.Type)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("v5 round trip %s: got %+v, want %+v", data, got, want)
		}
	}
}
