package devicetest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kilnml/kiln/device"
)

// The norm family: BatchNorm, BatchNormGrad, LayerNorm and LayerNormGrad
// against float64 references written from PyTorch's definitions
// (F.batch_norm, F.layer_norm and their autograd formulas). The analytic
// gradient references are themselves checked against central finite
// differences of the float64 forward references, so a wrong formula in the
// reference cannot hide a wrong kernel.
//
// Tolerances. Every reference is exact to float64 precision; the device's
// results carry float32 roundings. With the statistics accumulated in
// float64 (as both backends do) an output is within an ulp or two of the
// reference; the tolerances allow 4u–8u (u = 2⁻²⁴) of the magnitude each
// result's rounding error scales with, which leaves room for a float32
// final step while still catching a biased variance, a misplaced eps, a
// lost term or a wrong accumulation by orders of magnitude.

// normCfg is PyTorch's default batch/layer norm configuration.
var normCfg = device.NormConfig{Eps: 1e-5, Momentum: 0.1}

// bnShape is a [outer, channels, inner] layout.
type bnShape struct{ outer, channels, inner int }

func (sh bnShape) String() string { return fmt.Sprintf("%dx%dx%d", sh.outer, sh.channels, sh.inner) }
func (sh bnShape) n() int         { return sh.outer * sh.channels * sh.inner }

// at is the flat index of x[o, c, i].
func (sh bnShape) at(o, c, i int) int { return (o*sh.channels+c)*sh.inner + i }

// bnStatsRef is the per-channel mean and biased variance of x, two-pass in
// float64.
func bnStatsRef(x []float64, sh bnShape) (mu, vr []float64) {
	mu, vr = make([]float64, sh.channels), make([]float64, sh.channels)
	cnt := float64(sh.outer * sh.inner)
	for c := range mu {
		for o := 0; o < sh.outer; o++ {
			for i := 0; i < sh.inner; i++ {
				mu[c] += x[sh.at(o, c, i)]
			}
		}
		mu[c] /= cnt
		for o := 0; o < sh.outer; o++ {
			for i := 0; i < sh.inner; i++ {
				d := x[sh.at(o, c, i)] - mu[c]
				vr[c] += d * d
			}
		}
		vr[c] /= cnt
	}
	return mu, vr
}

// bnApplyRef is y = (x − μ)/sqrt(σ² + eps)·gamma + beta (gamma, beta nil:
// 1 and 0).
func bnApplyRef(x, gamma, beta, mu, vr []float64, eps float64, sh bnShape) []float64 {
	y := make([]float64, len(x))
	for o := 0; o < sh.outer; o++ {
		for c := 0; c < sh.channels; c++ {
			g, b := 1.0, 0.0
			if gamma != nil {
				g = gamma[c]
			}
			if beta != nil {
				b = beta[c]
			}
			for i := 0; i < sh.inner; i++ {
				k := sh.at(o, c, i)
				y[k] = (x[k]-mu[c])/math.Sqrt(vr[c]+eps)*g + b
			}
		}
	}
	return y
}

// bnGradRef is the training-mode backward of batch norm (PyTorch's
// batch_norm_backward): with x̂ the normalised input and n = outer·inner,
// dx = gamma/sqrt(σ²+eps)·(dy − mean(dy) − x̂·mean(dy·x̂)), dgamma = Σ dy·x̂,
// dbeta = Σ dy.
func bnGradRef(x, dy, gamma []float64, eps float64, sh bnShape) (dx, dgamma, dbeta []float64) {
	mu, vr := bnStatsRef(x, sh)
	dx, dgamma, dbeta = make([]float64, len(x)), make([]float64, sh.channels), make([]float64, sh.channels)
	cnt := float64(sh.outer * sh.inner)
	for c := 0; c < sh.channels; c++ {
		is := 1 / math.Sqrt(vr[c]+eps)
		for o := 0; o < sh.outer; o++ {
			for i := 0; i < sh.inner; i++ {
				k := sh.at(o, c, i)
				dbeta[c] += dy[k]
				dgamma[c] += dy[k] * (x[k] - mu[c]) * is
			}
		}
		g := 1.0
		if gamma != nil {
			g = gamma[c]
		}
		for o := 0; o < sh.outer; o++ {
			for i := 0; i < sh.inner; i++ {
				k := sh.at(o, c, i)
				xh := (x[k] - mu[c]) * is
				dx[k] = g * is * (dy[k] - dbeta[c]/cnt - xh*dgamma[c]/cnt)
			}
		}
	}
	return dx, dgamma, dbeta
}

// lnRef is nn.LayerNorm over the rows of rows×cols x: y, and each row's
// mean and rstd = 1/sqrt(σ² + eps) (σ² biased).
func lnRef(x, gamma, beta []float64, eps float64, rows, cols int) (y, mean, rstd []float64) {
	y, mean, rstd = make([]float64, len(x)), make([]float64, rows), make([]float64, rows)
	for r := 0; r < rows; r++ {
		xr := x[r*cols : r*cols+cols]
		for _, v := range xr {
			mean[r] += v
		}
		mean[r] /= float64(cols)
		q := 0.0
		for _, v := range xr {
			q += (v - mean[r]) * (v - mean[r])
		}
		rstd[r] = 1 / math.Sqrt(q/float64(cols)+eps)
		for j, v := range xr {
			t := (v - mean[r]) * rstd[r]
			if gamma != nil {
				t *= gamma[j]
			}
			if beta != nil {
				t += beta[j]
			}
			y[r*cols+j] = t
		}
	}
	return y, mean, rstd
}

