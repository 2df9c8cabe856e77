package devicetest

import (
	"fmt"
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

// testAttention checks the attention family: GemmBatched, SoftmaxMasked,
// SoftmaxMaskedGrad and Permute4, against float64 references, and their
// argument errors.
func (s *suite) testAttention(t *testing.T) {
	t.Run("GemmBatched", s.testGemmBatched)
	t.Run("SoftmaxMasked", s.testSoftmaxMasked)
	t.Run("SoftmaxMaskedGrad", s.testSoftmaxMaskedGrad)
	t.Run("Permute4", s.testPermute4)
	t.Run("Errors", s.testAttentionErrors)
}

// batchedCase is one GemmBatched call: the product shape, the batch, the
// element strides (the *Pad fields are added to the packed stride m·k, k·n
// or m·n; a negative strideA or strideB pad means stride 0, one matrix
// shared by every entry) and the element offsets of the three views.
type batchedCase struct {
	name             string
	m, n, k, batch   int
	padA, padB, padC int
	offA, offB, offC int
	flags            gemmFlags
	sc               gemmScalars
	poisonAB         bool // A and B hold NaN: alpha = 0 must not read them
}

func (s *suite) testGemmBatched(t *testing.T) {
	var cases []batchedCase
	// Every transpose combination, with beta 0 (C poisoned with NaN) and
	// with alpha and beta both in play, on odd sizes.
	for _, f := range allFlags {
		for _, sc := range []gemmScalars{{1, 0}, {0.5, 1.5}} {
			cases = append(cases, batchedCase{name: fmt.Sprintf("7x13x5x3/%s/%s", f, sc),
				m: 7, n: 13, k: 5, batch: 3, flags: f, sc: sc})
		}
		cases = append(cases,
			// q·kᵀ and att·v of one attention head batch, odd T.
			batchedCase{name: fmt.Sprintf("33x33x16x4/%s", f), m: 33, n: 33, k: 16, batch: 4, flags: f, sc: gemmScalars{0.25, 0}},
			// shared operands (stride 0), as a convolution's weights
			batchedCase{name: fmt.Sprintf("sharedA/%s", f), m: 5, n: 9, k: 6, batch: 4, padA: -1, flags: f, sc: gemmScalars{1, 0}},
			batchedCase{name: fmt.Sprintf("sharedB/%s", f), m: 9, n: 5, k: 6, batch: 4, padB: -1, flags: f, sc: gemmScalars{-1, 1}},
			// gaps between the matrices, which must be left alone, and views
			batchedCase{name: fmt.Sprintf("padded/%s", f), m: 6, n: 7, k: 3, batch: 5, padA: 3, padB: 1, padC: 5,
				offA: 1, offB: 2, offC: 3, flags: f, sc: gemmScalars{1, 0.5}},
		)
	}
	cases = append(cases,
		batchedCase{name: "1x1x1x1", m: 1, n: 1, k: 1, batch: 1, sc: gemmScalars{1, 0}},
		batchedCase{name: "1x1x1x37", m: 1, n: 1, k: 1, batch: 37, flags: gemmFlags{true, true}, sc: gemmScalars{2, 0}},
		batchedCase{name: "17x9x33x5", m: 17, n: 9, k: 33, batch: 5, flags: gemmFlags{false, true}, sc: gemmScalars{1, 0}},
		batchedCase{name: "65x70x130x2", m: 65, n: 70, k: 130, batch: 2, flags: gemmFlags{true, false}, sc: gemmScalars{1, 1}},
		// Many small products, which backends run side by side.
		batchedCase{name: "8x8x8x200", m: 8, n: 8, k: 8, batch: 200, padC: 3, flags: gemmFlags{false, true}, sc: gemmScalars{1, 0}},
		// alpha = 0: C = beta·C, and A and B (NaN here) are not read.
		batchedCase{name: "alpha0/beta0", m: 3, n: 4, k: 5, batch: 3, padC: 2, sc: gemmScalars{0, 0}, poisonAB: true},
		batchedCase{name: "alpha0/beta2", m: 3, n: 4, k: 5, batch: 3, padC: 2, sc: gemmScalars{0, 2}, poisonAB: true},
	)
	for _, bc := range cases {
		t.Run(bc.name, func(t *testing.T) { s.checkGemmBatched(t, bc) })
	}
}

func (s *suite) checkGemmBatched(t *testing.T, bc batchedCase) {
	r := newRand(t)
	m, n, k, batch := bc.m, bc.n, bc.k, bc.batch
	stride := func(pad, packed int) int {
		if pad < 0 {
			return 0
		}
		return packed + pad
	}
	sa, sb, sc := stride(bc.padA, m*k), stride(bc.padB, k*n), m*n+bc.padC
	na, nb, nc := (batch-1)*sa+m*k, (batch-1)*sb+k*n, (batch-1)*sc+m*n
	a := uniform(r, na, -1, 1)
	b := uniform(r, nb, -1, 1)
	if bc.poisonAB {
		a, b = filled(na, nan), filled(nb, nan)
	}
	c0 := uniform(r, nc, -1, 1)
	for i := 0; i < batch; i++ {
		for e := m * n; e < sc && i*sc+e < nc; e++ {
			c0[i*sc+e] = sentinel // the gaps: never written
		}
		if bc.sc.beta == 0 {
			// C must not be read when beta is 0: NaN in it must not leak.
			for e := 0; e < m*n; e++ {
				c0[i*sc+e] = nan
			}
		}
	}
	da, db, dc := s.viewOf(t, a, bc.offA), s.viewOf(t, b, bc.offB), s.viewOf(t, c0, bc.offC)
	do(t, "GemmBatched", func() error {
		return s.dev.GemmBatched(bc.flags.ta, bc.flags.tb, m, n, k, bc.sc.alpha, da, sa, db, sb, bc.sc.beta, dc, sc, batch)
	})
	got := s.read(t, dc, nc)
	c := newChecker(t, "C")
	// The bound of checkGemm, per entry: (k+3)·u·(|alpha|·Σ|a||b| + |beta·c|).
	gamma := float64(k+3) * u
	for i := 0; i < batch; i++ {
		var ref, mag []float64
		ci := c0[i*sc : i*sc+m*n]
		if bc.sc.alpha == 0 {
			ref, mag = make([]float64, m*n), make([]float64, m*n)
			for e, v := range ci {
				if bc.sc.beta != 0 {
					ref[e] = float64(bc.sc.beta) * float64(v)
				}
				mag[e] = math.Abs(ref[e])
			}
		} else {
			ref, mag = gemmRef(bc.flags, m, n, k, bc.sc, a[i*sa:i*sa+m*k], b[i*sb:i*sb+k*n], ci)
		}
		for e := range ref {
			c.near(i*sc+e, got[i*sc+e], ref[e], gamma*mag[e]+1e-30)
		}
		for e := m * n; e < sc && i*sc+e < nc; e++ {
			c.equal(i*sc+e, got[i*sc+e], sentinel)
		}
	}
	c.done()
}

// maskedCase is one SoftmaxMasked shape: rows of cols, the scale, and the
// causal mask with qLen queries per sequence (rows = sequences·qLen).
type maskedCase struct {
	rows, cols int
	scale      float32
	causal     bool
	qLen       int
}

func (mc maskedCase) String() string {
	s := fmt.Sprintf("%dx%d/scale%g", mc.rows, mc.cols, mc.scale)
	if mc.causal {
		s += fmt.Sprintf("/causal_q%d", mc.qLen)
	}
	return s
}

var maskedCases = []maskedCase{
	{1, 1, 1, false, 0},
	{7, 13, 0.5, false, 0},
	{3, 1000, 0.125, false, 0},
	{5, 9, -2, false, 0},
	{1, 1, 1, true, 1},
	{12, 6, 0.25, true, 6},    // two sequences of 6, no cache: the lower triangle
	{9, 8, 1, true, 3},        // three sequences, 3 queries after 5 cached keys
	{4, 37, 0.3, true, 1},     // decoding one token against 36 cached keys
	{70, 35, 0.177, true, 35}, // two sequences, rows longer than a warp
	{3, 600, 0.05, true, 600},
}

// maskedValid is how many leading columns of row r the mask keeps.
func (mc maskedCase) maskedValid(r int) int {
	if !mc.causal {
		return mc.cols
	}
	return r%mc.qLen + mc.cols - mc.qLen + 1
}

// maskedSoftmaxRef is SoftmaxMasked in float64, with masked entries 0.
func maskedSoftmaxRef(x []float32, mc maskedCase) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < mc.rows; r++ {
		row := x[r*mc.cols : r*mc.cols+mc.maskedValid(r)]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(mc.scale)*float64(v))
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(mc.scale)*float64(v) - mx)
			y[r*mc.cols+j] = e
			sum += e
		}
		for j := range row {
			y[r*mc.cols+j] /= sum
		}
	}
	return y
}

