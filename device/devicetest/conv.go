package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// testConv checks the conv family (Im2Col, Col2Im, the channel bias and its
// gradient, max, average and adaptive average pooling with their
// gradients) against float64 references written from the definitions in
// device/device.go, on geometries with stride, padding, dilation,
// non-square windows and 1×1 kernels; gradients are also checked as the
// adjoint (or finite-difference derivative) of the float64 forward.
func (s *suite) testConv(t *testing.T) {
	t.Run("Im2Col", s.testIm2Col)
	t.Run("Col2Im", s.testCol2Im)
	t.Run("AddChannelBias", s.testAddChannelBias)
	t.Run("ChannelBiasGrad", s.testChannelBiasGrad)
	t.Run("MaxPool2D", s.testMaxPool2D)
	t.Run("MaxPool2DGrad", s.testMaxPool2DGrad)
	t.Run("AvgPool2D", s.testAvgPool2D)
	t.Run("AvgPool2DGrad", s.testAvgPool2DGrad)
	t.Run("AdaptiveAvgPool2D", s.testAdaptiveAvgPool2D)
	t.Run("AdaptiveAvgPool2DGrad", s.testAdaptiveAvgPool2DGrad)
	t.Run("Errors", s.testConvErrors)
}

// win builds a geometry: batch, channels, input height and width, window,
// stride, padding and dilation (each height then width).
func win(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw int) device.Window2D {
	return device.Window2D{N: n, C: c, H: h, W: w, KH: kh, KW: kw, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw, DilH: dh, DilW: dw}
}

// winName names a geometry for a subtest.
func winName(g device.Window2D) string {
	return fmt.Sprintf("n%dc%d_%dx%d_k%dx%d_s%dx%d_p%dx%d_d%dx%d",
		g.N, g.C, g.H, g.W, g.KH, g.KW, g.StrideH, g.StrideW, g.PadH, g.PadW, g.DilH, g.DilW)
}

// convWindows are the convolution geometries: 3×3 with padding 1, stride
// 2, dilation 2, a non-square window with unequal strides, paddings and
// dilations, 1×1 kernels (with and without stride), a window as large as
// the padded input (one output), and odd sizes whose last rows the stride
// drops. Outside short mode a CNN-sized case takes the parallel paths.
func (s *suite) convWindows() []device.Window2D {
	ws := []device.Window2D{
		win(2, 3, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1),
		win(2, 2, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1),
		win(1, 2, 9, 10, 3, 3, 1, 1, 2, 2, 2, 2),
		win(2, 3, 8, 11, 2, 4, 2, 3, 0, 1, 1, 2),
		win(3, 4, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1),
		win(1, 3, 6, 7, 1, 1, 2, 2, 0, 0, 1, 1),
		win(2, 2, 4, 5, 4, 5, 1, 1, 0, 0, 1, 1),
		win(1, 1, 10, 9, 5, 3, 3, 2, 2, 0, 1, 3),
	}
	if !s.short {
		ws = append(ws, win(8, 16, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1), win(4, 8, 31, 30, 5, 5, 2, 2, 2, 2, 1, 1))
	}
	return ws
}

// maxPoolWindows are the max-pooling geometries: 2×2/2, the overlapping
// 3×3/2 with padding 1 of ResNet, 3×3/1 (heavily overlapping), dilation
// 2, non-square, a global window, inputs whose last row or column the
// stride drops, and padding of a whole dilated window (its one tap that
// would fall inside the input does not exist: the window holds no input).
func (s *suite) maxPoolWindows() []device.Window2D {
	ws := []device.Window2D{
		win(2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1),
		win(2, 2, 9, 7, 3, 3, 2, 2, 1, 1, 1, 1),
		win(1, 3, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1),
		win(1, 2, 11, 10, 3, 2, 2, 1, 2, 1, 2, 3),
		win(3, 1, 5, 7, 5, 7, 1, 1, 0, 0, 1, 1),
		win(1, 2, 7, 9, 2, 3, 3, 2, 1, 1, 1, 1),
	}
	if !s.short {
		ws = append(ws, win(8, 16, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1))
	}
	return ws
}

// avgPoolWindows are the average-pooling geometries (no dilation).
func (s *suite) avgPoolWindows() []device.Window2D {
	ws := []device.Window2D{
		win(2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1),
		win(2, 2, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1),
		win(1, 3, 9, 7, 3, 3, 2, 2, 1, 1, 1, 1),
		win(2, 2, 7, 10, 2, 5, 3, 2, 1, 2, 1, 1),
		win(1, 4, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1),
		win(1, 1, 4, 4, 4, 4, 1, 1, 0, 0, 1, 1),
	}
	if !s.short {
		ws = append(ws, win(8, 16, 32, 30, 3, 3, 2, 2, 1, 1, 1, 1))
	}
	return ws
}

// ---------------------------------------------------------------------------
// Float64 references, written from the contracts in device/device.go.

func inCount(g device.Window2D) int  { return g.N * g.C * g.H * g.W }
func outCount(g device.Window2D) int { return g.N * g.C * g.OutH() * g.OutW() }
func colCount(g device.Window2D) int { return outCount(g) * g.KH * g.KW }