// lnGradRef is the backward of layer norm: with g = dy·gamma and x̂ the
// normalised row, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dgamma = Σ_rows
// dy·x̂, dbeta = Σ_rows dy.
func lnGradRef(x, dy, gamma []float64, eps float64, rows, cols int) (dx, dgamma, dbeta []float64) {
	_, mean, rstd := lnRef(x, nil, nil, eps, rows, cols)
	dx, dgamma, dbeta = make([]float64, len(x)), make([]float64, cols), make([]float64, cols)
	for r := 0; r < rows; r++ {
		var s, sx float64
		for j := 0; j < cols; j++ {
			k := r*cols + j
			xh := (x[k] - mean[r]) * rstd[r]
			g := dy[k]
			if gamma != nil {
				g *= gamma[j]
			}
			s += g
			sx += g * xh
			dgamma[j] += dy[k] * xh
			dbeta[j] += dy[k]
		}
		for j := 0; j < cols; j++ {
			k := r*cols + j
			xh := (x[k] - mean[r]) * rstd[r]
			g := dy[k]
			if gamma != nil {
				g *= gamma[j]
			}
			dx[k] = rstd[r] * (g - s/float64(cols) - xh*sx/float64(cols))
		}
	}
	return dx, dgamma, dbeta
}

// checkFD compares the analytic gradient grad of L = Σ w·f(p) with
// respect to p against central differences of the float64 reference f.
// With h = 1e-6 the truncation error h²·|f”'|/6 stays below 1e-8 even for
// a channel of two values (where σ is the distance of just two inputs and
// f”' reaches 10⁴), and the rounding error 1e-16·|L|/h is below 1e-7 for
// |L| ≤ 10³ (at most 300 values of order 1), so 1e-6·(1 + |grad|)
// separates a right formula from a wrong one.
func checkFD(t *testing.T, what string, p []float64, grad []float64, w []float64, f func() []float64) {
	t.Helper()
	const h = 1e-6
	loss := func() float64 {
		y := f()
		s := 0.0
		for i, v := range y {
			s += w[i] * v
		}
		return s
	}
	c := newChecker(t, what+" (reference vs finite differences)")
	for i := range p {
		v := p[i]
		p[i] = v + h
		lp := loss()
		p[i] = v - h
		lm := loss()
		p[i] = v
		fd := (lp - lm) / (2 * h)
		if math.Abs(fd-grad[i]) > 1e-6*(1+math.Abs(grad[i])) {
			c.fail(i, "analytic %v, finite differences %v", grad[i], fd)
		}
	}
	c.done()
}

// normBuf uploads x, at element offset off of a larger buffer when off > 0
// (the elements around the view are checked to stay untouched).
func (s *suite) normBuf(t *testing.T, x []float32, off int) device.Buffer {
	t.Helper()
	if off > 0 {
		return s.viewOf(t, x, off)
	}
	return s.upload(t, x)
}

// optBuf is normBuf for an optional argument: nil stays nil.
func (s *suite) optBuf(t *testing.T, x []float32, off int) device.Buffer {
	t.Helper()
	if x == nil {
		return nil
	}
	return s.normBuf(t, x, off)
}

// f64OrNil is f64 keeping nil.
func f64OrNil(x []float32) []float64 {
	if x == nil {
		return nil
	}
	return f64(x)
}

func orOne(g []float64, i int) float64 {
	if g == nil {
		return 1
	}
	return g[i]
}

func orZero(b []float64, i int) float64 {
	if b == nil {
		return 0
	}
	return b[i]
}

func (s *suite) testNorm(t *testing.T) {
	t.Run("BatchNorm", s.testBatchNorm)
	t.Run("BatchNormGrad", s.testBatchNormGrad)
	t.Run("LayerNorm", s.testLayerNorm)
	t.Run("LayerNormGrad", s.testLayerNormGrad)
	t.Run("Errors", s.testNormErrors)
}

// bnShapes: BatchNorm1d on [N, C] (inner 1), on [N, C, L], BatchNorm2d
// planes, outer 1, one channel, and sizes that are no multiple of 4 or 32.
func (s *suite) bnShapes() []bnShape {
	sh := []bnShape{{2, 3, 1}, {1, 4, 5}, {7, 5, 1}, {4, 3, 17}, {3, 1, 9}, {16, 64, 1}, {5, 6, 33}}
	if !s.short {
		// Large enough for the backends' parallel paths: channel
		// chunks with inner 1 (and more channels than a CUDA block has
		// threads), and big planes.
		sh = append(sh, bnShape{1024, 300, 1}, bnShape{16, 24, 1031})
	}
	return sh
}