func (s *suite) testSoftmaxMasked(t *testing.T) {
	for _, mc := range maskedCases {
		for _, inPlace := range []bool{false, true} {
			name := mc.String()
			if inPlace {
				if mc.rows*mc.cols > 100 {
					continue
				}
				name += "/in_place"
			}
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				rows, cols := mc.rows, mc.cols
				x := uniform(r, rows*cols, -8, 8)
				bx := s.upload(t, x)
				by := bx
				if !inPlace {
					by = s.upload(t, filled(rows*cols, nan))
				}
				do(t, "SoftmaxMasked", func() error {
					return s.dev.SoftmaxMasked(bx, by, rows, cols, mc.scale, mc.causal, mc.qLen)
				})
				got := s.read(t, by, rows*cols)
				want := maskedSoftmaxRef(x, mc)
				c := newChecker(t, "y")
				for i := 0; i < rows; i++ {
					valid := mc.maskedValid(i)
					zmax := 0.0
					for j := 0; j < valid; j++ {
						zmax = math.Max(zmax, math.Abs(float64(mc.scale)*float64(x[i*cols+j])))
					}
					for j := 0; j < cols; j++ {
						k := i*cols + j
						if j >= valid {
							c.equal(k, got[k], 0) // masked: exactly 0
							continue
						}
						// Softmax's bound with z = scale·x for x: the row
						// sum (valid−1)·u, the division u, exp itself
						// transRel, the subtraction z_j − max 2·(|z_j| +
						// |z_max|)·u, and as much again for rounding
						// scale·x (in z_j and in the maximum).
						z := math.Abs(float64(mc.scale) * float64(x[k]))
						rel := float64(valid+2)*u + 4*(z+zmax)*u + transRel
						c.near(k, got[k], want[k], rel*want[k]+1e-30)
					}
				}
				c.done()
			})
		}
	}
}

