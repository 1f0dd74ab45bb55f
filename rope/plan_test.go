package rope

import (
	"math"
	"testing"
)

// Reference §3 (Liu et al.), d = 64.
func TestCriticalDimensionAndBase(t *testing.T) {
	for _, c := range []struct {
		d, train, want int
		base           float64
	}{
		{64, 2048, 42, 10000}, {64, 4096, 46, 10000}, {64, 8192, 50, 10000},
		{128, 4096, 92, 10000}, // LLaMA2
	} {
		if got := CriticalDimension(c.d, c.base, c.train); got != c.want {
			t.Errorf("d_extra(d=%d, T=%d) = %d, want %d", c.d, c.train, got, c.want)
		}
	}
	for _, c := range []struct {
		base          float64
		train, target int
		want, tol     float64
	}{
		{10000, 2048, 16384, 273768.4, 1}, // the recipe's number, ±1
		{10000, 2048, 4096, 30138.9, 0.1},
		{10000, 2048, 8192, 90835.5, 0.1},
		{10000, 2048, 32768, 825108.5, 0.1},
		{10000, 2048, 65536, 2486788.4, 0.1},
		{10000, 4096, 16384, 71738.4, 0.1},
		{10000, 4096, 32768, 192144.5, 0.1},
		{10000, 8192, 16384, 24351.7, 0.1},
		{100000, 8192, 16384, 304201.7, 0.1}, // from the released 8k models
		{130000, 8192, 16384, 405616.5, 0.1},
	} {
		got := CriticalBase(c.base, c.train, c.target)
		if math.Abs(got-c.want) > c.tol {
			t.Errorf("β0(%v, %d→%d) = %.2f, want %.1f", c.base, c.train, c.target, got, c.want)
		}
	}
	// Above β0 the bound is the critical dimension's wavelength 2π·β^(42/64).
	for _, c := range []struct{ beta, want float64 }{{500000, 34525}, {1e6, 54410}} {
		got, dim := ExtrapolationBound(64, 10000, 2048, 16384, c.beta)
		if math.Abs(got-c.want) > 0.5 || dim != 42 {
			t.Errorf("T_extra(β=%v) = %.1f (dim %d), want %v (dim 42)", c.beta, got, dim, c.want)
		}
	}
	// The same formula below β0 gives the reference values; the bound
	// there is the tuning length and the critical dimension grows.
	for _, c := range []struct{ beta, formula float64 }{{100000, 12007}, {130000, 14263}, {273000, 23209}, {273768, 23252}} {
		if f := 2 * math.Pi * math.Pow(c.beta, 42.0/64); math.Abs(f-c.formula) > 0.5 {
			t.Errorf("2π·β^(42/64) at %v = %.1f, want %v", c.beta, f, c.formula)
		}
		got, dim := ExtrapolationBound(64, 10000, 2048, 16384, c.beta)
		wantDim := 2 * int(math.Ceil(32*math.Log(16384/(2*math.Pi))/math.Log(c.beta)))
		if got != 16384 || dim != wantDim || dim < 42 {
			t.Errorf("β=%v <= β0: bound %v dim %d, want 16384 and %d (>= 42)", c.beta, got, dim, wantDim)
		}
	}
	if b := CriticalBaseCeil(64, 10000, 2048, 16384); math.Abs(b-160582.8) > 0.1 {
		t.Errorf("ceil-form base = %.2f, want 160582.8", b)
	}
}

// Reference §4: first m where Σcos(m·θ_i) < 0, exact.
func TestFirstNegative(t *testing.T) {
	for _, c := range []struct {
		d    int
		base float64
		want int
	}{
		{64, 10000, 725}, {64, 100000, 3616}, {64, 130000, 3853}, {64, 273000, 5212}, {64, 273768, 5217},
		{64, 500000, 9937}, {64, 1e6, 6235}, {64, 1.7e6, 17997}, {64, 5e6, 31099},
		{128, 10000, 1707}, {128, 273000, 14555}, {128, 1e6, 27115},
	} {
		if got := FirstNegative(c.d, c.base, 1<<20); got != c.want {
			t.Errorf("d=%d base %v: first negative m = %d, want %d", c.d, c.base, got, c.want)
		}
		// The rotation scorer must agree with the direct one.
		s := newScorer(c.d, 1<<20)
		for i := range s.theta {
			s.theta[i] = 1 / math.Pow(c.base, float64(2*i)/float64(c.d))
		}
		if got := s.firstNegative(); got != c.want {
			t.Errorf("d=%d base %v: rotation scorer says %d, want %d", c.d, c.base, got, c.want)
		}
	}
	if got := FirstNegative(64, 1e7, 16384); got != -1 {
		t.Errorf("base 1e7 fails at %d below 16384", got)
	}
}