// im2colRef is cols[n, (c·KH+i)·KW+j, oh·OW+ow] = x[n, c, oh·SH−PH+i·DH,
// ow·SW−PW+j·DW], 0 in the padding. src, when not nil, receives the input
// index each entry copies (−1 for padding).
func im2colRef(x []float32, g device.Window2D, src []int) []float64 {
	oh, ow := g.OutH(), g.OutW()
	out := make([]float64, colCount(g))
	for n := 0; n < g.N; n++ {
		for c := 0; c < g.C; c++ {
			for i := 0; i < g.KH; i++ {
				for j := 0; j < g.KW; j++ {
					row := (c*g.KH+i)*g.KW + j
					for r := 0; r < oh; r++ {
						for q := 0; q < ow; q++ {
							at := (n*g.ColRows()+row)*oh*ow + r*ow + q
							h := r*g.StrideH - g.PadH + i*g.DilH
							w := q*g.StrideW - g.PadW + j*g.DilW
							from := -1
							if h >= 0 && h < g.H && w >= 0 && w < g.W {
								from = ((n*g.C+c)*g.H+h)*g.W + w
								out[at] = float64(x[from])
							}
							if src != nil {
								src[at] = from
							}
						}
					}
				}
			}
		}
	}
	return out
}

func (s *suite) testIm2Col(t *testing.T) {
	for k, g := range s.convWindows() {
		t.Run(winName(g), func(t *testing.T) {
			r := newRand(t)
			x := uniform(r, inCount(g), -1, 1)
			// Views at odd offsets for every other geometry: the kernels
			// must neither assume alignment nor write in front of cols.
			var bx, bc device.Buffer
			if k%2 == 1 {
				bx, bc = s.viewOf(t, x, 3), s.viewOf(t, filled(colCount(g), nan), 1)
			} else {
				bx, bc = s.upload(t, x), s.upload(t, filled(colCount(g), nan))
			}
			do(t, "Im2Col", func() error { return s.dev.Im2Col(bx, bc, g) })
			got := s.read(t, bc, colCount(g))
			want := im2colRef(x, g, nil)
			c := newChecker(t, "cols")
			for i, w := range want {
				c.equal(i, got[i], float32(w)) // a copy, or an exact 0
			}
			c.done()
		})
	}
}

// col2imRef is dx = beta·dx0 + Σ of every cols entry Im2Col copies from
// each element, with the magnitude Σ|terms| + |beta·dx0| that bounds the
// rounding of a float32 sum, and the number of terms.
func col2imRef(cols, dx0 []float32, beta float32, g device.Window2D) (ref, mag []float64, terms []int) {
	src := make([]int, colCount(g))
	im2colRef(make([]float32, inCount(g)), g, src)
	ref, mag, terms = make([]float64, inCount(g)), make([]float64, inCount(g)), make([]int, inCount(g))
	if beta != 0 {
		for i, v := range dx0 {
			ref[i] = float64(beta) * float64(v)
			mag[i] = math.Abs(ref[i])
		}
	}
	for at, from := range src {
		if from >= 0 {
			ref[from] += float64(cols[at])
			mag[from] += math.Abs(float64(cols[at]))
			terms[from]++
		}
	}
	return ref, mag, terms
}

func (s *suite) testCol2Im(t *testing.T) {
	for k, g := range s.convWindows() {
		for _, beta := range []float32{0, 1, 0.5} {
			t.Run(fmt.Sprintf("%s/beta=%g", winName(g), beta), func(t *testing.T) {
				r := newRand(t)
				cols := uniform(r, colCount(g), -1, 1)
				dx0 := uniform(r, inCount(g), -1, 1)
				if beta == 0 {
					dx0 = filled(inCount(g), nan) // beta 0: dx is not read
				}
				var bc, bd device.Buffer
				if k%2 == 0 {
					bc, bd = s.viewOf(t, cols, 1), s.viewOf(t, dx0, 2)
				} else {
					bc, bd = s.upload(t, cols), s.upload(t, dx0)
				}
				do(t, "Col2Im", func() error { return s.dev.Col2Im(bc, bd, g, beta) })
				got := s.read(t, bd, inCount(g))
				ref, mag, terms := col2imRef(cols, dx0, beta, g)
				c := newChecker(t, "dx")
				for i, w := range ref {
					// A float32 sum of terms[i] values plus beta·dx errs by at
					// most (terms+1)·u·Σ|terms| in any order.
					c.near(i, got[i], w, float64(terms[i]+1)*u*mag[i])
				}
				if !c.done() || beta != 0 {
					return
				}
				// Col2Im is the adjoint of Im2Col: ⟨Im2Col(v), cols⟩ =
				// ⟨v, Col2Im(cols)⟩ for any v, in float64 from the forward
				// reference alone (a check independent of col2imRef).
				v := uniform(r, inCount(g), -1, 1)
				lhs, rhs, scale := 0.0, 0.0, 0.0
				for i, a := range im2colRef(v, g, nil) {
					lhs += a * float64(cols[i])
					scale += math.Abs(a * float64(cols[i]))
				}
				for i, a := range v {
					rhs += float64(a) * float64(got[i])
				}
				// got[e] errs by at most (terms+1)·u·Σ|its terms|, and
				// Σ_e |v[e]|·Σ|terms of e| is exactly scale, so the sums
				// differ by at most (KH·KW+1)·u·scale (doubled for margin;
				// float64 rounding is far below it).
				if tol := float64(g.KH*g.KW+1) * u * scale * 2; math.Abs(lhs-rhs) > tol {
					t.Errorf("⟨Im2Col(v), cols⟩ = %.9g but ⟨v, Col2Im(cols)⟩ = %.9g (|diff| %.3g > %.3g): not the adjoint", lhs, rhs, math.Abs(lhs-rhs), tol)
				}
			})
		}
	}
}

// channelShapes are [outer, channels, inner] layouts: a conv output, bias
// after global pooling (inner 1), one channel, and, outside short mode, a
// CNN-sized one.
func (s *suite) channelShapes() [][3]int {
	sh := [][3]int{{2, 3, 20}, {4, 5, 1}, {1, 1, 7}, {3, 17, 33}, {1, 64, 49}}
	if !s.short {
		sh = append(sh, [3]int{32, 16, 784})
	}
	return sh
}

