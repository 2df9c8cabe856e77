package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// The references. Ordinary results are Go's float32 arithmetic (single
// roundings, as device/cpu's loops). Where an operand is a NaN the
// result is spelled out as x86 computes it, independent of how the Go
// compiler orders the operands of this file's loops: the first source
// operand's NaN, quieted, else the second's. The kernels' operand orders
// are those of device/cpu's loops: a+b, a-b, a*b, x*s, (x*s)+y, v*alpha.

func isNaN(x float32) bool { return x != x }

func quiet(x float32) float32 { return math.Float32frombits(math.Float32bits(x) | 0x00400000) }

// op2 applies f to p and q with x86's NaN rule, p the first operand.
func op2(p, q float32, f func(p, q float32) float32) float32 {
	switch {
	case isNaN(p):
		return quiet(p)
	case isNaN(q):
		return quiet(q)
	}
	return f(p, q)
}

func add(p, q float32) float32 { return p + q }
func sub(p, q float32) float32 { return p - q }
func mul(p, q float32) float32 { return p * q }

func negMaskRef(u uint32) uint32 { return uint32(int32(u) >> 31) }

func posMaskRef(u uint32) uint32 { return ^negMaskRef(u) & uint32(int32(u|-u)>>31) }

var (
	refAdd = func(c, a, b []float32) {
		for i := range c {
			c[i] = op2(a[i], b[i], add)
		}
	}
	refSub = func(c, a, b []float32) {
		for i := range c {
			c[i] = op2(a[i], b[i], sub)
		}
	}
	refMul = func(c, a, b []float32) {
		for i := range c {
			c[i] = op2(a[i], b[i], mul)
		}
	}
	refScale = func(c, a []float32, s float32) {
		for i := range c {
			c[i] = op2(a[i], s, mul)
		}
	}
	refAxpy = func(y, x []float32, s float32) {
		for i := range y {
			y[i] = op2(op2(x[i], s, mul), y[i], add)
		}
	}
	// ReLU as device/cpu computes it: clear every bit where the sign bit
	// is set.
	refReLU = func(y, x []float32) {
		for i := range y {
			u := math.Float32bits(x[i])
			y[i] = math.Float32frombits(u &^ negMaskRef(u))
		}
	}
	refReLUGrad = func(dx, x, dy []float32) {
		for i := range dx {
			g := dy[i]
			dx[i] = math.Float32frombits(math.Float32bits(g) & posMaskRef(math.Float32bits(x[i])))
		}
	}
	refLeakyGrad = func(dx, x, dy []float32, alpha float32) {
		for i := range dx {
			g := dy[i]
			m := posMaskRef(math.Float32bits(x[i]))
			dx[i] = math.Float32frombits(math.Float32bits(g)&m | math.Float32bits(op2(g, alpha, mul))&^m)
		}
	}
	refLeaky = func(y, x []float32, alpha float32) { refLeakyGrad(y, x, x, alpha) }
)

// specials are the values a bit-exact kernel must get right: signed
// zeros and infinities, NaNs of both signs, quiet and signalling with
// distinct payloads (which NaN survives depends on operand order),
// denormals and extremes.
var specials = []uint32{
	0x00000000, 0x80000000, 0x7f800000, 0xff800000,
	0x7fc00000, 0xffc00000, 0x7fc12345, 0xffc54321, 0x7f800001, 0xff80abcd,
	0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x7f7fffff, 0xff7fffff,
	0x3f800000, 0xbf800000,
}

func randInput(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch r.IntN(8) {
		case 0:
			x[i] = math.Float32frombits(specials[r.IntN(len(specials))])
		case 1:
			x[i] = math.Float32frombits(r.Uint32()) // any bit pattern
		default:
			x[i] = float32(r.NormFloat64())
		}
	}
	return x
}

func lengths() []int {
	var ns []int
	for n := 0; n <= 70; n++ {
		ns = append(ns, n)
	}
	return append(ns, 1000, 4099, 1<<20+7)
}

func sameBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s [%d]: got %#08x (%v), want %#08x (%v)", name, i,
				math.Float32bits(got[i]), got[i], math.Float32bits(want[i]), want[i])
		}
	}
}

