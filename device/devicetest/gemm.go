package devicetest

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/kilnml/kiln/device"
)

type gemmShape struct{ m, n, k int }

type gemmFlags struct{ ta, tb bool }

func (f gemmFlags) String() string {
	s := [2]string{"N", "N"}
	if f.ta {
		s[0] = "T"
	}
	if f.tb {
		s[1] = "T"
	}
	return s[0] + s[1]
}

type gemmScalars struct{ alpha, beta float32 }

func (s gemmScalars) String() string { return fmt.Sprintf("a%gb%g", s.alpha, s.beta) }

var (
	allFlags   = []gemmFlags{{false, false}, {false, true}, {true, false}, {true, true}}
	allScalars = []gemmScalars{{1, 0}, {0.5, 1.5}, {-1, 0}}
)

func (s *suite) testGemm(t *testing.T) {
	type plan struct {
		shape   gemmShape
		flags   []gemmFlags
		scalars []gemmScalars
		big     bool
	}
	plans := []plan{
		{gemmShape{1, 1, 1}, allFlags, allScalars, false},
		{gemmShape{7, 13, 29}, allFlags, allScalars, false},
		{gemmShape{1, 1024, 1}, allFlags, allScalars, false},    // outer product, row
		{gemmShape{1024, 1, 1}, allFlags, allScalars, false},    // outer product, column
		{gemmShape{1, 1, 1024}, allFlags, allScalars, false},    // dot product
		{gemmShape{1, 1024, 1024}, allFlags, allScalars, false}, // vector × matrix
		{gemmShape{1024, 1, 1024}, allFlags, allScalars, false}, // matrix × vector
		{gemmShape{513, 257, 129}, allFlags, allScalars, false},
		{gemmShape{1024, 768, 512}, []gemmFlags{{false, false}}, []gemmScalars{{1, 0}}, true},
		{gemmShape{1024, 768, 512}, []gemmFlags{{true, true}}, []gemmScalars{{0.5, 1.5}}, true},
	}
	for _, p := range plans {
		for _, f := range p.flags {
			for _, sc := range p.scalars {
				name := fmt.Sprintf("%dx%dx%d/%s/%s", p.shape.m, p.shape.n, p.shape.k, f, sc)
				t.Run(name, func(t *testing.T) {
					if p.big && s.short {
						t.Skip("short mode")
					}
					s.checkGemm(t, p.shape, f, sc, false, false)
				})
			}
		}
	}
	// Row-major with offsets: op on views into larger buffers.
	t.Run("views", func(t *testing.T) {
		s.checkGemm(t, gemmShape{9, 11, 5}, gemmFlags{true, false}, gemmScalars{1, 1}, true, false)
	})
	// TensorFloat-32, where the device offers it: off by default (the
	// cases above ran with it off), and within TF32's own bound when on.
	if ts, ok := s.dev.(device.TF32Setter); ok {
		t.Run("TF32", func(t *testing.T) {
			ts.SetAllowTF32(true)
			defer ts.SetAllowTF32(false)
			s.checkGemm(t, gemmShape{513, 257, 129}, gemmFlags{false, true}, gemmScalars{1, 0}, false, true)
		})
	}
}