func (s *suite) testAddChannelBias(t *testing.T) {
	for k, sh := range s.channelShapes() {
		outer, ch, inner := sh[0], sh[1], sh[2]
		t.Run(fmt.Sprintf("%dx%dx%d", outer, ch, inner), func(t *testing.T) {
			r := newRand(t)
			n := outer * ch * inner
			x := uniform(r, n, -1, 1)
			bias := uniform(r, ch, -1, 1)
			var bx device.Buffer
			if k%2 == 1 {
				bx = s.viewOf(t, x, 1)
			} else {
				bx = s.upload(t, x)
			}
			bb := s.upload(t, bias)
			do(t, "AddChannelBias", func() error { return s.dev.AddChannelBias(bx, bb, outer, ch, inner) })
			got := s.read(t, bx, n)
			c := newChecker(t, "x")
			for i := range x {
				want := float64(x[i]) + float64(bias[(i/inner)%ch])
				c.near(i, got[i], want, u*math.Abs(want)) // one rounding
			}
			c.done()
		})
	}
}

func (s *suite) testChannelBiasGrad(t *testing.T) {
	for _, sh := range s.channelShapes() {
		outer, ch, inner := sh[0], sh[1], sh[2]
		for _, beta := range []float32{0, 1} {
			t.Run(fmt.Sprintf("%dx%dx%d/beta=%g", outer, ch, inner, beta), func(t *testing.T) {
				r := newRand(t)
				dy := uniform(r, outer*ch*inner, -1, 1)
				db0 := uniform(r, ch, -1, 1)
				if beta == 0 {
					db0 = filled(ch, nan) // beta 0: db is not read
				}
				bdy, bdb := s.upload(t, dy), s.upload(t, db0)
				do(t, "ChannelBiasGrad", func() error { return s.dev.ChannelBiasGrad(bdb, bdy, outer, ch, inner, beta) })
				got := s.read(t, bdb, ch)
				c := newChecker(t, "db")
				for j := 0; j < ch; j++ {
					var want, mag float64
					for o := 0; o < outer; o++ {
						for i := 0; i < inner; i++ {
							v := float64(dy[(o*ch+j)*inner+i])
							want += v
							mag += math.Abs(v)
						}
					}
					if beta != 0 {
						want += float64(beta) * float64(db0[j])
						mag += math.Abs(float64(beta) * float64(db0[j]))
					}
					// A float32 sum of cnt+1 terms in any order errs by at
					// most (cnt+1)·u·Σ|terms|.
					c.near(j, got[j], want, float64(outer*inner+1)*u*mag)
				}
				c.done()
			})
		}
	}
}

// maxPoolRef is y = the largest x of each window and idx its position
// h·W + w in the plane, the first in row-major window order on ties,
// padding never winning; a window with no input gives −Inf and −1.
func maxPoolRef[T float32 | float64](x []T, g device.Window2D) ([]T, []int32) {
	oh, ow := g.OutH(), g.OutW()
	y, idx := make([]T, outCount(g)), make([]int32, outCount(g))
	for p := 0; p < g.N*g.C; p++ {
		for r := 0; r < oh; r++ {
			for q := 0; q < ow; q++ {
				best, bi := T(math.Inf(-1)), int32(-1)
				for i := 0; i < g.KH; i++ {
					for j := 0; j < g.KW; j++ {
						h := r*g.StrideH - g.PadH + i*g.DilH
						w := q*g.StrideW - g.PadW + j*g.DilW
						if h < 0 || h >= g.H || w < 0 || w >= g.W {
							continue
						}
						if v := x[p*g.H*g.W+h*g.W+w]; bi < 0 || v > best {
							best, bi = v, int32(h*g.W+w)
						}
					}
				}
				y[p*oh*ow+r*ow+q], idx[p*oh*ow+r*ow+q] = best, bi
			}
		}
	}
	return y, idx
}

// tiedInput is n values drawn from a few levels, so windows have ties;
// every value is negative, so a backend that lets padding (as 0) win is
// caught.
func tiedInput(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = -float32(1+r.IntN(4)) / 4
	}
	return x
}

