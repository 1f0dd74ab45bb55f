package rope

import (
	"fmt"
	"math"
	"sync"
)

// Liu et al. 2023 (arXiv 2310.05209), "Scaling laws of RoPE-based
// extrapolation", generalised from base 10,000 to any starting base.

// CriticalDimension is d_extra = 2·⌈(d/2)·log_base(trainLen/2π)⌉: the pairs
// below d_extra/2 complete a full period within trainLen, so their whole
// range of angles was seen in training.
func CriticalDimension(headDim int, base float64, trainLen int) int {
	x := float64(headDim) / 2 * math.Log(float64(trainLen)/(2*math.Pi)) / math.Log(base)
	// Guard the ceiling against a product that lands a hair above an integer.
	c := math.Ceil(x - 1e-9)
	return min(headDim, max(0, 2*int(c)))
}

// CriticalBase is β0 = base^(ln(T/2π) / ln(T_train/2π)): the base at which
// the pair that completed exactly one period in trainLen at the starting
// base completes one period in targetLen.
func CriticalBase(base float64, trainLen, targetLen int) float64 {
	return math.Pow(base, math.Log(float64(targetLen)/(2*math.Pi))/math.Log(float64(trainLen)/(2*math.Pi)))
}

// CriticalBaseCeil is (T/2π)^(d/d_extra): with the critical dimension
// rounded up, the base at which its wavelength reaches the target length
// (below β0 whenever the rounding is not a no-op).
func CriticalBaseCeil(headDim int, base float64, trainLen, targetLen int) float64 {
	dExtra := CriticalDimension(headDim, base, trainLen)
	if dExtra == 0 {
		return math.Inf(1)
	}
	return math.Pow(float64(targetLen)/(2*math.Pi), float64(headDim)/float64(dExtra))
}

// ExtrapolationBound is Liu et al.'s bound for a model pre-trained at
// trainLen with base0 and tuned at tuneLen with base beta: above the critical
// base it is 2π·β^(d_extra/d), the wavelength of the critical dimension; at or
// below it the bound is tuneLen and the critical dimension grows to
// 2·⌈(d/2)·log_β(tuneLen/2π)⌉. It returns the bound and that dimension.
func ExtrapolationBound(headDim int, base0 float64, trainLen, tuneLen int, beta float64) (float64, int) {
	dExtra := CriticalDimension(headDim, base0, trainLen)
	if beta > CriticalBase(base0, trainLen, tuneLen) {
		return 2 * math.Pi * math.Pow(beta, float64(dExtra)/float64(headDim)), dExtra
	}
	return float64(tuneLen), CriticalDimension(headDim, beta, tuneLen)
}

// Men et al. 2024 (arXiv 2405.14591): the long-term decay score
// B(m) = Σ_i cos(m·θ_i) must stay ≥ 0 for every relative distance m < L,
// else the model only has "superficial" long context.

// FirstNegative returns the smallest m < limit with Σ_i cos(m·θ_i) < 0 for
// θ_i = base^(−2i/d), or −1 if there is none.
func FirstNegative(headDim int, base float64, limit int) int {
	theta := defaultInvFreq64(base, headDim)
	for m := 1; m < limit; m++ {
		fm := float64(m)
		var sum float64
		for _, t := range theta {
			sum += math.Cos(fm * t)
		}
		if sum < 0 {
			return m
		}
	}
	return -1
}

// MenLowerBound returns the smallest base b found by a refining grid search
// such that Σ_i cos(m·b^(−2i/d)) ≥ 0 for all m < length.
//
// The score is not monotone in b (at d = 64 the first failing m is 9,937 at
// b = 5e5 but 6,235 at b = 1e6), so bisection can land on either side of a
// feasible island. The search is Su Jianlin's (kexue.fm/archives/10122),
// which reproduces the paper's table: start from B = 1000·length; at level
// k = 1 … levels scan b = B·j/10^k for j = 1, 2, … upward and keep the first
// feasible value as the new B. Every level rescans from the bottom, with a
// step 10^k times finer than B, so islands missed by a coarse level are
// found by a finer one; the result is within B·10^−levels of the first
// feasible point of the last grid.
func MenLowerBound(headDim, length, levels int) (float64, error) {
	key := [3]int{headDim, length, levels}
	menMu.Lock()
	b, ok := menMemo[key]
	menMu.Unlock()
	if ok {
		return b, nil
	}
	b, err := menLowerBound(headDim, length, levels)
	if err == nil {
		menMu.Lock()
		menMemo[key] = b
		menMu.Unlock()
	}
	return b, err
}

