package trainer

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"

	"longctx/rope"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ts := []Tensor{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 1e-3, 65504, -0.25}},
		{Name: "a", Shape: []int{1}, Data: []float32{float32(math.Pi)}},
	}
	for _, dt := range []string{"F32", "BF16", "F16"} {
		p := filepath.Join(dir, dt+".safetensors")
		if err := WriteSafetensors(p, ts, dt, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		got, meta, err := ReadSafetensors(p)
		if err != nil {
			t.Fatal(err)
		}
		if meta["format"] != "pt" || len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
			t.Fatalf("%s: got %+v meta %v", dt, got, meta)
		}
		for _, g := range got {
			var want []float32
			for _, w := range ts {
				if w.Name == g.Name {
					want = w.Data
				}
			}
			for i, x := range want {
				switch dt {
				case "BF16":
					x = bfloat16.FromFloat32(x).Float32()
				case "F16":
					x = float16.FromFloat32(x).Float32()
				}
				if g.Data[i] != x {
					t.Errorf("%s %s[%d] = %g, want %g", dt, g.Name, i, g.Data[i], x)
				}
			}
		}
		// Writing again gives the same bytes.
		again := filepath.Join(dir, dt+"2.safetensors")
		WriteSafetensors(again, ts, dt, map[string]string{"format": "pt"})
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: writing twice gave different files", dt)
		}
	}
	// A truncated file is refused with its name.
	p := filepath.Join(dir, "F32.safetensors")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, data[:len(data)-4], 0o644)
	if _, _, err := ReadSafetensors(p); err == nil {
		t.Error("truncated file accepted")
	}
}

func TestHFExportLoadsBackIdentically(t *testing.T) {
	backend := testBackend(t)
	c := tinyConfig()
	w := tinyWeights(t, c)
	dir := filepath.Join(t.TempDir(), "model")
	if err := SaveHF(dir, w, "F32"); err != nil {
		t.Fatal(err)
	}
	back, err := LoadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Config.RopeTheta != c.RopeTheta || back.Config.NumKeyValueHeads != c.NumKeyValueHeads || back.Config.HeadDimension() != c.HeadDimension() {
		t.Fatalf("config changed: %+v vs %+v", back.Config, c)
	}
	for i := range w.Data {
		for j := range w.Data[i] {
			if w.Data[i][j] != back.Data[i][j] {
				t.Fatalf("tensor %d value %d changed", i, j)
			}
		}
	}
	ids := []uint32{1, 2, 3, 4, 5}
	a, _ := Forward(backend, w, ids, 4)
	b, err := Forward(backend, back, ids, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for v := range a[i] {
			if a[i][v] != b[i][v] {
				t.Fatalf("logits differ after reload at [%d][%d]", i, v)
			}
		}
	}
	// Extending RoPE rewrites only the rope fields of the loaded config.json.
	back.Config.RopeTheta, back.Config.MaxPositionEmbeddings = 273000, 16384
	ext := filepath.Join(t.TempDir(), "ext")
	if err := SaveHF(ext, back, "BF16"); err != nil {
		t.Fatal(err)
	}
	cj, _ := os.ReadFile(filepath.Join(ext, "config.json"))
	p, err := rope.ParseHFConfig(cj)
	if err != nil {
		t.Fatal(err)
	}
	if p.Base != 273000 || p.MaxPositions != 16384 {
		t.Errorf("extended config has base %g max %d", p.Base, p.MaxPositions)
	}
	again, err := LoadHF(ext)
	if err != nil {
		t.Fatal(err)
	}
	if again.Config.RopeTheta != 273000 {
		t.Errorf("reloaded base %g", again.Config.RopeTheta)
	}
}