// bnCase is one BatchNorm call: which arguments are given and the input
// scale.
type bnCase struct {
	name     string
	training bool
	affine   bool    // gamma and beta given
	running  bool    // runMean and runVar given (always in eval)
	stats    bool    // mean and invstd given (always in training)
	scale    float64 // of x: 1e-3 makes σ² ≪ eps, where eps decides everything
	views    bool    // every buffer a view at an odd offset
	cfg      device.NormConfig
}

var bnCases = []bnCase{
	{name: "train", training: true, affine: true, running: true, stats: true, scale: 1, cfg: normCfg},
	{name: "train_noaffine", training: true, running: true, stats: true, scale: 1, cfg: normCfg},
	{name: "train_norunning", training: true, affine: true, stats: true, scale: 1, cfg: normCfg},
	{name: "train_tinyvar", training: true, affine: true, running: true, stats: true, scale: 1e-3,
		cfg: device.NormConfig{Eps: 1e-3, Momentum: 0.3}},
	{name: "train_views", training: true, affine: true, running: true, stats: true, scale: 1, views: true, cfg: normCfg},
	{name: "eval", affine: true, running: true, stats: true, scale: 1, cfg: normCfg},
	{name: "eval_nostats", affine: true, running: true, scale: 1, cfg: normCfg},
	{name: "eval_noaffine_views", running: true, stats: true, scale: 1, views: true, cfg: normCfg},
}

func (s *suite) testBatchNorm(t *testing.T) {
	for _, bc := range bnCases {
		for _, sh := range s.bnShapes() {
			if bc.views && sh.n() > 10000 {
				continue
			}
			t.Run(bc.name+"_"+sh.String(), func(t *testing.T) { s.checkBatchNorm(t, bc, sh) })
		}
	}
}

func (s *suite) checkBatchNorm(t *testing.T, bc bnCase, sh bnShape) {
	r := newRand(t)
	C, n := sh.channels, sh.n()
	// Per-channel offsets, so that the mean matters.
	x := make([]float32, n)
	shift := uniform(r, C, -2, 2)
	for o := 0; o < sh.outer; o++ {
		for c := 0; c < C; c++ {
			for i := 0; i < sh.inner; i++ {
				x[sh.at(o, c, i)] = float32(bc.scale * (float64(shift[c]) + 2*r.Float64() - 1))
			}
		}
	}
	var gamma, beta []float32
	if bc.affine {
		gamma, beta = uniform(r, C, -1.5, 1.5), uniform(r, C, -1, 1)
	}
	rm0, rv0 := uniform(r, C, -0.5, 0.5), uniform(r, C, 0.5, 2)
	if bc.scale != 1 {
		for c := range rv0 {
			rv0[c] *= float32(bc.scale * bc.scale)
		}
	}
	off := func(k int) int {
		if bc.views {
			return 2*k + 1
		}
		return 0
	}
	bx := s.normBuf(t, x, off(0))
	by := s.normBuf(t, filled(n, nan), off(1))
	bg, bb := s.optBuf(t, gamma, off(2)), s.optBuf(t, beta, off(3))
	var bm, bs, brm, brv device.Buffer
	if bc.stats {
		bm, bs = s.normBuf(t, filled(C, nan), off(4)), s.normBuf(t, filled(C, nan), off(5))
	}
	if bc.running || !bc.training {
		brm, brv = s.normBuf(t, rm0, off(6)), s.normBuf(t, rv0, off(7))
	}
	do(t, "BatchNorm", func() error {
		return s.dev.BatchNorm(bx, by, bg, bb, bm, bs, brm, brv, sh.outer, C, sh.inner, bc.training, bc.cfg)
	})

	xd, g64, b64 := f64(x), f64OrNil(gamma), f64OrNil(beta)
	eps, mom := float64(bc.cfg.Eps), float64(bc.cfg.Momentum)
	var mu, vr []float64
	if bc.training {
		mu, vr = bnStatsRef(xd, sh)
	} else {
		mu, vr = f64(rm0), f64(rv0)
	}
	want := bnApplyRef(xd, g64, b64, mu, vr, eps, sh)
	got := s.read(t, by, n)
	cy := newChecker(t, "y")
	for o := 0; o < sh.outer; o++ {
		for c := 0; c < C; c++ {
			is := 1 / math.Sqrt(vr[c]+eps)
			for i := 0; i < sh.inner; i++ {
				k := sh.at(o, c, i)
				// x − μ, scaled by invstd·gamma: its rounding error
				// scales with (|x| + |μ|)·invstd·|gamma|, plus |beta|.
				mag := (math.Abs(xd[k])+math.Abs(mu[c]))*is*math.Abs(orOne(g64, c)) + math.Abs(orZero(b64, c))
				cy.near(k, got[k], want[k], 4*u*mag)
			}
		}
	}
	cy.done()

	if bc.stats {
		gm, gs := s.read(t, bm, C), s.read(t, bs, C)
		cm, cs := newChecker(t, "mean"), newChecker(t, "invstd")
		for c := 0; c < C; c++ {
			if bc.training {
				// A float64 sum rounded once: u of mean(|x|) covers
				// the cancellation of a mean near 0.
				absMean := 0.0
				for o := 0; o < sh.outer; o++ {
					for i := 0; i < sh.inner; i++ {
						absMean += math.Abs(xd[sh.at(o, c, i)])
					}
				}
				absMean /= float64(sh.outer * sh.inner)
				cm.near(c, gm[c], mu[c], 2*u*absMean)
			} else {
				cm.equal(c, gm[c], rm0[c]) // the running mean, as is
			}
			// 1/sqrt(σ²+eps) from a float64 σ²: one rounding.
			is := 1 / math.Sqrt(vr[c]+eps)
			cs.near(c, gs[c], is, 4*u*is)
		}
		cm.done()
		cs.done()
	}
	if brm != nil {
		grm, grv := s.read(t, brm, C), s.read(t, brv, C)
		crm, crv := newChecker(t, "runMean"), newChecker(t, "runVar")
		for c := 0; c < C; c++ {
			wm, wv := float64(rm0[c]), float64(rv0[c])
			tm, tv := 0.0, 0.0
			if bc.training {
				// PyTorch: the running variance takes the unbiased
				// batch variance σ²·n/(n−1).
				cnt := float64(sh.outer * sh.inner)
				unb := vr[c] * cnt / (cnt - 1)
				tm = math.Abs((1-mom)*wm) + math.Abs(mom*mu[c])
				tv = math.Abs((1-mom)*wv) + math.Abs(mom*unb)
				wm = (1-mom)*wm + mom*mu[c]
				wv = (1-mom)*wv + mom*unb
			}
			// Two products and a sum: a few roundings of the terms.
			crm.near(c, grm[c], wm, 4*u*tm)
			crv.near(c, grv[c], wv, 4*u*tv)
		}
		crm.done()
		crv.done()
	}
}