func (s *suite) testSoftmaxMaskedGrad(t *testing.T) {
	for _, mc := range maskedCases {
		for _, alias := range []bool{false, true} {
			name := mc.String()
			if alias {
				if mc.rows*mc.cols > 100 {
					continue
				}
				name += "/dx=dy"
			}
			s.checkSoftmaxMaskedGrad(t, name, mc, alias)
		}
	}
}

// checkSoftmaxMaskedGrad runs one SoftmaxMaskedGrad case; alias passes dy
// as dx.
func (s *suite) checkSoftmaxMaskedGrad(t *testing.T, name string, mc maskedCase, alias bool) {
	t.Run(name, func(t *testing.T) {
		r := newRand(t)
		rows, cols := mc.rows, mc.cols
		yr := maskedSoftmaxRef(uniform(r, rows*cols, -8, 8), mc)
		y := make([]float32, len(yr))
		for i, v := range yr {
			y[i] = float32(v)
		}
		g := uniform(r, rows*cols, -1, 1)
		by, bdy := s.upload(t, y), s.upload(t, g)
		bdx := bdy
		if !alias {
			bdx = s.upload(t, filled(rows*cols, nan))
		}
		do(t, "SoftmaxMaskedGrad", func() error {
			return s.dev.SoftmaxMaskedGrad(by, bdy, bdx, rows, cols, mc.scale)
		})
		got := s.read(t, bdx, rows*cols)
		sc := float64(mc.scale)
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
				if y[k] == 0 {
					c.equal(k, got[k], 0) // masked entries get 0
					continue
				}
				want := sc * float64(y[k]) * (float64(g[k]) - dot)
				// SoftmaxGrad's bound, (cols+4)·u·|y|·(|dy| + Σ|dy⊙y|),
				// times |scale|, plus one rounding for the scaling.
				tol := float64(cols+5)*u*math.Abs(sc)*float64(y[k])*(math.Abs(float64(g[k]))+adot) + 1e-30
				c.near(k, got[k], want, tol)
			}
		}
		c.done()
	})
}

// permutations4 lists the 24 permutations of 0…3 in lexicographic order.
func permutations4() [][4]int {
	var out [][4]int
	for a := 0; a < 4; a++ {
		for b := 0; b < 4; b++ {
			for c := 0; c < 4; c++ {
				d := 6 - a - b - c
				if a == b || a == c || b == c || d < 0 || d > 3 || d == a || d == b || d == c {
					continue
				}
				out = append(out, [4]int{a, b, c, d})
			}
		}
	}
	return out
}