func (s *suite) testMaxPool2D(t *testing.T) {
	for k, g := range s.maxPoolWindows() {
		t.Run(winName(g), func(t *testing.T) {
			r := newRand(t)
			x := tiedInput(r, inCount(g))
			var bx, by device.Buffer
			if k%2 == 0 {
				bx, by = s.viewOf(t, x, 1), s.viewOf(t, filled(outCount(g), nan), 3)
			} else {
				bx, by = s.upload(t, x), s.upload(t, filled(outCount(g), nan))
			}
			bi := s.uploadI32(t, filledI32(outCount(g), -777))
			do(t, "MaxPool2D", func() error { return s.dev.MaxPool2D(bx, by, bi, g) })
			gotY, gotI := s.read(t, by, outCount(g)), s.readI32(t, bi, outCount(g))
			wantY, wantI := maxPoolRef(x, g)
			c := newChecker(t, "y")
			for i := range wantY {
				c.equal(i, gotY[i], wantY[i]) // a maximum is exact
			}
			c.done()
			ci := newChecker(t, "idx")
			for i := range wantI {
				if gotI[i] != wantI[i] {
					ci.fail(i, "got %d, want %d (the first maximum in row-major window order)", gotI[i], wantI[i])
				}
			}
			ci.done()
		})
	}
	t.Run("NaN", func(t *testing.T) {
		// A NaN wins its window (PyTorch propagates it), the first one
		// where there are two, and does not leak into other windows.
		g := win(1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1)
		x := tiedInput(newRand(t), 16)
		x[5], x[1], x[10] = nan, nan, nan // window 0 holds 1 and 5; window 3 holds 10
		bx, by, bi := s.upload(t, x), s.upload(t, filled(4, 0)), s.uploadI32(t, filledI32(4, -777))
		do(t, "MaxPool2D", func() error { return s.dev.MaxPool2D(bx, by, bi, g) })
		gotY, gotI := s.read(t, by, 4), s.readI32(t, bi, 4)
		wantY, wantI := maxPoolRef(x, g) // NaN-free windows 1 and 2
		for o, want := range []int32{1, wantI[1], wantI[2], 10} {
			isNaN := gotY[o] != gotY[o]
			if gotI[o] != want || isNaN != (o == 0 || o == 3) || (!isNaN && gotY[o] != wantY[o]) {
				t.Errorf("window %d: y %v idx %d; want idx %d (a NaN wins, the first one)", o, gotY[o], gotI[o], want)
			}
		}
	})
	t.Run("EmptyWindow", func(t *testing.T) {
		// H 1 with padding 1 and dilation 2: rows −1 and 1, neither in the
		// input. Such a window gives −Inf and −1, and routes no gradient.
		g := win(1, 1, 1, 3, 2, 1, 1, 1, 1, 0, 2, 1)
		bx, by, bi := s.upload(t, []float32{1, 2, 3}), s.upload(t, filled(3, nan)), s.uploadI32(t, filledI32(3, 5))
		do(t, "MaxPool2D", func() error { return s.dev.MaxPool2D(bx, by, bi, g) })
		gotY, gotI := s.read(t, by, 3), s.readI32(t, bi, 3)
		for o := 0; o < 3; o++ {
			if !math.IsInf(float64(gotY[o]), -1) || gotI[o] != -1 {
				t.Errorf("window %d holds no input: got y %v idx %d, want -Inf and -1", o, gotY[o], gotI[o])
			}
		}
		bdx := s.upload(t, filled(3, nan))
		do(t, "MaxPool2DGrad", func() error { return s.dev.MaxPool2DGrad(s.upload(t, []float32{1, 1, 1}), bi, bdx, g) })
		if got := s.read(t, bdx, 3); got[0] != 0 || got[1] != 0 || got[2] != 0 {
			t.Errorf("dx = %v, want zeros (idx −1 routes nothing)", got)
		}
	})
}

// maxPoolGradRef routes each dy to idx in its plane, with the magnitude and
// term count per element.
func maxPoolGradRef(dy []float32, idx []int32, g device.Window2D) (ref, mag []float64, terms []int) {
	ohw, hw := g.OutH()*g.OutW(), g.H*g.W
	ref, mag, terms = make([]float64, inCount(g)), make([]float64, inCount(g)), make([]int, inCount(g))
	for o, v := range dy {
		if q := idx[o]; q >= 0 {
			at := o/ohw*hw + int(q)
			ref[at] += float64(v)
			mag[at] += math.Abs(float64(v))
			terms[at]++
		}
	}
	return ref, mag, terms
}

func (s *suite) testMaxPool2DGrad(t *testing.T) {
	for k, g := range s.maxPoolWindows() {
		t.Run(winName(g), func(t *testing.T) {
			r := newRand(t)
			// Ties, so that overlapping windows pick the same position and
			// their gradients must add.
			x := tiedInput(r, inCount(g))
			bx, by, bi := s.upload(t, x), s.upload(t, filled(outCount(g), nan)), s.uploadI32(t, filledI32(outCount(g), -777))
			do(t, "MaxPool2D", func() error { return s.dev.MaxPool2D(bx, by, bi, g) })
			_, idx := maxPoolRef(x, g)
			dy := uniform(r, outCount(g), -1, 1)
			var bdy, bdx device.Buffer
			if k%2 == 1 {
				bdy, bdx = s.viewOf(t, dy, 2), s.viewOf(t, filled(inCount(g), nan), 1)
			} else {
				bdy, bdx = s.upload(t, dy), s.upload(t, filled(inCount(g), nan))
			}
			do(t, "MaxPool2DGrad", func() error { return s.dev.MaxPool2DGrad(bdy, bi, bdx, g) })
			got := s.read(t, bdx, inCount(g))
			ref, mag, terms := maxPoolGradRef(dy, idx, g)
			c := newChecker(t, "dx")
			for i, w := range ref {
				// A float32 sum of terms[i] values (0 where none).
				c.near(i, got[i], w, float64(terms[i])*u*mag[i])
			}
			c.done()
		})
	}
	t.Run("FiniteDifferences", func(t *testing.T) {
		// Distinct inputs (no ties): max pooling is linear near x, so the
		// central difference of ⟨dy, MaxPool(x + εv)⟩ in float64 equals
		// ⟨dx, v⟩ up to rounding.
		g := win(2, 2, 7, 6, 3, 3, 2, 1, 1, 1, 1, 1)
		r := newRand(t)
		x := make([]float32, inCount(g))
		for i, p := range r.Perm(len(x)) {
			x[i] = float32(p)/float32(len(x)) - 0.5 // spacing 1/len ≫ ε
		}
		dy := uniform(r, outCount(g), -1, 1)
		bx, by, bi := s.upload(t, x), s.upload(t, filled(outCount(g), nan)), s.uploadI32(t, filledI32(outCount(g), -777))
		do(t, "MaxPool2D", func() error { return s.dev.MaxPool2D(bx, by, bi, g) })
		bdx := s.upload(t, filled(inCount(g), nan))
		do(t, "MaxPool2DGrad", func() error { return s.dev.MaxPool2DGrad(s.upload(t, dy), bi, bdx, g) })
		dx := s.read(t, bdx, inCount(g))
		fwd := func(x []float64) []float64 { y, _ := maxPoolRef(x, g); return y }
		checkDirectional(t, r, x, dy, dx, fwd, 1e-3)
	})
}