// gradCase is one backward call: the accumulation factor and which of
// gamma, dx, dgamma and dbeta are given.
type gradCase struct {
	name                     string
	accum                    float32
	gamma, dx, dgamma, dbeta bool
	views                    bool
}

var gradCases = []gradCase{
	{name: "accum0", accum: 0, gamma: true, dx: true, dgamma: true, dbeta: true},
	{name: "accum1", accum: 1, gamma: true, dx: true, dgamma: true, dbeta: true},
	{name: "accum0.5_nogamma", accum: 0.5, dx: true, dgamma: true, dbeta: true},
	{name: "nodx", accum: 1, gamma: true, dgamma: true, dbeta: true},
	{name: "dxonly", accum: 0, gamma: true, dx: true},
	{name: "dbetaonly", accum: 0, dbeta: true},
	{name: "views", accum: 1, gamma: true, dx: true, dgamma: true, dbeta: true, views: true},
}

func (gc gradCase) off(k int) int {
	if gc.views {
		return 2*k + 1
	}
	return 0
}

// paramGrad0 is the initial contents of dgamma or dbeta: NaN when accum
// is 0 (it must not be read), values to accumulate onto otherwise.
func paramGrad0(r *rand.Rand, n int, accum float32) []float32 {
	if accum == 0 {
		return filled(n, nan)
	}
	return uniform(r, n, -1, 1)
}

// checkParamGrads compares dgamma and dbeta (those given) with
// accum·old + the reference sums. tolG and tolB give each element's
// tolerance for the sums alone.
func (s *suite) checkParamGrads(t *testing.T, gc gradCase, bdg, bdb device.Buffer, dg0, db0 []float32,
	dgamma, dbeta []float64, tolG, tolB func(j int) float64) {
	t.Helper()
	a := float64(gc.accum)
	if bdg != nil {
		got := s.read(t, bdg, len(dgamma))
		c := newChecker(t, "dgamma")
		for j, w := range dgamma {
			tol := tolG(j)
			if a != 0 {
				w += a * float64(dg0[j])
				tol += 2 * u * (math.Abs(a*float64(dg0[j])) + math.Abs(w))
			}
			c.near(j, got[j], w, tol)
		}
		c.done()
	}
	if bdb != nil {
		got := s.read(t, bdb, len(dbeta))
		c := newChecker(t, "dbeta")
		for j, w := range dbeta {
			tol := tolB(j)
			if a != 0 {
				w += a * float64(db0[j])
				tol += 2 * u * (math.Abs(a*float64(db0[j])) + math.Abs(w))
			}
			c.near(j, got[j], w, tol)
		}
		c.done()
	}
}

func (s *suite) testBatchNormGrad(t *testing.T) {
	for _, gc := range gradCases {
		for _, sh := range s.bnShapes() {
			if gc.views && sh.n() > 10000 {
				continue
			}
			t.Run(gc.name+"_"+sh.String(), func(t *testing.T) { s.checkBatchNormGrad(t, gc, sh) })
		}
	}
}

