// Package rope computes rotary position embedding (RoPE) frequencies for every
// scaling method HF transformers supports, plans a new RoPE base for context
// extension, and reads and writes the RoPE fields of an HF config.json.
//
// Conventions follow HF transformers (modeling_rope_utils.py, 5.x semantics):
// θ_i = base^(−2i/d) for i = 0 … d/2−1, the rotate_half (non-interleaved)
// layout, and inverse frequencies computed in float32. InvFreq reproduces the
// float32 arithmetic step by step; InvFreq64 is the same maths in float64 for
// analysis.
package rope

import (
	"fmt"
	"math"
)

// Scaling types, as written in config.json "rope_type" (or legacy "type").
const (
	TypeDefault  = "default"
	TypeLinear   = "linear"
	TypeDynamic  = "dynamic"
	TypeYarn     = "yarn"
	TypeLlama3   = "llama3"
	TypeLongRope = "longrope"
)

// Scaling is the rope_scaling block of an HF config. Zero values mean "not
// given": each method then uses HF's default for that key.
type Scaling struct {
	Type   string  // "default" (or ""), "linear", "dynamic", "yarn", "llama3", "longrope"
	Factor float64 // s; for longrope optional (derived from MaxPositions/OriginalMaxPositions)
	// OriginalMaxPositions is L0, the pre-training context. 0 = use
	// Params.MaxPositions (HF's fallback).
	OriginalMaxPositions int
	// llama3 band edges.
	LowFreqFactor, HighFreqFactor float64
	// yarn ramp, in rotations over L0: HF defaults 32 and 1.
	BetaFast, BetaSlow float64
	// AttentionFactor scales cos/sin (so q·k logits by its square);
	// 0 = derive it the way HF does.
	AttentionFactor float64
	// yarn DeepSeek-style attention factor: mscale(s, MScale)/mscale(s, MScaleAllDim).
	MScale, MScaleAllDim float64
	// NoTruncate is yarn "truncate": false (HF default true floors/ceils the ramp ends).
	NoTruncate bool
	// longrope per-pair rescale factors, d/2 each.
	ShortFactor, LongFactor []float64
}

// Params are the RoPE settings of one model.
type Params struct {
	Base         float64 // rope_theta
	HeadDim      int
	MaxPositions int // max_position_embeddings
	// PartialRotaryFactor rotates only int(HeadDim·f) dims; 0 = 1 (all).
	PartialRotaryFactor float64
	Scaling             Scaling // Type "" or "default" = no scaling
}

// Dim is the rotary dimension d: int(HeadDim · PartialRotaryFactor).
func (p Params) Dim() int {
	if p.PartialRotaryFactor == 0 || p.PartialRotaryFactor == 1 {
		return p.HeadDim
	}
	return int(float64(p.HeadDim) * p.PartialRotaryFactor)
}

// ScalingType returns the normalised scaling type ("su" is HF's old name for
// longrope; "" means default).
func (p Params) ScalingType() string {
	switch p.Scaling.Type {
	case "", TypeDefault:
		return TypeDefault
	case "su":
		return TypeLongRope
	}
	return p.Scaling.Type
}

