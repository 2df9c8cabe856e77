package kernels

import (
	"fmt"
	"math"

	"github.com/kilnml/kiln/device"
)

// ---------------------------------------------------------------------------
// conv.cu
//
// Each kernel runs with device/cuda/conv.go's launch shapes (grid-stride
// grids of emuGrid1D over the outputs, or the inputs for the gathering
// gradients; one block per channel for channel_bias_grad_f32) on the
// emulated GPU sizes, inputs and outputs at view offsets, outputs
// poisoned. The references below follow the definitions in
// device/device.go; where the kernel's summation order is part of its
// contract (col2im, the max-pool gradient: the CPU backend's order), the
// reference adds in that order in float32 and the kernel must match it
// bit for bit.

// emuConvWindows are stride 1 and 2, padding, dilation 2, non-square
// windows with unequal strides, paddings and dilations, 1×1, a window as
// large as the padded input, one whose grid loops several times on a
// small GPU, and a dilated window with no input element in it (H 1,
// padding 1, taps on rows −1 and 1).
var emuConvWindows = []device.Window2D{
	emuConvWin(2, 3, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1),
	emuConvWin(1, 2, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1),
	emuConvWin(1, 2, 9, 10, 3, 3, 1, 1, 2, 2, 2, 2),
	emuConvWin(2, 1, 8, 11, 2, 4, 2, 3, 0, 1, 1, 2),
	emuConvWin(3, 4, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1),
	emuConvWin(1, 1, 10, 9, 5, 3, 3, 2, 2, 0, 1, 3),
	emuConvWin(2, 2, 4, 5, 4, 5, 1, 1, 0, 0, 1, 1),
	emuConvWin(2, 8, 16, 17, 3, 3, 1, 1, 1, 1, 1, 1),
	emuConvWin(1, 1, 1, 3, 2, 1, 1, 1, 1, 0, 2, 1),
}

func emuConvWin(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw int) device.Window2D {
	return device.Window2D{N: n, C: c, H: h, W: w, KH: kh, KW: kw, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw, DilH: dh, DilW: dw}
}

func emuConvWinName(g device.Window2D) string {
	return fmt.Sprintf("n%dc%d %dx%d k%dx%d s%dx%d p%dx%d d%dx%d",
		g.N, g.C, g.H, g.W, g.KH, g.KW, g.StrideH, g.StrideW, g.PadH, g.PadW, g.DilH, g.DilW)
}

// emuConvGeom are the geometry slots of the window kernels, as
// device/cuda/conv.go's launchWindow passes them: H, W, KH, KW, SH, SW,
// PH, PW, [DH, DW,] OH, OW.
func emuConvGeom(g device.Window2D, dil bool) []any {
	a := []any{emuArgI32(g.H), emuArgI32(g.W), emuArgI32(g.KH), emuArgI32(g.KW), emuArgI32(g.StrideH),
		emuArgI32(g.StrideW), emuArgI32(g.PadH), emuArgI32(g.PadW)}
	if dil {
		a = append(a, emuArgI32(g.DilH), emuArgI32(g.DilW))
	}
	return append(a, emuArgI32(g.OutH()), emuArgI32(g.OutW()))
}

func emuConvSlots(lead []any, g device.Window2D, dil bool, trail ...any) []any {
	return append(append(lead, emuConvGeom(g, dil)...), trail...)
}

// emuConvTap returns the input coordinate of tap t of output o, and whether it
// lies inside [0, size).
func emuConvTap(o, t, stride, pad, dil, size int) (int, bool) {
	x := o*stride - pad + t*dil
	return x, x >= 0 && x < size
}

