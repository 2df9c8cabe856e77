// Package act is device/cpu's fast float32 transcendental activations:
// GELU (erf and tanh forms), tanh, sigmoid, SiLU and ELU, forward and
// backward, and the
// exponentials of a softmax row (ExpScaled). It is a
// package of its own because Go assembly cannot live in device/cpu,
// which uses cgo under the openblas tag.
package act

import "math"

// Fast float32 transcendental activations: GELU, GELU-tanh, tanh,
// sigmoid, SiLU and ELU forward, GELU, GELU-tanh, SiLU and ELU backward
// from x (tanh and sigmoid backward are cheap from y).
//
// Each is written once as a scalar Go function (below) and once as an
// AVX2 kernel (act_amd64.s) that performs the same IEEE float32
// operations in the same order — no FMA, one rounding per operation — so
// the two agree bit for bit on every non-NaN input (a NaN input gives a
// NaN, its payload unspecified); TestActVectorMatchesScalar checks it.
// The Go code converts every product with float32(...) before it is
// added, which stops the compiler from fusing it into an FMA on targets
// where it may (Go spec, "Floating-point operators").
//
// All of them rest on expf, a float32 exp:
//
//	exp(v) = 2^n · exp(r),  n = round(v·log2 e),  r = v − n·ln2_hi − n·ln2_lo,
//
// with |r| ≤ ln2/2 (Cody–Waite: ln2_hi has 9 significant bits, so
// n·ln2_hi is exact for |n| ≤ 150 and v − n·ln2_hi is exact by Sterbenz),
// exp(r) = 1 + r + r²·q(r) with q a degree-4 polynomial fitted for
// relative error (3.6e-9 on the interval, 0.03 ulp) and 2^n applied as two
// factors 2^⌊n/2⌋·2^(n−⌊n/2⌋) built from the exponent bits, so that
// overflow gives +Inf and results in the denormal range round correctly.
// v is clamped to [-104, 89] first (exp(-104) rounds to 0, exp(89) to
// +Inf). Measured error of expf against float64: 1.16 ulp (bound 2,
// TestActAccuracy).
//
// The formulas, chosen for relative accuracy and no cancellation:
//
//	gelu_tanh(x) = 0.5·x·(1 + tanh(u)) = x / (1 + exp(−2u)),  u = √(2/π)·(x + 0.044715·x³)
//	gelu_tanh'(x) = s + x·(2√(2/π) + 6·0.044715·√(2/π)·x²)·s·(e·s),  e = exp(−2u), s = 1/(1+e)
//	               (1 − s = e·s, so s(1−s) needs no subtraction)
//	sigmoid(x)   = 1 / (1 + exp(−x)),  silu(x) = x / (1 + exp(−x))
//	silu'(x)     = s·(1 + x·(e·s)),  e = exp(−x), s = 1/(1+e)
//	tanh(x)      = x + x³·P(x²) for |x| < 0.55 (P fitted, relative error
//	               1.1e-9), else sign(x)·(1 − e)/(1 + e), e = exp(−2|x|)
//	               (e ≤ 0.333 there, so 1 − e does not cancel).
//	elu(x)       = x for x > 0, else alpha·expm1(x), expm1 = x·(1 + x·q(x))
//	               (expf's polynomial less its 1) for x ≥ −ln2/2, else
//	               expf(x) − 1; elu'(x) = 1 or alpha·exp(x).
//	gelu(x)      = x·Φ(x), Φ(x) = 0.5 + x·P(x²) for |x| < 1, else
//	               exp(−x²/2)·t·Q(t) (x < 0) or 1 − that (x > 0),
//	               t = 1/(1 + 0.3|x|): no 1 + erf(…) cancellation for x < 0
//	gelu'(x)     = Φ(x) + x·exp(−x²/2)/√(2π), x clamped to ±20
//
// The backward passes clamp x (GELU-tanh to ±10, SiLU to ±88) so that e
// stays finite and x³ cannot overflow; beyond the clamp the derivative is
// 1 or 0 to float32 precision, so ±Inf gives 1 and ~0. Forward, −Inf gives
// NaN for GELU-tanh and SiLU (−∞/∞), as PyTorch's float32 formulas do, and
// +Inf gives +Inf; tanh and sigmoid saturate to ±1 and 0/1.

const (
	sqrt2OverPi = 0.79788456080286535588 // √(2/π)
	geluC       = 0.044715               // PyTorch's GELU-tanh cubic coefficient
)

