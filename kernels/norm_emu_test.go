package kernels

import "math"

// ---------------------------------------------------------------------------
// norm.cu: the launches of device/cuda/norm.go (BatchNorm, BatchNormGrad,
// LayerNorm, LayerNormGrad) on awkward shapes, for GPUs of several sizes,
// with views at element offsets and poisoned outputs, against float64
// references of device/device.go's definitions.
//
// Tolerances: the kernels accumulate in double and round each output once,
// as the references do in float64, so results differ from the references
// only through the order of double sums (about 1e-16 relative) and, for
// the outputs, the one float32 rounding: 1 ulp, or 2 where a result is
// itself computed from a rounded float32 (running statistics, outputs
// derived through x − μ), with an absolute floor of 1e-6 of the input's
// scale for values that cancel to near 0.

// Launch plans: copies of device/cuda/norm.go (bnPlan, lnColsPlan).

// emuBNMinChunk is the fewest values of one channel a batch-norm block
// reduces.
const emuBNMinChunk = 1024

// emuBNPlan splits each channel's plane of values into chunks, one block
// each, aiming at 4 blocks per SM in all.
func emuBNPlan(sms, plane, channels int) (chunks, per int) {
	chunks = min((plane+emuBNMinChunk-1)/emuBNMinChunk, max(1, (4*sms+channels-1)/channels), 1024)
	per = (plane + chunks - 1) / chunks
	chunks = (plane + per - 1) / per
	return chunks, per
}

// emuLNColsPlan is the row chunking of LayerNormGrad's column sums (as
// BiasGrad's).
func emuLNColsPlan(sms, rows, cols int) (colBlocks, chunks, rowsPer int) {
	colBlocks = (cols + emuBlock - 1) / emuBlock
	chunks = 1
	if colBlocks < 2*sms && rows >= 32 {
		chunks = min((rows+15)/16, max(1, 4*sms/colBlocks), 1024)
	}
	rowsPer = (rows + chunks - 1) / chunks
	chunks = (rows + rowsPer - 1) / rowsPer
	return colBlocks, chunks, rowsPer
}

// emuBNShapes are [outer, channels, inner] layouts: BatchNorm1d on [N, C]
// and [N, C, L], 2-d planes, several chunks a channel. More channels than a
// block has threads (the final kernels on several blocks) are left to
// devicetest on a GPU: 257 emulated blocks of 256 threads take a minute.
var emuBNShapes = [][3]int{{2, 3, 1}, {1, 4, 5}, {7, 5, 1}, {4, 3, 17}, {8, 2, 300}, {3, 1, 1000}, {33, 21, 1}, {5, 1, 2049}}

func emuNormCases(s *emuScript) {
	s.emuBatchNormCases()
	s.emuBatchNormGradCases()
	s.emuLayerNormCases()
	s.emuLayerNormGradCases()
}

// emuBNStats is the per-channel mean and biased variance, two-pass in
// float64.
func emuBNStats(x []float32, outer, channels, inner int) (mu, vr []float64) {
	mu, vr = make([]float64, channels), make([]float64, channels)
	n := float64(outer * inner)
	for c := 0; c < channels; c++ {
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				mu[c] += float64(x[(o*channels+c)*inner+i])
			}
		}
		mu[c] /= n
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				d := float64(x[(o*channels+c)*inner+i]) - mu[c]
				vr[c] += d * d
			}
		}
		vr[c] /= n
	}
	return mu, vr
}

