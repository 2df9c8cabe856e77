//go:build amd64 && !purego

package simd

import "golang.org/x/sys/cpu"

// HasAdam reports whether Adam may be called: the processor has AVX2 and
// FMA. Go does not vectorise, and the scalar Adam loop is bound by its
// square root and division; eight lanes at a time make it memory-bound.
var HasAdam = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Adam is one Adam/AdamW update of n elements (n a multiple of 8, n ≥ 0)
// of the arrays at pp, gp, mp, vp, eight at a time with AVX2 and FMA, in
// float32. c holds: c[0] the decay factor (AdamW's 1 − lr·wd, else 1);
// c[1] Adam's L2 weight decay, added as c[1]·p to the gradient when wd is
// true (fused, one rounding); c[2] β1, c[3] 1 − β1, c[4] β2, c[5] 1 − β2;
// c[6] the step lr/(1 − β1ᵗ)·sqrt(1 − β2ᵗ); c[7] eps·sqrt(1 − β2ᵗ). Then
// m = β1m + (1−β1)g, v = β2v + (1−β2)g², p −= c[6]·m/(sqrt(v) + c[7]).
// Implemented in adam_amd64.s.
//
//go:noescape
func Adam(pp, gp, mp, vp *float32, n int, c *[8]float32, wd bool)
