package device

import "math"

// AdamScalars are the per-step constants of an Adam update, derived once on
// the host in float64 as PyTorch derives them in Python. Every backend's
// kernel takes these, so the backends cannot drift apart in how they
// compute the bias corrections.
//
// The update of each element is then, in float64 (AdamW first multiplies
// p by Decay; Adam instead adds WeightDecay·p to g):
//
//	m = Beta1·m + (1−Beta1)·g;  v = Beta2·v + (1−Beta2)·g²
//	p −= StepSize · m / (sqrt(v) + EpsScaled)
//
// which is lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps) with the
// sqrt(1−β2ᵗ) moved out of the denominator: one division instead of two.
type AdamScalars struct {
	StepSize    float64 // lr / (1−β1ᵗ) · sqrt(1−β2ᵗ)
	EpsScaled   float64 // eps · sqrt(1−β2ᵗ)
	Beta1       float64
	Beta2       float64
	WeightDecay float64
	Decay       float64 // 1 − lr·wd, AdamW's decoupled decay factor
}

// Scalars returns the constants of update number step (counting from 1).
func (c AdamConfig) Scalars(step int) AdamScalars {
	t := float64(step)
	lr := float64(c.LR)
	bc1 := 1 - math.Pow(float64(c.Beta1), t)
	sq2 := math.Sqrt(1 - math.Pow(float64(c.Beta2), t))
	return AdamScalars{
		StepSize:    lr / bc1 * sq2,
		EpsScaled:   float64(c.Eps) * sq2,
		Beta1:       float64(c.Beta1),
		Beta2:       float64(c.Beta2),
		WeightDecay: float64(c.WeightDecay),
		Decay:       1 - lr*float64(c.WeightDecay),
	}
}