func (s *suite) checkBatchNormGrad(t *testing.T, gc gradCase, sh bnShape) {
	r := newRand(t)
	C, n := sh.channels, sh.n()
	cnt := float64(sh.outer * sh.inner)
	x, dy := uniform(r, n, -1, 3), uniform(r, n, -1, 1)
	var gamma []float32
	if gc.gamma {
		gamma = uniform(r, C, -1.5, 1.5)
	}
	eps := float64(normCfg.Eps)
	xd, dyd, g64 := f64(x), f64(dy), f64OrNil(gamma)
	mu, vr := bnStatsRef(xd, sh)
	// The saved statistics, as BatchNorm leaves them: rounded to float32.
	mean, invstd := make([]float32, C), make([]float32, C)
	for c := range mean {
		mean[c], invstd[c] = float32(mu[c]), float32(1/math.Sqrt(vr[c]+eps))
	}
	dg0, db0 := paramGrad0(r, C, gc.accum), paramGrad0(r, C, gc.accum)
	bx, bdy := s.normBuf(t, x, gc.off(0)), s.normBuf(t, dy, gc.off(1))
	bg := s.optBuf(t, gamma, gc.off(2))
	bm, bs := s.normBuf(t, mean, gc.off(3)), s.normBuf(t, invstd, gc.off(4))
	var bdx, bdg, bdb device.Buffer
	if gc.dx {
		bdx = s.normBuf(t, filled(n, nan), gc.off(5))
	}
	if gc.dgamma {
		bdg = s.normBuf(t, dg0, gc.off(6))
	}
	if gc.dbeta {
		bdb = s.normBuf(t, db0, gc.off(7))
	}
	do(t, "BatchNormGrad", func() error {
		return s.dev.BatchNormGrad(bx, bdy, bg, bm, bs, bdx, bdg, bdb, sh.outer, C, sh.inner, gc.accum)
	})
	wdx, wdg, wdb := bnGradRef(xd, dyd, g64, eps, sh)

	if n <= 300 {
		// The reference against finite differences of the forward.
		beta := make([]float64, C)
		gam := g64
		if gam == nil {
			gam = make([]float64, C)
			for c := range gam {
				gam[c] = 1
			}
		}
		fwd := func() []float64 { m, v := bnStatsRef(xd, sh); return bnApplyRef(xd, gam, beta, m, v, eps, sh) }
		checkFD(t, "dx", xd, wdx, dyd, fwd)
		checkFD(t, "dgamma", gam, wdg, dyd, fwd)
		checkFD(t, "dbeta", beta, wdb, dyd, fwd)
	}

	// Error scales: the saved μ and invstd are off by up to u relative,
	// which moves x̂ by up to u·e with e = |x̂| + |μ|·invstd (+1 for
	// invstd). m1 = mean(dy), m2 = mean(dy·x̂) and M = mean(|dy|·e).
	m1, m2, M := make([]float64, C), make([]float64, C), make([]float64, C)
	e := make([]float64, n)
	for c := 0; c < C; c++ {
		is := 1 / math.Sqrt(vr[c]+eps)
		for o := 0; o < sh.outer; o++ {
			for i := 0; i < sh.inner; i++ {
				k := sh.at(o, c, i)
				xh := (xd[k] - mu[c]) * is
				e[k] = math.Abs(xh) + math.Abs(mu[c])*is + 1
				m1[c] += dyd[k] / cnt
				m2[c] += dyd[k] * xh / cnt
				M[c] += math.Abs(dyd[k]) * e[k] / cnt
			}
		}
	}
	if bdx != nil {
		got := s.read(t, bdx, n)
		cx := newChecker(t, "dx")
		for c := 0; c < C; c++ {
			a := math.Abs(orOne(g64, c)) / math.Sqrt(vr[c]+eps)
			for o := 0; o < sh.outer; o++ {
				for i := 0; i < sh.inner; i++ {
					k := sh.at(o, c, i)
					xh := e[k] - math.Abs(mu[c])/math.Sqrt(vr[c]+eps) - 1
					mag := a * (math.Abs(dyd[k]) + math.Abs(m1[c]) + e[k]*math.Abs(m2[c]) + xh*M[c])
					cx.near(k, got[k], wdx[k], 8*u*mag)
				}
			}
		}
		cx.done()
	}
	s.checkParamGrads(t, gc, bdg, bdb, dg0, db0, wdg, wdb,
		func(c int) float64 { return 4 * u * (M[c]*cnt + math.Abs(wdg[c])) },
		func(c int) float64 {
			sum := 0.0
			for o := 0; o < sh.outer; o++ {
				for i := 0; i < sh.inner; i++ {
					sum += math.Abs(dyd[sh.at(o, c, i)])
				}
			}
			return 2 * u * sum
		})
}

// lnShapes: one column, rows shorter and longer than a warp, odd sizes.
func (s *suite) lnShapes() []shape2 {
	sh := []shape2{{1, 1}, {3, 7}, {5, 1000}, {64, 33}, {2, 4099}, {40, 32}, {7, 1}}
	if !s.short {
		sh = append(sh, shape2{512, 1024}, shape2{8192, 48})
	}
	return sh
}

type lnCase struct {
	name   string
	affine bool
	scale  float64
	eps    float32
	views  bool
}