// Validate reports the first setting that makes the frequencies undefined.
func (p Params) Validate() error {
	d := p.Dim()
	switch {
	case !(p.Base > 1) || math.IsInf(p.Base, 0):
		return fmt.Errorf("rope: base %v must be a finite number > 1", p.Base)
	case p.HeadDim <= 0:
		return fmt.Errorf("rope: head_dim %d must be positive", p.HeadDim)
	case p.PartialRotaryFactor < 0 || p.PartialRotaryFactor > 1:
		return fmt.Errorf("rope: partial_rotary_factor %v must be in (0, 1]", p.PartialRotaryFactor)
	case d < 2 || d%2 != 0:
		return fmt.Errorf("rope: rotary dim %d (head_dim %d x partial_rotary_factor) must be even and >= 2", d, p.HeadDim)
	case p.MaxPositions < 0:
		return fmt.Errorf("rope: max_position_embeddings %d is negative", p.MaxPositions)
	}
	s := p.Scaling
	t := p.ScalingType()
	needFactor := func() error {
		if !(s.Factor > 0) || math.IsInf(s.Factor, 0) {
			return fmt.Errorf("rope: %s scaling needs factor > 0, got %v", t, s.Factor)
		}
		return nil
	}
	needL0 := func() error {
		if p.originalMax() <= 0 {
			return fmt.Errorf("rope: %s scaling needs original_max_position_embeddings (or max_position_embeddings)", t)
		}
		return nil
	}
	switch t {
	case TypeDefault:
	case TypeLinear:
		return needFactor()
	case TypeDynamic, TypeYarn:
		if err := needFactor(); err != nil {
			return err
		}
		if err := needL0(); err != nil {
			return err
		}
		if t == TypeYarn && (s.BetaFast < 0 || s.BetaSlow < 0) {
			return fmt.Errorf("rope: yarn beta_fast %v / beta_slow %v must be positive", s.BetaFast, s.BetaSlow)
		}
	case TypeLlama3:
		if err := needFactor(); err != nil {
			return err
		}
		if s.OriginalMaxPositions <= 0 {
			return fmt.Errorf("rope: llama3 scaling needs original_max_position_embeddings")
		}
		if !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) {
			return fmt.Errorf("rope: llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got %v and %v",
				s.LowFreqFactor, s.HighFreqFactor)
		}
	case TypeLongRope:
		if len(s.ShortFactor) != d/2 || len(s.LongFactor) != d/2 {
			return fmt.Errorf("rope: longrope short_factor and long_factor need %d values each (d/2), got %d and %d",
				d/2, len(s.ShortFactor), len(s.LongFactor))
		}
		for i := range d / 2 {
			if !(s.ShortFactor[i] > 0) || !(s.LongFactor[i] > 0) {
				return fmt.Errorf("rope: longrope factors must be positive (pair %d: short %v long %v)",
					i, s.ShortFactor[i], s.LongFactor[i])
			}
		}
		if err := needL0(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("rope: unknown scaling type %q (want default, linear, dynamic, yarn, llama3 or longrope)", s.Type)
	}
	return nil
}

// originalMax is L0: rope_scaling original_max_position_embeddings, or
// max_position_embeddings when it is absent (HF's fallback).
func (p Params) originalMax() int {
	if p.Scaling.OriginalMaxPositions > 0 {
		return p.Scaling.OriginalMaxPositions
	}
	return p.MaxPositions
}

// InvFreq returns the d/2 inverse frequencies and the attention factor
// (the multiplier HF applies to cos and sin) the way HF computes them, in
// float32. seqLen is the current sequence length; only dynamic and longrope
// depend on it (0 = the value HF uses at initialisation).
func (p Params) InvFreq(seqLen int) ([]float32, float32, error) {
	if err := p.Validate(); err != nil {
		return nil, 0, err
	}
	d := p.Dim()
	s := p.Scaling
	switch p.ScalingType() {
	case TypeDefault:
		return defaultInvFreq32(p.Base, d), 1, nil
	case TypeLinear:
		inv := defaultInvFreq32(p.Base, d)
		f := float32(s.Factor)
		for i := range inv {
			inv[i] /= f
		}
		return inv, 1, nil
	case TypeDynamic:
		return defaultInvFreq32(p.dynamicBase(seqLen), d), 1, nil
	case TypeYarn:
		return p.yarn32()
	case TypeLlama3:
		return p.llama3_32(), 1, nil
	case TypeLongRope:
		return p.longrope32(seqLen)
	}
	panic("unreachable: Validate accepted type " + s.Type)
}

// InvFreq64 is InvFreq in float64 throughout, for analysis and plots.
func (p Params) InvFreq64(seqLen int) ([]float64, float64, error) {
	if err := p.Validate(); err != nil {
		return nil, 0, err
	}
	d := p.Dim()
	s := p.Scaling
	switch p.ScalingType() {
	case TypeDefault:
		return defaultInvFreq64(p.Base, d), 1, nil
	case TypeLinear:
		inv := defaultInvFreq64(p.Base, d)
		for i := range inv {
			inv[i] /= s.Factor
		}
		return inv, 1, nil
	case TypeDynamic:
		return defaultInvFreq64(p.dynamicBase(seqLen), d), 1, nil
	case TypeYarn:
		return p.yarn64()
	case TypeLlama3:
		return p.llama3_64(), 1, nil
	case TypeLongRope:
		return p.longrope64(seqLen)
	}
	panic("unreachable: Validate accepted type " + s.Type)
}