func emuConvCases(s *emuScript) {
	k := 0
	next := func() (sms, off int) {
		sms = emuSMs[k%len(emuSMs)]
		off = k % 4
		k++
		return sms, off
	}
	for _, g := range emuConvWindows {
		oh, ow := g.OutH(), g.OutW()
		planes, hw, ohw, kk := g.N*g.C, g.H*g.W, oh*ow, g.KH*g.KW
		in, out := planes*hw, planes*ohw

		// im2col_f32(x, cols, total, geometry): an exact copy, 0 in the
		// padding.
		{
			sms, off := next()
			c := s.begin("im2col_f32 %s sms=%d", emuConvWinName(g), sms)
			x := s.uniform(in, -2, 2)
			px := c.f32("x", off, x)
			pc := c.poisoned("cols", (off+1)%4, out*kk)
			c.launch1("im2col_f32", emuGrid1D(sms, int64(out)), emuConvSlots([]any{px, pc, emuArgI64(out)}, g, true)...)
			c.done(func(c *emuCase) {
				want := make([]float32, out*kk)
				for p := 0; p < planes; p++ {
					for i := 0; i < g.KH; i++ {
						for j := 0; j < g.KW; j++ {
							for r := 0; r < oh; r++ {
								for q := 0; q < ow; q++ {
									h, hok := emuConvTap(r, i, g.StrideH, g.PadH, g.DilH, g.H)
									w, wok := emuConvTap(q, j, g.StrideW, g.PadW, g.DilW, g.W)
									if hok && wok {
										want[(p*kk+i*g.KW+j)*ohw+r*ow+q] = x[p*hw+h*g.W+w]
									}
								}
							}
						}
					}
				}
				c.expectAll("cols", c.outF32("cols"), want, 0, 0)
				c.expectAll("x (input)", c.outF32("x"), x, 0, 0)
			})
		}

		// col2im_f32(cols, dx, total, geometry, beta): beta·dx, then the
		// terms in ascending (i, j), each a float32 addition.
		for _, beta := range []float32{0, 1, -0.75} {
			sms, off := next()
			c := s.begin("col2im_f32 %s beta=%g sms=%d", emuConvWinName(g), beta, sms)
			cols := s.uniform(out*kk, -2, 2)
			dx0 := s.uniform(in, -2, 2)
			if beta == 0 {
				for i := range dx0 {
					dx0[i] = math.Float32frombits(emuPoison) // not read
				}
			}
			pc := c.f32("cols", off, cols)
			pd := c.f32("dx", (off+3)%4, dx0)
			c.launch1("col2im_f32", emuGrid1D(sms, int64(in)), emuConvSlots([]any{pc, pd, emuArgI64(in)}, g, true, emuArgF32(beta))...)
			c.done(func(c *emuCase) {
				want := make([]float32, in)
				if beta != 0 {
					for e := range want {
						want[e] = beta * dx0[e]
					}
				}
				for p := 0; p < planes; p++ {
					for h := 0; h < g.H; h++ {
						for w := 0; w < g.W; w++ {
							e := p*hw + h*g.W + w
							for i := 0; i < g.KH; i++ {
								for j := 0; j < g.KW; j++ {
									for r := 0; r < oh; r++ {
										for q := 0; q < ow; q++ {
											hh, _ := emuConvTap(r, i, g.StrideH, g.PadH, g.DilH, g.H)
											ww, _ := emuConvTap(q, j, g.StrideW, g.PadW, g.DilW, g.W)
											if hh == h && ww == w {
												want[e] += cols[(p*kk+i*g.KW+j)*ohw+r*ow+q]
											}
										}
									}
								}
							}
						}
					}
				}
				c.expectAll("dx", c.outF32("dx"), want, 0, 0)
			})
		}

		// maxpool2d_f32(x, y, idx, total, geometry): ties (few levels, all
		// negative so a zero from the padding would win), NaNs, −Inf.
		sms, off := next()
		c := s.begin("maxpool2d_f32 %s sms=%d", emuConvWinName(g), sms)
		x := make([]float32, in)
		for i := range x {
			switch u := s.rng.IntN(40); {
			case u == 0:
				x[i] = float32(math.NaN())
			case u == 1:
				x[i] = float32(math.Inf(-1))
			default:
				x[i] = -float32(1+s.rng.IntN(4)) / 4
			}
		}
		wantY, wantI := emuConvMaxPoolRef(x, g)
		px := c.f32("x", off, x)
		py := c.poisoned("y", (off+1)%4, out)
		pi := c.i32("idx", (off+2)%3, emuConvFilledI32(out, emuPoisonI32))
		c.launch1("maxpool2d_f32", emuGrid1D(sms, int64(out)), emuConvSlots([]any{px, py, pi, emuArgI64(out)}, g, true)...)
		c.done(func(c *emuCase) {
			c.expectAll("y", c.outF32("y"), wantY, 0, 0)
			for o, v := range c.outI32("idx") {
				if v != wantI[o] {
					c.errorf("idx[%d] = %d, want %d", o, v, wantI[o])
				}
			}
		})

		// maxpool2d_grad_f32(dy, idx, dx, total, geometry): the idx of the
		// forward, plus some that name no tap of their window (routed
		// nowhere); each dx adds its terms in ascending (oh, ow).
		{
			sms, off := next()
			c := s.begin("maxpool2d_grad_f32 %s sms=%d", emuConvWinName(g), sms)
			idx := append([]int32(nil), wantI...)
			for o := range idx {
				if s.rng.IntN(10) == 0 {
					idx[o] = int32(s.rng.IntN(hw+2) - 1) // anywhere, −1 and hw included
				}
			}
			dy := s.uniform(out, -2, 2)
			pdy := c.f32("dy", off, dy)
			pi := c.i32("idx", (off+1)%3, idx)
			pdx := c.poisoned("dx", (off+2)%4, in)
			c.launch1("maxpool2d_grad_f32", emuGrid1D(sms, int64(in)), emuConvSlots([]any{pdy, pi, pdx, emuArgI64(in)}, g, true)...)
			c.done(func(c *emuCase) {
				want := make([]float32, in)
				for p := 0; p < planes; p++ {
					for r := 0; r < oh; r++ {
						for q := 0; q < ow; q++ {
							o := p*ohw + r*ow + q
							v := int(idx[o])
							if v < 0 || v >= hw {
								continue
							}
							tapH, tapW := false, false
							for i := 0; i < g.KH; i++ {
								h, _ := emuConvTap(r, i, g.StrideH, g.PadH, g.DilH, g.H)
								tapH = tapH || h == v/g.W
							}
							for j := 0; j < g.KW; j++ {
								w, _ := emuConvTap(q, j, g.StrideW, g.PadW, g.DilW, g.W)
								tapW = tapW || w == v%g.W
							}
							if tapH && tapW {
								want[p*hw+v] += dy[o]
							}
						}
					}
				}
				c.expectAll("dx", c.outF32("dx"), want, 0, 0)
			})
		}

		if g.DilH != 1 || g.DilW != 1 {
			continue // average pooling has no dilation
		}

		// avgpool2d_f32(x, y, total, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
		// the double sum in row-major window order over KH·KW, rounded once.
		{
			sms, off := next()
			c := s.begin("avgpool2d_f32 %s sms=%d", emuConvWinName(g), sms)
			x := s.uniform(in, -2, 2)
			px := c.f32("x", off, x)
			py := c.poisoned("y", (off+3)%4, out)
			c.launch1("avgpool2d_f32", emuGrid1D(sms, int64(out)), emuConvSlots([]any{px, py, emuArgI64(out)}, g, false)...)
			c.done(func(c *emuCase) {
				want := make([]float32, out)
				for p := 0; p < planes; p++ {
					for r := 0; r < oh; r++ {
						for q := 0; q < ow; q++ {
							sum := 0.0
							for i := 0; i < g.KH; i++ {
								for j := 0; j < g.KW; j++ {
									h, hok := emuConvTap(r, i, g.StrideH, g.PadH, 1, g.H)
									w, wok := emuConvTap(q, j, g.StrideW, g.PadW, 1, g.W)
									if hok && wok {
										sum += float64(x[p*hw+h*g.W+w])
									}
								}
							}
							want[p*ohw+r*ow+q] = float32(sum / float64(kk))
						}
					}
				}
				c.expectAll("y", c.outF32("y"), want, 0, 0)
			})
		}

		// avgpool2d_grad_f32(dy, dx, total, ...): per input element, the
		// double sum of the dy of the windows covering it, in ascending
		// (oh, ow), over KH·KW.
		{
			sms, off := next()
			c := s.begin("avgpool2d_grad_f32 %s sms=%d", emuConvWinName(g), sms)
			dy := s.uniform(out, -2, 2)
			pdy := c.f32("dy", off, dy)
			pdx := c.poisoned("dx", (off+1)%4, in)
			c.launch1("avgpool2d_grad_f32", emuGrid1D(sms, int64(in)), emuConvSlots([]any{pdy, pdx, emuArgI64(in)}, g, false)...)
			c.done(func(c *emuCase) {
				sum := make([]float64, in)
				for p := 0; p < planes; p++ {
					for r := 0; r < oh; r++ {
						for q := 0; q < ow; q++ {
							for i := 0; i < g.KH; i++ {
								for j := 0; j < g.KW; j++ {
									h, hok := emuConvTap(r, i, g.StrideH, g.PadH, 1, g.H)
									w, wok := emuConvTap(q, j, g.StrideW, g.PadW, 1, g.W)
									if hok && wok {
										sum[p*hw+h*g.W+w] += float64(dy[p*ohw+r*ow+q])
									}
								}
							}
						}
					}
				}
				want := make([]float32, in)
				for e := range want {
					want[e] = float32(sum[e] / float64(kk))
				}
				c.expectAll("dx", c.outF32("dx"), want, 0, 0)
			})
		}
	}

	// add_channel_bias_f32(x, bias, total, channels, inner) and
	// channel_bias_grad_f32(dy, db, outer, channels, inner, beta).
	for _, sh := range [][3]int{{1, 1, 1}, {2, 3, 20}, {4, 5, 1}, {3, 17, 33}, {1, 2, 3000}, {64, 3, 7}} {
		outer, ch, inner := sh[0], sh[1], sh[2]
		n := outer * ch * inner
		{
			sms, off := next()
			c := s.begin("add_channel_bias_f32 %dx%dx%d sms=%d", outer, ch, inner, sms)
			x, bias := s.uniform(n, -2, 2), s.uniform(ch, -2, 2)
			px, pb := c.f32("x", off, x), c.f32("bias", (off+1)%4, bias)
			c.launch1("add_channel_bias_f32", emuGrid1D(sms, int64(n)), px, pb, emuArgI64(n), emuArgI32(ch), emuArgI32(inner))
			c.done(func(c *emuCase) {
				want := make([]float32, n)
				for e := range want {
					want[e] = x[e] + bias[(e/inner)%ch]
				}
				c.expectAll("x", c.outF32("x"), want, 0, 0)
			})
		}
		for _, beta := range []float32{0, 1, 0.5} {
			_, off := next()
			c := s.begin("channel_bias_grad_f32 %dx%dx%d beta=%g", outer, ch, inner, beta)
			dy, db0 := s.uniform(n, -2, 2), s.uniform(ch, -2, 2)
			if beta == 0 {
				for i := range db0 {
					db0[i] = math.Float32frombits(emuPoison) // not read
				}
			}
			pdy, pdb := c.f32("dy", off, dy), c.f32("db", (off+2)%4, db0)
			c.launch1("channel_bias_grad_f32", uint32(ch), pdy, pdb, emuArgI32(outer), emuArgI32(ch), emuArgI32(inner), emuArgF32(beta))
			c.done(func(c *emuCase) {
				want := make([]float32, ch)
				for j := range want {
					sum := 0.0
					for o := 0; o < outer; o++ {
						for i := 0; i < inner; i++ {
							sum += float64(dy[(o*ch+j)*inner+i])
						}
					}
					if beta != 0 {
						sum += float64(beta) * float64(db0[j])
					}
					want[j] = float32(sum)
				}
				// A double sum in another order: at most 1 ulp of float32
				// apart after the rounding.
				c.expectAll("db", c.outF32("db"), want, 1, 0)
			})
		}
	}

	// adaptive_avgpool2d_f32(x, y, total, H, W, OH, OW) and its gradient.
	for _, a := range [][6]int{{2, 3, 7, 7, 1, 1}, {1, 2, 10, 7, 3, 4}, {2, 2, 6, 6, 3, 3}, {1, 3, 5, 4, 7, 6}, {3, 1, 9, 5, 4, 1}, {1, 4, 33, 31, 7, 7}} {
		n, ch, h, w, oh, ow := a[0], a[1], a[2], a[3], a[4], a[5]
		planes := n * ch
		in, out := planes*h*w, planes*oh*ow
		win := func(o, size, n int) (int, int) { return o * size / n, ((o+1)*size + n - 1) / n }
		{
			sms, off := next()
			c := s.begin("adaptive_avgpool2d_f32 n%dc%d %dx%d to %dx%d sms=%d", n, ch, h, w, oh, ow, sms)
			x := s.uniform(in, -2, 2)
			px, py := c.f32("x", off, x), c.poisoned("y", (off+1)%4, out)
			c.launch1("adaptive_avgpool2d_f32", emuGrid1D(sms, int64(out)), px, py, emuArgI64(out),
				emuArgI32(h), emuArgI32(w), emuArgI32(oh), emuArgI32(ow))
			c.done(func(c *emuCase) {
				want := make([]float32, out)
				for p := 0; p < planes; p++ {
					for r := 0; r < oh; r++ {
						h0, h1 := win(r, h, oh)
						for q := 0; q < ow; q++ {
							w0, w1 := win(q, w, ow)
							sum := 0.0
							for i := h0; i < h1; i++ {
								for j := w0; j < w1; j++ {
									sum += float64(x[p*h*w+i*w+j])
								}
							}
							want[p*oh*ow+r*ow+q] = float32(sum / float64((h1-h0)*(w1-w0)))
						}
					}
				}
				c.expectAll("y", c.outF32("y"), want, 0, 0)
			})
		}
		{
			sms, off := next()
			c := s.begin("adaptive_avgpool2d_grad_f32 n%dc%d %dx%d to %dx%d sms=%d", n, ch, h, w, oh, ow, sms)
			dy := s.uniform(out, -2, 2)
			pdy, pdx := c.f32("dy", off, dy), c.poisoned("dx", (off+2)%4, in)
			c.launch1("adaptive_avgpool2d_grad_f32", emuGrid1D(sms, int64(in)), pdy, pdx, emuArgI64(in),
				emuArgI32(h), emuArgI32(w), emuArgI32(oh), emuArgI32(ow))
			c.done(func(c *emuCase) {
				// Every window, in ascending (oh, ow), adds dy/count to the
				// elements it covers.
				sum := make([]float64, in)
				for p := 0; p < planes; p++ {
					for r := 0; r < oh; r++ {
						h0, h1 := win(r, h, oh)
						for q := 0; q < ow; q++ {
							w0, w1 := win(q, w, ow)
							v := float64(dy[p*oh*ow+r*ow+q]) / float64((h1-h0)*(w1-w0))
							for i := h0; i < h1; i++ {
								for j := w0; j < w1; j++ {
									sum[p*h*w+i*w+j] += v
								}
							}
						}
					}
				}
				want := make([]float32, in)
				for e := range want {
					want[e] = float32(sum[e])
				}
				c.expectAll("dx", c.outF32("dx"), want, 0, 0)
			})
		}
	}
}

// emuConvMaxPoolRef is the largest x of each window and its position h·W + w:
// the first in row-major window order on ties, a NaN winning (the first
// one), padding never; −Inf and −1 for a window holding no input.
func emuConvMaxPoolRef(x []float32, g device.Window2D) ([]float32, []int32) {
	oh, ow := g.OutH(), g.OutW()
	y, idx := make([]float32, g.N*g.C*oh*ow), make([]int32, g.N*g.C*oh*ow)
	for p := 0; p < g.N*g.C; p++ {
		for r := 0; r < oh; r++ {
			for q := 0; q < ow; q++ {
				best, bi := float32(math.Inf(-1)), int32(-1)
				for i := 0; i < g.KH; i++ {
					for j := 0; j < g.KW; j++ {
						h, hok := emuConvTap(r, i, g.StrideH, g.PadH, g.DilH, g.H)
						w, wok := emuConvTap(q, j, g.StrideW, g.PadW, g.DilW, g.W)
						if !hok || !wok {
							continue
						}
						v := x[p*g.H*g.W+h*g.W+w]
						bestNaN := best != best
						if bi < 0 || (!bestNaN && (v != v || v > best)) {
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

func emuConvFilledI32(n int, v int32) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = v
	}
	return x
}