// checkDirectional compares ⟨dx, v⟩ with the central difference of
// ⟨dy, f(x + εv)⟩ for random directions v: dx must be the gradient of the
// float64 forward f. eps must keep a piecewise-linear f on one piece (then
// the difference is exact but for float64 rounding); dx itself carries
// float32 rounding of a few u relative, so 1e-4 of Σ|dx·v| is ample and
// still far below what a wrong gradient gives.
func checkDirectional(t *testing.T, r *rand.Rand, x, dy, dx []float32, f func([]float64) []float64, eps float64) {
	t.Helper()
	for trial := 0; trial < 3; trial++ {
		v := uniform(r, len(x), -1, 1)
		xp, xm := make([]float64, len(x)), make([]float64, len(x))
		for i := range x {
			xp[i] = float64(x[i]) + eps*float64(v[i])
			xm[i] = float64(x[i]) - eps*float64(v[i])
		}
		yp, ym := f(xp), f(xm)
		fd, scale := 0.0, 0.0
		for o := range dy {
			fd += float64(dy[o]) * (yp[o] - ym[o]) / (2 * eps)
		}
		an := 0.0
		for i := range dx {
			an += float64(dx[i]) * float64(v[i])
			scale += math.Abs(float64(dx[i]) * float64(v[i]))
		}
		if math.Abs(fd-an) > 1e-4*(scale+1) {
			t.Errorf("direction %d: ⟨dx, v⟩ = %.7g but the finite difference of the forward gives %.7g", trial, an, fd)
		}
	}
}

// avgPoolRef is the mean of each window in float64, padding counted as 0
// in the divisor KH·KW, with the magnitude Σ|x|/(KH·KW).
func avgPoolRef(x []float64, g device.Window2D) (y, mag []float64) {
	oh, ow := g.OutH(), g.OutW()
	y, mag = make([]float64, outCount(g)), make([]float64, outCount(g))
	div := float64(g.KH * g.KW)
	for p := 0; p < g.N*g.C; p++ {
		for r := 0; r < oh; r++ {
			for q := 0; q < ow; q++ {
				for i := 0; i < g.KH; i++ {
					for j := 0; j < g.KW; j++ {
						h, w := r*g.StrideH-g.PadH+i, q*g.StrideW-g.PadW+j
						if h >= 0 && h < g.H && w >= 0 && w < g.W {
							v := x[p*g.H*g.W+h*g.W+w]
							y[p*oh*ow+r*ow+q] += v / div
							mag[p*oh*ow+r*ow+q] += math.Abs(v) / div
						}
					}
				}
			}
		}
	}
	return y, mag
}

func (s *suite) testAvgPool2D(t *testing.T) {
	for k, g := range s.avgPoolWindows() {
		t.Run(winName(g), func(t *testing.T) {
			r := newRand(t)
			x := uniform(r, inCount(g), -1, 1)
			var bx, by device.Buffer
			if k%2 == 1 {
				bx, by = s.viewOf(t, x, 1), s.viewOf(t, filled(outCount(g), nan), 2)
			} else {
				bx, by = s.upload(t, x), s.upload(t, filled(outCount(g), nan))
			}
			do(t, "AvgPool2D", func() error { return s.dev.AvgPool2D(bx, by, g) })
			got := s.read(t, by, outCount(g))
			want, mag := avgPoolRef(f64(x), g)
			c := newChecker(t, "y")
			for i, w := range want {
				// A float32 sum of KH·KW terms and one division.
				c.near(i, got[i], w, float64(g.KH*g.KW+1)*u*mag[i]+u*math.Abs(w))
			}
			c.done()
		})
	}
}

func (s *suite) testAvgPool2DGrad(t *testing.T) {
	for k, g := range s.avgPoolWindows() {
		t.Run(winName(g), func(t *testing.T) {
			r := newRand(t)
			dy := uniform(r, outCount(g), -1, 1)
			var bdy, bdx device.Buffer
			if k%2 == 0 {
				bdy, bdx = s.viewOf(t, dy, 3), s.viewOf(t, filled(inCount(g), nan), 1)
			} else {
				bdy, bdx = s.upload(t, dy), s.upload(t, filled(inCount(g), nan))
			}
			do(t, "AvgPool2DGrad", func() error { return s.dev.AvgPool2DGrad(bdy, bdx, g) })
			got := s.read(t, bdx, inCount(g))
			// Reference: dx[e] = Σ over the windows holding e of dy/(KH·KW),
			// from the forward's definition (the transpose of avgPoolRef,
			// obtained by probing it with unit vectors would be slow, so
			// it is written out and checked as the adjoint below).
			want, mag := make([]float64, inCount(g)), make([]float64, inCount(g))
			terms := make([]int, inCount(g))
			oh, ow := g.OutH(), g.OutW()
			div := float64(g.KH * g.KW)
			for p := 0; p < g.N*g.C; p++ {
				for r := 0; r < oh; r++ {
					for q := 0; q < ow; q++ {
						for i := 0; i < g.KH; i++ {
							for j := 0; j < g.KW; j++ {
								h, w := r*g.StrideH-g.PadH+i, q*g.StrideW-g.PadW+j
								if h >= 0 && h < g.H && w >= 0 && w < g.W {
									at := p*g.H*g.W + h*g.W + w
									v := float64(dy[p*oh*ow+r*ow+q])
									want[at] += v / div
									mag[at] += math.Abs(v) / div
									terms[at]++
								}
							}
						}
					}
				}
			}
			c := newChecker(t, "dx")
			for i, w := range want {
				// A float32 sum of terms[i] values and one division each.
				c.near(i, got[i], w, float64(terms[i]+1)*u*mag[i])
			}
			if !c.done() {
				return
			}
			// dx is the adjoint of the forward: ⟨AvgPool(v), dy⟩ = ⟨v, dx⟩.
			checkDirectional(t, r, make([]float32, inCount(g)), dy, got, func(x []float64) []float64 {
				y, _ := avgPoolRef(x, g)
				return y
			}, 1)
		})
	}
}

