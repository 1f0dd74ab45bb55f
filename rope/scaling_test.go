package rope

import (
	"math"
	"testing"
)

// Reference §6: base 10,000, d = 64, s = 8, L0 = 2048, float64.
func TestScalingVectors(t *testing.T) {
	base := Params{Base: 10000, HeadDim: 64, MaxPositions: 2048}
	with := func(s Scaling) Params { p := base; p.Scaling = s; return p }
	nan := math.NaN()
	cases := []struct {
		name string
		p    Params
		// inv[1], inv[9], inv[15], inv[16], inv[20], inv[21], inv[31]; NaN = not given
		want [7]float64
		tol  [7]float64 // relative tolerance per column (the reference prints some with fewer digits)
		att  float64
	}{
		{"default", base,
			[7]float64{0.74989420933245587, 0.074989420933245, 0.013335214322, 0.01, 0.0031622776602, 0.0023713737057, 1.3335214321633242e-04},
			[7]float64{1e-12, 1e-12, 1e-10, 1e-12, 1e-10, 1e-10, 1e-12}, 1},
		{"linear", with(Scaling{Type: "linear", Factor: 8}),
			[7]float64{0.093736776166556984, nan, nan, nan, nan, nan, 1.6669017902041553e-05},
			[7]float64{1e-12, 0, 0, 0, 0, 0, 1e-12}, 1},
		{"yarn", with(Scaling{Type: "yarn", Factor: 8}),
			[7]float64{0.74989420933245587, 0.06994205606273865, 0.0070522768047098817, 0.0046153846154, 0.0006081303192631499, 0.00029642171320770698, 1.6669017902041553e-05},
			[7]float64{1e-12, 1e-12, 1e-12, 1e-10, 1e-12, 1e-12, 1e-12}, 1.2079441541679836},
		{"yarn with original_max (factor = max/L0)", Params{Base: 10000, HeadDim: 64, MaxPositions: 16384,
			Scaling: Scaling{Type: "yarn", Factor: 8, OriginalMaxPositions: 2048}},
			[7]float64{0.74989420933245587, 0.06994205606273865, 0.0070522768047098817, 0.0046153846154, 0.0006081303192631499, 0.00029642171320770698, 1.6669017902041553e-05},
			[7]float64{1e-12, 1e-12, 1e-12, 1e-10, 1e-12, 1e-12, 1e-12}, 1.2079441541679836},
		{"llama3", with(Scaling{Type: "llama3", Factor: 8, OriginalMaxPositions: 2048, LowFreqFactor: 1, HighFreqFactor: 4}),
			[7]float64{0.74989420933245587, 0.074989420933245551, 0.013335214322, 0.0078401886007, 0.00042363925004, 0.00029642171320770698, 1.6669017902041553e-05},
			[7]float64{1e-12, 1e-12, 1e-10, 1e-10, 1e-10, 1e-12, 1e-12}, 1},
	}
	idx := [7]int{1, 9, 15, 16, 20, 21, 31}
	for _, c := range cases {
		f64, att, err := c.p.InvFreq64(0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f32, att32, err := c.p.InvFreq(0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if e := relErr(att, c.att); e > 1e-12 {
			t.Errorf("%s: attention factor %.17g, want %.17g", c.name, att, c.att)
		}
		if u := ulpDiff(att32, float32(c.att)); u > 1 {
			t.Errorf("%s: float32 attention factor %v, want %v", c.name, att32, float32(c.att))
		}
		for k, i := range idx {
			if math.IsNaN(c.want[k]) {
				continue
			}
			if e := relErr(f64[i], c.want[k]); e > c.tol[k] {
				t.Errorf("%s: inv64[%d] = %.17g, want %.17g (rel %g)", c.name, i, f64[i], c.want[k], e)
			}
			// float32: HF's arithmetic rounds at every step; a few ulp from
			// the float64 value, and never further than 1e-6 relative.
			if e := relErr(float64(f32[i]), c.want[k]); e > 1e-6 {
				t.Errorf("%s: inv32[%d] = %.9g, want %.9g (rel %g)", c.name, i, f32[i], c.want[k], e)
			}
		}
	}
}

// YaRN ratios θ'/θ and ramp ends from the reference, plus base 273k.
func TestYarnRamp(t *testing.T) {
	p := Params{Base: 10000, HeadDim: 64, MaxPositions: 2048, Scaling: Scaling{Type: "yarn", Factor: 8}}
	y := p.yarnSettings()
	if y.low != 8 || y.high != 21 {
		t.Errorf("ramp = [%v, %v], want [8, 21]", y.low, y.high)
	}
	inv, _, _ := p.InvFreq64(0)
	def, _, _ := Params{Base: 10000, HeadDim: 64}.InvFreq64(0)
	for i := range inv {
		want := 1.0
		switch {
		case i >= 21:
			want = 0.125
		case i > 8:
			want = 1 - (7.0/8)*float64(i-8)/13
		}
		if e := relErr(inv[i]/def[i], want); e > 1e-12 {
			t.Errorf("pair %d: ratio %.12g, want %.12g", i, inv[i]/def[i], want)
		}
	}
	if r := 1.2079441541679836 * 1.2079441541679836; math.Abs(r-1.45912908) > 1e-8 {
		t.Errorf("logit scale %v", r)
	}
	p.Base = 273000
	y = p.yarnSettings()
	if y.low != 5 || y.high != 15 {
		t.Errorf("base 273k: ramp = [%v, %v], want [5, 15]", y.low, y.high)
	}
	inv, _, _ = p.InvFreq64(0)
	if e := relErr(inv[31], 6.7706045490968232e-07); e > 1e-12 {
		t.Errorf("base 273k: inv[31] = %.17g", inv[31])
	}
	// mscale / mscale_all_dim (DeepSeek): equal values cancel to 1.
	p.Scaling.MScale, p.Scaling.MScaleAllDim = 0.707, 0.707
	if _, att, _ := p.InvFreq64(0); att != 1 {
		t.Errorf("mscale = mscale_all_dim: attention %v, want 1", att)
	}
	p.Scaling.MScale, p.Scaling.MScaleAllDim = 1, 0
	if _, att, _ := p.InvFreq64(0); relErr(att, 0.1*math.Log(8)+1) > 1e-15 {
		t.Errorf("mscale only: attention %v", att)
	}
	p.Scaling.AttentionFactor = 0.5
	if _, att, _ := p.InvFreq64(0); att != 0.5 {
		t.Errorf("explicit attention_factor: %v", att)
	}
	// truncate = false keeps the fractional ramp ends.
	p = Params{Base: 10000, HeadDim: 64, MaxPositions: 2048, Scaling: Scaling{Type: "yarn", Factor: 8, NoTruncate: true}}
	y = p.yarnSettings()
	lowWant := 64 * math.Log(2048/(32*2*math.Pi)) / (2 * math.Log(10000))
	highWant := 64 * math.Log(2048/(1*2*math.Pi)) / (2 * math.Log(10000))
	if relErr(y.low, lowWant) > 1e-15 || relErr(y.high, highWant) > 1e-15 {
		t.Errorf("untruncated ramp = [%v, %v], want [%v, %v]", y.low, y.high, lowWant, highWant)
	}
}

// Static and dynamic NTK from the reference.
func TestDynamicNTK(t *testing.T) {
	p := Params{Base: 10000, HeadDim: 64, MaxPositions: 2048, Scaling: Scaling{Type: "dynamic", Factor: 8}}
	for _, c := range []struct {
		seqLen            int
		base, inv1, inv31 float64
	}{
		{2048, 10000, 0.74989420933245587, 1.3335214321633242e-04},
		{4096, 96610.543623, 0.69858295284016614, math.NaN()},
		{16384, 649405.526287, 0.65820151202458044, 2.3395112844970598e-06},
	} {
		if b := p.dynamicBase(c.seqLen); relErr(b, c.base) > 1e-11 {
			t.Errorf("L=%d: base' = %.6f, want %.6f", c.seqLen, b, c.base)
		}
		inv, _, _ := p.InvFreq64(c.seqLen)
		if relErr(inv[1], c.inv1) > 1e-12 {
			t.Errorf("L=%d: inv[1] = %.17g, want %.17g", c.seqLen, inv[1], c.inv1)
		}
		if !math.IsNaN(c.inv31) && relErr(inv[31], c.inv31) > 1e-12 {
			t.Errorf("L=%d: inv[31] = %.17g, want %.17g", c.seqLen, inv[31], c.inv31)
		}
	}
	// Static NTK-aware base' = base·s^(d/(d−2)): equals linear at the lowest pair.
	static := 10000 * math.Pow(8, 64.0/62)
	if relErr(static, 85550.375886) > 1e-11 {
		t.Errorf("static NTK base' = %.6f", static)
	}
	inv, _, _ := Params{Base: static, HeadDim: 64}.InvFreq64(0)
	if relErr(inv[1], 0.70124223447900114) > 1e-12 || relErr(inv[31], 1.6669017902041553e-05) > 1e-12 {
		t.Errorf("static NTK inv[1] = %.17g inv[31] = %.17g", inv[1], inv[31])
	}
}

func TestLongRope(t *testing.T) {
	short := make([]float64, 32)
	long := make([]float64, 32)
	for i := range short {
		short[i] = 1 + float64(i)/100
		long[i] = 2 + float64(i)/10
	}
	// Phi-3 style: max 131072, L0 4096, factor derived = 32.
	p := Params{Base: 10000, HeadDim: 64, MaxPositions: 131072,
		Scaling: Scaling{Type: "longrope", OriginalMaxPositions: 4096, ShortFactor: short, LongFactor: long}}
	def, _, _ := Params{Base: 10000, HeadDim: 64}.InvFreq64(0)
	wantAtt := math.Sqrt(1 + math.Log(32)/math.Log(4096))
	for _, c := range []struct {
		seqLen int
		ext    []float64
	}{{0, short}, {4096, short}, {4097, long}, {131072, long}} {
		inv, att, err := p.InvFreq64(c.seqLen)
		if err != nil {
			t.Fatal(err)
		}
		inv32, att32, _ := p.InvFreq(c.seqLen)
		if relErr(att, wantAtt) > 1e-15 || ulpDiff(att32, float32(wantAtt)) > 1 {
			t.Errorf("L=%d: attention %v / %v, want %v", c.seqLen, att, att32, wantAtt)
		}
		for i := range inv {
			want := def[i] / c.ext[i]
			if relErr(inv[i], want) > 1e-12 || relErr(float64(inv32[i]), want) > 1e-6 {
				t.Errorf("L=%d pair %d: %v / %v, want %v", c.seqLen, i, inv[i], inv32[i], want)
			}
		}
	}
	// An explicit factor wins over max/L0; factor <= 1 gives attention 1.
	p.Scaling.Factor = 1
	if _, att, _ := p.InvFreq64(0); att != 1 {
		t.Errorf("factor 1: attention %v", att)
	}
	p.Scaling.LongFactor = long[:5]
	if _, _, err := p.InvFreq64(0); err == nil {
		t.Error("short long_factor list accepted")
	}
}

// Properties every method must have, across bases, factors and lengths.
func TestScalingProperties(t *testing.T) {
	for _, base := range []float64{10000, 100000, 273000, 500000} {
		for _, s := range []float64{2, 4, 8, 16} {
			for _, l0 := range []int{2048, 4096, 8192} {
				def := Params{Base: base, HeadDim: 64, MaxPositions: l0}
				d64, _, _ := def.InvFreq64(0)
				d32, _, _ := def.InvFreq(0)
				wl := Wavelengths(d64)
				check := func(name string, p Params, seqLen int, want func(i int, v float64) (float64, bool)) {
					t.Helper()
					g64, _, err := p.InvFreq64(seqLen)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					g32, _, _ := p.InvFreq(seqLen)
					for i := range g64 {
						w, ok := want(i, d64[i])
						if !ok {
							continue
						}
						if relErr(g64[i], w) > 1e-14 || relErr(float64(g32[i]), w) > 1e-6 {
							t.Errorf("%s base %v s %v L0 %d pair %d: %v / %v, want %v", name, base, s, l0, i, g64[i], g32[i], w)
						}
					}
				}
				// linear divides every pair.
				check("linear", Params{Base: base, HeadDim: 64, Scaling: Scaling{Type: "linear", Factor: s}}, 0,
					func(i int, v float64) (float64, bool) { return v / s, true })
				// dynamic equals default at or below L0, bit for bit in float32.
				dyn := Params{Base: base, HeadDim: 64, MaxPositions: l0, Scaling: Scaling{Type: "dynamic", Factor: s}}
				for _, L := range []int{0, 1, l0 / 2, l0} {
					g32, _, _ := dyn.InvFreq(L)
					for i := range g32 {
						if g32[i] != d32[i] {
							t.Errorf("dynamic L=%d <= L0=%d: pair %d = %v, default %v", L, l0, i, g32[i], d32[i])
						}
					}
				}
				// ... and lowers every non-zero frequency above L0.
				g, _, _ := dyn.InvFreq64(2 * l0)
				for i := 1; i < len(g); i++ {
					if !(g[i] < d64[i]) {
						t.Errorf("dynamic L=2·L0: pair %d not lowered", i)
					}
				}
				// yarn: pairs with ≥ beta_fast rotations over L0 keep θ; pairs
				// with < beta_slow rotations are divided by s.
				yarn := Params{Base: base, HeadDim: 64, MaxPositions: l0, Scaling: Scaling{Type: "yarn", Factor: s}}
				y := yarn.yarnSettings()
				check("yarn", yarn, 0, func(i int, v float64) (float64, bool) {
					switch {
					case float64(i) <= y.low:
						return v, true
					case float64(i) >= y.high:
						return v / s, true
					}
					return 0, false
				})
				rot := func(i int) float64 { return float64(l0) / wl[i] }
				for i := range wl {
					if rot(i) >= 32 && float64(i) > y.low || rot(i) < 1 && float64(i) < y.high {
						t.Errorf("yarn base %v L0 %d: pair %d (%.2f rotations) outside its band [%v, %v]", base, l0, i, rot(i), y.low, y.high)
					}
				}
				// llama3: λ < L0/high keeps θ, λ > L0/low gets θ/s.
				ll := Params{Base: base, HeadDim: 64, Scaling: Scaling{Type: "llama3", Factor: s, OriginalMaxPositions: l0, LowFreqFactor: 1, HighFreqFactor: 4}}
				check("llama3", ll, 0, func(i int, v float64) (float64, bool) {
					switch {
					case wl[i] < float64(l0)/4:
						return v, true
					case wl[i] > float64(l0):
						return v / s, true
					}
					return 0, false
				})
			}
		}
	}
}
