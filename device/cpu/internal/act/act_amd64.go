//go:build amd64 && !purego

package act

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 kernels of act_amd64.s for the fast
// activations where the processor has AVX2 (the integer ops on 256-bit
// registers build 2^n); tests switch it off to compare the two paths.
var useAVX2 = cpu.X86.HasAVX2

// The kernels of act_amd64.s: n is a multiple of 8 (and > 0); dst may be
// x, dx may be dy.

//go:noescape
func geluTanhAVX2(dst, x *float32, n int)

//go:noescape
func tanhAVX2(dst, x *float32, n int)

//go:noescape
func sigmoidAVX2(dst, x *float32, n int)

//go:noescape
func siluAVX2(dst, x *float32, n int)

//go:noescape
func expScaledAVX2(dst, x *float32, n int, scale, shift float32)

//go:noescape
func eluAVX2(dst, x *float32, n int, alpha float32)

//go:noescape
func eluGradAVX2(dx, x, dy *float32, n int, alpha float32)

//go:noescape
func geluAVX2(dst, x *float32, n int)

//go:noescape
func geluGradAVX2(dx, x, dy *float32, n int)

//go:noescape
func geluTanhGradAVX2(dx, x, dy *float32, n int)

//go:noescape
func siluGradAVX2(dx, x, dy *float32, n int)

// fwdVec runs the forward kernel of k over len(x) (a multiple of 8)
// elements.
func fwdVec(k Kind, x, y []float32) {
	switch k {
	case GELU:
		geluAVX2(&y[0], &x[0], len(x))
	case GELUTanh:
		geluTanhAVX2(&y[0], &x[0], len(x))
	case Tanh:
		tanhAVX2(&y[0], &x[0], len(x))
	case Sigmoid:
		sigmoidAVX2(&y[0], &x[0], len(x))
	case SiLU:
		siluAVX2(&y[0], &x[0], len(x))
	}
}

// gradVec runs the gradient kernel of k (GELU, GELUTanh or SiLU) over
// len(dy) (a multiple of 8) elements.
func gradVec(k Kind, x, dy, dx []float32) {
	switch k {
	case GELU:
		geluGradAVX2(&dx[0], &x[0], &dy[0], len(dy))
	case GELUTanh:
		geluTanhGradAVX2(&dx[0], &x[0], &dy[0], len(dy))
	case SiLU:
		siluGradAVX2(&dx[0], &x[0], &dy[0], len(dy))
	}
}

// expScaledVec runs expScaledAVX2 over len(x) (a multiple of 8) elements.
func expScaledVec(x, y []float32, scale, shift float32) {
	expScaledAVX2(&y[0], &x[0], len(x), scale, shift)
}

// eluVec and eluGradVec run the ELU kernels over a multiple of 8 elements.
func eluVec(x, y []float32, alpha float32) { eluAVX2(&y[0], &x[0], len(x), alpha) }

func eluGradVec(x, dy, dx []float32, alpha float32) {
	eluGradAVX2(&dx[0], &x[0], &dy[0], len(dy), alpha)
}