const (
	expLo  = -104 // exp(-104) < 2^-150: rounds to 0
	expHi  = 89   // exp(89) > MaxFloat32: +Inf
	log2e  = float32(1.44269504088896340736)
	magic  = float32(12582912) // 1.5·2^23: x + magic rounds x to an integer in the low mantissa bits
	ln2Hi  = float32(0.693359375)
	ln2Lo  = float32(-2.12194440e-4)
	expC2  = float32(0.49999988079071045)
	expC3  = float32(0.166665181517601)
	expC4  = float32(0.04166952893137932)
	expC5  = float32(0.008368915878236294)
	expC6  = float32(0.0013751621590927243)
	tanhT  = float32(0.55)                 // below it, the polynomial
	eluT   = float32(-0.34657359027997264) // −ln2/2: from it to 0, expm1's polynomial
	tanhP0 = float32(-0.33333316445350647)
	tanhP1 = float32(0.13332565128803253)
	tanhP2 = float32(-0.05385030061006546)
	tanhP3 = float32(0.02106414921581745)
	tanhP4 = float32(-0.006264383904635906)

	geluA  = float32(-2 * sqrt2OverPi)         // −2u = x·(geluA + geluB·x²)
	geluB  = float32(-2 * sqrt2OverPi * geluC) //
	geluC2 = float32(2 * sqrt2OverPi)          // d(2u)/dx = geluC2 + geluD·x²
	geluD  = float32(6 * sqrt2OverPi * geluC)  //
	geluXc = float32(10)                       // backward clamp: |2u| ≤ 87.3 there
	siluXc = float32(88)                       // backward clamp: exp(88) is finite
)

// GELU (erf): Φ(x) = 0.5 + x·P(x²) for |x| < 1; beyond, Φ(−a) =
// exp(−a²/2)·t·Q(t), t = 1/(1 + gerfPt·a) (Q fitted to the Mills ratio
// for relative error 2.4e-8; 3e-7 with float32 t and Horner), and Φ(a) =
// 1 − Φ(−a).
const (
	gerfQ0    = float32(0.1196826845407486)
	gerfQ1    = float32(0.11968223005533218)
	gerfQ2    = float32(0.10893166810274124)
	gerfQ3    = float32(0.0870194062590599)
	gerfQ4    = float32(0.060914210975170135)
	gerfQ5    = float32(0.012676234357059002)
	gerfQ6    = float32(0.037565190345048904)
	gerfQ7    = float32(-0.0683235451579094)
	gerfQ8    = float32(0.01906905137002468)
	gerfQ9    = float32(0.0028346634935587645)
	gerfP0    = float32(0.3989422917366028)
	gerfP1    = float32(-0.06649032235145569)
	gerfP2    = float32(0.00997309759259224)
	gerfP3    = float32(-0.0011858231155201793)
	gerfP4    = float32(0.00011298627214273438)
	gerfP5    = float32(-7.474253379768925e-06)
	gerfPt    = float32(0.3)
	half      = float32(0.5)
	mhalf     = float32(-0.5)
	invS2Pi   = float32(0.3989422804014327)
	gerfXc    = float32(20.0)
	gerfXcNeg = float32(-20.0)
)

// expf is exp(v) in float32 (see the comment at the top of the file).
func expf(v float32) float32 {
	if v < expLo {
		v = expLo
	}
	if v > expHi {
		v = expHi
	}
	f := float32(v*log2e) + magic
	nf := f - magic
	ni := int32(math.Float32bits(f) - math.Float32bits(magic))
	r := v - float32(nf*ln2Hi)
	r -= float32(nf * ln2Lo)
	p := float32(expC6*r) + expC5
	p = float32(p*r) + expC4
	p = float32(p*r) + expC3
	p = float32(p*r) + expC2
	p = float32(p*r) + 1
	p = float32(p*r) + 1
	n1 := ni >> 1
	n2 := ni - n1
	p = float32(p * math.Float32frombits(uint32(n1+127)<<23))
	return float32(p * math.Float32frombits(uint32(n2+127)<<23))
}

// geluTanhf is PyTorch's GELU with approximate='tanh'.
func geluTanhf(x float32) float32 {
	w := float32(x * (geluA + float32(geluB*float32(x*x))))
	return x / (1 + expf(w))
}

// geluTanhGradf is the derivative of geluTanhf.
func geluTanhGradf(x float32) float32 {
	if x < -geluXc {
		x = -geluXc
	}
	if x > geluXc {
		x = geluXc
	}
	x2 := float32(x * x)
	e := expf(float32(x * (geluA + float32(geluB*x2))))
	s := 1 / (1 + e)
	q := float32(x * (geluC2 + float32(geluD*x2)))
	return s + float32(q*float32(float32(e*s)*s))
}