// TestElementwise compares every kernel with its reference loop, bit for
// bit, over many lengths, with the destination and the inputs starting
// at independent offsets (so every alignment of the head), with plain
// and non-temporal stores, out of place and in place.
func TestElementwise(t *testing.T) {
	if !HasAVX2 {
		t.Skip("no AVX2 kernel on this machine or build")
	}
	r := rand.New(rand.NewPCG(1, 2))
	const pad = 8
	type kernel struct {
		name string
		vec  func(dst, a, b []float32, nt bool)
		ref  func(dst, a, b []float32)
	}
	const s = float32(-0.37)
	sNaN := math.Float32frombits(0xffc0f00d)
	kernels := []kernel{
		{"Add", Add, func(d, a, b []float32) { refAdd(d, a, b) }},
		{"Sub", Sub, func(d, a, b []float32) { refSub(d, a, b) }},
		{"Mul", Mul, func(d, a, b []float32) { refMul(d, a, b) }},
		{"Scale", func(d, a, _ []float32, nt bool) { Scale(d, a, s, nt) }, func(d, a, _ []float32) { refScale(d, a, s) }},
		{"ScaleNaN", func(d, a, _ []float32, nt bool) { Scale(d, a, sNaN, nt) }, func(d, a, _ []float32) { refScale(d, a, sNaN) }},
		// Axpy updates dst in place: it starts as a copy of b.
		{"Axpy", func(d, a, b []float32, nt bool) { copy(d, b); Axpy(d, a, s, nt) },
			func(d, a, b []float32) { copy(d, b); refAxpy(d, a, s) }},
		{"AxpyNaN", func(d, a, b []float32, nt bool) { copy(d, b); Axpy(d, a, sNaN, nt) },
			func(d, a, b []float32) { copy(d, b); refAxpy(d, a, sNaN) }},
		{"ReLU", func(d, a, _ []float32, nt bool) { MaskPos(d, a, a, nt) }, func(d, a, _ []float32) { refReLU(d, a) }},
		{"ReLUGrad", func(d, a, b []float32, nt bool) { MaskPos(d, a, b, nt) }, func(d, a, b []float32) { refReLUGrad(d, a, b) }},
		{"Leaky", func(d, a, _ []float32, nt bool) { Leaky(d, a, a, 0.01, nt) }, func(d, a, _ []float32) { refLeaky(d, a, 0.01) }},
		{"LeakyNaN", func(d, a, _ []float32, nt bool) { Leaky(d, a, a, sNaN, nt) }, func(d, a, _ []float32) { refLeaky(d, a, sNaN) }},
		{"LeakyGrad", func(d, a, b []float32, nt bool) { Leaky(d, a, b, -2.5, nt) }, func(d, a, b []float32) { refLeakyGrad(d, a, b, -2.5) }},
	}
	for _, n := range lengths() {
		a, b := randInput(r, n+pad), randInput(r, n+pad)
		want, got := make([]float32, n+pad), make([]float32, n+pad)
		offs := [][3]int{{0, 0, 0}, {1, 0, 0}, {0, 3, 5}, {7, 2, 1}, {5, 5, 5}, {3, 6, 4}, {2, 7, 0}, {6, 1, 3}, {4, 4, 2}}
		if n > 5000 {
			offs = offs[:4]
		}
		for _, k := range kernels {
			for _, o := range offs {
				ao, bo, do := a[o[0]:o[0]+n], b[o[1]:o[1]+n], o[2]
				k.ref(want[do:do+n], ao, bo)
				for _, nt := range []bool{false, true} {
					// Fill around the destination, to catch writes outside it.
					for i := range got {
						got[i] = math.Float32frombits(0x7fbadbad)
					}
					dst := got[do : do+n]
					h, m, ntOK := Span(dst, nt)
					if h+m > n || m%8 != 0 || (nt && n > 0 && !ntOK) || (!nt && (h != 0 || ntOK)) ||
						(ntOK && m > 0 && uintptr(unsafe.Pointer(&dst[h]))%32 != 0) {
						t.Fatalf("%s n=%d offsets=%v nt=%v: Span gave %d, %d, %v", k.name, n, o, nt, h, m, ntOK)
					}
					// The reference for head and tail, as device/cpu does.
					k.ref(dst[:h], ao, bo)
					k.vec(dst[h:h+m], ao[h:], bo[h:], ntOK)
					k.ref(dst[h+m:], ao[h+m:], bo[h+m:])
					name := fmt.Sprintf("%s n=%d offsets=%v nt=%v", k.name, n, o, nt)
					sameBits(t, name, got[do:do+n], want[do:do+n])
					for i := range got {
						if (i < do || i >= do+n) && math.Float32bits(got[i]) != 0x7fbadbad {
							t.Fatalf("%s: wrote [%d] outside the destination", name, i-do)
						}
					}
				}
			}
		}
		// In place: the destination is the first input.
		for _, nt := range []bool{false, true} {
			m := n &^ 7
			x := append([]float32(nil), a[1:n+1]...)
			w := make([]float32, n)
			refReLU(w, x)
			MaskPos(x[:m], x, x, nt)
			refReLU(x[m:], x[m:])
			sameBits(t, fmt.Sprintf("ReLU in place n=%d nt=%v", n, nt), x, w)
			x = append(x[:0], a[3:n+3]...)
			refAdd(w, x, b)
			Add(x[:m], x, b, nt)
			refAdd(x[m:], x[m:], b[m:])
			sameBits(t, fmt.Sprintf("Add in place n=%d nt=%v", n, nt), x, w)
		}
	}
}

// TestReLUSpecials pins ReLU's treatment of the special values: ±0 and
// every value with the sign bit set (−Inf, negative NaNs) give +0; +Inf
// and NaNs with the sign bit clear pass unchanged. The gradient passes
// dy only where x > 0, a positive NaN included.
func TestReLUSpecials(t *testing.T) {
	if !HasAVX2 {
		t.Skip("no AVX2 kernel on this machine or build")
	}
	for _, nt := range []bool{false, true} {
		for rep := 0; rep < 4; rep++ { // repeat so they fill whole vectors
			var x []float32
			for i := 0; i <= rep; i++ {
				for _, u := range specials {
					x = append(x, math.Float32frombits(u))
				}
			}
			x = x[:len(x)&^7]
			y, dx, dy := make([]float32, len(x)), make([]float32, len(x)), make([]float32, len(x))
			for i := range dy {
				dy[i] = float32(i + 1)
			}
			MaskPos(y, x, x, nt)
			MaskPos(dx, x, dy, nt)
			for i, v := range x {
				u := math.Float32bits(v)
				wantY, wantD := uint32(0), uint32(0)
				if u>>31 == 0 && u != 0 {
					wantY, wantD = u, math.Float32bits(dy[i])
				}
				if math.Float32bits(y[i]) != wantY || math.Float32bits(dx[i]) != wantD {
					t.Fatalf("x=%#08x: relu %#08x grad %#08x, want %#08x %#08x", u,
						math.Float32bits(y[i]), math.Float32bits(dx[i]), wantY, wantD)
				}
			}
		}
	}
}
