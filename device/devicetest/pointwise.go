package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// Transcendental tolerances. Float32 exp, log, tanh and erf are accurate
// to a few ulp (CUDA's expf/tanhf/erff ≤ 2–3 ulp, fast intrinsics such as
// __expf up to ~20 ulp on these arguments), so a relative error of 1e-5
// (≈170 ulp) leaves room for formulas that chain two or three of them.
// Formulas that cancel (1+erf(x/√2) for negative x, 1−y² near |y| = 1,
// exp-based tanh near 0) lose relative accuracy but not absolute accuracy,
// so an absolute floor of 1e-6 (16 ulp of 1, with outputs of order 1) is
// allowed as well.
const (
	transRel = 1e-5
	transAbs = 1e-6
)

// elementSizes are the lengths the elementwise primitives run on: every
// variant (aliasing, offsets) on the small ones, and the plain variant also
// on bigN outside short mode (bigger buffers cost page faults and
// reference time, and the aliased paths are the same loops).
var elementSizes = []int{1, 7, 1000, 4099}

// withBig is sizes plus bigN unless in short mode.
func (s *suite) withBig(sizes []int) []int {
	if s.short {
		return sizes
	}
	return append(append([]int(nil), sizes...), bigN)
}

type actCase struct {
	act   device.Activation
	alpha float32
}

func (a actCase) String() string {
	if a.act == device.LeakyReLU || a.act == device.ELU {
		return fmt.Sprintf("%s%g", a.act, a.alpha)
	}
	return a.act.String()
}

var actCases = []actCase{
	{device.Identity, 0}, {device.ReLU, 0}, {device.LeakyReLU, 0.01}, {device.LeakyReLU, 0.2},
	{device.Tanh, 0}, {device.Sigmoid, 0}, {device.GELU, 0}, {device.GELUTanh, 0},
	{device.SiLU, 0}, {device.ELU, 1}, {device.ELU, 0.5},
}

const geluTanhC = 0.7978845608028654 // sqrt(2/π)

// actRef is f(x) and f'(x) in float64.
func actRef(a actCase, x float64) (y, dy float64) {
	al := float64(a.alpha)
	switch a.act {
	case device.Identity:
		return x, 1
	case device.ReLU:
		if x > 0 {
			return x, 1
		}
		return 0, 0
	case device.LeakyReLU:
		if x > 0 {
			return x, 1
		}
		return al * x, al
	case device.Tanh:
		t := math.Tanh(x)
		return t, 1 - t*t
	case device.Sigmoid:
		var s float64
		if x >= 0 {
			s = 1 / (1 + math.Exp(-x))
		} else {
			e := math.Exp(x)
			s = e / (1 + e)
		}
		return s, s * (1 - s)
	case device.GELU:
		cdf := 0.5 * math.Erfc(-x/math.Sqrt2)
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return x * cdf, cdf + x*pdf
	case device.GELUTanh:
		inner := geluTanhC * (x + 0.044715*x*x*x)
		t := math.Tanh(inner)
		return 0.5 * x * (1 + t), 0.5*(1+t) + 0.5*x*(1-t*t)*geluTanhC*(1+3*0.044715*x*x)
	case device.SiLU:
		// x·σ(x); exp(−x) cannot overflow in float64 for |x| ≤ 700.
		s := 1 / (1 + math.Exp(-x))
		return x * s, s + x*s*(1-s)
	case device.ELU:
		if x > 0 {
			return x, 1
		}
		return al * math.Expm1(x), al * math.Exp(x)
	}
	panic("unknown activation")
}

// piecewiseLinear reports whether the activation needs only exact or
// singly rounded arithmetic.
func (a actCase) piecewiseLinear() bool {
	return a.act == device.Identity || a.act == device.ReLU || a.act == device.LeakyReLU
}

