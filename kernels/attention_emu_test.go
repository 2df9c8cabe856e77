package kernels

import (
	"fmt"
	"math"
)

// emuAttentionCases adds the emulation cases of attention.cu, launched as
// device/cuda/attention.go launches them: the masked softmax (plain,
// scaled, causal with qLen = cols and qLen < cols as with a KV cache, in
// place), its gradient, and Permute4 for every permutation of a small 4-D
// shape and a few others, from views at offsets into poisoned outputs.
func emuAttentionCases(s *emuScript) {
	type mcase struct {
		rows, cols int
		scale      float32
		causal     bool
		qLen       int
	}
	mcases := []mcase{
		{1, 1, 1, false, 1}, {7, 13, 0.5, false, 1}, {3, 1000, 0.125, false, 1}, {9, 32, -1.5, false, 1},
		{1, 1, 1, true, 1}, {12, 6, 0.25, true, 6}, {9, 8, 1, true, 3}, {4, 37, 0.3, true, 1},
		{70, 35, 0.177, true, 35}, {66, 100, 0.1, true, 33}, {17, 33, 2, true, 17},
	}
	valid := func(mc mcase, r int) int {
		if !mc.causal {
			return mc.cols
		}
		return r%mc.qLen + mc.cols - mc.qLen + 1
	}

	// softmax_masked_rows_f32(x, y, rows, cols, scale, causal, qLen), grid
	// ceil(rows/8).
	for i, mc := range mcases {
		rows, cols := mc.rows, mc.cols
		inPlace := i%3 == 2
		c := s.begin("softmax_masked_rows_f32 %dx%d scale=%g causal=%v qLen=%d in-place=%v",
			rows, cols, mc.scale, mc.causal, mc.qLen, inPlace)
		x := s.normal(rows*cols, 4)
		for r := 0; r < rows; r++ { // rows at different levels, some large
			shift := float32(r%4) * 30
			for j := 0; j < cols; j++ {
				x[r*cols+j] += shift
			}
		}
		px := c.f32("x", i%4, x)
		py, yID := px, "x"
		if !inPlace {
			py, yID = c.poisoned("y", (i+1)%4, rows*cols), "y"
		}
		c.launch1("softmax_masked_rows_f32", emuRowGrid(rows), px, py, emuArgI32(rows), emuArgI32(cols),
			emuArgF32(mc.scale), emuArgBool(mc.causal), emuArgI32(mc.qLen))
		c.done(func(c *emuCase) {
			got := c.outF32(yID)
			for r := 0; r < rows; r++ {
				xr := x[r*cols : r*cols+valid(mc, r)]
				// As documented: z_j = float(scale·x_j), m = max z_j,
				// e_j = exp(double(z_j − m)), the sum in double,
				// y_j = float(double(float(e_j))/sum); masked: exactly 0.
				m := float32(math.Inf(-1))
				for _, v := range xr {
					m = max(m, mc.scale*v)
				}
				sum := 0.0
				for _, v := range xr {
					sum += math.Exp(float64(float32(mc.scale*v) - m)) // conversions: no FMA
				}
				rowSum := 0.0
				for j := 0; j < cols; j++ {
					k := r*cols + j
					if j >= len(xr) {
						if math.Float32bits(got[k]) != 0 {
							c.errorf("y[%d][%d] = %g (%#08x), masked: want +0", r, j, got[k], math.Float32bits(got[k]))
						}
						continue
					}
					e := float32(math.Exp(float64(float32(mc.scale*xr[j]) - m)))
					want := float32(float64(e) * (1 / sum))
					// Two ulps: the C library's exp and Go's may differ
					// in the last bit of the double.
					c.expect(fmt.Sprintf("y[%d]", r), j, got[k], want, 2, 0)
					rowSum += float64(got[k])
				}
				if math.Abs(rowSum-1) > 1e-5 {
					c.errorf("row %d sums to %g", r, rowSum)
				}
			}
		})
	}

	// softmax_masked_grad_rows_f32(y, dy, dx, rows, cols, scale).
	for i, mc := range mcases {
		rows, cols := mc.rows, mc.cols
		alias := i%3 == 1
		c := s.begin("softmax_masked_grad_rows_f32 %dx%d scale=%g causal=%v dx=dy:%v", rows, cols, mc.scale, mc.causal, alias)
		y := s.uniform(rows*cols, 0, 1)
		for r := 0; r < rows; r++ {
			for j := valid(mc, r); j < cols; j++ {
				y[r*cols+j] = 0 // masked entries, as SoftmaxMasked leaves them
			}
		}
		dy := s.normal(rows*cols, 1)
		py := c.f32("y", i%4, y)
		pdy := c.f32("dy", (i+2)%4, dy)
		pdx, dxID := pdy, "dy"
		if !alias {
			pdx, dxID = c.poisoned("dx", (i+1)%3, rows*cols), "dx"
		}
		c.launch1("softmax_masked_grad_rows_f32", emuRowGrid(rows), py, pdy, pdx, emuArgI32(rows), emuArgI32(cols),
			emuArgF32(mc.scale))
		c.done(func(c *emuCase) {
			got := c.outF32(dxID)
			for r := 0; r < rows; r++ {
				dot := 0.0
				for j := 0; j < cols; j++ {
					dot += float64(y[r*cols+j]) * float64(dy[r*cols+j])
				}
				dt := float32(dot) // rounded once, as documented
				for j := 0; j < cols; j++ {
					k := r*cols + j
					// float32 steps with explicit rounding: bit-exact
					// but for the last bit of the double dot product.
					want := mc.scale * float32(y[k]*(dy[k]-dt))
					c.expect(fmt.Sprintf("dx[%d]", r), j, got[k], want, 1, 0)
					if y[k] == 0 && got[k] != 0 {
						c.errorf("dx[%d][%d] = %g for a masked entry, want 0", r, j, got[k])
					}
				}
			}
		})
	}

	// permute4_f32(x, y, n, d1, d2, d3, s0, s1, s2, s3), grid-stride.
	type pcase struct {
		dims  [4]int
		perms [][4]int
	}
	var all [][4]int
	for p := 0; p < 256; p++ {
		q := [4]int{p & 3, p >> 2 & 3, p >> 4 & 3, p >> 6 & 3}
		if q[0] != q[1] && q[0] != q[2] && q[0] != q[3] && q[1] != q[2] && q[1] != q[3] && q[2] != q[3] {
			all = append(all, q)
		}
	}
	pcases := []pcase{
		{[4]int{2, 3, 4, 5}, all},
		{[4]int{3, 1, 4, 1}, all[:8]},
		{[4]int{7, 5, 9, 13}, [][4]int{{1, 2, 0, 3}, {2, 0, 1, 3}, {3, 2, 1, 0}}}, // loops on small grids
	}
	k := 0
	for _, pc := range pcases {
		dims := pc.dims
		n := dims[0] * dims[1] * dims[2] * dims[3]
		xs := [4]int{dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1}
		for _, perm := range pc.perms {
			sms := emuSMs[k%len(emuSMs)]
			k++
			od := [4]int{dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]}
			st := [4]int{xs[perm[0]], xs[perm[1]], xs[perm[2]], xs[perm[3]]}
			c := s.begin("permute4_f32 dims=%v perm=%v sms=%d", dims, perm, sms)
			x := s.uniform(n, -4, 4)
			px := c.f32("x", k%4, x)
			py := c.poisoned("y", (k+1)%5, n)
			c.launch1("permute4_f32", emuGrid1D(sms, int64(n)), px, py, emuArgI64(n),
				emuArgI32(od[1]), emuArgI32(od[2]), emuArgI32(od[3]),
				emuArgI64(st[0]), emuArgI64(st[1]), emuArgI64(st[2]), emuArgI64(st[3]))
			c.done(func(c *emuCase) {
				got := c.outF32("y")
				i := 0
				for i0 := 0; i0 < od[0]; i0++ {
					for i1 := 0; i1 < od[1]; i1++ {
						for i2 := 0; i2 < od[2]; i2++ {
							for i3 := 0; i3 < od[3]; i3++ {
								var src [4]int // x's coordinates
								src[perm[0]], src[perm[1]], src[perm[2]], src[perm[3]] = i0, i1, i2, i3
								want := x[src[0]*xs[0]+src[1]*xs[1]+src[2]*xs[2]+src[3]]
								c.expect("y", i, got[i], want, 0, 0)
								i++
							}
						}
					}
				}
			})
		}
	}
}
