package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// testEmbedding checks Gather, ScatterAdd and CrossEntropy (the embedding
// family of Ops2) against float64 references, and their argument checks.
func (s *suite) testEmbedding(t *testing.T) {
	t.Run("Gather", s.testGather)
	t.Run("ScatterAdd", s.testScatterAdd)
	t.Run("CrossEntropy", s.testCrossEntropy)
	t.Run("Errors", s.testEmbeddingErrors)
}

// embShape is a rows×cols table looked up by n indices.
type embShape struct{ rows, cols, n int }

func (e embShape) String() string { return fmt.Sprintf("%dx%d/n=%d", e.rows, e.cols, e.n) }

// embShapes: a single element; odd sizes; more lookups than rows (so
// indices repeat); wide rows longer than a GPU block; many narrow rows; and
// one lookup big enough (n·cols > 2¹⁷) for a backend to split the work.
var embShapes = []embShape{
	{1, 1, 1}, {10, 7, 13}, {5, 1000, 9}, {1000, 3, 37}, {50, 64, 200}, {100, 512, 300}, {3, 33, 1000},
}

// embIndices draws n indices in [0, rows), with the first and last rows
// among them.
func embIndices(r *rand.Rand, rows, n int) []int32 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(r.IntN(rows))
	}
	idx[0] = int32(rows - 1)
	if n > 1 {
		idx[n-1] = 0
	}
	return idx
}

// view returns a window of n elements at off into b.
func (s *suite) view(t *testing.T, b device.Buffer, off, n int) device.Buffer {
	t.Helper()
	var v device.Buffer
	do(t, "View", func() error {
		var err error
		v, err = s.dev.View(b, off, n)
		return err
	})
	return v
}

func (s *suite) testGather(t *testing.T) {
	for _, sh := range embShapes {
		for _, views := range []bool{false, true} {
			name := sh.String()
			if views {
				name += "/views"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				rows, cols, n := sh.rows, sh.cols, sh.n
				table := uniform(r, rows*cols, -4, 4)
				idx := embIndices(r, rows, n)
				bt := s.upload(t, table)
				var bi, bo device.Buffer
				if views {
					// idx and out at element offsets 3 and 5 of larger
					// buffers: the offsets must be honoured.
					bi = s.view(t, s.uploadI32(t, append([]int32{-1, -1, -1}, idx...)), 3, n)
					bo = s.view(t, s.upload(t, filled(n*cols+5, nan)), 5, n*cols)
				} else {
					bi = s.uploadI32(t, idx)
					bo = s.upload(t, filled(n*cols, nan))
				}
				do(t, "Gather", func() error { return s.dev.Gather(bt, bi, bo, rows, cols, n) })
				got := s.read(t, bo, n*cols)
				c := newChecker(t, "out")
				for i, row := range idx {
					for j := 0; j < cols; j++ {
						// A copy: exact.
						c.equal(i*cols+j, got[i*cols+j], table[int(row)*cols+j])
					}
				}
				c.done()
			})
		}
	}
}

// scatterInput is n×cols gradient rows whose magnitudes span six decades,
// so that adding them in another order changes the rounded sums.
func scatterInput(r *rand.Rand, n, cols int) []float32 {
	x := uniform(r, n*cols, -1, 1)
	for i := range x {
		x[i] *= float32(math.Pow(10, float64(r.IntN(7)-3)))
	}
	return x
}