// permuteRef is x.permute(perm).contiguous() for x of dimensions dims.
func permuteRef(x []float32, dims, perm [4]int) []float32 {
	strides := [4]int{dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1}
	od := [4]int{dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]}
	y := make([]float32, 0, len(x))
	for i0 := 0; i0 < od[0]; i0++ {
		for i1 := 0; i1 < od[1]; i1++ {
			for i2 := 0; i2 < od[2]; i2++ {
				for i3 := 0; i3 < od[3]; i3++ {
					var src [4]int // x's coordinates
					src[perm[0]], src[perm[1]], src[perm[2]], src[perm[3]] = i0, i1, i2, i3
					y = append(y, x[src[0]*strides[0]+src[1]*strides[1]+src[2]*strides[2]+src[3]*strides[3]])
				}
			}
		}
	}
	return y
}

func (s *suite) testPermute4(t *testing.T) {
	type pcase struct {
		dims  [4]int
		perms [][4]int
	}
	cases := []pcase{
		{[4]int{2, 3, 4, 5}, permutations4()},                       // all 24, distinct sizes
		{[4]int{3, 1, 4, 1}, permutations4()[:12]},                  // unit axes
		{[4]int{10, 3, 4, 8}, [][4]int{{1, 2, 0, 3}, {2, 0, 1, 3}}}, // attention head split [B·T,3,H,D] and merge
		{[4]int{7, 1, 1, 300}, [][4]int{{3, 0, 1, 2}, {0, 1, 2, 3}}},
		{[4]int{33, 17, 9, 5}, [][4]int{{3, 2, 1, 0}, {0, 2, 1, 3}}},
	}
	for ci, pc := range cases {
		for pi, perm := range pc.perms {
			name := fmt.Sprintf("%dx%dx%dx%d/%d%d%d%d", pc.dims[0], pc.dims[1], pc.dims[2], pc.dims[3],
				perm[0], perm[1], perm[2], perm[3])
			t.Run(name, func(t *testing.T) {
				r := newRand(t)
				n := pc.dims[0] * pc.dims[1] * pc.dims[2] * pc.dims[3]
				x := uniform(r, n, -4, 4)
				// Views at varied offsets; the output poisoned with NaN.
				bx := s.viewOf(t, x, (ci+pi)%5)
				by := s.viewOf(t, filled(n, nan), (ci+2*pi+1)%7)
				do(t, "Permute4", func() error { return s.dev.Permute4(bx, by, pc.dims, perm) })
				got := s.read(t, by, n)
				want := permuteRef(x, pc.dims, perm)
				c := newChecker(t, "y")
				for i := range want {
					c.equal(i, got[i], want[i]) // a copy: exact
				}
				c.done()
			})
		}
	}
}