// actInput is n values spanning [-8, 8] that start with the awkward ones:
// ±100 (saturation: no NaN or Inf, sigmoid → 0/1, tanh → ±1), 0, tiny
// values (cancellation), and values near the ends of the range.
func actInput(r *rand.Rand, n int, withZero bool) []float32 {
	x := uniform(r, n, -8, 8)
	special := []float32{100, -100, 1e-4, -1e-4, 8, -8, 30, -30, 0.5, -0.5, 3, -3, 1e-20, -1e-20}
	if withZero {
		special = append(special, 0)
	}
	if n > 1 {
		copy(x, special)
	}
	return x
}

func (s *suite) testActivate(t *testing.T) {
	for _, a := range actCases {
		for _, n := range s.withBig(elementSizes) {
			for _, inplace := range []bool{false, true} {
				if inplace && n == bigN {
					continue
				}
				name := fmt.Sprintf("%s/n=%d", a, n)
				if inplace {
					name += "/inplace"
				}
				t.Run(name, func(t *testing.T) {
					r := newRand(t)
					x := actInput(r, n, true)
					dx := s.upload(t, x)
					dy := dx
					if !inplace {
						dy = s.upload(t, filled(n, nan))
					}
					do(t, "Activate", func() error { return s.dev.Activate(a.act, a.alpha, dx, dy, n) })
					got := s.read(t, dy, n)
					c := newChecker(t, "y")
					for i, xv := range x {
						want, _ := actRef(a, float64(xv))
						// Piecewise-linear: one rounding at most (alpha·x).
						tol := u * math.Abs(want)
						if !a.piecewiseLinear() {
							tol = transRel*math.Abs(want) + transAbs
						}
						c.near(i, got[i], want, tol)
					}
					c.done()
					finite(t, "y", got)
				})
			}
		}
	}
}

func (s *suite) testActivateGrad(t *testing.T) {
	for _, a := range actCases {
		for _, n := range s.withBig(elementSizes) {
			for _, alias := range []bool{false, true} {
				if alias && n == bigN {
					continue
				}
				name := fmt.Sprintf("%s/n=%d", a, n)
				if alias {
					name += "/dx=dy"
				}
				t.Run(name, func(t *testing.T) {
					r := newRand(t)
					// No exact zeros: f'(0) of relu and leaky relu is a
					// convention the contract does not fix.
					x := actInput(r, n, false)
					g := uniform(r, n, -2, 2)
					bx := s.upload(t, x)
					by := s.upload(t, filled(n, nan))
					do(t, "Activate", func() error { return s.dev.Activate(a.act, a.alpha, bx, by, n) })
					bdy := s.upload(t, g)
					bdx := bdy
					if !alias {
						bdx = s.upload(t, filled(n, nan))
					}
					do(t, "ActivateGrad", func() error { return s.dev.ActivateGrad(a.act, a.alpha, bx, by, bdy, bdx, n) })
					got := s.read(t, bdx, n)
					c := newChecker(t, "dx")
					for i, xv := range x {
						_, d := actRef(a, float64(xv))
						want := float64(g[i]) * d
						// dy·f'(x): one rounding for the piecewise-linear
						// ones; the transcendental bound (scaled by |dy|)
						// otherwise, whether f' is computed from x or y.
						tol := u * math.Abs(want)
						if !a.piecewiseLinear() {
							tol = transRel*math.Abs(want) + transAbs*math.Abs(float64(g[i]))
						}
						c.near(i, got[i], want, tol)
					}
					c.done()
					finite(t, "dx", got)
				})
			}
		}
	}
}

// softmaxRef is the row-wise softmax of x in float64.
func softmaxRef(x []float32, rows, cols int) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < rows; i++ {
		row := x[i*cols : (i+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v) - mx)
			y[i*cols+j] = e
			sum += e
		}
		for j := range row {
			y[i*cols+j] /= sum
		}
	}
	return y
}

type shape2 struct{ rows, cols int }

// softmaxShapes: a single element, odd shapes, rows longer than a GPU
// block (1000, 5000) and many short rows.
var softmaxShapes = []shape2{{1, 1}, {7, 13}, {3, 1000}, {2, 5000}, {1000, 3}, {64, 10}}