func (s *suite) testScatterAdd(t *testing.T) {
	shapes := append([]embShape{{1, 4, 1}, {7, 40, 500}, {1, 20, 777}}, embShapes...)
	for _, sh := range shapes {
		t.Run(sh.String(), func(t *testing.T) {
			r := newRand(t)
			rows, cols, n := sh.rows, sh.cols, sh.n
			dtable := uniform(r, rows*cols, -2, 2) // accumulated onto, not overwritten
			idx := embIndices(r, rows, n)
			if n > 4 {
				// A run of the same row, and that row again later.
				for i := 1; i < 4; i++ {
					idx[i] = idx[0]
				}
			}
			dout := scatterInput(r, n, cols)
			bt := s.upload(t, dtable)
			bi := s.uploadI32(t, idx)
			bo := s.upload(t, dout)
			do(t, "ScatterAdd", func() error { return s.dev.ScatterAdd(bt, bi, bo, rows, cols, n) })
			got := s.read(t, bt, rows*cols)

			// The contract: each element is the float32 sum of its terms in
			// ascending i, on every backend, so the check is bit for bit.
			want := append([]float32(nil), dtable...)
			ref := f64(dtable)
			for i, row := range idx {
				for j := 0; j < cols; j++ {
					want[int(row)*cols+j] += dout[i*cols+j]
					ref[int(row)*cols+j] += float64(dout[i*cols+j])
				}
			}
			c := newChecker(t, "dtable")
			for i := range want {
				c.equal(i, got[i], want[i])
			}
			c.done()
			// And the float32 sums are what float64 gives within the
			// rounding of k additions (k the count of terms, up to n),
			// relative to the sum of magnitudes: a check of the reference.
			mags := make([]float64, rows*cols)
			cnt := make([]int, rows)
			for i := range mags {
				mags[i] = math.Abs(float64(dtable[i]))
			}
			for i, row := range idx {
				cnt[row]++
				for j := 0; j < cols; j++ {
					mags[int(row)*cols+j] += math.Abs(float64(dout[i*cols+j]))
				}
			}
			c = newChecker(t, "dtable (float64)")
			for i := range ref {
				c.near(i, want[i], ref[i], float64(cnt[i/cols]+1)*u*mags[i])
			}
			c.done()
			// The same call again repeats bit for bit.
			s.write(t, bt, dtable)
			do(t, "ScatterAdd", func() error { return s.dev.ScatterAdd(bt, bi, bo, rows, cols, n) })
			again := s.read(t, bt, rows*cols)
			c = newChecker(t, "dtable (second run)")
			for i := range again {
				if math.Float32bits(again[i]) != math.Float32bits(got[i]) {
					c.fail(i, "got %v, first run %v", again[i], got[i])
				}
			}
			c.done()
		})
	}
}

