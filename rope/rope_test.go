package rope

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// ulpDiff is the distance in float32 units in the last place.
func ulpDiff(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// Reference §2: inv_freq at d = 64 for the bases the project uses.
func TestDefaultInvFreqVectors(t *testing.T) {
	cases := []struct {
		base              float64
		inv1, inv31       float64 // float64 reference
		inv1f32, inv31f32 float32 // float32 (HF) reference
		wl15, wl31        float64
	}{
		{10000, 0.74989420933245587, 1.3335214321633242e-04, 0.749894202, 1.3335215e-04, 471.17, 47117.2},
		{100000, 0.69783058485986638, 1.433012570236963e-05, 0.697830558, 1.43301268e-05, 1386.53, 438460},
		{130000, 0.69213254406108993, 1.1113922843698482e-05, 0.692132592, 1.11139225e-05, 1567.98, 565344},
		{273000, 0.67626968102359042, 5.4164836392774585e-06, 0.67626965, 5.41648342e-06, 2220.14, 1160010},
		{273768, 0.67621031481849725, 5.4017629975729738e-06, 0.676210284, 5.40176279e-06, 2223.07, 1163170},
	}
	for _, c := range cases {
		p := Params{Base: c.base, HeadDim: 64}
		f64, att64, err := p.InvFreq64(0)
		if err != nil {
			t.Fatal(err)
		}
		f32, att32, err := p.InvFreq(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(f64) != 32 || len(f32) != 32 || att64 != 1 || att32 != 1 {
			t.Fatalf("base %v: got %d/%d freqs, attention %v/%v", c.base, len(f64), len(f32), att64, att32)
		}
		if f64[0] != 1 || f32[0] != 1 {
			t.Errorf("base %v: inv[0] = %v / %v, want 1", c.base, f64[0], f32[0])
		}
		if e := relErr(f64[1], c.inv1); e > 1e-12 {
			t.Errorf("base %v: inv64[1] = %.17g, want %.17g (rel %g)", c.base, f64[1], c.inv1, e)
		}
		if e := relErr(f64[31], c.inv31); e > 1e-12 {
			t.Errorf("base %v: inv64[31] = %.17g, want %.17g (rel %g)", c.base, f64[31], c.inv31, e)
		}
		if u := ulpDiff(f32[1], c.inv1f32); u > 1 {
			t.Errorf("base %v: inv32[1] = %.9g, want %.9g (%d ulp)", c.base, f32[1], c.inv1f32, u)
		}
		if u := ulpDiff(f32[31], c.inv31f32); u > 1 {
			t.Errorf("base %v: inv32[31] = %.9g, want %.9g (%d ulp)", c.base, f32[31], c.inv31f32, u)
		}
		wl := Wavelengths(f64)
		if e := relErr(wl[15], c.wl15); e > 1e-5 {
			t.Errorf("base %v: λ15 = %v, want %v", c.base, wl[15], c.wl15)
		}
		if e := relErr(wl[31], c.wl31); e > 1e-5 {
			t.Errorf("base %v: λ31 = %v, want %v", c.base, wl[31], c.wl31)
		}
	}
	// At base 10k, pairs i <= 20 have λ < 2048 and pair 21 does not.
	inv, _, _ := Params{Base: 10000, HeadDim: 64}.InvFreq64(0)
	wl := Wavelengths(inv)
	if !(wl[20] < 2048 && wl[21] > 2048) || math.Abs(wl[20]-1986.9) > 0.05 || math.Abs(wl[21]-2649.6) > 0.05 {
		t.Errorf("λ20 = %v, λ21 = %v; want 1986.9 and 2649.6", wl[20], wl[21])
	}
}

// testdata/hf_float32.json holds every inv_freq bit pattern from an
// independent float32 port of HF's init functions (testdata/hf_float32.py,
// numpy, torch scalar semantics, correctly rounded pow). InvFreq must match
// it bit for bit. (torch's own pow is within 1 ulp of correctly rounded.)
func TestInvFreqMatchesHFPortBitForBit(t *testing.T) {
	data, err := os.ReadFile("testdata/hf_float32.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]uint32
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range []struct {
		s     float64
		l0, l int
	}{{8, 2048, 16384}, {6, 3000, 20000}} {
		for _, base := range []float64{10000, 100000, 130000, 273000, 273768.4, 1e6} {
			for name, p := range map[string]Params{
				"default": {Base: base, HeadDim: 64},
				"linear":  {Base: base, HeadDim: 64, Scaling: Scaling{Type: "linear", Factor: c.s}},
				"yarn":    {Base: base, HeadDim: 64, MaxPositions: c.l0, Scaling: Scaling{Type: "yarn", Factor: c.s}},
				"llama3":  {Base: base, HeadDim: 64, Scaling: Scaling{Type: "llama3", Factor: c.s, OriginalMaxPositions: c.l0, LowFreqFactor: 1, HighFreqFactor: 4}},
				"dynamic": {Base: base, HeadDim: 64, MaxPositions: c.l0, Scaling: Scaling{Type: "dynamic", Factor: c.s}},
			} {
				key := fmt.Sprintf("%s %.1f s%g L0 %d", name, base, c.s, c.l0)
				if name == "dynamic" {
					key += fmt.Sprintf(" L %d", c.l)
				}
				bits, ok := want[key]
				if !ok {
					t.Fatalf("testdata/hf_float32.json has no %q", key)
				}
				got, _, err := p.InvFreq(c.l)
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range got {
					n++
					if math.Float32bits(v) != bits[i] {
						t.Errorf("%s pair %d: %v, HF port %v", key, i, v, math.Float32frombits(bits[i]))
					}
				}
			}
		}
	}
	if n != 1920 {
		t.Fatalf("compared %d values, want 1920", n)
	}
}
