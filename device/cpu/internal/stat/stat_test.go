package stat

import (
	"math"
	"math/rand/v2"
	"testing"
)

// lengths covers the empty row, every tail (mod 8), every tail group of
// the 32- and 16-element loops, and the CNN's rows (196 and 784).
var lengths = func() []int {
	var l []int
	for n := 0; n <= 80; n++ {
		l = append(l, n)
	}
	return append(l, 196, 784, 1000, 4099)
}()

func randRow(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// level is one choice of kernels.
type level struct {
	name         string
	avx2, avx512 bool
}

// levels lists the kernels this build and processor can run, the
// portable Go first.
func levels() []level {
	l := []level{{"generic", false, false}}
	if useAVX2 {
		l = append(l, level{"avx2", true, false})
	}
	if useAVX512 {
		l = append(l, level{"avx512", useAVX2, true})
	}
	return l
}

// use selects l's kernels and returns the function that restores the
// previous choice.
func use(l level) func() {
	a, b := useAVX2, useAVX512
	useAVX2, useAVX512 = l.avx2, l.avx512
	return func() { useAVX2, useAVX512 = a, b }
}

// withLevel returns f's result under l's kernels.
func withLevel[T any](l level, f func() T) T {
	defer use(l)()
	return f()
}

// TestVectorMatchesGeneric: the assembly kernels give the bits of the
// portable Go (same operations in the same order), for every length and
// with outputs aliasing inputs.
func TestVectorMatchesGeneric(t *testing.T) {
	ls := levels()
	if len(ls) == 1 {
		t.Skip("no vector kernels on this build or processor")
	}
	for _, l := range ls[1:] {
		t.Run(l.name, func(t *testing.T) { vectorMatchesGeneric(t, l) })
	}
}

func vectorMatchesGeneric(t *testing.T, l level) {
	gen := levels()[0]
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range lengths {
		x, dy := randRow(r, n, -1, 3), randRow(r, n, -1, 1)
		m := 0.7 + r.Float64()
		type res [4]float64
		sums := func() res {
			a, b := GradSums(x, dy, m)
			return res{Sum(x), SqDev(x, m), a, b}
		}
		v, g := withLevel(l, sums), withLevel(gen, sums)
		for i := range v {
			if math.Float64bits(v[i]) != math.Float64bits(g[i]) {
				t.Fatalf("n=%d, sum %d: vector %v, generic %v", n, i, v[i], g[i])
			}
		}
		for alias := 0; alias < 3; alias++ {
			outs := func() [2][]float32 {
				xa, dya := append([]float32(nil), x...), append([]float32(nil), dy...)
				y, dx := make([]float32, n), make([]float32, n)
				switch alias {
				case 1:
					y, dx = xa, xa
				case 2:
					dx = dya
				}
				Affine(xa, y, m, 1.3, -0.2)
				ya := append([]float32(nil), y...)
				xa = append(xa[:0], x...)
				GradApply(xa, dya, dx, m, 0.9, 0.1, -0.3)
				return [2][]float32{ya, dx}
			}
			vo, go_ := withLevel(l, outs), withLevel(gen, outs)
			for k := range vo {
				for i := range vo[k] {
					if math.Float32bits(vo[k][i]) != math.Float32bits(go_[k][i]) {
						t.Fatalf("n=%d alias %d, output %d [%d]: vector %v, generic %v", n, alias, k, i, vo[k][i], go_[k][i])
					}
				}
			}
		}
	}
}

// TestNoWritePastEnd: Affine and GradApply write len(x) values and not
// one more (the vector tails are masked or scalar), at every length and
// kernel choice.
func TestNoWritePastEnd(t *testing.T) {
	const guard = 24
	sentinel := float32(math.Inf(-1))
	for _, l := range levels() {
		for n := 0; n <= 70; n++ {
			x, dy := randRow(rand.New(rand.NewPCG(5, uint64(n))), n+guard, -1, 1), make([]float32, n+guard)
			buf := make([]float32, n+guard)
			for i := range buf {
				buf[i] = sentinel
			}
			withLevel(l, func() int {
				Affine(x[:n], buf[:n], 0.1, 2, 0.3)
				GradApply(x[:n], dy[:n], buf[:n:n], 0.1, 2, 0.3, 0.4)
				return 0
			})
			for i := 0; i < n; i++ {
				if buf[i] == sentinel {
					t.Fatalf("%s n=%d: [%d] not written", l.name, n, i)
				}
			}
			for i := n; i < len(buf); i++ {
				if buf[i] != sentinel {
					t.Fatalf("%s n=%d: [%d] written past the end: %v", l.name, n, i, buf[i])
				}
			}
		}
	}
}

// TestAgainstFloat64: each function against a plain float64 evaluation.
// The sums are of at most 4099 terms of magnitude ≤ 9, so any order is
// within n·2⁻⁵³·Σ|term| ≈ 5e-13 relative of the exact sum: 1e-12 relative
// tolerance, which a lost element, chain or tail (≥ 1e-4 relative here)
// exceeds. The elementwise outputs are one float32 rounding of a float64
// value: within half a float32 ulp plus 1e-12.
func TestAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(what string, n int, got, want, scale float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12*(scale+1e-300) {
			t.Fatalf("%s n=%d: got %v, want %v", what, n, got, want)
		}
	}
	for _, l := range levels() {
		restore := use(l)
		for _, n := range lengths {
			x, dy := randRow(r, n, -1, 3), randRow(r, n, -1, 1)
			m := 0.5 + r.Float64()
			var s, sa, q, g, ga, gx, gxa float64
			for i := range x {
				xv, gv := float64(x[i]), float64(dy[i])
				s += xv
				sa += math.Abs(xv)
				q += (xv - m) * (xv - m)
				g += gv
				ga += math.Abs(gv)
				gx += gv * (xv - m)
				gxa += math.Abs(gv * (xv - m))
			}
			check(l.name+" Sum", n, Sum(x), s, sa)
			check("SqDev", n, SqDev(x, m), q, q)
			a, b := GradSums(x, dy, m)
			check("GradSums Σg", n, a, g, ga)
			check("GradSums Σg(x−m)", n, b, gx, gxa)
			y, dx := make([]float32, n), make([]float32, n)
			Affine(x, y, m, 1.3, -0.2)
			GradApply(x, dy, dx, m, 0.9, 0.1, -0.3)
			for i := range x {
				wy := (float64(x[i])-m)*1.3 - 0.2
				wd := 0.9*float64(dy[i]) - (0.1 + (float64(x[i])-m)*-0.3)
				if math.Abs(float64(y[i])-wy) > math.Abs(wy)*0x1p-24+1e-12 {
					t.Fatalf("Affine n=%d [%d]: got %v, want %v", n, i, y[i], wy)
				}
				if math.Abs(float64(dx[i])-wd) > math.Abs(wd)*0x1p-24+1e-12 {
					t.Fatalf("GradApply n=%d [%d]: got %v, want %v", n, i, dx[i], wd)
				}
			}
		}
		restore()
	}
}

// TestNoAllocs: the functions allocate nothing.
func TestNoAllocs(t *testing.T) {
	x, y := make([]float32, 100), make([]float32, 100)
	var sink float64
	if a := testing.AllocsPerRun(10, func() {
		a, b := GradSums(x, y, 1)
		sink += Sum(x) + SqDev(x, 1) + a + b
		Affine(x, y, 1, 2, 3)
		GradApply(x, x, y, 1, 2, 3, 4)
	}); a != 0 {
		t.Errorf("%v allocations per call, want 0", a)
	}
	_ = sink
}