// defaultInvFreq32 follows HF: exponents arange(0,d,2) as float32 divided by
// d in float32, pow(float32(base), e) rounded to float32, reciprocal in float32.
func defaultInvFreq32(base float64, d int) []float32 {
	inv := make([]float32, d/2)
	b := float64(float32(base))
	for i := range inv {
		e := float32(2*i) / float32(d)
		inv[i] = 1 / float32(math.Pow(b, float64(e)))
	}
	return inv
}

// posFreq32 is base^(2i/d) in float32 (HF's pos_freqs).
func posFreq32(base float64, d int) []float32 {
	pf := make([]float32, d/2)
	b := float64(float32(base))
	for i := range pf {
		pf[i] = float32(math.Pow(b, float64(float32(2*i)/float32(d))))
	}
	return pf
}

func defaultInvFreq64(base float64, d int) []float64 {
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(base, float64(2*i)/float64(d))
	}
	return inv
}

// dynamicBase is the NTK-aware base for the current length:
// base·((s·L/L0) − (s−1))^(d/(d−2)) when L > L0, else base unchanged.
// (HF evaluates the expression at L = L0 too, where it is exactly 1.)
func (p Params) dynamicBase(seqLen int) float64 {
	l0 := p.originalMax()
	if seqLen <= l0 {
		return p.Base
	}
	s := p.Scaling.Factor
	d := float64(p.Dim())
	return p.Base * math.Pow(s*float64(seqLen)/float64(l0)-(s-1), d/(d-2))
}

// yarnSettings holds the float64 scalars HF derives before the tensor maths.
type yarnSettings struct {
	factor, attention float64
	low, high         float64 // ramp ends in pair index
}

func (p Params) yarnSettings() yarnSettings {
	s := p.Scaling
	d := p.Dim()
	factor := s.Factor
	l0 := p.MaxPositions
	if s.OriginalMaxPositions > 0 {
		l0 = s.OriginalMaxPositions
		// HF (DeepSeek-V3 convention): with original_max_position_embeddings
		// given, the factor is the ratio of the two lengths.
		if p.MaxPositions > 0 {
			factor = float64(p.MaxPositions) / float64(l0)
		}
	}
	mscale := func(scale, m float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*m*math.Log(scale) + 1
	}
	att := s.AttentionFactor
	if att == 0 {
		if s.MScale != 0 && s.MScaleAllDim != 0 {
			att = mscale(factor, s.MScale) / mscale(factor, s.MScaleAllDim)
		} else {
			att = mscale(factor, 1)
		}
	}
	betaFast, betaSlow := s.BetaFast, s.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	corr := func(rot float64) float64 {
		return float64(d) * math.Log(float64(l0)/(rot*2*math.Pi)) / (2 * math.Log(p.Base))
	}
	low, high := corr(betaFast), corr(betaSlow)
	if !s.NoTruncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low = math.Max(low, 0)
	high = math.Min(high, float64(d-1))
	if low == high {
		high += 0.001 // HF: prevent a zero-width ramp
	}
	return yarnSettings{factor: factor, attention: att, low: low, high: high}
}

func (p Params) yarn32() ([]float32, float32, error) {
	y := p.yarnSettings()
	d := p.Dim()
	pf := posFreq32(p.Base, d)
	f := float32(y.factor)
	low, width := float32(y.low), float32(y.high-y.low)
	inv := make([]float32, d/2)
	for i := range inv {
		extra := 1 / pf[i]
		inter := 1 / (f * pf[i])
		ramp := min(max((float32(i)-low)/width, 0), 1)
		e := 1 - ramp // extrapolation weight
		inv[i] = inter*(1-e) + extra*e
	}
	return inv, float32(y.attention), nil
}