// softmaxInput is random logits in [-8, 8]; with extreme it mixes in ±100
// and rows that are all one value.
func softmaxInput(r *rand.Rand, rows, cols int, extreme bool) []float32 {
	x := uniform(r, rows*cols, -8, 8)
	if !extreme {
		return x
	}
	for i := range x {
		switch r.IntN(3) {
		case 0:
			x[i] = 100
		case 1:
			x[i] = -100
		}
	}
	if rows > 1 {
		for j := 0; j < cols; j++ {
			x[j] = -100 // a row of equal, very negative logits: uniform
		}
	}
	return x
}

func (s *suite) testSoftmax(t *testing.T) {
	for _, sh := range softmaxShapes {
		for _, extreme := range []bool{false, true} {
			name := fmt.Sprintf("%dx%d", sh.rows, sh.cols)
			if extreme {
				name += "/logits±100"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				rows, cols := sh.rows, sh.cols
				x := softmaxInput(r, rows, cols, extreme)
				bx := s.upload(t, x)
				by := s.upload(t, filled(rows*cols, nan))
				do(t, "Softmax", func() error { return s.dev.Softmax(bx, by, rows, cols) })
				got := s.read(t, by, rows*cols)
				finite(t, "y", got)
				want := softmaxRef(x, rows, cols)
				c := newChecker(t, "y")
				for i := 0; i < rows; i++ {
					mx := math.Inf(-1)
					for j := 0; j < cols; j++ {
						mx = math.Max(mx, float64(x[i*cols+j]))
					}
					for j := 0; j < cols; j++ {
						k := i*cols + j
						// exp(x−max)/Σ: the subtraction and exp's argument
						// cost 2|x−max|·u, the positive row sum (cols−1)·u,
						// the division u, exp itself transRel. Results
						// below float32's range may flush to 0 (1e-30).
						rel := float64(cols+2)*u + 2*(mx-float64(x[k]))*u + transRel
						c.near(k, got[k], want[k], rel*want[k]+1e-30)
					}
				}
				c.done()
				// Rows sum to 1, within the same relative budget.
				for i := 0; i < rows; i++ {
					var sum float64
					for j := 0; j < cols; j++ {
						sum += float64(got[i*cols+j])
					}
					if tol := float64(2*cols+2)*u + transRel; math.Abs(sum-1) > tol {
						t.Errorf("row %d sums to %v; want 1 ± %.3g", i, sum, tol)
					}
				}
			})
		}
	}
}

func (s *suite) testSoftmaxGrad(t *testing.T) {
	for _, sh := range softmaxShapes {
		for _, extreme := range []bool{false, true} {
			name := fmt.Sprintf("%dx%d", sh.rows, sh.cols)
			if extreme {
				name += "/logits±100"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				rows, cols := sh.rows, sh.cols
				yr := softmaxRef(softmaxInput(r, rows, cols, extreme), rows, cols)
				y := make([]float32, len(yr))
				for i, v := range yr {
					y[i] = float32(v)
				}
				g := uniform(r, rows*cols, -1, 1)
				by, bdy := s.upload(t, y), s.upload(t, g)
				bdx := s.upload(t, filled(rows*cols, nan))
				do(t, "SoftmaxGrad", func() error { return s.dev.SoftmaxGrad(by, bdy, bdx, rows, cols) })
				got := s.read(t, bdx, rows*cols)
				c := newChecker(t, "dx")
				for i := 0; i < rows; i++ {
					var dot, adot float64
					for j := 0; j < cols; j++ {
						k := i*cols + j
						dot += float64(g[k]) * float64(y[k])
						adot += math.Abs(float64(g[k]) * float64(y[k]))
					}
					for j := 0; j < cols; j++ {
						k := i*cols + j
						want := float64(y[k]) * (float64(g[k]) - dot)
						// Σ dy⊙y over cols terms (cols+1 roundings, any
						// order), the subtraction and the product: first
						// order bound (cols+4)·u·y·(|dy| + Σ|dy⊙y|).
						tol := float64(cols+4)*u*float64(y[k])*(math.Abs(float64(g[k]))+adot) + 1e-30
						c.near(k, got[k], want, tol)
					}
				}
				c.done()
			})
		}
	}
}