func (s *suite) testAttentionErrors(t *testing.T) {
	d := s.dev
	f := func(t *testing.T, n int) device.Buffer { return s.alloc(t, device.Float32, n) }
	t.Run("GemmBatched", func(t *testing.T) {
		const m, n, k, batch = 3, 4, 5, 3
		a, b, c := f(t, batch*m*k), f(t, batch*k*n), f(t, batch*m*n)
		do(t, "GemmBatched", func() error { return d.GemmBatched(false, false, m, n, k, 1, a, m*k, b, k*n, 0, c, m*n, batch) })
		call := func(a, b, c device.Buffer, sa, sb, sc, batch int) func() error {
			return func() error { return d.GemmBatched(true, false, m, n, k, 1, a, sa, b, sb, 0, c, sc, batch) }
		}
		expectErr(t, "GemmBatched", call(a, b, c, m*k, k*n, m*n-1, batch), device.ErrInvalid) // C_i overlap
		expectErr(t, "GemmBatched", call(a, b, c, m*k, k*n, 0, batch), device.ErrInvalid)
		expectErr(t, "GemmBatched", call(a, b, c, -1, k*n, m*n, batch), device.ErrInvalid)
		expectErr(t, "GemmBatched", call(a, b, c, m*k, -k, m*n, batch), device.ErrInvalid)
		expectErr(t, "GemmBatched", call(a, b, c, m*k, k*n, m*n, 0), device.ErrInvalid)
		expectErr(t, "GemmBatched", func() error { return d.GemmBatched(false, false, m, 0, k, 1, a, 0, b, 0, 0, c, m*n, 1) }, device.ErrInvalid)
		// Buffers one element short of the last matrix.
		expectErr(t, "GemmBatched", call(f(t, batch*m*k-1), b, c, m*k, k*n, m*n, batch), device.ErrSize)
		expectErr(t, "GemmBatched", call(a, f(t, batch*k*n-1), c, m*k, k*n, m*n, batch), device.ErrSize)
		expectErr(t, "GemmBatched", call(a, b, f(t, batch*m*n-1), m*k, k*n, m*n, batch), device.ErrSize)
		expectErr(t, "GemmBatched", call(a, b, c, m*k, k*n, m*n+1, batch), device.ErrSize) // padded C needs more
		expectErr(t, "GemmBatched", call(a, b, c, m*k, k*n, 1<<40, batch), device.ErrSize, device.ErrInvalid)
		expectErr(t, "GemmBatched", call(nil, b, c, m*k, k*n, m*n, batch), device.ErrNilBuffer)
		expectErr(t, "GemmBatched", call(a, &fakeBuffer{dt: device.Float32, n: 1 << 10}, c, m*k, k*n, m*n, batch), device.ErrDeviceMismatch)
		expectErr(t, "GemmBatched", call(a, b, s.alloc(t, device.Int32, batch*m*n), m*k, k*n, m*n, batch), device.ErrDType)
	})
	t.Run("SoftmaxMasked", func(t *testing.T) {
		const rows, cols = 6, 4
		x, y := f(t, rows*cols), f(t, rows*cols)
		do(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, y, rows, cols, 1, true, cols) })
		do(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, y, rows, cols, 1, false, 0) }) // qLen ignored
		for _, q := range []int{0, -1, cols + 1} {
			expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, y, rows, cols, 1, true, q) }, device.ErrInvalid)
		}
		expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, y, 0, cols, 1, false, 0) }, device.ErrInvalid)
		expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, y, rows, -1, 1, false, 0) }, device.ErrInvalid)
		expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(f(t, rows*cols-1), y, rows, cols, 1, false, 0) }, device.ErrSize)
		expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(x, f(t, rows*cols-1), rows, cols, 1, true, 2) }, device.ErrSize)
		expectErr(t, "SoftmaxMasked", func() error { return d.SoftmaxMasked(nil, y, rows, cols, 1, false, 0) }, device.ErrNilBuffer)
	})
	t.Run("SoftmaxMaskedGrad", func(t *testing.T) {
		const rows, cols = 3, 5
		y, dy, dx := f(t, rows*cols), f(t, rows*cols), f(t, rows*cols)
		do(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(y, dy, dx, rows, cols, 0.5) })
		expectErr(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(y, dy, dx, rows, 0, 0.5) }, device.ErrInvalid)
		expectErr(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(f(t, rows*cols-1), dy, dx, rows, cols, 1) }, device.ErrSize)
		expectErr(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(y, f(t, rows*cols-1), dx, rows, cols, 1) }, device.ErrSize)
		expectErr(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(y, dy, f(t, rows*cols-1), rows, cols, 1) }, device.ErrSize)
		expectErr(t, "SoftmaxMaskedGrad", func() error { return d.SoftmaxMaskedGrad(y, dy, nil, rows, cols, 1) }, device.ErrNilBuffer)
	})
	t.Run("Permute4", func(t *testing.T) {
		dims := [4]int{2, 3, 4, 5}
		x, y := f(t, 120), f(t, 120)
		do(t, "Permute4", func() error { return d.Permute4(x, y, dims, [4]int{3, 1, 0, 2}) })
		for _, perm := range [][4]int{{0, 1, 2, 2}, {0, 1, 2, 4}, {-1, 0, 1, 2}, {3, 3, 3, 3}, {1, 0, 3, 3}} {
			expectErr(t, "Permute4", func() error { return d.Permute4(x, y, dims, perm) }, device.ErrInvalid)
		}
		expectErr(t, "Permute4", func() error { return d.Permute4(x, y, [4]int{2, 3, 0, 5}, [4]int{0, 1, 2, 3}) }, device.ErrInvalid)
		expectErr(t, "Permute4", func() error { return d.Permute4(f(t, 119), y, dims, [4]int{0, 1, 2, 3}) }, device.ErrSize)
		expectErr(t, "Permute4", func() error { return d.Permute4(x, f(t, 119), dims, [4]int{1, 0, 2, 3}) }, device.ErrSize)
		expectErr(t, "Permute4", func() error { return d.Permute4(x, nil, dims, [4]int{1, 0, 2, 3}) }, device.ErrNilBuffer)
	})
}