func (s *emuScript) emuBatchNormCases() {
	const eps, mom = 1e-5, 0.1
	k := 0
	for _, sh := range emuBNShapes {
		outer, C, inner := sh[0], sh[1], sh[2]
		plane, total := outer*inner, outer*C*inner
		// train: affine, running stats; train_bare: no gamma/beta, no
		// running stats; eval: running stats, mean/invstd not wanted.
		for _, mode := range []string{"train", "train_bare", "eval"} {
			sms := emuSMs[k%len(emuSMs)]
			off := k % 5
			k++
			training := mode != "eval"
			chunks, per := emuBNPlan(sms, plane, C)
			c := s.begin("BatchNorm %s %dx%dx%d sms=%d chunks=%d offset=%d stats=%v", mode, outer, C, inner, sms, chunks, off, training || k%2 == 0)
			x := s.uniform(total, -1, 3)
			gamma, beta := s.uniform(C, -1.5, 1.5), s.uniform(C, -1, 1)
			rm0, rv0 := s.uniform(C, -0.5, 0.5), s.uniform(C, 0.5, 2)
			px := c.f32("x", off, x)
			py := c.poisoned("y", (off+1)%4, total)
			var pg, pb, prm, prv, pm, ps any = emuNull, emuNull, emuNull, emuNull, emuNull, emuNull
			if mode != "train_bare" {
				pg, pb = c.f32("gamma", 1, gamma), c.f32("beta", 2, beta)
				prm, prv = c.f32("runMean", 3, rm0), c.f32("runVar", 0, rv0)
			}
			// Evaluation writes mean and invstd only when given.
			stats := training || k%2 == 0
			if stats {
				pm, ps = c.poisoned("mean", 2, C), c.poisoned("invstd", 1, C)
			}
			coef := c.workspace("coef", 2*C)
			finalGrid := uint32((C + emuBlock - 1) / emuBlock)
			if training {
				ws := c.workspace("ws", 2*C*chunks)
				c.launch("bn_stats_partial_f32", [3]uint32{uint32(C), uint32(chunks), 1}, emuBlock,
					px, emuArgI32(outer), emuArgI32(C), emuArgI32(inner), emuArgI64(per), ws)
				c.launch1("bn_stats_final_f32", finalGrid, ws, emuArgI32(chunks), emuArgI64(per), emuArgI64(plane),
					emuArgI32(C), emuArgBool(true), emuArgF32(eps), emuArgF32(mom), pg, pm, ps, prm, prv, coef)
			} else {
				c.launch1("bn_stats_final_f32", finalGrid, emuNull, emuArgI32(1), emuArgI64(plane), emuArgI64(plane),
					emuArgI32(C), emuArgBool(false), emuArgF32(eps), emuArgF32(mom), pg, pm, ps, prm, prv, coef)
			}
			c.launch1("bn_apply_f32", emuGrid1D(sms, int64(total)), px, py, pb, coef, emuArgI64(total), emuArgI32(C), emuArgI32(inner))
			c.done(func(c *emuCase) {
				var mu, vr []float64
				if training {
					mu, vr = emuBNStats(x, outer, C, inner)
				} else {
					mu, vr = f64s(rm0), f64s(rv0)
				}
				got := c.outF32("y")
				for o := 0; o < outer; o++ {
					for ch := 0; ch < C; ch++ {
						is := 1 / math.Sqrt(vr[ch]+eps)
						g, b := 1.0, 0.0
						if pg != emuNull {
							g, b = float64(gamma[ch]), float64(beta[ch])
						}
						for i := 0; i < inner; i++ {
							e := (o*C+ch)*inner + i
							want := (float64(x[e])-mu[ch])*is*g + b
							c.expect("y", e, got[e], float32(want), 2, 1e-6)
						}
					}
				}
				if stats {
					gm, gs := c.outF32("mean"), c.outF32("invstd")
					for ch := 0; ch < C; ch++ {
						c.expect("mean", ch, gm[ch], float32(mu[ch]), 1, 1e-7) // exact in evaluation
						c.expect("invstd", ch, gs[ch], float32(1/math.Sqrt(vr[ch]+eps)), 1, 0)
					}
				}
				if training && prm != emuNull {
					grm, grv := c.outF32("runMean"), c.outF32("runVar")
					for ch := 0; ch < C; ch++ {
						unb := vr[ch] * float64(plane) / float64(plane-1)
						c.expect("runMean", ch, grm[ch], float32((1-mom)*float64(rm0[ch])+mom*mu[ch]), 2, 1e-7)
						c.expect("runVar", ch, grv[ch], float32((1-mom)*float64(rv0[ch])+mom*unb), 2, 0)
					}
				}
			})
		}
	}
}