// Reference §4 table, K = 4: the bound to the grid's resolution. The
// reference prints four significant digits.
func TestMenLowerBound(t *testing.T) {
	for _, c := range []struct {
		d, length int
		want      float64
	}{
		{64, 2048, 29620}, {64, 4096, 100100}, {64, 8192, 323800}, {64, 16384, 1359000}, {64, 32768, 3788000},
		{128, 1024, 4294}, {128, 2048, 11590}, {128, 4096, 26950},
	} {
		got, err := MenLowerBound(c.d, c.length, 4)
		if err != nil {
			t.Fatal(err)
		}
		// Resolution: the last level's step (≈ b·1e-4) plus the reference's rounding.
		res := 1e-4*got + 0.5*math.Pow(10, math.Floor(math.Log10(c.want))-3)
		if math.Abs(got-c.want) > res {
			t.Errorf("b*(d=%d, L=%d) = %.1f, want %v ± %.1f", c.d, c.length, got, c.want, res)
		}
		// It must really be feasible.
		if FirstNegative(c.d, got, c.length) != -1 {
			t.Errorf("b*(d=%d, L=%d) = %v is not feasible", c.d, c.length, got)
		}
	}
	// Non-monotone: 1e6 fails earlier than 5e5 at d = 64.
	if FirstNegative(64, 1e6, 1<<20) >= FirstNegative(64, 5e5, 1<<20) {
		t.Error("expected the score to be non-monotone in the base")
	}
	if _, err := MenLowerBound(63, 2048, 4); err == nil {
		t.Error("odd head_dim accepted")
	}
}

func TestPlan(t *testing.T) {
	r, err := Plan(64, 10000, 2048, 16384, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.CriticalDimension != 42 || math.Abs(r.CriticalBase-273768.4) > 1 || r.NewBase != r.CriticalBase {
		t.Errorf("plan: d_extra %d β0 %v new %v", r.CriticalDimension, r.CriticalBase, r.NewBase)
	}
	if math.Abs(r.MenLowerBound-1359000) > 500 || math.Abs(r.MenLowerBoundTrain-29620) > 10 {
		t.Errorf("plan: Men bounds %v / %v", r.MenLowerBound, r.MenLowerBoundTrain)
	}
	if r.ExtrapolationBound != 16384 {
		t.Errorf("plan: extrapolation bound at β0 = %v, want the target 16384", r.ExtrapolationBound)
	}
	byLabel := map[string]BaseCheck{}
	for _, b := range r.Bases {
		byLabel[b.Label] = b
	}
	if b := byLabel["start"]; b.FirstNegative != 725 || b.MeetsMenBound {
		t.Errorf("start base check %+v", b)
	}
	if b := byLabel["critical"]; b.FirstNegative != 5217 || b.MeetsMenBound {
		t.Errorf("critical base check %+v", b)
	}
	if b := byLabel["men"]; !b.MeetsMenBound || b.FirstNegative != -1 {
		t.Errorf("men base check %+v", b)
	}
	methods := map[string]MethodPlan{}
	for _, m := range r.Methods {
		if len(m.Wavelengths) != 32 {
			t.Fatalf("%s: %d wavelengths", m.Method, len(m.Wavelengths))
		}
		methods[m.Method] = m
	}
	// Reference: at base 10k, pairs 0…20 complete a period within 2048.
	if m := methods["default"]; m.PairsWithinTrain != 21 {
		t.Errorf("default: %d pairs within train, want 21", m.PairsWithinTrain)
	}
	// ABF at β0: the pairs inside 16384 now are those that were inside 2048.
	if m := methods["abf"]; m.PairsWithinTarget != 21 {
		t.Errorf("abf: %d pairs within target, want 21", m.PairsWithinTarget)
	}
	// Linear divides every frequency by 8: each wavelength ×8.
	for i, wl := range methods["linear"].Wavelengths {
		if relErr(wl, 8*methods["default"].Wavelengths[i]) > 1e-12 {
			t.Errorf("linear pair %d: %v", i, wl)
		}
	}
	if a := methods["yarn"].AttentionFactor; relErr(a, 1.2079441541679836) > 1e-12 {
		t.Errorf("yarn attention %v", a)
	}
	if _, err := Plan(64, 10000, 16384, 2048, 0); err == nil {
		t.Error("target shorter than train accepted")
	}
	chosen, err := Plan(64, 10000, 2048, 16384, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(chosen.ExtrapolationBound-54410) > 0.5 || len(chosen.Bases) != 4 {
		t.Errorf("chosen 1e6: bound %v, %d bases", chosen.ExtrapolationBound, len(chosen.Bases))
	}
}