// gelufParts returns, for GELU (erf), Φ(x) and e = exp(−x²/2) (both
// paths are computed, as the vector kernel does; Φ selects).
func gelufParts(x float32) (phi, e float32) {
	const sign = 1 << 31
	a := math.Float32frombits(math.Float32bits(x) &^ sign)
	t := 1 / (1 + float32(gerfPt*a))
	q := float32(gerfQ9*t) + gerfQ8
	q = float32(q*t) + gerfQ7
	q = float32(q*t) + gerfQ6
	q = float32(q*t) + gerfQ5
	q = float32(q*t) + gerfQ4
	q = float32(q*t) + gerfQ3
	q = float32(q*t) + gerfQ2
	q = float32(q*t) + gerfQ1
	q = float32(q*t) + gerfQ0
	r := float32(q * t)
	e = expf(float32(float32(a*a) * mhalf))
	tail := float32(e * r)
	if a < 1 {
		z := float32(x * x)
		p := float32(gerfP5*z) + gerfP4
		p = float32(p*z) + gerfP3
		p = float32(p*z) + gerfP2
		p = float32(p*z) + gerfP1
		p = float32(p*z) + gerfP0
		return half + float32(x*p), e
	}
	if x < 0 {
		return tail, e
	}
	return 1 - tail, e
}

// geluf is GELU in its exact (erf) form, x·Φ(x).
func geluf(x float32) float32 {
	phi, _ := gelufParts(x)
	return x * phi
}

// geluGradf is the derivative of geluf, Φ(x) + x·φ(x), with x clamped to
// ±20 (beyond, Φ is 0 or 1 and φ is 0 in float32).
func geluGradf(x float32) float32 {
	if x < gerfXcNeg {
		x = gerfXcNeg
	}
	if x > gerfXc {
		x = gerfXc
	}
	phi, e := gelufParts(x)
	return phi + float32(x*float32(e*invS2Pi))
}

// sigmoidf is 1/(1+exp(−x)).
func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }

// siluf is x·sigmoid(x).
func siluf(x float32) float32 { return x / (1 + expf(-x)) }

// siluGradf is the derivative of siluf.
func siluGradf(x float32) float32 {
	if x < -siluXc {
		x = -siluXc
	}
	if x > siluXc {
		x = siluXc
	}
	e := expf(-x)
	s := 1 / (1 + e)
	return float32(s * (1 + float32(x*float32(e*s))))
}

// expm1f is exp(x) − 1 for x ≤ 0 (NaN passes): for x ≥ −ln2/2 the
// polynomial of expf without its constant term, x·(1 + x·q(x)), which
// keeps the relative accuracy near 0; below, expf(x) − 1, where
// expf(x) ≤ 0.71 so the subtraction loses at most 1.3 bits.
func expm1f(x float32) float32 {
	if x >= eluT {
		q := float32(expC6*x) + expC5
		q = float32(q*x) + expC4
		q = float32(q*x) + expC3
		q = float32(q*x) + expC2
		return float32(x * (float32(q*x) + 1))
	}
	return expf(x) - 1
}

// eluf is ELU: x for x > 0, else alpha·(exp(x) − 1).
func eluf(x, alpha float32) float32 {
	if x > 0 {
		return x
	}
	return alpha * expm1f(x)
}

// eluGradf is dy·ELU'(x): dy for x > 0, else dy·(alpha·exp(x)).
func eluGradf(x, dy, alpha float32) float32 {
	if x > 0 {
		return dy
	}
	return dy * float32(alpha*expf(x))
}

// tanhf is tanh(x) in float32.
func tanhf(x float32) float32 {
	const sign = 1 << 31
	a := math.Float32frombits(math.Float32bits(x) &^ sign)
	if a < tanhT {
		z := float32(x * x)
		p := float32(tanhP4*z) + tanhP3
		p = float32(p*z) + tanhP2
		p = float32(p*z) + tanhP1
		p = float32(p*z) + tanhP0
		return x + float32(float32(x*z)*p)
	}
	e := expf(float32(a * -2))
	t := (1 - e) / (1 + e)
	return math.Float32frombits(math.Float32bits(t) | math.Float32bits(x)&sign)
}

// ExpScaled sets y[j] = exp(float32(scale·x[j]) − shift) over len(x)
// elements with expf (≤ 2 ulp; the product and the difference each
// rounded to float32), eight at a time with AVX2: the exponentials of a
// softmax row, shift being the row's largest scale·x. y may be x.
func ExpScaled(x, y []float32, scale, shift float32) {
	y = y[:len(x)]
	if m := len(x) &^ 7; useAVX2 && m > 0 {
		expScaledVec(x[:m], y[:m], scale, shift)
		x, y = x[m:], y[m:]
	}
	for i, v := range x {
		y[i] = expf(float32(scale*v) - shift)
	}
}