func (p Params) yarn64() ([]float64, float64, error) {
	y := p.yarnSettings()
	d := p.Dim()
	inv := make([]float64, d/2)
	for i := range inv {
		pf := math.Pow(p.Base, float64(2*i)/float64(d))
		ramp := min(max((float64(i)-y.low)/(y.high-y.low), 0), 1)
		e := 1 - ramp
		inv[i] = (1/(y.factor*pf))*(1-e) + (1/pf)*e
	}
	return inv, y.attention, nil
}

// llama3 keeps pairs whose wavelength is below L0/high_freq_factor, divides
// those above L0/low_freq_factor by the factor, and blends in between.
func (p Params) llama3_32() []float32 {
	s := p.Scaling
	inv := defaultInvFreq32(p.Base, p.Dim())
	l0 := float64(s.OriginalMaxPositions)
	lowWL := float32(l0 / s.LowFreqFactor)
	highWL := float32(l0 / s.HighFreqFactor)
	f := float32(s.Factor)
	lowFF := float32(s.LowFreqFactor)
	span := float32(s.HighFreqFactor - s.LowFreqFactor)
	for i, v := range inv {
		wl := float32(2*math.Pi) / v
		switch {
		case wl > lowWL:
			inv[i] = v / f
		case wl < highWL:
		default:
			smooth := (float32(l0)/wl - lowFF) / span
			inv[i] = (1-smooth)*v/f + smooth*v
		}
	}
	return inv
}

func (p Params) llama3_64() []float64 {
	s := p.Scaling
	inv := defaultInvFreq64(p.Base, p.Dim())
	l0 := float64(s.OriginalMaxPositions)
	lowWL, highWL := l0/s.LowFreqFactor, l0/s.HighFreqFactor
	for i, v := range inv {
		wl := 2 * math.Pi / v
		switch {
		case wl > lowWL:
			inv[i] = v / s.Factor
		case wl < highWL:
		default:
			smooth := (l0/wl - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			inv[i] = (1-smooth)*v/s.Factor + smooth*v
		}
	}
	return inv
}

// longropeSettings returns L0, the attention factor and whether the long
// factors apply at seqLen.
func (p Params) longropeSettings(seqLen int) (l0 int, att float64, long bool) {
	s := p.Scaling
	l0 = p.originalMax()
	factor := s.Factor
	if factor == 0 && s.OriginalMaxPositions > 0 && p.MaxPositions > 0 {
		// HF: the factor defaults to the ratio of the two lengths (Phi-3).
		factor = float64(p.MaxPositions) / float64(s.OriginalMaxPositions)
	}
	att = s.AttentionFactor
	if att == 0 {
		if factor <= 1 {
			att = 1
		} else {
			att = math.Sqrt(1 + math.Log(factor)/math.Log(float64(l0)))
		}
	}
	return l0, att, seqLen > l0
}

func (p Params) longrope32(seqLen int) ([]float32, float32, error) {
	_, att, long := p.longropeSettings(seqLen)
	ext := p.Scaling.ShortFactor
	if long {
		ext = p.Scaling.LongFactor
	}
	pf := posFreq32(p.Base, p.Dim())
	inv := make([]float32, len(pf))
	for i := range inv {
		inv[i] = 1 / (float32(ext[i]) * pf[i])
	}
	return inv, float32(att), nil
}

func (p Params) longrope64(seqLen int) ([]float64, float64, error) {
	_, att, long := p.longropeSettings(seqLen)
	ext := p.Scaling.ShortFactor
	if long {
		ext = p.Scaling.LongFactor
	}
	d := p.Dim()
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / (ext[i] * math.Pow(p.Base, float64(2*i)/float64(d)))
	}
	return inv, att, nil
}

// Wavelengths converts inverse frequencies to wavelengths in tokens, 2π/θ.
func Wavelengths(invFreq []float64) []float64 {
	wl := make([]float64, len(invFreq))
	for i, v := range invFreq {
		wl[i] = 2 * math.Pi / v
	}
	return wl
}