func (s *suite) testAddBias(t *testing.T) {
	shapes := []shape2{{1, 1}, {7, 13}, {3, 1000}, {1000, 3}}
	if !s.short {
		shapes = append(shapes, shape2{1024, 1025})
	}
	for _, sh := range shapes {
		t.Run(fmt.Sprintf("%dx%d", sh.rows, sh.cols), func(t *testing.T) {
			r := newRand(t)
			rows, cols := sh.rows, sh.cols
			x := uniform(r, rows*cols, -3, 3)
			b := uniform(r, cols, -3, 3)
			bx, bb := s.upload(t, x), s.upload(t, b)
			do(t, "AddBias", func() error { return s.dev.AddBias(bx, bb, rows, cols) })
			got := s.read(t, bx, rows*cols)
			c := newChecker(t, "x")
			for k := range got {
				want := float64(x[k]) + float64(b[k%cols])
				// One float32 addition: |err| ≤ u·|x + b|.
				c.near(k, got[k], want, u*math.Abs(want))
			}
			c.done()
		})
	}
}

func (s *suite) testBiasGrad(t *testing.T) {
	shapes := []shape2{{1, 1}, {7, 13}, {3, 1000}, {1000, 3}}
	if !s.short {
		shapes = append(shapes, shape2{1024, 1025})
	}
	for _, sh := range shapes {
		for _, beta := range []float32{0, 1} {
			t.Run(fmt.Sprintf("%dx%d/beta=%g", sh.rows, sh.cols, beta), func(t *testing.T) {
				r := newRand(t)
				rows, cols := sh.rows, sh.cols
				dy := uniform(r, rows*cols, -1, 1)
				db0 := uniform(r, cols, -1, 1)
				if beta == 0 {
					// Must be overwritten, and beta 0 means db is not
					// read: NaN must not leak.
					db0 = filled(cols, nan)
				}
				bdy, bdb := s.upload(t, dy), s.upload(t, db0)
				do(t, "BiasGrad", func() error { return s.dev.BiasGrad(bdb, bdy, rows, cols, beta) })
				got := s.read(t, bdb, cols)
				c := newChecker(t, "db")
				for j := 0; j < cols; j++ {
					var want, mag float64
					for i := 0; i < rows; i++ {
						want += float64(dy[i*cols+j])
						mag += math.Abs(float64(dy[i*cols+j]))
					}
					if beta != 0 {
						want += float64(beta) * float64(db0[j])
						mag += math.Abs(float64(beta) * float64(db0[j]))
					}
					// A float32 sum of rows+1 terms in any order errs by at
					// most rows·u·Σ|terms| (plus one rounding for beta·db).
					c.near(j, got[j], want, float64(rows+1)*u*mag)
				}
				c.done()
			})
		}
	}
}

// binop is one elementwise primitive with its float64 reference and the
// magnitude its rounding error scales with.
type binop struct {
	name string
	call func(d device.Device, a, b, out device.Buffer, n int) error
	ref  func(a, b float64) (v, mag float64)
}

const (
	scaleAlpha = -1.75
	axpyAlpha  = 0.3
	fillValue  = -2.5
)

var binops = []binop{
	{"Add", func(d device.Device, a, b, o device.Buffer, n int) error { return d.Add(a, b, o, n) },
		func(a, b float64) (float64, float64) { return a + b, math.Abs(a) + math.Abs(b) }},
	{"Sub", func(d device.Device, a, b, o device.Buffer, n int) error { return d.Sub(a, b, o, n) },
		func(a, b float64) (float64, float64) { return a - b, math.Abs(a) + math.Abs(b) }},
	{"Mul", func(d device.Device, a, b, o device.Buffer, n int) error { return d.Mul(a, b, o, n) },
		func(a, b float64) (float64, float64) { return a * b, math.Abs(a * b) }},
}

