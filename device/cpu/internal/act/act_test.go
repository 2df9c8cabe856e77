package act

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulp32 is the spacing of float32 numbers at |y| (2^-149 below the
// normal range).
func ulp32(y float64) float64 {
	a := math.Abs(y)
	if a < 0x1p-126 {
		return 0x1p-149
	}
	_, e := math.Frexp(a) // a = m·2^e, m in [0.5, 1)
	return math.Ldexp(1, e-24)
}

// actSweep is the accuracy sweep's inputs: every stride-th float32 bit
// pattern (8.4M values for stride 509 spread over every binade, both signs: tiny,
// denormal, huge), a dense uniform grid over [-12, 12] where the
// activations change shape, and the specials ±0, ±Inf, NaN and the
// largest and smallest magnitudes.
func actSweep(stride uint64) []float32 {
	xs := make([]float32, 0, 1<<32/stride+1<<20+16)
	for b := uint64(0); b < 1<<32; b += stride {
		xs = append(xs, math.Float32frombits(uint32(b)))
	}
	for i := 0; i < 1<<20; i++ {
		xs = append(xs, float32(-12+24*float64(i)/(1<<20)))
	}
	inf := float32(math.Inf(1))
	xs = append(xs, 0, float32(math.Copysign(0, -1)), inf, -inf, float32(math.NaN()),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		0x1p-126, -0x1p-126, 88.7, 89, -87.3, -104, -150)
	return xs
}

// gelu64 is the float64 reference of GELU-tanh in the form that does
// not cancel for negative x; w is its exp argument −2u.
func gelu64(x float64) (y, dy, w float64) {
	w = -2 * sqrt2OverPi * (x + geluC*x*x*x)
	e := math.Exp(w)
	s := 1 / (1 + e)
	q := 2 * sqrt2OverPi * (1 + 3*geluC*x*x)
	if math.IsInf(e, 1) { // s = 0, e·s² → 0
		return x * s, 0, w
	}
	return x * s, s + x*q*s*(e*s), w
}

// TestActAccuracy checks the fast float32 activations (through the
// dispatch the Device uses: AVX2 where present, scalar tails) against
// float64 references over actSweep. The bounds, and why they are enough:
//
//   - exp and tanh forward: ≤ 2 ulp of the float64 value, sigmoid and
//     SiLU ≤ 2.5 (measured 1.16, 1.52, 2.26, 2.32). PyTorch's own float32 tanh and exp
//     (SLEEF/glibc) are within ~1 ulp, and float32 storage of the result
//     already costs 0.5, so the training results cannot tell them apart;
//     the device conformance bounds (devicetest: 1e-6 relative + 1e-7
//     absolute) hold with room.
//   - GELU-tanh forward: 2.5 ulp + |w|·2^-22 relative (measured 1.96
//     ulp in the normalised measure printed), w = −2u the exp
//     argument: x/(1+e^w) inherits w's rounding (|Δw| ≈ 1.5 ulp·|w|)
//     through e^w. This is the float32 problem's own conditioning; it is
//     tighter than PyTorch's float32 0.5x(1+tanh u), which cancels for
//     x < 0 (absolute error ~ |x|·3e-8 there against kiln's |y|·|w|·2^-22).
//   - GELU (erf) forward: 4 ulp + (x²/2)·4 ulp (measured 2.86 in that
//     measure), the same conditioning through exp(−x²/2); its gradient
//     5 ulp of the larger term plus the same (measured 3.65). ELU: 3 ulp
//     forward (2.58; expm1 − the subtraction below −ln2/2 costs up to 1.3
//     bits), 2 backward (1.86).
//   - Gradients (GELU-tanh, SiLU): 4 ulp of the larger of the two terms
//     of f' (so at the zeros of f' the bound is absolute, not relative)
//     plus the same |w| term (measured 3.85 ulp); beyond the backward
//     clamps (act.go) the true derivative is below 1e-35 and kiln's
//     below 3e-36 (or exactly 1), hence an absolute 1e-34 there.
//   - Results that underflow (|f| < 2^-120, where the exp overflows or
//     underflows first) may be off by 2^-120 absolute; results that
//     overflow must be ±Inf; NaN in, NaN out.
func TestActAccuracy(t *testing.T) {
	alpha32 := float64(float32(1.3)) // ELU's alpha as the kernel sees it
	stride := uint64(509)
	if testing.Short() {
		stride = 8191 // 0.5M patterns: every binade still visited
	}
	xs := actSweep(stride)
	got := make([]float32, len(xs))
	inf := math.Inf(1)
	check := func(name string, ref func(x float64) (want, scale, cond float64), ulps, under float64) {
		t.Helper()
		worst, worstX, bad := 0.0, float32(0), 0
		for i, x := range xs {
			g := float64(got[i])
			want, scale, cond := ref(float64(x))
			switch {
			case math.IsNaN(want):
				if !math.IsNaN(g) {
					t.Errorf("%s(%g) = %g, want NaN", name, x, g)
				}
				continue
			case math.Abs(want) > math.MaxFloat32:
				if g != math.Copysign(inf, want) {
					t.Errorf("%s(%g) = %g, want %g (overflow)", name, x, g, math.Copysign(inf, want))
				}
				continue
			}
			err := math.Abs(g - want)
			if math.IsNaN(err) {
				t.Errorf("%s(%g) = %g, want %g", name, x, g, want)
				continue
			}
			tol := ulps*ulp32(scale)*(1+cond) + under
			if err > tol {
				if bad++; bad <= 10 {
					t.Errorf("%s(%g) = %g, want %g (error %.3g > %.3g)", name, x, g, want, err, tol)
				}
			}
			if e := (err - under) / (ulp32(scale) * (1 + cond)); e > worst {
				worst, worstX = e, x
			}
		}
		t.Logf("%s: max error %.2f ulp (at x = %g; bound %g)", name, worst, worstX, ulps)
	}
	same := func(f func(float64) float64) func(float64) (float64, float64, float64) {
		return func(x float64) (float64, float64, float64) { y := f(x); return y, y, 0 }
	}

	for i, x := range xs {
		got[i] = expf(x)
	}
	check("exp", same(math.Exp), 2, 0x1p-120)

	Forward(Tanh, xs, got)
	check("tanh", same(math.Tanh), 2, 0x1p-120)

	Forward(Sigmoid, xs, got)
	check("sigmoid", same(func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }), 2.5, 0x1p-120)

	Forward(SiLU, xs, got)
	check("silu", same(func(x float64) float64 {
		if math.IsInf(x, -1) {
			return math.NaN() // −∞/∞, as the float32 formula (and PyTorch's)
		}
		return x / (1 + math.Exp(-x))
	}), 2.5, 0x1p-120)

	Forward(GELUTanh, xs, got)
	check("gelu_tanh", func(x float64) (float64, float64, float64) {
		if math.IsInf(x, -1) {
			return math.NaN(), 0, 0
		}
		y, _, w := gelu64(x)
		return y, y, 2 * math.Abs(w)
	}, 2.5, 0x1p-120)

	Forward(GELU, xs, got)
	check("gelu", func(x float64) (float64, float64, float64) {
		if math.IsInf(x, -1) {
			return math.NaN(), 0, 0
		}
		y := x * 0.5 * math.Erfc(-x/math.Sqrt2)
		return y, y, math.Min(x*x/2, 200)
	}, 4, 0x1p-120)

	const alpha = 1.3
	ELU(xs, got, alpha)
	check("elu", func(x float64) (float64, float64, float64) {
		if x > 0 {
			return x, x, 0
		}
		y := alpha32 * math.Expm1(x)
		return y, y, 0
	}, 3, 0x1p-120)

	ones := make([]float32, len(xs))
	for i := range ones {
		ones[i] = 1
	}
	GradX(GELUTanh, xs, ones, got)
	check("gelu_tanh'", func(x float64) (float64, float64, float64) {
		if math.IsInf(x, 0) {
			return math.Max(math.Copysign(1, x), 0), 1, 0 // the limits
		}
		_, d, w := gelu64(x)
		s := 1 / (1 + math.Exp(w))
		return d, math.Max(s, math.Abs(d-s)), 2 * math.Min(math.Abs(w), 88)
	}, 4, 1e-34)

	GradX(GELU, xs, ones, got)
	check("gelu'", func(x float64) (float64, float64, float64) {
		if math.IsInf(x, 0) {
			return math.Max(math.Copysign(1, x), 0), 1, 0
		}
		phi := 0.5 * math.Erfc(-x/math.Sqrt2)
		xpdf := x * math.Exp(-x*x/2) / math.Sqrt(2*math.Pi)
		return phi + xpdf, math.Max(phi, math.Abs(xpdf)), math.Min(x*x/2, 200)
	}, 5, 1e-34)

	ELUGrad(xs, ones, got, alpha)
	check("elu'", func(x float64) (float64, float64, float64) {
		if x > 0 {
			return 1, 1, 0
		}
		d := alpha32 * math.Exp(x)
		return d, d, 0
	}, 2, 0x1p-120)

	GradX(SiLU, xs, ones, got)
	check("silu'", func(x float64) (float64, float64, float64) {
		if math.IsInf(x, 0) {
			return math.Max(math.Copysign(1, x), 0), 1, 0
		}
		e := math.Exp(-x)
		s := 1 / (1 + e)
		if math.IsInf(e, 1) {
			return 0, 0, 0
		}
		d := s * (1 + x*(e*s))
		return d, math.Max(s, math.Abs(s*x*(e*s))), 0
	}, 4, 1e-34)
}