// The search takes around a second at 16k; a plan asks for the same bound
// more than once, so results are remembered.
var (
	menMu   sync.Mutex
	menMemo = map[[3]int]float64{}
)

func menLowerBound(headDim, length, levels int) (float64, error) {
	if headDim < 2 || headDim%2 != 0 || length < 2 || levels < 1 {
		return 0, fmt.Errorf("rope: Men bound needs even head_dim >= 2, length >= 2, levels >= 1 (got %d, %d, %d)", headDim, length, levels)
	}
	w := newScorer(headDim, length)
	B := 1000 * float64(length)
	for !w.feasible(B) {
		B *= 10
		if B > 1e18 {
			return 0, fmt.Errorf("rope: no base up to 1e18 keeps the score non-negative below %d at head_dim %d", length, headDim)
		}
	}
	scale := 1.0
	for range levels {
		scale *= 10
		// b = B·j/scale for j < scale; j = scale is B itself, known feasible.
		for j := 1; j < int(scale); j++ {
			b := B * float64(j) / scale
			if b > 1 && w.feasible(b) {
				B = b
				break
			}
		}
	}
	return B, nil
}

// scorer tests Men et al. feasibility. Two things make the thousands of
// grid points cheap without changing any answer:
//   - nearby bases tend to fail at nearby distances, so the distances that
//     proved recent bases infeasible are tried first (O(d) each);
//   - the full scan advances cos/sin(m·θ_i) by rotation instead of calling
//     cos for every (m, i), resynchronising exactly every resync steps, and
//     recomputes with math.Cos any score too close to zero for the
//     rotation's rounding error to decide its sign.
type scorer struct {
	d, length int
	witnesses []int // recent distances with a negative score, newest last
	theta     []float64
	c, s      []float64 // cos, sin(m·θ_i)
	cw, sw    []float64 // cos, sin(θ_i)
}

const (
	maxWitnesses  = 64
	witnessWindow = 64
	resync        = 512
	// The rotation's accumulated error after resync steps is far below this.
	scoreEps = 1e-9
)

func newScorer(headDim, length int) *scorer {
	n := headDim / 2
	return &scorer{d: headDim, length: length, theta: make([]float64, n),
		c: make([]float64, n), s: make([]float64, n), cw: make([]float64, n), sw: make([]float64, n)}
}

// score is Σ_i cos(m·θ_i), evaluated directly.
func (s *scorer) score(m int) float64 {
	fm := float64(m)
	var sum float64
	for _, t := range s.theta {
		sum += math.Cos(fm * t)
	}
	return sum
}

func (s *scorer) feasible(base float64) bool {
	for i := range s.theta {
		s.theta[i] = 1 / math.Pow(base, float64(2*i)/float64(s.d))
	}
	for k := len(s.witnesses) - 1; k >= 0; k-- {
		if s.score(s.witnesses[k]) < 0 {
			return false
		}
	}
	// The negative region moves a little as the base moves: look around
	// the newest witness before scanning everything.
	if n := len(s.witnesses); n > 0 {
		w := s.witnesses[n-1]
		for m := max(1, w-witnessWindow); m < min(s.length, w+witnessWindow+1); m++ {
			if s.score(m) < 0 {
				s.addWitness(m)
				return false
			}
		}
	}
	m := s.firstNegative()
	if m < 0 {
		return true
	}
	s.addWitness(m)
	return false
}

func (s *scorer) addWitness(m int) {
	if len(s.witnesses) == maxWitnesses {
		s.witnesses = s.witnesses[1:]
	}
	s.witnesses = append(s.witnesses, m)
}