// adaptiveCase is an adaptive pooling shape: n, c, h, w, outH, outW.
type adaptiveCase [6]int

func (a adaptiveCase) String() string {
	return fmt.Sprintf("n%dc%d_%dx%d_to_%dx%d", a[0], a[1], a[2], a[3], a[4], a[5])
}

func (s *suite) adaptiveCases() []adaptiveCase {
	cs := []adaptiveCase{
		{2, 3, 7, 7, 1, 1},  // global average pooling
		{1, 2, 10, 7, 3, 4}, // uneven, overlapping windows
		{2, 2, 6, 6, 3, 3},  // exact 2×2 windows
		{1, 3, 5, 4, 7, 6},  // output larger than the input: repeated rows
		{3, 1, 9, 5, 4, 1},
	}
	if !s.short {
		cs = append(cs, adaptiveCase{16, 64, 14, 14, 1, 1}, adaptiveCase{8, 16, 29, 31, 7, 7})
	}
	return cs
}

// adaptiveWin is PyTorch's window o of n over size: [⌊o·size/n⌋, ⌈(o+1)·size/n⌉).
func adaptiveWin(o, size, n int) (int, int) {
	lo := int(math.Floor(float64(o*size) / float64(n)))
	hi := int(math.Ceil(float64((o+1)*size) / float64(n)))
	return lo, hi
}

// adaptiveRef averages x over the adaptive windows in float64; mag is the
// mean of |x|, cnt each window's element count.
func adaptiveRef(x []float64, a adaptiveCase) (y, mag []float64, cnt []int) {
	n, c, h, w, oh, ow := a[0], a[1], a[2], a[3], a[4], a[5]
	y, mag, cnt = make([]float64, n*c*oh*ow), make([]float64, n*c*oh*ow), make([]int, n*c*oh*ow)
	for p := 0; p < n*c; p++ {
		for r := 0; r < oh; r++ {
			h0, h1 := adaptiveWin(r, h, oh)
			for q := 0; q < ow; q++ {
				w0, w1 := adaptiveWin(q, w, ow)
				o := p*oh*ow + r*ow + q
				cnt[o] = (h1 - h0) * (w1 - w0)
				for i := h0; i < h1; i++ {
					for j := w0; j < w1; j++ {
						v := x[p*h*w+i*w+j]
						y[o] += v / float64(cnt[o])
						mag[o] += math.Abs(v) / float64(cnt[o])
					}
				}
			}
		}
	}
	return y, mag, cnt
}

func (s *suite) testAdaptiveAvgPool2D(t *testing.T) {
	for k, a := range s.adaptiveCases() {
		t.Run(a.String(), func(t *testing.T) {
			r := newRand(t)
			n, c, h, w, oh, ow := a[0], a[1], a[2], a[3], a[4], a[5]
			x := uniform(r, n*c*h*w, -1, 1)
			var bx, by device.Buffer
			if k%2 == 1 {
				bx, by = s.viewOf(t, x, 2), s.viewOf(t, filled(n*c*oh*ow, nan), 1)
			} else {
				bx, by = s.upload(t, x), s.upload(t, filled(n*c*oh*ow, nan))
			}
			do(t, "AdaptiveAvgPool2D", func() error { return s.dev.AdaptiveAvgPool2D(bx, by, n, c, h, w, oh, ow) })
			got := s.read(t, by, n*c*oh*ow)
			want, mag, cnt := adaptiveRef(f64(x), a)
			ck := newChecker(t, "y")
			for i, v := range want {
				// A float32 sum of cnt terms and one division.
				ck.near(i, got[i], v, float64(cnt[i]+1)*u*mag[i]+u*math.Abs(v))
			}
			ck.done()
		})
	}
}

func (s *suite) testAdaptiveAvgPool2DGrad(t *testing.T) {
	for k, a := range s.adaptiveCases() {
		t.Run(a.String(), func(t *testing.T) {
			r := newRand(t)
			n, c, h, w, oh, ow := a[0], a[1], a[2], a[3], a[4], a[5]
			dy := uniform(r, n*c*oh*ow, -1, 1)
			var bdy, bdx device.Buffer
			if k%2 == 0 {
				bdy, bdx = s.viewOf(t, dy, 1), s.viewOf(t, filled(n*c*h*w, nan), 3)
			} else {
				bdy, bdx = s.upload(t, dy), s.upload(t, filled(n*c*h*w, nan))
			}
			do(t, "AdaptiveAvgPool2DGrad", func() error { return s.dev.AdaptiveAvgPool2DGrad(bdy, bdx, n, c, h, w, oh, ow) })
			got := s.read(t, bdx, n*c*h*w)
			// Reference: dx[e] = Σ over the windows holding e of dy/cnt.
			want, mag, terms := make([]float64, n*c*h*w), make([]float64, n*c*h*w), make([]int, n*c*h*w)
			for p := 0; p < n*c; p++ {
				for r := 0; r < oh; r++ {
					h0, h1 := adaptiveWin(r, h, oh)
					for q := 0; q < ow; q++ {
						w0, w1 := adaptiveWin(q, w, ow)
						v := float64(dy[p*oh*ow+r*ow+q]) / float64((h1-h0)*(w1-w0))
						for i := h0; i < h1; i++ {
							for j := w0; j < w1; j++ {
								want[p*h*w+i*w+j] += v
								mag[p*h*w+i*w+j] += math.Abs(v)
								terms[p*h*w+i*w+j]++
							}
						}
					}
				}
			}
			ck := newChecker(t, "dx")
			for i, v := range want {
				ck.near(i, got[i], v, float64(terms[i]+1)*u*mag[i])
			}
			if !ck.done() {
				return
			}
			checkDirectional(t, r, make([]float32, n*c*h*w), dy, got, func(x []float64) []float64 {
				y, _, _ := adaptiveRef(x, a)
				return y
			}, 1)
		})
	}
}

