package devicetest

import (
	"fmt"
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

// testSum covers Sum (squares false) or SumSquares (squares true).
func (s *suite) testSum(t *testing.T, squares bool) {
	op := "Sum"
	f := func(x float64) float64 { return x }
	if squares {
		op = "SumSquares"
		f = func(x float64) float64 { return x * x }
	}
	call := func(x device.Buffer, n int, out device.Buffer, beta float32) error {
		if squares {
			return s.dev.SumSquares(x, n, out, beta)
		}
		return s.dev.Sum(x, n, out, beta)
	}
	sizes := []int{1, 7, 1000, 4099}
	if !s.short {
		sizes = append(sizes, 1<<20, bigN)
	}
	for _, n := range sizes {
		// Integer-valued data: every partial sum is an integer below 2²⁴
		// (|x| ≤ 8, or x² ≤ 9, times n ≤ 2²⁰+7), so float32 represents it
		// exactly and any summation order must give the exact result. A
		// dropped, doubled or misplaced element shows as a wrong integer.
		t.Run(fmt.Sprintf("n=%d/integers", n), func(t *testing.T) {
			r := newRand(t)
			lim := 8
			if squares {
				lim = 3
			}
			x := make([]float32, n)
			var want float64
			for i := range x {
				x[i] = float32(r.IntN(2*lim+1) - lim)
				want += f(float64(x[i]))
			}
			if want == 0 { // never an all-zero answer
				x[0] = 1
				want = 1
			}
			bx := s.upload(t, x)
			// beta 0: out is not read, so a NaN in it must not leak.
			out := s.upload(t, []float32{nan})
			do(t, op, func() error { return call(bx, n, out, 0) })
			if got := s.read(t, out, 1)[0]; float64(got) != want {
				t.Errorf("%s of %d integers = %v; want exactly %v", op, n, got, want)
			}
		})
		// Random reals, beta 0 then beta 1 accumulating a second buffer.
		t.Run(fmt.Sprintf("n=%d/beta", n), func(t *testing.T) {
			r := newRand(t)
			x1 := uniform(r, n, -1, 1)
			x2 := uniform(r, n+3, -2, 2)
			b1, b2 := s.upload(t, x1), s.upload(t, x2)
			out := s.upload(t, []float32{sentinel})
			var want, mag float64
			for _, v := range x1 {
				want += f(float64(v))
				mag += math.Abs(f(float64(v)))
			}
			// Float32 accumulation: the worst-case bound (n·u·Σ|terms|) is
			// useless at n = 2²⁰, and backends may sum in float64, pairwise
			// or sequentially. A sequential float32 sum of random terms errs
			// like sqrt(n)·u·Σ|terms| (a random walk; Σ x² grows steadily,
			// its worst realistic case); 8·sqrt(n)·u is ~8× that, 4.9e-4 of
			// Σ|terms| at 2²⁰. The integer cases above check exactness.
			tolOf := func(n int, mag float64) float64 { return (8*math.Sqrt(float64(n))+4)*u*mag + 1e-30 }
			do(t, op, func() error { return call(b1, n, out, 0) })
			got1 := s.read(t, out, 1)[0]
			if tol := tolOf(n, mag); math.IsNaN(float64(got1)) || math.Abs(float64(got1)-want) > tol {
				t.Errorf("%s(x1, beta 0) = %v; want %v ± %.3g", op, got1, want, tol)
			}
			do(t, op, func() error { return call(b2, n, out, 1) })
			got2 := s.read(t, out, 1)[0]
			want2, mag2 := float64(got1), math.Abs(float64(got1))
			for _, v := range x2[:n] {
				want2 += f(float64(v))
				mag2 += math.Abs(f(float64(v)))
			}
			if tol := tolOf(n+1, mag2); math.IsNaN(float64(got2)) || math.Abs(float64(got2)-want2) > tol {
				t.Errorf("%s(x2, beta 1) = %v; want %v (previous %v + Σ x2[:n]) ± %.3g", op, got2, want2, got1, tol)
			}
		})
	}
	// beta other than 0 and 1 scales the previous value.
	t.Run("beta=0.5", func(t *testing.T) {
		bx := s.upload(t, []float32{1, 2, 3})
		out := s.upload(t, []float32{10})
		do(t, op, func() error { return call(bx, 3, out, 0.5) })
		want := float32(5 + 6)
		if squares {
			want = 5 + 14
		}
		if got := s.read(t, out, 1)[0]; got != want {
			t.Errorf("%s with beta 0.5 over out = 10: got %v, want %v", op, got, want)
		}
	})
}

func (s *suite) testClipByNorm(t *testing.T) {
	sizes := []int{1, 1000}
	if !s.short {
		sizes = append(sizes, bigN)
	}
	for _, n := range sizes {
		for _, clip := range []bool{true, false} {
			name := fmt.Sprintf("n=%d/clips", n)
			if !clip {
				name = fmt.Sprintf("n=%d/no_clip", n)
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				x := uniform(r, n, -1, 1)
				var ss float64
				for _, v := range x {
					ss += float64(v) * float64(v)
				}
				norm := math.Sqrt(float64(float32(ss)))
				maxNorm := float32(norm * 0.25)
				if !clip {
					maxNorm = float32(norm * 4)
				}
				bx := s.upload(t, x)
				bs := s.upload(t, []float32{float32(ss)})
				do(t, "ClipByNorm", func() error { return s.dev.ClipByNorm(bx, n, bs, maxNorm) })
				got := s.read(t, bx, n)
				c := newChecker(t, "x")
				if !clip {
					// The factor is exactly 1: x must be unchanged.
					for i := range got {
						c.equal(i, got[i], x[i])
					}
					c.done()
					return
				}
				// torch.nn.utils.clip_grad_norm_: x·maxNorm/(norm + 1e-6).
				// sqrt, add, divide, multiply: four roundings, so 1e-6
				// (16·u) relative is ample.
				f := float64(maxNorm) / (norm + 1e-6)
				for i := range got {
					want := float64(x[i]) * f
					c.near(i, got[i], want, 1e-6*math.Abs(want))
				}
				c.done()
			})
		}
	}
}