var lnCases = []lnCase{
	{name: "affine", affine: true, scale: 1, eps: 1e-5},
	{name: "noaffine", scale: 1, eps: 1e-5},
	{name: "tinyvar", affine: true, scale: 1e-3, eps: 1e-4},
	{name: "views", affine: true, scale: 1, eps: 1e-5, views: true},
}

func (s *suite) testLayerNorm(t *testing.T) {
	for _, lc := range lnCases {
		for _, sh := range s.lnShapes() {
			if lc.views && sh.rows*sh.cols > 10000 {
				continue
			}
			t.Run(fmt.Sprintf("%s_%dx%d", lc.name, sh.rows, sh.cols), func(t *testing.T) { s.checkLayerNorm(t, lc, sh) })
		}
	}
}

func (s *suite) checkLayerNorm(t *testing.T, lc lnCase, sh shape2) {
	r := newRand(t)
	rows, cols := sh.rows, sh.cols
	n := rows * cols
	x := make([]float32, n)
	for i := 0; i < rows; i++ {
		shift := 4*r.Float64() - 2
		for j := 0; j < cols; j++ {
			x[i*cols+j] = float32(lc.scale * (shift + 2*r.Float64() - 1))
		}
	}
	var gamma, beta []float32
	if lc.affine {
		gamma, beta = uniform(r, cols, -1.5, 1.5), uniform(r, cols, -1, 1)
	}
	off := func(k int) int {
		if lc.views {
			return 2*k + 1
		}
		return 0
	}
	bx, by := s.normBuf(t, x, off(0)), s.normBuf(t, filled(n, nan), off(1))
	bg, bb := s.optBuf(t, gamma, off(2)), s.optBuf(t, beta, off(3))
	bm, bs := s.normBuf(t, filled(rows, nan), off(4)), s.normBuf(t, filled(rows, nan), off(5))
	do(t, "LayerNorm", func() error { return s.dev.LayerNorm(bx, by, bg, bb, bm, bs, rows, cols, lc.eps) })
	xd, g64, b64 := f64(x), f64OrNil(gamma), f64OrNil(beta)
	want, mean, rstd := lnRef(xd, g64, b64, float64(lc.eps), rows, cols)
	got, gm, gs := s.read(t, by, n), s.read(t, bm, rows), s.read(t, bs, rows)
	cy, cm, cs := newChecker(t, "y"), newChecker(t, "mean"), newChecker(t, "rstd")
	for i := 0; i < rows; i++ {
		absMean := 0.0
		for j := 0; j < cols; j++ {
			k := i*cols + j
			absMean += math.Abs(xd[k]) / float64(cols)
			// As for BatchNorm's y.
			mag := (math.Abs(xd[k])+math.Abs(mean[i]))*rstd[i]*math.Abs(orOne(g64, j)) + math.Abs(orZero(b64, j))
			cy.near(k, got[k], want[k], 4*u*mag)
		}
		cm.near(i, gm[i], mean[i], 2*u*absMean)
		cs.near(i, gs[i], rstd[i], 4*u*rstd[i])
	}
	cy.done()
	cm.done()
	cs.done()
}

func (s *suite) testLayerNormGrad(t *testing.T) {
	for _, gc := range gradCases {
		for _, sh := range s.lnShapes() {
			if gc.views && sh.rows*sh.cols > 10000 {
				continue
			}
			t.Run(fmt.Sprintf("%s_%dx%d", gc.name, sh.rows, sh.cols), func(t *testing.T) { s.checkLayerNormGrad(t, gc, sh) })
		}
	}
}