// filledI32 is n copies of v.
func filledI32(n int, v int32) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

// ---------------------------------------------------------------------------
// Errors

// testConvErrors calls each conv primitive with one bad buffer at a time
// (nil, freed, of another device, of the other dtype — idx as float32
// among them —, one element short) and with bad geometry: a field out of
// range, a window larger than the padded input (an empty output), and
// dilation for average pooling.
func (s *suite) testConvErrors(t *testing.T) {
	d := s.dev
	g := win(2, 3, 5, 6, 3, 2, 2, 1, 1, 0, 1, 2)
	in, out, cols := inCount(g), outCount(g), colCount(g)
	geo := func(f func(*device.Window2D)) device.Window2D { h := g; f(&h); return h }
	// Bad geometries every window primitive must refuse.
	badWin := map[string]device.Window2D{
		"N=0":       geo(func(w *device.Window2D) { w.N = 0 }),
		"C=-1":      geo(func(w *device.Window2D) { w.C = -1 }),
		"H=0":       geo(func(w *device.Window2D) { w.H = 0 }),
		"KW=0":      geo(func(w *device.Window2D) { w.KW = 0 }),
		"StrideH=0": geo(func(w *device.Window2D) { w.StrideH = 0 }),
		"PadW=-1":   geo(func(w *device.Window2D) { w.PadW = -1 }),
		"DilH=0":    geo(func(w *device.Window2D) { w.DilH = 0 }),
		// KH 8 spans 8 rows of the 5+2 padded ones: the output is empty.
		"KH_too_big": geo(func(w *device.Window2D) { w.KH = 8 }),
		// One row too many with stride 2: (7−8)/2+1 truncates to 1 in Go,
		// yet no window fits.
		"KH_one_too_big_stride2": geo(func(w *device.Window2D) { w.KH, w.StrideH = 8, 2 }),
		// KW 2 with dilation 6 spans 7 columns of the 6 (no padding).
		"DilW_too_big": geo(func(w *device.Window2D) { w.DilW = 6 }),
	}
	withWin := func(call func(b []device.Buffer, g device.Window2D) error) map[string]func(b []device.Buffer) error {
		m := map[string]func(b []device.Buffer) error{}
		for name, bg := range badWin {
			m[name] = func(b []device.Buffer) error { return call(b, bg) }
		}
		return m
	}
	ag := geo(func(w *device.Window2D) { w.DilW = 1 }) // average pooling: no dilation
	ain, aout := inCount(ag), outCount(ag)
	avgBad := func(call func(b []device.Buffer, g device.Window2D) error) map[string]func(b []device.Buffer) error {
		m := withWin(call)
		m["DilW=2"] = func(b []device.Buffer) error { return call(b, g) }
		return m
	}
	const n, c, h, w, oh, ow = 2, 3, 5, 4, 2, 3
	adaBad := func(call func(b []device.Buffer, n, c, h, w, oh, ow int) error) map[string]func(b []device.Buffer) error {
		return map[string]func(b []device.Buffer) error{
			"n=0":     func(b []device.Buffer) error { return call(b, 0, c, h, w, oh, ow) },
			"c=-1":    func(b []device.Buffer) error { return call(b, n, -1, h, w, oh, ow) },
			"h=0":     func(b []device.Buffer) error { return call(b, n, c, 0, w, oh, ow) },
			"outH=0":  func(b []device.Buffer) error { return call(b, n, c, h, w, 0, ow) },
			"outW=-2": func(b []device.Buffer) error { return call(b, n, c, h, w, oh, -2) },
		}
	}
	const outer, ch, inner = 2, 3, 4
	cases := []errCase{
		{op: "Im2Col", args: []arg{f32("x", in), f32("cols", cols)},
			call: func(b []device.Buffer) error { return d.Im2Col(b[0], b[1], g) },
			bad:  withWin(func(b []device.Buffer, g device.Window2D) error { return d.Im2Col(b[0], b[1], g) })},
		{op: "Col2Im", args: []arg{f32("cols", cols), f32("dx", in)},
			call: func(b []device.Buffer) error { return d.Col2Im(b[0], b[1], g, 1) },
			bad:  withWin(func(b []device.Buffer, g device.Window2D) error { return d.Col2Im(b[0], b[1], g, 0) })},
		{op: "AddChannelBias", args: []arg{f32("x", outer*ch*inner), f32("bias", ch)},
			call: func(b []device.Buffer) error { return d.AddChannelBias(b[0], b[1], outer, ch, inner) },
			bad: map[string]func(b []device.Buffer) error{
				"outer=0":    func(b []device.Buffer) error { return d.AddChannelBias(b[0], b[1], 0, ch, inner) },
				"channels=0": func(b []device.Buffer) error { return d.AddChannelBias(b[0], b[1], outer, 0, inner) },
				"inner=-1":   func(b []device.Buffer) error { return d.AddChannelBias(b[0], b[1], outer, ch, -1) },
			}},
		{op: "ChannelBiasGrad", args: []arg{f32("db", ch), f32("dy", outer*ch*inner)},
			call: func(b []device.Buffer) error { return d.ChannelBiasGrad(b[0], b[1], outer, ch, inner, 1) },
			bad: map[string]func(b []device.Buffer) error{
				"outer=-1":   func(b []device.Buffer) error { return d.ChannelBiasGrad(b[0], b[1], -1, ch, inner, 0) },
				"channels=0": func(b []device.Buffer) error { return d.ChannelBiasGrad(b[0], b[1], outer, 0, inner, 0) },
				"inner=0":    func(b []device.Buffer) error { return d.ChannelBiasGrad(b[0], b[1], outer, ch, 0, 0) },
			}},
		{op: "MaxPool2D", args: []arg{f32("x", in), f32("y", out), i32("idx", out)},
			call: func(b []device.Buffer) error { return d.MaxPool2D(b[0], b[1], b[2], g) },
			bad:  withWin(func(b []device.Buffer, g device.Window2D) error { return d.MaxPool2D(b[0], b[1], b[2], g) })},
		{op: "MaxPool2DGrad", args: []arg{f32("dy", out), i32("idx", out), f32("dx", in)},
			call: func(b []device.Buffer) error { return d.MaxPool2DGrad(b[0], b[1], b[2], g) },
			bad:  withWin(func(b []device.Buffer, g device.Window2D) error { return d.MaxPool2DGrad(b[0], b[1], b[2], g) })},
		{op: "AvgPool2D", args: []arg{f32("x", ain), f32("y", aout)},
			call: func(b []device.Buffer) error { return d.AvgPool2D(b[0], b[1], ag) },
			bad:  avgBad(func(b []device.Buffer, g device.Window2D) error { return d.AvgPool2D(b[0], b[1], g) })},
		{op: "AvgPool2DGrad", args: []arg{f32("dy", aout), f32("dx", ain)},
			call: func(b []device.Buffer) error { return d.AvgPool2DGrad(b[0], b[1], ag) },
			bad:  avgBad(func(b []device.Buffer, g device.Window2D) error { return d.AvgPool2DGrad(b[0], b[1], g) })},
		{op: "AdaptiveAvgPool2D", args: []arg{f32("x", n*c*h*w), f32("y", n*c*oh*ow)},
			call: func(b []device.Buffer) error { return d.AdaptiveAvgPool2D(b[0], b[1], n, c, h, w, oh, ow) },
			bad: adaBad(func(b []device.Buffer, n, c, h, w, oh, ow int) error {
				return d.AdaptiveAvgPool2D(b[0], b[1], n, c, h, w, oh, ow)
			})},
		{op: "AdaptiveAvgPool2DGrad", args: []arg{f32("dy", n*c*oh*ow), f32("dx", n*c*h*w)},
			call: func(b []device.Buffer) error { return d.AdaptiveAvgPool2DGrad(b[0], b[1], n, c, h, w, oh, ow) },
			bad: adaBad(func(b []device.Buffer, n, c, h, w, oh, ow int) error {
				return d.AdaptiveAvgPool2DGrad(b[0], b[1], n, c, h, w, oh, ow)
			})},
	}
	for _, ec := range cases {
		t.Run(ec.op, func(t *testing.T) { s.convErrCase(t, ec) })
	}
}

