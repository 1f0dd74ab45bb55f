package trainer

import (
	"fmt"
	"io"

	"longctx/rope"
)

// RopePlan derives the new RoPE base from the start model's own config
// (rope_theta, max_position_embeddings) with `rope plan`.
type RopePlan struct {
	Plan      string  `yaml:"plan" help:"critical (Liu et al. β0), men (Men et al. lower bound b*) or fixed (rope_theta); empty = the top-level rope_theta"`
	TargetLen int     `yaml:"target_len" help:"context length to extend to (written as max_position_embeddings)"`
	RopeTheta float64 `yaml:"rope_theta" help:"the base for plan: fixed"`
	TrainLen  int     `yaml:"train_len" help:"length the start model was trained at (0 = its max_position_embeddings)"`
}

// Validate checks the plan against the rest of the config.
func (p RopePlan) Validate(c TrainConfig) error {
	switch p.Plan {
	case "":
		return nil
	case "critical", "men":
		if p.RopeTheta != 0 {
			return fmt.Errorf("train config: rope.rope_theta is only for plan: fixed")
		}
	case "fixed":
		if p.RopeTheta <= 0 {
			return fmt.Errorf("train config: rope plan fixed needs rope.rope_theta > 0")
		}
	default:
		return fmt.Errorf("train config: rope.plan %q, want critical, men or fixed", p.Plan)
	}
	switch {
	case p.TargetLen < 2:
		return fmt.Errorf("train config: rope.target_len is required with rope.plan")
	case c.RopeTheta != 0 || c.MaxPositions != 0:
		return fmt.Errorf("train config: give either rope.plan or the top-level rope_theta/max_position_embeddings, not both")
	case c.SeqLen > p.TargetLen:
		return fmt.Errorf("train config: seq_len %d exceeds rope.target_len %d", c.SeqLen, p.TargetLen)
	}
	return nil
}

// applyRopePlan sets mc's base and positions from the plan, printing the
// critical base and the Men et al. bound, and warning when the chosen base
// is below the bound.
func applyRopePlan(p RopePlan, mc *ModelConfig, progress io.Writer) error {
	trainLen := p.TrainLen
	if trainLen == 0 {
		trainLen = mc.MaxPositionEmbeddings
	}
	if len(mc.RopeScaling) > 0 {
		return fmt.Errorf("rope plan: the start model already uses rope_scaling %v; plan from plain RoPE only", mc.RopeScaling)
	}
	fixed := 0.0
	if p.Plan == "fixed" {
		fixed = p.RopeTheta
	}
	r, err := rope.Plan(mc.HeadDimension(), mc.RopeTheta, trainLen, p.TargetLen, fixed)
	if err != nil {
		return fmt.Errorf("rope plan: %w", err)
	}
	base := r.NewBase
	if p.Plan == "men" {
		base = r.MenLowerBound
	}
	fmt.Fprintf(progress, "rope plan %s: start base %g at %d tokens -> %d tokens, head_dim %d: critical base β0 %.1f, Men et al. b* %.1f; using %.1f\n",
		p.Plan, mc.RopeTheta, trainLen, p.TargetLen, mc.HeadDimension(), r.CriticalBase, r.MenLowerBound, base)
	if base < r.MenLowerBound {
		fmt.Fprintf(progress, "WARNING rope plan: base %.1f is below the Men et al. bound %.1f for %d tokens\n", base, r.MenLowerBound, p.TargetLen)
	}
	mc.RopeTheta, mc.MaxPositionEmbeddings = base, p.TargetLen
	return nil
}
