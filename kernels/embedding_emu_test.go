package kernels

import (
	"math"
)

// emuScatterGroups is device/cuda's scatterGroups: grid.y of
// scatter_add_rows_f32.
func emuScatterGroups(sms, rows, cols, n int) int {
	colBlocks := (cols + emuBlock - 1) / emuBlock
	g := (4*sms + colBlocks - 1) / colBlocks
	return max(1, min(g, rows, n, 65535))
}

// emuIndices is n indices in [0, rows) with the last and first rows among
// them and a run of repeats at the start.
func (s *emuScript) emuIndices(rows, n int) []int32 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(s.rng.IntN(rows))
	}
	idx[0] = int32(rows - 1)
	for i := 1; i < min(n, 4); i++ {
		idx[i] = idx[0]
	}
	if n > 4 {
		idx[n-1] = 0
	}
	return idx
}

// emuEmbeddingCases adds the cases of embedding.cu, with the launch shapes
// of device/cuda/embedding.go.
func emuEmbeddingCases(s *emuScript) {
	nan := float32(math.NaN())
	shapes := [][3]int{{1, 1, 1}, {10, 7, 13}, {5, 300, 9}, {1000, 3, 37}, {50, 64, 200}, {3, 33, 1000}, {1, 20, 777}, {100, 257, 300}}

	// gather_rows_f32(table, idx, out, rows, cols, total), grid
	// grid1D(total); views at offsets; with bad, one index out of range
	// (which the host would have refused) must give a NaN row.
	for k, sh := range shapes {
		rows, cols, n := sh[0], sh[1], sh[2]
		sms := emuSMs[k%len(emuSMs)]
		for _, bad := range []bool{false, true} {
			c := s.begin("gather_rows_f32 %dx%d n=%d bad=%v sms=%d", rows, cols, n, bad, sms)
			table := s.uniform(rows*cols, -4, 4)
			idx := s.emuIndices(rows, n)
			if bad {
				idx[n/2] = int32(rows)
				if n > 2 {
					idx[n/3] = -1
				}
			}
			pt := c.f32("table", k%3, table)
			pi := c.i32("idx", (k+1)%4, idx)
			po := c.poisoned("out", (k+2)%5, n*cols)
			total := n * cols
			c.launch1("gather_rows_f32", emuGrid1D(sms, int64(total)), pt, pi, po, emuArgI32(rows), emuArgI32(cols), emuArgI64(total))
			c.done(func(c *emuCase) {
				got := c.outF32("out")
				want := make([]float32, total)
				for i, r := range idx {
					for j := 0; j < cols; j++ {
						if r < 0 || int(r) >= rows {
							want[i*cols+j] = nan
						} else {
							want[i*cols+j] = table[int(r)*cols+j]
						}
					}
				}
				c.expectAll("out", got, want, 0, 0)
				c.expectAll("table (input)", c.outF32("table"), table, 0, 0)
			})
		}
	}

	// scatter_add_rows_f32(dtable, idx, dout, rows, cols, n, groups), grid
	// (ceil(cols/256), groups), block 256: the float32 sums in ascending
	// i, bit for bit, for the row groups of GPUs of several sizes. With
	// bad, an out-of-range index is skipped.
	for k, sh := range shapes {
		rows, cols, n := sh[0], sh[1], sh[2]
		for si, sms := range emuSMs {
			bad := si == 1
			groups := emuScatterGroups(sms, rows, cols, n)
			c := s.begin("scatter_add_rows_f32 %dx%d n=%d groups=%d bad=%v", rows, cols, n, groups, bad)
			dtable := s.uniform(rows*cols, -2, 2)
			idx := s.emuIndices(rows, n)
			if bad {
				idx[n/2] = int32(rows)
			}
			dout := s.uniform(n*cols, -1, 1)
			for i := range dout { // six decades: another order rounds differently
				dout[i] *= float32(math.Pow(10, float64(s.rng.IntN(7)-3)))
			}
			pt := c.f32("dtable", k%3, dtable)
			pi := c.i32("idx", si, idx)
			po := c.f32("dout", (k+si)%4, dout)
			grid := [3]uint32{uint32((cols + emuBlock - 1) / emuBlock), uint32(groups), 1}
			c.launch("scatter_add_rows_f32", grid, emuBlock, pt, pi, po, emuArgI32(rows), emuArgI32(cols), emuArgI32(n), emuArgI32(groups))
			c.done(func(c *emuCase) {
				want := append([]float32(nil), dtable...)
				for i, r := range idx {
					if r < 0 || int(r) >= rows {
						continue
					}
					for j := 0; j < cols; j++ {
						want[int(r)*cols+j] += dout[i*cols+j]
					}
				}
				c.expectAll("dtable", c.outF32("dtable"), want, 0, 0)
				c.expectAll("dout (input)", c.outF32("dout"), dout, 0, 0)
			})
		}
	}

	// Cross-entropy with an ignore index: xent_ignore_count (1 block),
	// xent_ignore_rows_f32 (grid ceil(rows/8)), xent_ignore_final (1
	// block). device/cuda keeps the count and the row losses in one
	// workspace (count first); here they are two buffers, as the kernels
	// see only the two pointers.
	type xcase struct {
		rows, cols int
		ignore     int32
		p          float64 // share of ignored rows
		grad       string  // "buf", "null" or "alias" (grad is x)
		badLabel   bool
		extreme    bool
	}
	var xcases []xcase
	for i, sh := range [][2]int{{1, 1}, {7, 13}, {9, 32}, {33, 257}, {3, 1000}, {2, 5000}, {40, 3}} {
		grads := []string{"buf", "null", "alias"}
		xcases = append(xcases,
			xcase{rows: sh[0], cols: sh[1], ignore: -100, p: 0.25, grad: grads[i%3]},
			xcase{rows: sh[0], cols: sh[1], ignore: -100, p: 0.25, grad: grads[(i+1)%3], extreme: true})
	}
	xcases = append(xcases,
		xcase{rows: 12, cols: 7, ignore: 0, p: 0.3, grad: "buf"},
		xcase{rows: 12, cols: 7, ignore: -100, p: 1, grad: "buf"},                   // all ignored: NaN loss, zero grad
		xcase{rows: 12, cols: 7, ignore: -100, p: 0.2, grad: "buf", badLabel: true}) // NaN row
	for k, xc := range xcases {
		rows, cols := xc.rows, xc.cols
		c := s.begin("xent_ignore %dx%d ignore=%d p=%g grad=%s bad=%v extreme=%v", rows, cols, xc.ignore, xc.p, xc.grad, xc.badLabel, xc.extreme)
		x := s.normal(rows*cols, 4)
		if xc.extreme {
			for i := range x {
				switch s.rng.IntN(3) {
				case 0:
					x[i] = 100
				case 1:
					x[i] = -100
				}
			}
		}
		labels := make([]int32, rows)
		for i := range labels {
			labels[i] = int32(s.rng.IntN(cols))
			if s.rng.Float64() < xc.p {
				labels[i] = xc.ignore
			}
		}
		if xc.p < 1 && labels[0] == xc.ignore {
			labels[0] = int32(cols - 1)
		}
		if xc.badLabel {
			labels[rows/2] = int32(cols)
		}
		px := c.f32("x", k%4, x)
		pl := c.i32("labels", (k+1)%3, labels)
		pcount := c.workspace("count", 1)
		prl := c.workspace("rowloss", rows)
		ploss := c.poisoned("loss", k%2, 1)
		var pg any = emuNull
		gID := ""
		switch xc.grad {
		case "buf":
			pg, gID = c.poisoned("grad", (k+2)%4, rows*cols), "grad"
		case "alias":
			pg, gID = px, "x"
		}
		ig := emuArgI32(int(xc.ignore))
		c.launch1("xent_ignore_count", 1, pl, emuArgI32(rows), ig, pcount)
		c.launch1("xent_ignore_rows_f32", emuRowGrid(rows), px, pl, emuArgI32(rows), emuArgI32(cols), ig, pg, pcount, prl)
		c.launch1("xent_ignore_final", 1, prl, emuArgI32(rows), pcount, ploss)
		c.done(func(c *emuCase) {
			// float64 references, the definitions: lse − x[label] averaged
			// over the kept rows; softmax − onehot over the count.
			count := 0
			for _, l := range labels {
				if l != xc.ignore {
					count++
				}
			}
			inv := 1 / float64(count)
			sum := 0.0
			wgrad := make([]float32, rows*cols)
			for r, l := range labels {
				if l == xc.ignore {
					continue // grad row 0
				}
				row := x[r*cols : (r+1)*cols]
				if l < 0 || int(l) >= cols {
					sum = math.NaN()
					for j := range row {
						wgrad[r*cols+j] = float32(math.NaN())
					}
					continue
				}
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, float64(v))
				}
				se := 0.0
				for _, v := range row {
					se += math.Exp(float64(v) - mx)
				}
				lse := mx + math.Log(se)
				sum += lse - float64(row[l])
				for j, v := range row {
					p := math.Exp(float64(v) - lse)
					if j == int(l) {
						p--
					}
					wgrad[r*cols+j] = float32(p * inv)
				}
			}
			wloss := float32(sum / float64(count)) // 0/0 = NaN when all are ignored
			// One ulp: the kernel's online rescaling and butterfly order
			// round the double sums differently (~1e-15 relative), which
			// moves a float32 result by at most one ulp; the absolute
			// 1e-12 covers row terms and p − 1 that cancel towards 0.
			c.expect("loss", 0, c.outF32("loss")[0], wloss, 1, 1e-12)
			if gID != "" {
				c.expectAll("grad", c.outF32(gID), wgrad, 1, 1e-12)
			}
			if gID != "x" {
				c.expectAll("x (input)", c.outF32("x"), x, 0, 0)
			}
		})
	}
}