func (s *suite) checkLayerNormGrad(t *testing.T, gc gradCase, sh shape2) {
	r := newRand(t)
	rows, cols := sh.rows, sh.cols
	n := rows * cols
	x, dy := uniform(r, n, -1, 3), uniform(r, n, -1, 1)
	var gamma []float32
	if gc.gamma {
		gamma = uniform(r, cols, -1.5, 1.5)
	}
	const eps = 1e-5
	xd, dyd, g64 := f64(x), f64(dy), f64OrNil(gamma)
	_, mu, rs := lnRef(xd, nil, nil, eps, rows, cols)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	for i := range mean {
		mean[i], rstd[i] = float32(mu[i]), float32(rs[i])
	}
	dg0, db0 := paramGrad0(r, cols, gc.accum), paramGrad0(r, cols, gc.accum)
	bx, bdy := s.normBuf(t, x, gc.off(0)), s.normBuf(t, dy, gc.off(1))
	bg := s.optBuf(t, gamma, gc.off(2))
	bm, bs := s.normBuf(t, mean, gc.off(3)), s.normBuf(t, rstd, gc.off(4))
	var bdx, bdg, bdb device.Buffer
	if gc.dx {
		bdx = s.normBuf(t, filled(n, nan), gc.off(5))
	}
	if gc.dgamma {
		bdg = s.normBuf(t, dg0, gc.off(6))
	}
	if gc.dbeta {
		bdb = s.normBuf(t, db0, gc.off(7))
	}
	do(t, "LayerNormGrad", func() error {
		return s.dev.LayerNormGrad(bx, bdy, bg, bm, bs, bdx, bdg, bdb, rows, cols, gc.accum)
	})
	wdx, wdg, wdb := lnGradRef(xd, dyd, g64, eps, rows, cols)

	if n <= 300 {
		beta := make([]float64, cols)
		gam := g64
		if gam == nil {
			gam = make([]float64, cols)
			for j := range gam {
				gam[j] = 1
			}
		}
		fwd := func() []float64 { y, _, _ := lnRef(xd, gam, beta, eps, rows, cols); return y }
		checkFD(t, "dx", xd, wdx, dyd, fwd)
		checkFD(t, "dgamma", gam, wdg, dyd, fwd)
		checkFD(t, "dbeta", beta, wdb, dyd, fwd)
	}

	// Error scales as for BatchNormGrad, per row, with g = dy·gamma in
	// place of dy: e = |x̂| + |μ|·rstd + 1, m1 = mean(g), m2 = mean(g·x̂),
	// M = mean(|g|·e).
	e := make([]float64, n)
	colE := make([]float64, cols) // Σ_rows |dy|·e, for dgamma
	colA := make([]float64, cols) // Σ_rows |dy|, for dbeta
	var cx *checker
	var got []float32
	if bdx != nil {
		got = s.read(t, bdx, n)
		cx = newChecker(t, "dx")
	}
	for i := 0; i < rows; i++ {
		var m1, m2, M float64
		for j := 0; j < cols; j++ {
			k := i*cols + j
			xh := (xd[k] - mu[i]) * rs[i]
			e[k] = math.Abs(xh) + math.Abs(mu[i])*rs[i] + 1
			g := dyd[k] * orOne(g64, j)
			m1 += g / float64(cols)
			m2 += g * xh / float64(cols)
			M += math.Abs(g) * e[k] / float64(cols)
			colE[j] += math.Abs(dyd[k]) * e[k]
			colA[j] += math.Abs(dyd[k])
		}
		if cx == nil {
			continue
		}
		for j := 0; j < cols; j++ {
			k := i*cols + j
			xh := math.Abs((xd[k] - mu[i]) * rs[i])
			g := math.Abs(dyd[k] * orOne(g64, j))
			mag := rs[i] * (g + math.Abs(m1) + e[k]*math.Abs(m2) + xh*M)
			cx.near(k, got[k], wdx[k], 8*u*mag)
		}
	}
	if cx != nil {
		cx.done()
	}
	s.checkParamGrads(t, gc, bdg, bdb, dg0, db0, wdg, wdb,
		func(j int) float64 { return 4 * u * (colE[j] + math.Abs(wdg[j])) },
		func(j int) float64 { return 2 * u * colA[j] })
}

// normErrCases are the norm primitives' argument checks in the form of
// errors.go's table: each buffer in turn is nil (unless optional), freed,
// of another device, of the wrong dtype and one element short.
func (s *suite) normErrCases() []errCase {
	const o, c, in = 2, 3, 4
	const n = o * c * in
	const rows, cols = 3, 5
	d := s.dev
	cfg := normCfg
	opt := func(name string, n int) arg { return arg{name: name, dt: device.Float32, n: n, nilOK: true} }
	bnDims := func(call func(b []device.Buffer, o, c, in int) error) map[string]func(b []device.Buffer) error {
		return map[string]func(b []device.Buffer) error{
			"outer=0":     func(b []device.Buffer) error { return call(b, 0, c, in) },
			"channels=-1": func(b []device.Buffer) error { return call(b, o, -1, in) },
			"inner=0":     func(b []device.Buffer) error { return call(b, o, c, 0) },
		}
	}
	train := errCase{op: "BatchNorm",
		args: []arg{f32("x", n), f32("y", n), opt("gamma", c), opt("beta", c), f32("mean", c), f32("invstd", c),
			f32("runMean", c), f32("runVar", c)},
		call: func(b []device.Buffer) error {
			return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, true, cfg)
		}}
	train.bad = bnDims(func(b []device.Buffer, o, c, in int) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, true, cfg)
	})
	// PyTorch: "Expected more than 1 value per channel when training".
	train.bad["training_one_value_per_channel"] = func(b []device.Buffer) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 1, c, 1, true, cfg)
	}
	train.bad["eps=-1"] = func(b []device.Buffer) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, true, device.NormConfig{Eps: -1, Momentum: 0.1})
	}
	train.bad["momentum=1.5"] = func(b []device.Buffer) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, true, device.NormConfig{Eps: 1e-5, Momentum: 1.5})
	}
	eval := errCase{op: "BatchNorm",
		args: []arg{f32("x", n), f32("y", n), opt("gamma", c), opt("beta", c), opt("mean", c), opt("invstd", c),
			f32("runMean", c), f32("runVar", c)},
		call: func(b []device.Buffer) error {
			return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, false, cfg)
		}}
	eval.bad = bnDims(func(b []device.Buffer, o, c, in int) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, false, cfg)
	})
	eval.bad["eps=NaN"] = func(b []device.Buffer) error {
		return d.BatchNorm(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, false, device.NormConfig{Eps: nan, Momentum: 0.1})
	}
	grad := errCase{op: "BatchNormGrad",
		args: []arg{f32("x", n), f32("dy", n), opt("gamma", c), f32("mean", c), f32("invstd", c),
			opt("dx", n), opt("dgamma", c), opt("dbeta", c)},
		call: func(b []device.Buffer) error {
			return d.BatchNormGrad(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, 1)
		}}
	grad.bad = bnDims(func(b []device.Buffer, o, c, in int) error {
		return d.BatchNormGrad(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], o, c, in, 0)
	})
	ln := errCase{op: "LayerNorm",
		args: []arg{f32("x", rows*cols), f32("y", rows*cols), opt("gamma", cols), opt("beta", cols), f32("mean", rows), f32("rstd", rows)},
		call: func(b []device.Buffer) error {
			return d.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], rows, cols, 1e-5)
		},
		bad: map[string]func(b []device.Buffer) error{
			"rows=0":  func(b []device.Buffer) error { return d.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], 0, cols, 1e-5) },
			"cols=-1": func(b []device.Buffer) error { return d.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], rows, -1, 1e-5) },
			"eps=-1":  func(b []device.Buffer) error { return d.LayerNorm(b[0], b[1], b[2], b[3], b[4], b[5], rows, cols, -1) },
		}}
	lng := errCase{op: "LayerNormGrad",
		args: []arg{f32("x", rows*cols), f32("dy", rows*cols), opt("gamma", cols), f32("mean", rows), f32("rstd", rows),
			opt("dx", rows*cols), opt("dgamma", cols), opt("dbeta", cols)},
		call: func(b []device.Buffer) error {
			return d.LayerNormGrad(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], rows, cols, 1)
		},
		bad: map[string]func(b []device.Buffer) error{
			"rows=-1": func(b []device.Buffer) error {
				return d.LayerNormGrad(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], -1, cols, 1)
			},
			"cols=0": func(b []device.Buffer) error {
				return d.LayerNormGrad(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], rows, 0, 0)
			},
		}}
	return []errCase{train, eval, grad, ln, lng}
}