// actSameBits reports whether a and b are the same float32 or both NaN.
func actSameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestActVectorMatchesScalar requires the AVX2 kernels to give the bits
// of the scalar functions on every input (NaN for NaN): on the sweep and
// on random bit patterns, at every length 1–40 from every offset 0–7 (so
// the 8-lane body and the scalar tail meet everywhere), in place and not.
func TestActVectorMatchesScalar(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 activation kernels on this machine or build")
	}
	defer func(v bool) { useAVX2 = v }(useAVX2)
	r := rand.New(rand.NewPCG(3, 4))
	xs := append(actSweep(4093), randomVec(r, 1<<16)...)
	ones := make([]float32, len(xs))
	for i := range ones {
		ones[i] = float32(r.NormFloat64())
	}
	type run func(x, dy, out []float32)
	fwd := func(k Kind) run { return func(x, _, out []float32) { Forward(k, x, out) } }
	grad := func(k Kind) run { return func(x, dy, out []float32) { GradX(k, x, dy, out) } }
	cases := []struct {
		name string
		f    run
	}{
		{"gelu_tanh", fwd(GELUTanh)}, {"tanh", fwd(Tanh)}, {"sigmoid", fwd(Sigmoid)},
		{"silu", fwd(SiLU)}, {"gelu_tanh'", grad(GELUTanh)}, {"silu'", grad(SiLU)},
		{"tanh'(x)", grad(Tanh)}, {"sigmoid'(x)", grad(Sigmoid)},
		{"exp_scaled", func(x, _, out []float32) { ExpScaled(x, out, 0.125, 1.5) }},
		{"elu", func(x, _, out []float32) { ELU(x, out, 0.7) }},
		{"gelu", fwd(GELU)}, {"gelu'", grad(GELU)},
		{"elu'", func(x, dy, out []float32) { ELUGrad(x, dy, out, 0.7) }},
	}
	for _, c := range cases {
		want := make([]float32, len(xs))
		useAVX2 = false
		c.f(xs, ones, want)
		useAVX2 = true
		got := make([]float32, len(xs))
		c.f(xs, ones, got)
		bad := 0
		for i := range xs {
			if !actSameBits(got[i], want[i]) {
				if bad++; bad <= 5 {
					t.Errorf("%s(%g): vector %g (%#x), scalar %g (%#x)", c.name, xs[i], got[i],
						math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
		// Lengths and offsets, in place (the output overwrites x, or dy
		// for the gradients).
		for off := 0; off < 8; off++ {
			for n := 1; n <= 40; n++ {
				x := append([]float32(nil), xs[1000+off:1000+off+n]...)
				dy := append([]float32(nil), ones[1000+off:1000+off+n]...)
				out := x
				if c.name[len(c.name)-1] == '\'' || c.name[len(c.name)-1] == ')' {
					out = dy
				}
				c.f(x, dy, out)
				for i := range out {
					if !actSameBits(out[i], want[1000+off+i]) {
						t.Fatalf("%s in place, offset %d, n %d, element %d: %g, want %g", c.name, off, n, i, out[i], want[1000+off+i])
					}
				}
			}
		}
	}
}

// randomVec returns n values: random bit patterns (every exponent, NaNs
// with payloads, denormals) and normal samples, half each.
func randomVec(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		if i%2 == 0 {
			x[i] = math.Float32frombits(r.Uint32())
		} else {
			x[i] = float32(4 * r.NormFloat64())
		}
	}
	return x
}