func f64s(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func (s *emuScript) emuBatchNormGradCases() {
	k := 0
	accums := []float32{0, 1, 0.5}
	for _, sh := range emuBNShapes {
		outer, C, inner := sh[0], sh[1], sh[2]
		plane, total := outer*inner, outer*C*inner
		// all: every output and gamma; dx_alias: dx written over dy;
		// params: dgamma and dbeta only, no gamma.
		for _, mode := range []string{"all", "dx_alias", "params"} {
			sms := emuSMs[k%len(emuSMs)]
			off := k % 5
			accum := accums[k%len(accums)]
			k++
			chunks, per := emuBNPlan(sms, plane, C)
			c := s.begin("BatchNormGrad %s %dx%dx%d sms=%d chunks=%d accum=%g offset=%d", mode, outer, C, inner, sms, chunks, accum, off)
			x, dy := s.uniform(total, -1, 3), s.uniform(total, -1, 1)
			gamma := s.uniform(C, -1.5, 1.5)
			mu, vr := emuBNStats(x, outer, C, inner)
			mean, invstd := make([]float32, C), make([]float32, C)
			for ch := range mean {
				mean[ch], invstd[ch] = float32(mu[ch]), float32(1/math.Sqrt(vr[ch]+1e-5))
			}
			dg0, db0 := s.uniform(C, -1, 1), s.uniform(C, -1, 1)
			px, pdy := c.f32("x", off, x), c.f32("dy", (off+3)%5, dy)
			pm, ps := c.f32("mean", 1, mean), c.f32("invstd", 2, invstd)
			var pg, pdx any = emuNull, emuNull
			dxID := ""
			switch mode {
			case "all":
				pg, pdx, dxID = c.f32("gamma", 3, gamma), c.poisoned("dx", (off+1)%4, total), "dx"
			case "dx_alias":
				pg, pdx, dxID = c.f32("gamma", 3, gamma), pdy, "dy"
			}
			var pdg, pdb any = c.f32("dgamma", 1, dg0), c.f32("dbeta", 0, db0)
			if accum == 0 {
				pdg, pdb = c.poisoned("dgamma", 1, C), c.poisoned("dbeta", 0, C)
			}
			if mode == "dx_alias" {
				pdg = emuNull // not wanted
			}
			ws := c.workspace("ws", 2*C*chunks)
			coef := c.workspace("coef", 3*C)
			c.launch("bn_grad_partial_f32", [3]uint32{uint32(C), uint32(chunks), 1}, emuBlock,
				px, pdy, pm, ps, emuArgI32(outer), emuArgI32(C), emuArgI32(inner), emuArgI64(per), ws)
			c.launch1("bn_grad_final_f32", uint32((C+emuBlock-1)/emuBlock), ws, emuArgI32(chunks), emuArgI32(C), emuArgI64(plane),
				pg, ps, pdg, pdb, emuArgF32(accum), coef)
			if dxID != "" {
				c.launch1("bn_grad_apply_f32", emuGrid1D(sms, int64(total)), px, pdy, pm, ps, coef, pdx, emuArgI64(total), emuArgI32(C), emuArgI32(inner))
			}
			c.done(func(c *emuCase) {
				sdy, sdyx, sabs := make([]float64, C), make([]float64, C), make([]float64, C)
				xh := make([]float64, total)
				for o := 0; o < outer; o++ {
					for ch := 0; ch < C; ch++ {
						for i := 0; i < inner; i++ {
							e := (o*C+ch)*inner + i
							xh[e] = (float64(x[e]) - float64(mean[ch])) * float64(invstd[ch])
							sdy[ch] += float64(dy[e])
							sdyx[ch] += float64(dy[e]) * xh[e]
							sabs[ch] += math.Abs(float64(dy[e])) * (1 + math.Abs(xh[e]))
						}
					}
				}
				if dxID != "" {
					got := c.outF32(dxID)
					for e := 0; e < total; e++ {
						ch := (e / inner) % C
						a := float64(gamma[ch]) * float64(invstd[ch])
						want := a * (float64(dy[e]) - sdy[ch]/float64(plane) - xh[e]*sdyx[ch]/float64(plane))
						c.expect("dx", e, got[e], float32(want), 2, 1e-6)
					}
				}
				for ch := 0; ch < C; ch++ {
					wg, wb := sdyx[ch], sdy[ch]
					if accum != 0 {
						wg += float64(accum) * float64(dg0[ch])
						wb += float64(accum) * float64(db0[ch])
					}
					// Sums that cancel: an absolute floor of 1e-12 of
					// Σ|terms| (double sums in another order).
					if pdg != emuNull {
						c.expect("dgamma", ch, c.outF32("dgamma")[ch], float32(wg), 1, 1e-12*sabs[ch])
					}
					c.expect("dbeta", ch, c.outF32("dbeta")[ch], float32(wb), 1, 1e-12*sabs[ch])
				}
			})
		}
	}
}

// emuLNShapes are rows×cols: one column, rows shorter and longer than a
// warp, enough rows for several column-sum chunks.
var emuLNShapes = append([][2]int{{100, 48}, {64, 300}, {5, 1025}}, emuShapes...)

func (s *emuScript) emuLayerNormCases() {
	const eps = 1e-5
	for k, sh := range emuLNShapes {
		rows, cols := sh[0], sh[1]
		affine := k%3 != 1
		alias := k%4 == 2
		off := k % 5
		c := s.begin("LayerNorm %dx%d affine=%v y=x:%v offset=%d", rows, cols, affine, alias, off)
		x := s.uniform(rows*cols, -1, 3)
		for r := 0; r < rows; r++ { // rows of different means
			sh := float32(r%7) - 3
			for j := 0; j < cols; j++ {
				x[r*cols+j] += sh
			}
		}
		gamma, beta := s.uniform(cols, -1.5, 1.5), s.uniform(cols, -1, 1)
		px := c.f32("x", off, x)
		var py any = px
		yID := "x"
		if !alias {
			py, yID = c.poisoned("y", (off+2)%5, rows*cols), "y"
		}
		var pg, pb any = emuNull, emuNull
		if affine {
			pg, pb = c.f32("gamma", 1, gamma), c.f32("beta", 3, beta)
		}
		pm, ps := c.poisoned("mean", 2, rows), c.poisoned("rstd", 1, rows)
		c.launch1("layer_norm_rows_f32", emuRowGrid(rows), px, py, pg, pb, pm, ps, emuArgI32(rows), emuArgI32(cols), emuArgF32(eps))
		c.done(func(c *emuCase) {
			got, gm, gs := c.outF32(yID), c.outF32("mean"), c.outF32("rstd")
			for r := 0; r < rows; r++ {
				m, q := 0.0, 0.0
				for j := 0; j < cols; j++ {
					m += float64(x[r*cols+j])
				}
				m /= float64(cols)
				for j := 0; j < cols; j++ {
					d := float64(x[r*cols+j]) - m
					q += d * d
				}
				rs := 1 / math.Sqrt(q/float64(cols)+eps)
				c.expect("mean", r, gm[r], float32(m), 1, 1e-7)
				c.expect("rstd", r, gs[r], float32(rs), 1, 0)
				for j := 0; j < cols; j++ {
					t := (float64(x[r*cols+j]) - m) * rs
					if affine {
						t = t*float64(gamma[j]) + float64(beta[j])
					}
					c.expect("y", r*cols+j, got[r*cols+j], float32(t), 2, 1e-6)
				}
			}
		})
	}
}

func (s *emuScript) emuLayerNormGradCases() {
	accums := []float32{0, 1, 0.5}
	k := 0
	for _, sh := range emuLNShapes {
		rows, cols := sh[0], sh[1]
		// all: gamma and every output; dx_alias: dx over dy, no dgamma;
		// params: dgamma and dbeta only.
		for _, mode := range []string{"all", "dx_alias", "params"} {
			if rows*cols > 20000 && mode != "all" {
				continue
			}
			sms := emuSMs[k%len(emuSMs)]
			accum := accums[k%len(accums)]
			off := k % 5
			k++
			colBlocks, chunks, rowsPer := emuLNColsPlan(sms, rows, cols)
			c := s.begin("LayerNormGrad %s %dx%d sms=%d chunks=%d accum=%g offset=%d", mode, rows, cols, sms, chunks, accum, off)
			x, dy := s.uniform(rows*cols, -1, 3), s.uniform(rows*cols, -1, 1)
			gamma := s.uniform(cols, -1.5, 1.5)
			mean, rstd := make([]float32, rows), make([]float32, rows)
			for r := 0; r < rows; r++ {
				m, q := 0.0, 0.0
				for j := 0; j < cols; j++ {
					m += float64(x[r*cols+j])
				}
				m /= float64(cols)
				for j := 0; j < cols; j++ {
					q += (float64(x[r*cols+j]) - m) * (float64(x[r*cols+j]) - m)
				}
				mean[r], rstd[r] = float32(m), float32(1/math.Sqrt(q/float64(cols)+1e-5))
			}
			dg0, db0 := s.uniform(cols, -1, 1), s.uniform(cols, -1, 1)
			px, pdy := c.f32("x", off, x), c.f32("dy", (off+2)%5, dy)
			pm, ps := c.f32("mean", 3, mean), c.f32("rstd", 1, rstd)
			var pg, pdx any = emuNull, emuNull
			dxID := ""
			switch mode {
			case "all":
				pg, pdx, dxID = c.f32("gamma", 2, gamma), c.poisoned("dx", (off+1)%4, rows*cols), "dx"
			case "dx_alias":
				pg, pdx, dxID = c.f32("gamma", 2, gamma), pdy, "dy"
			}
			var pdg, pdb any = c.f32("dgamma", 1, dg0), c.f32("dbeta", 2, db0)
			if accum == 0 {
				pdg, pdb = c.poisoned("dgamma", 1, cols), c.poisoned("dbeta", 2, cols)
			}
			if mode == "dx_alias" {
				pdg = emuNull
			}
			// The column sums first (they read dy, which dx may
			// overwrite), then dx.
			if chunks == 1 {
				c.launch("layer_norm_grad_cols_f32", [3]uint32{uint32(colBlocks), 1, 1}, emuBlock,
					px, pdy, pm, ps, emuArgI32(rows), emuArgI32(cols), emuArgI32(rowsPer), emuNull, pdg, pdb, emuArgF32(accum))
			} else {
				ws := c.workspace("ws", 2*chunks*cols)
				c.launch("layer_norm_grad_cols_f32", [3]uint32{uint32(colBlocks), uint32(chunks), 1}, emuBlock,
					px, pdy, pm, ps, emuArgI32(rows), emuArgI32(cols), emuArgI32(rowsPer), ws, pdg, pdb, emuArgF32(accum))
				c.launch1("layer_norm_grad_cols_final_f32", uint32(colBlocks), ws, emuArgI32(chunks), emuArgI32(cols), pdg, pdb, emuArgF32(accum))
			}
			if dxID != "" {
				c.launch1("layer_norm_grad_rows_f32", emuRowGrid(rows), px, pdy, pg, pm, ps, pdx, emuArgI32(rows), emuArgI32(cols))
			}
			c.done(func(c *emuCase) {
				xh := make([]float64, rows*cols)
				sg, sb, sabs := make([]float64, cols), make([]float64, cols), make([]float64, cols)
				var got []float32
				if dxID != "" {
					got = c.outF32(dxID)
				}
				for r := 0; r < rows; r++ {
					s1, s2 := 0.0, 0.0
					for j := 0; j < cols; j++ {
						e := r*cols + j
						xh[e] = (float64(x[e]) - float64(mean[r])) * float64(rstd[r])
						g := float64(dy[e]) * float64(gamma[j])
						s1 += g
						s2 += g * xh[e]
						sb[j] += float64(dy[e])
						sg[j] += float64(dy[e]) * xh[e]
						sabs[j] += math.Abs(float64(dy[e])) * (1 + math.Abs(xh[e]))
					}
					if got == nil {
						continue
					}
					for j := 0; j < cols; j++ {
						e := r*cols + j
						g := float64(dy[e]) * float64(gamma[j])
						want := float64(rstd[r]) * (g - s1/float64(cols) - xh[e]*s2/float64(cols))
						c.expect("dx", e, got[e], float32(want), 2, 1e-6)
					}
				}
				for j := 0; j < cols; j++ {
					wg, wb := sg[j], sb[j]
					if accum != 0 {
						wg += float64(accum) * float64(dg0[j])
						wb += float64(accum) * float64(db0[j])
					}
					if pdg != emuNull {
						c.expect("dgamma", j, c.outF32("dgamma")[j], float32(wg), 1, 1e-12*sabs[j])
					}
					c.expect("dbeta", j, c.outF32("dbeta")[j], float32(wb), 1, 1e-12*sabs[j])
				}
			})
		}
	}
}