func (s *suite) testArgmaxRows(t *testing.T) {
	shapes := []shape2{{1, 1}, {7, 13}, {3, 1000}, {1000, 3}, {5, 1 << 16}}
	for _, sh := range shapes {
		for _, ties := range []bool{false, true} {
			name := fmt.Sprintf("%dx%d", sh.rows, sh.cols)
			if ties {
				name += "/ties"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				rows, cols := sh.rows, sh.cols
				x := uniform(r, rows*cols, -5, -1) // all negative: a zero-initialised max would be wrong
				if ties {
					for i := 0; i < rows; i++ {
						// The row's maximum at two to four random places.
						for c := 0; c < 2+r.IntN(3); c++ {
							x[i*cols+r.IntN(cols)] = -0.5
						}
					}
					if rows > 1 {
						for j := 0; j < cols; j++ {
							x[cols+j] = -2 // a constant row: index 0
						}
					}
				}
				bx := s.upload(t, x)
				out := s.alloc(t, device.Int32, rows)
				poison := make([]int32, rows)
				for i := range poison {
					poison[i] = -7
				}
				do(t, "WriteI32", func() error { return s.dev.WriteI32(out, 0, poison) })
				do(t, "ArgmaxRows", func() error { return s.dev.ArgmaxRows(bx, rows, cols, out) })
				got := s.readI32(t, out, rows)
				bad := 0
				for i := 0; i < rows; i++ {
					best := 0
					for j := 1; j < cols; j++ {
						if x[i*cols+j] > x[i*cols+best] {
							best = j
						}
					}
					if int(got[i]) != best {
						bad++
						if bad <= 5 {
							t.Errorf("row %d: got %d, want %d (the first maximum)", i, got[i], best)
						}
					}
				}
				if bad > 5 {
					t.Errorf("%d rows wrong in all", bad)
				}
			})
		}
	}
}