// firstNegative is FirstNegative for the current θ, by rotation.
func (s *scorer) firstNegative() int {
	for i, t := range s.theta {
		s.sw[i], s.cw[i] = math.Sincos(t)
	}
	for m := 1; m < s.length; m++ {
		var sum float64
		if m%resync == 1 {
			fm := float64(m)
			for i, t := range s.theta {
				s.s[i], s.c[i] = math.Sincos(fm * t)
				sum += s.c[i]
			}
		} else {
			for i := range s.c {
				c, sn := s.c[i], s.s[i]
				s.c[i] = c*s.cw[i] - sn*s.sw[i]
				s.s[i] = sn*s.cw[i] + c*s.sw[i]
				sum += s.c[i]
			}
		}
		if sum < scoreEps && (sum < -scoreEps || s.score(m) < 0) {
			return m
		}
	}
	return -1
}

// BaseCheck is one candidate base judged by both theories.
type BaseCheck struct {
	Label string  `json:"label"`
	Base  float64 `json:"base"`
	// ExtrapolationBound and CriticalDimension per Liu et al. after tuning
	// at the target length with this base.
	ExtrapolationBound float64 `json:"extrapolation_bound"`
	CriticalDimension  int     `json:"critical_dimension"`
	// FirstNegative is the first distance below the target length where
	// Men et al.'s score turns negative; −1 if none (the base passes).
	FirstNegative int  `json:"first_negative"`
	MeetsMenBound bool `json:"meets_men_bound"`
}

// MethodPlan is one way to reach the target length, seen pair by pair.
type MethodPlan struct {
	Method          string    `json:"method"`
	Note            string    `json:"note"`
	Params          Params    `json:"-"`
	AttentionFactor float64   `json:"attention_factor"`
	Wavelengths     []float64 `json:"wavelengths"` // tokens, per pair i = 0 … d/2−1
	// PairsWithinTrain completed a full period inside the training length;
	// PairsWithinTarget inside the target length.
	PairsWithinTrain  int `json:"pairs_within_train"`
	PairsWithinTarget int `json:"pairs_within_target"`
}

// PlanResult is what the planner derives for extending a model pre-trained
// at TrainLen with Base to TargetLen.
type PlanResult struct {
	HeadDim   int     `json:"head_dim"`
	Base      float64 `json:"base"`
	TrainLen  int     `json:"train_len"`
	TargetLen int     `json:"target_len"`
	// NewBase is the base the plan judges (the critical base unless chosen).
	NewBase float64 `json:"new_base"`

	CriticalDimension int     `json:"critical_dimension"` // d_extra at Base, TrainLen
	CriticalBase      float64 `json:"critical_base"`      // β0
	// CriticalBaseCeil is (T/2π)^(d/d_extra): the base at which the
	// critical dimension's wavelength equals the target length.
	CriticalBaseCeil float64 `json:"critical_base_ceil"`
	// ExtrapolationBound (and the critical dimension it implies) at NewBase.
	ExtrapolationBound             float64 `json:"extrapolation_bound"`
	ExtrapolationCriticalDimension int     `json:"extrapolation_critical_dimension"`
	// MenLowerBound is b* for the target length; MenLowerBoundTrain for the
	// training length, for scale.
	MenLowerBound      float64 `json:"men_lower_bound"`
	MenLowerBoundTrain float64 `json:"men_lower_bound_train"`
	MenLevels          int     `json:"men_search_levels"`

	Bases   []BaseCheck  `json:"bases"`
	Methods []MethodPlan `json:"methods"`
}

// MenLevels is the grid depth of the Men et al. search in Plan: four levels
// give the bound to about four significant digits.
const MenLevels = 4