// checkGemm runs one GEMM on random inputs against a float64 reference;
// tf32 widens the bound for TensorFloat-32 inputs.
func (s *suite) checkGemm(t *testing.T, sh gemmShape, f gemmFlags, sc gemmScalars, views, tf32 bool) {
	r := newRand(t)
	m, n, k := sh.m, sh.n, sh.k
	a := uniform(r, m*k, -1, 1)
	b := uniform(r, k*n, -1, 1)
	c0 := uniform(r, m*n, -1, 1)
	if sc.beta == 0 {
		// C must not be read when beta is 0: NaN in it must not leak.
		c0 = filled(m*n, nan)
	}
	var da, db, dc device.Buffer
	if views {
		// Place the operands at odd offsets inside larger buffers.
		da = s.viewOf(t, a, 3)
		db = s.viewOf(t, b, 5)
		dc = s.viewOf(t, c0, 7)
	} else {
		da, db, dc = s.upload(t, a), s.upload(t, b), s.upload(t, c0)
	}
	do(t, "Gemm", func() error { return s.dev.Gemm(f.ta, f.tb, m, n, k, sc.alpha, da, db, sc.beta, dc) })
	got := s.read(t, dc, m*n)
	ref, mag := gemmRef(f, m, n, k, sc, a, b, c0)

	// Elementwise bound (Higham, Accuracy and Stability, §3.5): a float32
	// dot product of length k, summed in any order, with or without FMA,
	// errs by at most γ_k·Σ|a||b| with γ_k ≈ k·u; scaling by alpha and
	// adding beta·c costs up to three more roundings. So
	// |c − ref| ≤ (k+3)·u·(|alpha|·Σ_l|a_il||b_lj| + |beta·c_ij|).
	// TF32 rounds each input to a 10-bit mantissa first: a relative error
	// up to 2⁻¹⁰ on each factor (truncation; 2⁻¹¹ when rounded), so 2·2⁻¹⁰
	// per product.
	gamma := float64(k+3) * u
	if tf32 {
		gamma += 2.0 / 1024
	}
	c := newChecker(t, "C")
	for i := range got {
		c.near(i, got[i], ref[i], gamma*mag[i]+1e-30)
	}
	if !c.done() {
		return
	}
	if tf32 {
		return
	}
	// Normwise: rounding errors of a random-sign sum grow like sqrt(k)·u
	// relative to ‖C‖ (a random walk), about 1e-7 at k = 512. 1e-6·sqrt(k)
	// (16× that) still fails a GEMM that lost precision, e.g. TF32 left on
	// by default (relative error ~1e-3). Only with enough elements for
	// ‖C‖ to be a sum of many: with one or a few, cancellation can leave
	// ‖ref‖ far below Σ|a||b| (a 1×1×1024 product: 4e-5 with OpenBLAS's
	// SkylakeX kernel, well within the elementwise bound above).
	tol := 1e-6 * math.Sqrt(float64(k)+1)
	if m*n < 16 {
		return
	}
	if e := RelErr(got, ref); e > tol {
		t.Errorf("‖C − ref‖/‖ref‖ = %.3g > %.3g", e, tol)
	}
}

// viewOf uploads x at element offset off of a larger buffer (filled with
// sentinels around it) and returns the view of x.
func (s *suite) viewOf(t *testing.T, x []float32, off int) device.Buffer {
	t.Helper()
	host := filled(len(x)+off+4, sentinel)
	copy(host[off:], x)
	p := s.upload(t, host)
	var v device.Buffer
	do(t, "View", func() error {
		var err error
		v, err = s.dev.View(p, off, len(x))
		return err
	})
	t.Cleanup(func() {
		// The elements around the view must be untouched.
		all := make([]float32, len(host))
		if err := protect(func() error { return s.dev.ReadF32(all, p, 0) }); err != nil {
			t.Errorf("ReadF32(parent): %v", err)
			return
		}
		for i := range all {
			if (i < off || i >= off+len(x)) && all[i] != sentinel {
				t.Errorf("parent[%d] = %v outside the view [%d, %d): written out of bounds", i, all[i], off, off+len(x))
				return
			}
		}
	})
	return v
}

// gemmRef returns alpha·op(A)·op(B) + beta·C in float64 and, per element,
// the magnitude |alpha|·Σ|a||b| + |beta·c| that bounds its rounding error.
// It splits rows across goroutines so the big cases stay quick.
func gemmRef(f gemmFlags, m, n, k int, sc gemmScalars, a, b, c []float32) (ref, mag []float64) {
	opA := make([]float64, m*k) // m×k
	for i := 0; i < m; i++ {
		for l := 0; l < k; l++ {
			if f.ta {
				opA[i*k+l] = float64(a[l*m+i])
			} else {
				opA[i*k+l] = float64(a[i*k+l])
			}
		}
	}
	opBT := make([]float64, n*k) // n×k: op(B) transposed, so dots run contiguously
	for j := 0; j < n; j++ {
		for l := 0; l < k; l++ {
			if f.tb {
				opBT[j*k+l] = float64(b[j*k+l])
			} else {
				opBT[j*k+l] = float64(b[l*n+j])
			}
		}
	}
	ref = make([]float64, m*n)
	mag = make([]float64, m*n)
	alpha, beta := float64(sc.alpha), float64(sc.beta)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < m; i += workers {
				ar := opA[i*k : i*k+k]
				for j := 0; j < n; j++ {
					br := opBT[j*k : j*k+k]
					var dot, abs float64
					for l, x := range ar {
						p := x * br[l]
						dot += p
						abs += math.Abs(p)
					}
					v := alpha * dot
					g := math.Abs(alpha) * abs
					if beta != 0 {
						cv := float64(c[i*n+j])
						v += beta * cv
						g += math.Abs(beta * cv)
					}
					ref[i*n+j] = v
					mag[i*n+j] = g
				}
			}
		}(w)
	}
	wg.Wait()
	return ref, mag
}