// ELU sets y = ELU(x) (PyTorch's elu with the given alpha) over len(x)
// elements. y may be x.
func ELU(x, y []float32, alpha float32) {
	y = y[:len(x)]
	if m := len(x) &^ 7; useAVX2 && m > 0 {
		eluVec(x[:m], y[:m], alpha)
		x, y = x[m:], y[m:]
	}
	for i, v := range x {
		y[i] = eluf(v, alpha)
	}
}

// ELUGrad sets dx = dy·ELU'(x) over len(dy) elements. dx may be dy.
func ELUGrad(x, dy, dx []float32, alpha float32) {
	x, dx = x[:len(dy)], dx[:len(dy)]
	if m := len(dy) &^ 7; useAVX2 && m > 0 {
		eluGradVec(x[:m], dy[:m], dx[:m], alpha)
		x, dy, dx = x[m:], dy[m:], dx[m:]
	}
	for i, g := range dy {
		dx[i] = eluGradf(x[i], g, alpha)
	}
}

// actBlock is how many elements the gradients that need f(x) as a
// temporary (tanh and sigmoid from x) process at a time, in a buffer on
// the stack.
const actBlock = 256

// Forward sets y = f(x) over len(x) elements: the AVX2 kernel over the
// largest multiple of 8, the scalar function over the rest. y may be x.
func Forward(k Kind, x, y []float32) {
	y = y[:len(x)]
	if m := len(x) &^ 7; useAVX2 && m > 0 {
		fwdVec(k, x[:m], y[:m])
		x, y = x[m:], y[m:]
	}
	switch k {
	case GELU:
		for i, v := range x {
			y[i] = geluf(v)
		}
	case GELUTanh:
		for i, v := range x {
			y[i] = geluTanhf(v)
		}
	case Tanh:
		for i, v := range x {
			y[i] = tanhf(v)
		}
	case Sigmoid:
		for i, v := range x {
			y[i] = sigmoidf(v)
		}
	case SiLU:
		for i, v := range x {
			y[i] = siluf(v)
		}
	}
}

// GradX sets dx = dy·f'(x) over len(dy) elements, from x. dx may be dy.
func GradX(k Kind, x, dy, dx []float32) {
	if k == Tanh || k == Sigmoid {
		gradXFromY(k, x, dy, dx)
		return
	}
	x, dx = x[:len(dy)], dx[:len(dy)]
	if m := len(dy) &^ 7; useAVX2 && m > 0 {
		gradVec(k, x[:m], dy[:m], dx[:m])
		x, dy, dx = x[m:], dy[m:], dx[m:]
	}
	switch k {
	case GELU:
		for i, g := range dy {
			dx[i] = g * geluGradf(x[i])
		}
	case GELUTanh:
		for i, g := range dy {
			dx[i] = g * geluTanhGradf(x[i])
		}
	case SiLU:
		for i, g := range dy {
			dx[i] = g * siluGradf(x[i])
		}
	}
}

// gradXFromY sets dx = dy·f'(x) for Tanh or Sigmoid from x (when the
// caller has no y): f(x) is computed a block at a time into a stack
// buffer, then GradY's formula. dx may be dy.
func gradXFromY(k Kind, x, dy, dx []float32) {
	var buf [actBlock]float32
	for len(dy) > 0 {
		n := min(len(dy), actBlock)
		y := buf[:n]
		Forward(k, x[:n], y)
		GradY(k, y, dy[:n], dx[:n])
		x, dy, dx = x[n:], dy[n:], dx[n:]
	}
}

// GradY sets dx = dy·f'(x) from y = f(x) for Tanh (dy·(1 − y²)) or
// Sigmoid (dy·y·(1 − y)) over len(dy) elements. dx may be dy.
func GradY(k Kind, y, dy, dx []float32) {
	y, dx = y[:len(dy)], dx[:len(dy)]
	if k == Tanh {
		for i, g := range dy {
			t := y[i]
			dx[i] = g * (1 - t*t)
		}
		return
	}
	for i, g := range dy {
		s := y[i]
		dx[i] = g * s * (1 - s)
	}
}

// Kind names an activation of the package.
type Kind uint8

// The activations.
const (
	GELUTanh Kind = iota // PyTorch's GELU with approximate='tanh'
	Tanh
	Sigmoid
	SiLU
	GELU // the exact form, x·Φ(x)
)