// xentRef is the float64 reference of CrossEntropy: the mean over the
// rows whose label is not ignore of lse(row) − row[label], the gradient,
// the count of rows kept and the mean magnitude of the terms (|lse| +
// |x_label| + 1) that bounds the rounding of the loss.
func xentRef(x []float32, labels []int32, rows, cols int, ignore int32) (loss float64, grad []float64, count int, mag float64) {
	grad = make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		if labels[r] != ignore {
			count++
		}
	}
	var sum float64
	for r := 0; r < rows; r++ {
		lab := labels[r]
		if lab == ignore {
			continue
		}
		row := x[r*cols : (r+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var se float64
		for _, v := range row {
			se += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(se)
		sum += lse - float64(row[lab])
		mag += math.Abs(lse) + math.Abs(float64(row[lab])) + 1
		for j, v := range row {
			g := math.Exp(float64(v)-mx) / se
			if j == int(lab) {
				g--
			}
			grad[r*cols+j] = g / float64(count)
		}
	}
	return sum / float64(count), grad, count, mag / float64(count)
}

// xentCase is one CrossEntropy call: its shape, the ignore index, the
// share of ignored rows, and the variants.
type xentCase struct {
	rows, cols int
	ignore     int32
	ignored    float64 // probability that a row's label is the ignore index
	extreme    bool    // logits ±100 mixed in
	noGrad     bool    // grad nil
	alias      bool    // grad is the logits buffer
}

func (c xentCase) String() string {
	s := fmt.Sprintf("%dx%d/ignore=%d/p=%g", c.rows, c.cols, c.ignore, c.ignored)
	if c.extreme {
		s += "/extreme"
	}
	if c.noGrad {
		s += "/grad=nil"
	}
	if c.alias {
		s += "/grad=logits"
	}
	return s
}

func (s *suite) testCrossEntropy(t *testing.T) {
	var cases []xentCase
	for _, sh := range []shape2{{1, 1}, {7, 13}, {64, 10}, {3, 1000}, {2, 5000}, {33, 257}} {
		cases = append(cases,
			xentCase{rows: sh.rows, cols: sh.cols, ignore: -100, ignored: 0.25},
			xentCase{rows: sh.rows, cols: sh.cols, ignore: -100, ignored: 0.25, extreme: true},
			xentCase{rows: sh.rows, cols: sh.cols, ignore: -100, ignored: 0, noGrad: true},
			xentCase{rows: sh.rows, cols: sh.cols, ignore: -100, ignored: 0.25, alias: true})
	}
	cases = append(cases,
		// An ignore index that is also a valid class: rows labelled 0 are
		// dropped, and -1 the common alternative to -100.
		xentCase{rows: 40, cols: 17, ignore: 0, ignored: 0.3},
		xentCase{rows: 40, cols: 17, ignore: -1, ignored: 0.3},
		// GPT-2's vocabulary: rows far longer than any block.
		xentCase{rows: 6, cols: 50257, ignore: -100, ignored: 0.2},
		xentCase{rows: 6, cols: 50257, ignore: -100, ignored: 0.2, extreme: true, alias: true})
	for _, xc := range cases {
		t.Run(xc.String(), func(t *testing.T) {
			r := newRand(t)
			x := softmaxInput(r, xc.rows, xc.cols, xc.extreme)
			labels := make([]int32, xc.rows)
			for i := range labels {
				labels[i] = int32(r.IntN(xc.cols))
				if r.Float64() < xc.ignored {
					labels[i] = xc.ignore
				}
			}
			// At least one row kept (all ignored has its own test).
			if labels[0] == xc.ignore {
				labels[0] = int32(xc.cols - 1)
				if labels[0] == xc.ignore {
					labels[0] = 1 % int32(xc.cols)
				}
			}
			s.checkCrossEntropy(t, xc, x, labels)
		})
	}
	t.Run("all_ignored", func(t *testing.T) {
		const rows, cols = 5, 9
		r := newRand(t)
		x := uniform(r, rows*cols, -4, 4)
		bx := s.upload(t, x)
		bl := s.uploadI32(t, filled32(rows, -100))
		loss := s.upload(t, []float32{0})
		grad := s.upload(t, filled(rows*cols, nan))
		do(t, "CrossEntropy", func() error { return s.dev.CrossEntropy(bx, bl, rows, cols, -100, loss, grad) })
		if got := s.read(t, loss, 1)[0]; !math.IsNaN(float64(got)) {
			t.Errorf("loss = %v; want NaN (the mean of no rows, as PyTorch)", got)
		}
		g := s.read(t, grad, rows*cols)
		c := newChecker(t, "grad")
		for i, v := range g {
			c.equal(i, v, 0)
		}
		c.done()
	})
	t.Run("reference_gradient", func(t *testing.T) {
		// The float64 reference gradient against central differences of
		// the float64 reference loss (h = 1e-5: truncation ~h², rounding
		// ~1e-16/h, both far below the 1e-8 allowed).
		const rows, cols = 4, 6
		r := newRand(t)
		x := uniform(r, rows*cols, -3, 3)
		labels := []int32{2, -100, 5, 0}
		_, grad, _, _ := xentRef(x, labels, rows, cols, -100)
		xd := f64(x)
		// The loss at float64 logits (xentRef takes float32, which would
		// round the perturbation away).
		lossAt := func(xd []float64) float64 {
			var sum float64
			cnt := 0
			for r := 0; r < rows; r++ {
				if labels[r] == -100 {
					continue
				}
				cnt++
				row := xd[r*cols : (r+1)*cols]
				var se float64
				for _, v := range row {
					se += math.Exp(v)
				}
				sum += math.Log(se) - row[labels[r]]
			}
			return sum / float64(cnt)
		}
		const h = 1e-5
		c := newChecker(t, "reference grad")
		for i := range xd {
			p := append([]float64(nil), xd...)
			m := append([]float64(nil), xd...)
			p[i] += h
			m[i] -= h
			fd := (lossAt(p) - lossAt(m)) / (2 * h)
			c.near(i, float32(grad[i]), fd, 1e-7)
		}
		c.done()
	})
}

func filled32(n int, v int32) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

// checkCrossEntropy runs one CrossEntropy call against xentRef.
func (s *suite) checkCrossEntropy(t *testing.T, xc xentCase, x []float32, labels []int32) {
	rows, cols := xc.rows, xc.cols
	n := rows * cols
	bx := s.upload(t, x)
	bl := s.uploadI32(t, labels)
	loss := s.upload(t, []float32{nan})
	var grad device.Buffer
	switch {
	case xc.alias:
		grad = bx
	case !xc.noGrad:
		grad = s.upload(t, filled(n, nan))
	}
	do(t, "CrossEntropy", func() error { return s.dev.CrossEntropy(bx, bl, rows, cols, xc.ignore, loss, grad) })
	want, wgrad, count, mag := xentRef(x, labels, rows, cols, xc.ignore)
	got := s.read(t, loss, 1)[0]
	// Each kept row's term is a log-sum-exp (float64 sums or float32
	// exp/log: transRel of its magnitude); the mean over count float32
	// terms adds count·u of the mean magnitude, rounding the result u
	// more; transAbs for terms that cancel to near 0.
	tol := (2*float64(count)*u+transRel)*mag + transAbs
	if math.IsNaN(float64(got)) || math.Abs(float64(got)-want) > tol {
		t.Errorf("loss = %v; want %v ± %.3g (%d of %d rows kept)", got, want, tol, count, rows)
	}
	if grad == nil {
		return
	}
	g := s.read(t, grad, n)
	c := newChecker(t, "grad")
	for i := range g {
		// softmax − onehot over count: transRel of the value through exp,
		// and transAbs of the element scale 1/count where p − 1 cancels.
		// Ignored rows are exactly 0.
		if labels[i/cols] == xc.ignore {
			c.equal(i, g[i], 0)
			continue
		}
		c.near(i, g[i], wgrad[i], transRel*math.Abs(wgrad[i])+transAbs/float64(count))
	}
	c.done()
}

// testEmbeddingErrors checks indices and labels out of range (ErrInvalid),
// bad dimensions, and every buffer argument nil, freed, of the wrong dtype
// or one element short.
func (s *suite) testEmbeddingErrors(t *testing.T) {
	const rows, cols, n = 4, 3, 5
	d := s.dev
	// Out-of-range indices: each call must fail with ErrInvalid.
	for _, bad := range []int32{rows, -1, math.MaxInt32, math.MinInt32} {
		t.Run(fmt.Sprintf("index=%d", bad), func(t *testing.T) {
			idx := []int32{0, 1, bad, 3, 2}
			tb := s.upload(t, filled(rows*cols, 1))
			ib := s.uploadI32(t, idx)
			ob := s.upload(t, filled(n*cols, 1))
			expectErr(t, "Gather", func() error { return d.Gather(tb, ib, ob, rows, cols, n) }, device.ErrInvalid)
			expectErr(t, "ScatterAdd", func() error { return d.ScatterAdd(tb, ib, ob, rows, cols, n) }, device.ErrInvalid)
			// An index the call does not read (past n) is not checked.
			do(t, "Gather", func() error { return d.Gather(tb, ib, ob, rows, cols, 2) })
		})
	}
	for _, bad := range []int32{cols, -1, -101, math.MaxInt32} {
		t.Run(fmt.Sprintf("label=%d", bad), func(t *testing.T) {
			x := s.upload(t, filled(n*cols, 0))
			lb := s.uploadI32(t, []int32{0, -100, bad, 2, 1})
			loss := s.upload(t, []float32{0})
			expectErr(t, "CrossEntropy", func() error { return d.CrossEntropy(x, lb, n, cols, -100, loss, nil) }, device.ErrInvalid)
			expectErr(t, "CrossEntropy", func() error { return d.CrossEntropy(x, lb, n, cols, -100, loss, x) }, device.ErrInvalid)
		})
	}
	t.Run("label=ignore_index", func(t *testing.T) {
		// -100 is allowed because it is the ignore index; 7 likewise.
		x := s.upload(t, filled(n*cols, 0))
		loss := s.upload(t, []float32{nan})
		do(t, "CrossEntropy", func() error {
			return d.CrossEntropy(x, s.uploadI32(t, []int32{0, -100, 1, -100, 2}), n, cols, -100, loss, nil)
		})
		do(t, "CrossEntropy", func() error {
			return d.CrossEntropy(x, s.uploadI32(t, []int32{7, 7, 1, 7, 2}), n, cols, 7, loss, nil)
		})
		// Equal logits: every kept row costs log(cols).
		if got := s.read(t, loss, 1)[0]; math.Abs(float64(got)-math.Log(cols)) > 4*u*math.Log(cols) {
			t.Errorf("loss = %v; want log(%d) = %v", got, cols, math.Log(cols))
		}
	})
	cases := []errCase{
		{op: "Gather", args: []arg{f32("table", rows*cols), i32("idx", n), f32("out", n*cols)},
			call: func(b []device.Buffer) error { return d.Gather(b[0], b[1], b[2], rows, cols, n) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0":  func(b []device.Buffer) error { return d.Gather(b[0], b[1], b[2], 0, cols, n) },
				"cols=-1": func(b []device.Buffer) error { return d.Gather(b[0], b[1], b[2], rows, -1, n) },
				"n=0":     func(b []device.Buffer) error { return d.Gather(b[0], b[1], b[2], rows, cols, 0) },
			}},
		{op: "ScatterAdd", args: []arg{f32("dtable", rows*cols), i32("idx", n), f32("dout", n*cols)},
			call: func(b []device.Buffer) error { return d.ScatterAdd(b[0], b[1], b[2], rows, cols, n) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=-3": func(b []device.Buffer) error { return d.ScatterAdd(b[0], b[1], b[2], -3, cols, n) },
				"cols=0":  func(b []device.Buffer) error { return d.ScatterAdd(b[0], b[1], b[2], rows, 0, n) },
				"n=-1":    func(b []device.Buffer) error { return d.ScatterAdd(b[0], b[1], b[2], rows, cols, -1) },
			}},
		{op: "CrossEntropy", args: []arg{f32("logits", n*cols), i32("labels", n), f32("loss", 1),
			{name: "grad", dt: device.Float32, n: n * cols, nilOK: true}},
			call: func(b []device.Buffer) error { return d.CrossEntropy(b[0], b[1], n, cols, -100, b[2], b[3]) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0":  func(b []device.Buffer) error { return d.CrossEntropy(b[0], b[1], 0, cols, -100, b[2], b[3]) },
				"cols=-2": func(b []device.Buffer) error { return d.CrossEntropy(b[0], b[1], n, -2, -100, b[2], b[3]) },
			}},
	}
	for _, ec := range cases {
		t.Run(ec.op, func(t *testing.T) { s.runErrCase(t, ec) })
	}
}

// runErrCase runs ec's valid call, then each buffer argument in turn nil
// (unless nilOK), freed, of the other dtype and one element short, then
// its bad scalars.
func (s *suite) runErrCase(t *testing.T, ec errCase) {
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
			if f.name == "nil" && a.nilOK {
				continue
			}
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
	if len(ec.args) == 4 && ec.args[3].nilOK {
		t.Run("grad=nil", func(t *testing.T) {
			b := valid(t)
			b[3] = nil
			do(t, ec.op, func() error { return ec.call(b) })
		})
	}
}