// Plan derives the RoPE settings for extending a model with headDim and base,
// pre-trained at trainLen, to targetLen. newBase is the base to judge; 0 means
// the critical base.
func Plan(headDim int, base float64, trainLen, targetLen int, newBase float64) (PlanResult, error) {
	p := Params{Base: base, HeadDim: headDim}
	if err := p.Validate(); err != nil {
		return PlanResult{}, err
	}
	if trainLen < 7 || targetLen <= trainLen {
		return PlanResult{}, fmt.Errorf("rope: plan needs 2π < train length < target length, got %d and %d", trainLen, targetLen)
	}
	r := PlanResult{HeadDim: headDim, Base: base, TrainLen: trainLen, TargetLen: targetLen, MenLevels: MenLevels}
	r.CriticalDimension = CriticalDimension(headDim, base, trainLen)
	r.CriticalBase = CriticalBase(base, trainLen, targetLen)
	r.CriticalBaseCeil = CriticalBaseCeil(headDim, base, trainLen, targetLen)
	r.NewBase = newBase
	if r.NewBase == 0 {
		r.NewBase = r.CriticalBase
	}
	if err := (Params{Base: r.NewBase, HeadDim: headDim}).Validate(); err != nil {
		return PlanResult{}, fmt.Errorf("new base: %w", err)
	}
	r.ExtrapolationBound, r.ExtrapolationCriticalDimension = ExtrapolationBound(headDim, base, trainLen, targetLen, r.NewBase)
	var err error
	if r.MenLowerBound, err = MenLowerBound(headDim, targetLen, MenLevels); err != nil {
		return PlanResult{}, err
	}
	if r.MenLowerBoundTrain, err = MenLowerBound(headDim, trainLen, MenLevels); err != nil {
		return PlanResult{}, err
	}
	check := func(label string, b float64) BaseCheck {
		c := BaseCheck{Label: label, Base: b}
		c.ExtrapolationBound, c.CriticalDimension = ExtrapolationBound(headDim, base, trainLen, targetLen, b)
		c.FirstNegative = FirstNegative(headDim, b, targetLen)
		c.MeetsMenBound = c.FirstNegative < 0
		return c
	}
	r.Bases = []BaseCheck{check("start", base), check("critical", r.CriticalBase)}
	if newBase != 0 {
		r.Bases = append(r.Bases, check("chosen", r.NewBase))
	}
	r.Bases = append(r.Bases, check("men", r.MenLowerBound))

	s := float64(targetLen) / float64(trainLen)
	methods := []MethodPlan{
		{Method: "default", Note: "unchanged pre-training RoPE", Params: p},
		{Method: "abf", Note: "base raised to the new base (rope_theta only)", Params: Params{Base: r.NewBase, HeadDim: headDim}},
		{Method: "linear", Note: "position interpolation, factor target/train",
			Params: Params{Base: base, HeadDim: headDim, Scaling: Scaling{Type: TypeLinear, Factor: s}}},
		{Method: "ntk-static", Note: "NTK-aware base·s^(d/(d−2))", Params: Params{Base: base * math.Pow(s, float64(headDim)/float64(headDim-2)), HeadDim: headDim}},
		{Method: "dynamic", Note: "dynamic NTK at the target length",
			Params: Params{Base: base, HeadDim: headDim, MaxPositions: trainLen, Scaling: Scaling{Type: TypeDynamic, Factor: s}}},
		{Method: "yarn", Note: "YaRN, beta_fast 32, beta_slow 1",
			Params: Params{Base: base, HeadDim: headDim, MaxPositions: trainLen, Scaling: Scaling{Type: TypeYarn, Factor: s}}},
		{Method: "llama3", Note: "Llama 3.1 bands, low_freq_factor 1, high_freq_factor 4",
			Params: Params{Base: base, HeadDim: headDim, Scaling: Scaling{Type: TypeLlama3, Factor: s, OriginalMaxPositions: trainLen, LowFreqFactor: 1, HighFreqFactor: 4}}},
	}
	for i := range methods {
		m := &methods[i]
		inv, att, err := m.Params.InvFreq64(targetLen)
		if err != nil {
			return PlanResult{}, fmt.Errorf("method %s: %w", m.Method, err)
		}
		m.AttentionFactor = att
		m.Wavelengths = Wavelengths(inv)
		for _, wl := range m.Wavelengths {
			if wl <= float64(trainLen) {
				m.PairsWithinTrain++
			}
			if wl <= float64(targetLen) {
				m.PairsWithinTarget++
			}
		}
	}
	r.Methods = methods
	return r, nil
}