func (s *suite) testElementwise(t *testing.T) {
	for _, n := range s.withBig(elementSizes) {
		for _, op := range binops {
			for _, alias := range []string{"", "out=a", "out=b", "out=a=b"} {
				if alias != "" && n == bigN {
					continue
				}
				name := fmt.Sprintf("%s/n=%d", op.name, n)
				if alias != "" {
					name += "/" + alias
				}
				t.Run(name, func(t *testing.T) {
					r := newRand(t)
					a := uniform(r, n, -4, 4)
					b := uniform(r, n, -4, 4)
					ba, bb := s.upload(t, a), s.upload(t, b)
					var out device.Buffer
					switch alias {
					case "":
						out = s.upload(t, filled(n, nan))
					case "out=a":
						out = ba
					case "out=b":
						out = bb
					case "out=a=b":
						bb, b, out = ba, a, ba
					}
					do(t, op.name, func() error { return op.call(s.dev, ba, bb, out, n) })
					got := s.read(t, out, n)
					c := newChecker(t, "out")
					for i := range got {
						want, mag := op.ref(float64(a[i]), float64(b[i]))
						// One correctly rounded float32 operation.
						c.near(i, got[i], want, u*mag)
					}
					c.done()
				})
			}
		}
		for _, alias := range []bool{false, true} {
			if alias && n == bigN {
				continue
			}
			name := fmt.Sprintf("Scale/n=%d", n)
			if alias {
				name += "/out=x"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				x := uniform(r, n, -4, 4)
				bx := s.upload(t, x)
				out := bx
				if !alias {
					out = s.upload(t, filled(n, nan))
				}
				do(t, "Scale", func() error { return s.dev.Scale(scaleAlpha, bx, out, n) })
				got := s.read(t, out, n)
				c := newChecker(t, "out")
				for i := range got {
					want := scaleAlpha * float64(x[i])
					c.near(i, got[i], want, u*math.Abs(want)) // one rounding
				}
				c.done()
			})
		}
		t.Run(fmt.Sprintf("Axpy/n=%d", n), func(t *testing.T) {
			r := newRand(t)
			x := uniform(r, n, -4, 4)
			y := uniform(r, n, -4, 4)
			bx, by := s.upload(t, x), s.upload(t, y)
			do(t, "Axpy", func() error { return s.dev.Axpy(axpyAlpha, bx, by, n) })
			got := s.read(t, by, n)
			c := newChecker(t, "y")
			for i := range got {
				ax := float64(float32(axpyAlpha)) * float64(x[i])
				// Two roundings without FMA (alpha·x, then + y), one with.
				c.near(i, got[i], ax+float64(y[i]), 2*u*(math.Abs(ax)+math.Abs(float64(y[i]))))
			}
			c.done()
		})
		t.Run(fmt.Sprintf("Axpy/n=%d/x=y", n), func(t *testing.T) {
			if n == bigN {
				t.Skip("aliasing covered on the small sizes")
			}
			r := newRand(t)
			x := uniform(r, n, -4, 4)
			bx := s.upload(t, x)
			do(t, "Axpy", func() error { return s.dev.Axpy(axpyAlpha, bx, bx, n) })
			got := s.read(t, bx, n)
			c := newChecker(t, "y")
			for i := range got {
				want := (float64(float32(axpyAlpha)) + 1) * float64(x[i])
				c.near(i, got[i], want, 2*u*(1+axpyAlpha)*math.Abs(float64(x[i])))
			}
			c.done()
		})
		t.Run(fmt.Sprintf("Fill/n=%d", n), func(t *testing.T) {
			// Fill a view that leaves one element on each side untouched.
			p := s.upload(t, filled(n+2, nan))
			var v device.Buffer
			do(t, "View", func() error {
				var err error
				v, err = s.dev.View(p, 1, n)
				return err
			})
			do(t, "Fill", func() error { return s.dev.Fill(v, n, fillValue) })
			got := s.read(t, p, n+2)
			if !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[n+1])) {
				t.Errorf("Fill wrote outside its view: parent[0] = %v, parent[%d] = %v", got[0], n+1, got[n+1])
			}
			c := newChecker(t, "x")
			for i := 1; i <= n; i++ {
				c.equal(i-1, got[i], fillValue)
			}
			c.done()
		})
	}
}