// convErrCase runs ec's valid call, then each buffer argument in turn nil,
// freed, of another device, of the other dtype and one element short, then
// each bad scalar or geometry (ErrInvalid).
func (s *suite) convErrCase(t *testing.T, ec errCase) {
	valid := func(t *testing.T) []device.Buffer {
		b := make([]device.Buffer, len(ec.args))
		for i, a := range ec.args {
			b[i] = s.alloc(t, a.dt, a.n)
		}
		return b
	}
	t.Run("valid", func(t *testing.T) {
		b := valid(t)
		do(t, ec.op, func() error { return ec.call(b) })
	})
	for i, a := range ec.args {
		other := device.Int32
		if a.dt == device.Int32 {
			other = device.Float32
		}
		faults := []struct {
			name string
			want error
			make func(t *testing.T) device.Buffer
		}{
			{"nil", device.ErrNilBuffer, func(t *testing.T) device.Buffer { return nil }},
			{"freed", device.ErrFreed, func(t *testing.T) device.Buffer {
				x := s.alloc(t, a.dt, a.n)
				do(t, "Free", func() error { return s.dev.Free(x) })
				return x
			}},
			{"other_device", device.ErrDeviceMismatch, func(t *testing.T) device.Buffer { return &fakeBuffer{dt: a.dt, n: a.n} }},
			{"dtype_" + other.String(), device.ErrDType, func(t *testing.T) device.Buffer { return s.alloc(t, other, a.n) }},
			{"short", device.ErrSize, func(t *testing.T) device.Buffer {
				if a.n < 2 {
					t.Skip("a one-element argument cannot be one element short")
				}
				return s.alloc(t, a.dt, a.n-1)
			}},
		}
		for _, f := range faults {
			t.Run(a.name+"/"+f.name, func(t *testing.T) {
				b := valid(t)
				b[i] = f.make(t)
				expectErr(t, ec.op, func() error { return ec.call(b) }, f.want)
			})
		}
	}
	for what, call := range ec.bad {
		t.Run(what, func(t *testing.T) {
			b := valid(t)
			expectErr(t, ec.op, func() error { return call(b) }, device.ErrInvalid)
		})
	}
}