// testNormErrors runs normErrCases as testErrors runs its table, and
// checks the cases the contract singles out: evaluation without running
// statistics, and running statistics given by halves.
func (s *suite) testNormErrors(t *testing.T) {
	names := []string{"BatchNorm/train", "BatchNorm/eval", "BatchNormGrad", "LayerNorm", "LayerNormGrad"}
	for k, ec := range s.normErrCases() {
		t.Run(names[k], func(t *testing.T) {
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
					{"other_device", device.ErrDeviceMismatch, func(t *testing.T) device.Buffer {
						return &fakeBuffer{dt: a.dt, n: a.n}
					}},
					{"dtype_int32", device.ErrDType, func(t *testing.T) device.Buffer { return s.alloc(t, device.Int32, a.n) }},
					{"short", device.ErrSize, func(t *testing.T) device.Buffer { return s.alloc(t, a.dt, a.n-1) }},
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
			for _, what := range slices.Sorted(maps.Keys(ec.bad)) {
				call := ec.bad[what]
				t.Run(what, func(t *testing.T) {
					b := valid(t)
					expectErr(t, ec.op, func() error { return call(b) }, device.ErrInvalid)
				})
			}
		})
	}
	const o, c, in = 2, 3, 4
	t.Run("BatchNorm/eval_without_running_stats", func(t *testing.T) {
		x, y := s.alloc(t, device.Float32, o*c*in), s.alloc(t, device.Float32, o*c*in)
		expectErr(t, "BatchNorm", func() error {
			return s.dev.BatchNorm(x, y, nil, nil, nil, nil, nil, nil, o, c, in, false, normCfg)
		}, device.ErrNilBuffer, device.ErrInvalid)
	})
	t.Run("BatchNorm/train_half_running_stats", func(t *testing.T) {
		x, y := s.alloc(t, device.Float32, o*c*in), s.alloc(t, device.Float32, o*c*in)
		m, v := s.alloc(t, device.Float32, c), s.alloc(t, device.Float32, c)
		rm := s.alloc(t, device.Float32, c)
		expectErr(t, "BatchNorm", func() error {
			return s.dev.BatchNorm(x, y, nil, nil, m, v, rm, nil, o, c, in, true, normCfg)
		}, device.ErrNilBuffer, device.ErrInvalid)
		expectErr(t, "BatchNorm", func() error {
			return s.dev.BatchNorm(x, y, nil, nil, m, v, nil, rm, o, c, in, true, normCfg)
		}, device.ErrNilBuffer, device.ErrInvalid)
	})
	t.Run("BatchNorm/train_without_saved_stats", func(t *testing.T) {
		x, y := s.alloc(t, device.Float32, o*c*in), s.alloc(t, device.Float32, o*c*in)
		expectErr(t, "BatchNorm", func() error {
			return s.dev.BatchNorm(x, y, nil, nil, nil, nil, nil, nil, o, c, in, true, normCfg)
		}, device.ErrNilBuffer)
	})
}
