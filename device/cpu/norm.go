package cpu

// Batch and layer normalisation: the reference implementation. Statistics
// and sums are accumulated in float64 and every output is rounded once, so
// the results are within an ulp or two of a float64 evaluation of PyTorch's
// definitions. Work is split across the workers by channels (batch norm
// statistics), by rows (layer norm, and the elementwise passes) or by
// columns (layer norm's dgamma/dbeta), so that each sum is taken by one
// goroutine in a fixed order: the results do not depend on the split.

import (
	"math"
	"sync"

	"github.com/kilnml/kiln/device"
)

// normOp selects the pass normKern.run executes.
type normOp uint8

const (
	bnStats     normOp = iota + 1 // per channel mean and biased variance (two passes)
	bnApply                       // y = (x − μ)·scale + beta
	bnGradSums                    // per channel Σ dy and Σ dy·x̂
	bnGradApply                   // dx = a·(dy − m1 − x̂·m2)
	lnRows                        // layer norm forward, row by row
	lnGradRows                    // layer norm dx, row by row
	lnGradCols                    // layer norm dgamma/dbeta, column by column
)

// normKern is the argument block of one normalisation pass. The workers
// receive a pointer to it; blocks come from normKerns, so that a call
// allocates nothing in steady state (the Device's own kern cannot carry this
// many buffers, and its layout belongs to kernels.go).
type normKern struct {
	op                     normOp
	x, y, dy, dx           []float32
	gamma, beta            []float32 // nil: 1 and 0
	mean, rstd             []float32 // saved statistics (per channel or per row)
	dgamma, dbeta          []float32 // nil: not wanted
	acc                    []float64 // the Device's scratch (colAcc)
	outer, channels, inner int       // batch norm layout
	rows, cols             int       // layer norm layout
	eps, accum             float32
}

var normKerns = sync.Pool{New: func() any { return new(normKern) }}

func getNormKern() *normKern { return normKerns.Get().(*normKern) }

// putNormKern drops the block's slices (so it keeps no freed memory alive)
// and returns it to the pool.
func putNormKern(k *normKern) {
	*k = normKern{}
	normKerns.Put(k)
}

// normScratch returns n float64 of the Device's scratch, grown on demand.
func (d *Device) normScratch(n int) []float64 {
	if cap(d.colAcc) < n {
		d.colAcc = make([]float64, n)
	}
	return d.colAcc[:n]
}

// normOptF32 is f32 for a buffer that may be nil (then it returns nil).
func (d *Device) normOptF32(op, arg string, b device.Buffer, n int) ([]float32, error) {
	if b == nil {
		return nil, nil
	}
	return d.f32(op, arg, b, n)
}

// normCheckEps rejects an eps that is negative or NaN (the variance plus eps
// must not be negative).
func normCheckEps(op, arg string, eps float32) error {
	if !(eps >= 0) {
		return device.Errorf(op, arg, device.ErrInvalid, "expected eps ≥ 0, got %g", eps)
	}
	return nil
}

// normCheckMomentum rejects a momentum outside [0, 1].
func normCheckMomentum(op string, m float32) error {
	if !(m >= 0 && m <= 1) {
		return device.Errorf(op, "cfg.Momentum", device.ErrInvalid, "expected 0 ≤ momentum ≤ 1, got %g", m)
	}
	return nil
}

// BatchNorm normalises x laid out [outer, channels, inner] per channel, with
// the batch statistics (training, updating runMean and runVar when given)
// or the running ones. See device.Ops2.
func (d *Device) BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar device.Buffer, outer, channels, inner int,
	training bool, cfg device.NormConfig) error {
	const op = "BatchNorm"
	if d.closed {
		return errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	plane, err := area(op, "outer×inner", outer, inner)
	if err != nil {
		return err
	}
	total, err := area(op, "outer×channels×inner", plane, channels)
	if err != nil {
		return err
	}
	if err := normCheckEps(op, "cfg.Eps", cfg.Eps); err != nil {
		return err
	}
	track := runMean != nil || runVar != nil
	if training {
		if plane < 2 {
			return device.Errorf(op, "outer×inner", device.ErrInvalid,
				"training needs more than one value per channel, got outer=%d inner=%d", outer, inner)
		}
		if track {
			if err := normCheckMomentum(op, cfg.Momentum); err != nil {
				return err
			}
		}
	}
	k := getNormKern()
	defer putNormKern(k)
	if k.x, err = d.f32(op, "x", x, total); err != nil {
		return err
	}
	if k.y, err = d.f32(op, "y", y, total); err != nil {
		return err
	}
	if k.gamma, err = d.normOptF32(op, "gamma", gamma, channels); err != nil {
		return err
	}
	if k.beta, err = d.normOptF32(op, "beta", beta, channels); err != nil {
		return err
	}
	var mf, sf, rm, rv []float32
	if training {
		mf, err = d.f32(op, "mean", mean, channels)
	} else {
		mf, err = d.normOptF32(op, "mean", mean, channels)
	}
	if err != nil {
		return err
	}
	if training {
		sf, err = d.f32(op, "invstd", invstd, channels)
	} else {
		sf, err = d.normOptF32(op, "invstd", invstd, channels)
	}
	if err != nil {
		return err
	}
	if training && !track {
		rm, rv = nil, nil
	} else {
		// Evaluation needs both; training updates both or neither.
		if rm, err = d.f32(op, "runMean", runMean, channels); err != nil {
			return err
		}
		if rv, err = d.f32(op, "runVar", runVar, channels); err != nil {
			return err
		}
	}
	k.outer, k.channels, k.inner, k.eps = outer, channels, inner, cfg.Eps
	acc := d.normScratch(2 * channels)
	k.acc = acc
	mu, scale := acc[:channels], acc[channels:]
	if training {
		// Pass 1: μ and the biased σ² per channel into mu and scale.
		k.op = bnStats
		d.w.parallel(k, channels, min(d.w.chunks(total, ewGrain), channels), normChanAlign(inner))
	}
	eps := float64(cfg.Eps)
	m := float64(cfg.Momentum)
	for c := 0; c < channels; c++ {
		var v float64
		if training {
			v = scale[c]
		} else {
			mu[c], v = float64(rm[c]), float64(rv[c])
		}
		is := 1 / math.Sqrt(v+eps)
		if mf != nil {
			mf[c] = float32(mu[c])
		}
		if sf != nil {
			sf[c] = float32(is)
		}
		if training && rm != nil {
			unbiased := v * float64(plane) / float64(plane-1)
			rm[c] = float32((1-m)*float64(rm[c]) + m*mu[c])
			rv[c] = float32((1-m)*float64(rv[c]) + m*unbiased)
		}
		if k.gamma != nil {
			is *= float64(k.gamma[c])
		}
		scale[c] = is
	}
	// Pass 2: y, over the outer·channels rows of inner elements.
	k.op = bnApply
	d.w.parallel(k, outer*channels, d.w.chunks(total, ewGrain), 1)
	return nil
}

// normChanAlign is the chunk alignment (in channels) of the channel-parallel
// passes: with inner = 1 neighbouring channels share cache lines.
func normChanAlign(inner int) int {
	if inner < 16 {
		return 16
	}
	return 1
}

// BatchNormGrad is the backward of BatchNorm in training mode from the saved
// mean and invstd. See device.Ops2.
func (d *Device) BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta device.Buffer, outer, channels, inner int, accum float32) error {
	const op = "BatchNormGrad"
	if d.closed {
		return errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	plane, err := area(op, "outer×inner", outer, inner)
	if err != nil {
		return err
	}
	total, err := area(op, "outer×channels×inner", plane, channels)
	if err != nil {
		return err
	}
	k := getNormKern()
	defer putNormKern(k)
	if k.x, err = d.f32(op, "x", x, total); err != nil {
		return err
	}
	if k.dy, err = d.f32(op, "dy", dy, total); err != nil {
		return err
	}
	if k.gamma, err = d.normOptF32(op, "gamma", gamma, channels); err != nil {
		return err
	}
	if k.mean, err = d.f32(op, "mean", mean, channels); err != nil {
		return err
	}
	if k.rstd, err = d.f32(op, "invstd", invstd, channels); err != nil {
		return err
	}
	if k.dx, err = d.normOptF32(op, "dx", dx, total); err != nil {
		return err
	}
	if k.dgamma, err = d.normOptF32(op, "dgamma", dgamma, channels); err != nil {
		return err
	}
	if k.dbeta, err = d.normOptF32(op, "dbeta", dbeta, channels); err != nil {
		return err
	}
	if k.dx == nil && k.dgamma == nil && k.dbeta == nil {
		return nil
	}
	k.outer, k.channels, k.inner, k.accum = outer, channels, inner, accum
	acc := d.normScratch(3 * channels)
	k.acc = acc
	sdy, sdyx, a := acc[:channels], acc[channels:2*channels], acc[2*channels:]
	k.op = bnGradSums
	d.w.parallel(k, channels, min(d.w.chunks(2*total, ewGrain), channels), normChanAlign(inner))
	n := float64(plane)
	for c := 0; c < channels; c++ {
		if k.dgamma != nil {
			k.dgamma[c] = normAccum(accum, k.dgamma[c], sdyx[c])
		}
		if k.dbeta != nil {
			k.dbeta[c] = normAccum(accum, k.dbeta[c], sdy[c])
		}
		g := 1.0
		if k.gamma != nil {
			g = float64(k.gamma[c])
		}
		a[c] = g * float64(k.rstd[c])
		sdy[c] /= n
		sdyx[c] /= n
	}
	if k.dx == nil {
		return nil
	}
	k.op = bnGradApply
	d.w.parallel(k, outer*channels, d.w.chunks(2*total, ewGrain), 1)
	return nil
}

// normAccum is accum·old + sum rounded once, not reading old when accum
// is 0.
func normAccum(accum, old float32, sum float64) float32 {
	if accum == 0 {
		return float32(sum)
	}
	return float32(float64(accum)*float64(old) + sum)
}

// LayerNorm normalises each row of the rows×cols x over its cols values.
// See device.Ops2.
func (d *Device) LayerNorm(x, y, gamma, beta, mean, rstd device.Buffer, rows, cols int, eps float32) error {
	const op = "LayerNorm"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	total, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	if err := normCheckEps(op, "eps", eps); err != nil {
		return err
	}
	k := getNormKern()
	defer putNormKern(k)
	if k.x, err = d.f32(op, "x", x, total); err != nil {
		return err
	}
	if k.y, err = d.f32(op, "y", y, total); err != nil {
		return err
	}
	if k.gamma, err = d.normOptF32(op, "gamma", gamma, cols); err != nil {
		return err
	}
	if k.beta, err = d.normOptF32(op, "beta", beta, cols); err != nil {
		return err
	}
	if k.mean, err = d.f32(op, "mean", mean, rows); err != nil {
		return err
	}
	if k.rstd, err = d.f32(op, "rstd", rstd, rows); err != nil {
		return err
	}
	k.op, k.rows, k.cols, k.eps = lnRows, rows, cols, eps
	d.w.parallel(k, rows, d.w.chunks(rows, rowGrain(ewGrain/2, cols)), 1)
	return nil
}

// LayerNormGrad is the backward of LayerNorm from the saved mean and rstd.
// See device.Ops2.
func (d *Device) LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta device.Buffer, rows, cols int, accum float32) error {
	const op = "LayerNormGrad"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	total, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	k := getNormKern()
	defer putNormKern(k)
	if k.x, err = d.f32(op, "x", x, total); err != nil {
		return err
	}
	if k.dy, err = d.f32(op, "dy", dy, total); err != nil {
		return err
	}
	if k.gamma, err = d.normOptF32(op, "gamma", gamma, cols); err != nil {
		return err
	}
	if k.mean, err = d.f32(op, "mean", mean, rows); err != nil {
		return err
	}
	if k.rstd, err = d.f32(op, "rstd", rstd, rows); err != nil {
		return err
	}
	if k.dx, err = d.normOptF32(op, "dx", dx, total); err != nil {
		return err
	}
	if k.dgamma, err = d.normOptF32(op, "dgamma", dgamma, cols); err != nil {
		return err
	}
	if k.dbeta, err = d.normOptF32(op, "dbeta", dbeta, cols); err != nil {
		return err
	}
	k.rows, k.cols, k.accum = rows, cols, accum
	// The column sums first: they read dy, which dx may overwrite.
	if k.dgamma != nil || k.dbeta != nil {
		k.acc = d.normScratch(2 * cols)
		k.op = lnGradCols
		c := min(d.w.chunks(total, ewGrain/2), max(1, cols/16))
		d.w.parallel(k, cols, c, 16)
	}
	if k.dx != nil {
		k.op = lnGradRows
		d.w.parallel(k, rows, d.w.chunks(rows, rowGrain(ewGrain/2, cols)), 1)
	}
	return nil
}

func (k *normKern) run(_, lo, hi int) {
	switch k.op {
	case bnStats:
		k.bnStats(lo, hi)
	case bnApply:
		k.bnApply(lo, hi)
	case bnGradSums:
		k.bnGradSums(lo, hi)
	case bnGradApply:
		k.bnGradApply(lo, hi)
	case lnRows:
		k.lnRows(lo, hi)
	case lnGradRows:
		k.lnGradRows(lo, hi)
	case lnGradCols:
		k.lnGradCols(lo, hi)
	}
}

// segment is the part of a [outer, channels, inner] buffer that holds
// channels [lo, hi) of outer index o: (hi−lo)·inner contiguous values.
func (k *normKern) segment(v []float32, o, lo, hi int) []float32 {
	base := o * k.channels * k.inner
	return v[base+lo*k.inner : base+hi*k.inner]
}

// bnStats writes μ_c to acc[c] and the biased σ²_c to acc[channels+c] for
// channels [lo, hi): the mean first, then Σ(x−μ)² (two passes, so a large
// mean costs no accuracy). The outer index is the outer loop, so both
// passes read memory in order.
func (k *normKern) bnStats(lo, hi int) {
	C, inner := k.channels, k.inner
	mu, vr := k.acc[lo:hi], k.acc[C+lo:C+hi]
	clear(mu)
	clear(vr)
	for o := 0; o < k.outer; o++ {
		seg := k.segment(k.x, o, lo, hi)
		for c := range mu {
			s := 0.0
			for _, v := range seg[c*inner : c*inner+inner] {
				s += float64(v)
			}
			mu[c] += s
		}
	}
	n := float64(k.outer * inner)
	for c := range mu {
		mu[c] /= n
	}
	for o := 0; o < k.outer; o++ {
		seg := k.segment(k.x, o, lo, hi)
		for c := range mu {
			m, s := mu[c], 0.0
			for _, v := range seg[c*inner : c*inner+inner] {
				t := float64(v) - m
				s += t * t
			}
			vr[c] += s
		}
	}
	for c := range vr {
		vr[c] /= n
	}
}

// bnApply sets y for rows [lo, hi) of the outer·channels rows of inner
// values: y = (x − μ_c)·scale_c + beta_c, with μ in acc[c] and scale =
// invstd·gamma in acc[channels+c].
func (k *normKern) bnApply(lo, hi int) {
	C, inner := k.channels, k.inner
	for r := lo; r < hi; r++ {
		c := r % C
		m, s, b := k.acc[c], k.acc[C+c], 0.0
		if k.beta != nil {
			b = float64(k.beta[c])
		}
		x, y := k.x[r*inner:r*inner+inner], k.y[r*inner:r*inner+inner]
		for i, v := range x {
			y[i] = float32((float64(v)-m)*s + b)
		}
	}
}

// bnGradSums writes Σ dy to acc[c] and Σ dy·x̂ to acc[channels+c] for
// channels [lo, hi), x̂ = (x − mean)·invstd from the saved statistics.
func (k *normKern) bnGradSums(lo, hi int) {
	C, inner := k.channels, k.inner
	sdy, sdyx := k.acc[lo:hi], k.acc[C+lo:C+hi]
	clear(sdy)
	clear(sdyx)
	for o := 0; o < k.outer; o++ {
		xs, dys := k.segment(k.x, o, lo, hi), k.segment(k.dy, o, lo, hi)
		for c := range sdy {
			m, is := float64(k.mean[lo+c]), float64(k.rstd[lo+c])
			s, sx := 0.0, 0.0
			dyc := dys[c*inner : c*inner+inner]
			for i, v := range xs[c*inner : c*inner+inner] {
				g := float64(dyc[i])
				s += g
				sx += g * ((float64(v) - m) * is)
			}
			sdy[c] += s
			sdyx[c] += sx
		}
	}
}

// bnGradApply sets dx for rows [lo, hi): dx = a_c·(dy − m1_c − x̂·m2_c)
// with m1 = mean(dy) in acc[c], m2 = mean(dy·x̂) in acc[channels+c] and
// a = gamma·invstd in acc[2·channels+c].
func (k *normKern) bnGradApply(lo, hi int) {
	C, inner := k.channels, k.inner
	for r := lo; r < hi; r++ {
		c := r % C
		m1, m2, a := k.acc[c], k.acc[C+c], k.acc[2*C+c]
		m, is := float64(k.mean[c]), float64(k.rstd[c])
		x := k.x[r*inner : r*inner+inner]
		dy, dx := k.dy[r*inner:r*inner+inner], k.dx[r*inner:r*inner+inner]
		for i, v := range x {
			xh := (float64(v) - m) * is
			dx[i] = float32(a * (float64(dy[i]) - m1 - xh*m2))
		}
	}
}

// lnRows normalises rows [lo, hi) and saves their mean and rstd.
func (k *normKern) lnRows(lo, hi int) {
	cols := k.cols
	eps := float64(k.eps)
	for r := lo; r < hi; r++ {
		x, y := k.x[r*cols:r*cols+cols], k.y[r*cols:r*cols+cols]
		s := 0.0
		for _, v := range x {
			s += float64(v)
		}
		m := s / float64(cols)
		q := 0.0
		for _, v := range x {
			t := float64(v) - m
			q += t * t
		}
		rs := 1 / math.Sqrt(q/float64(cols)+eps)
		k.mean[r], k.rstd[r] = float32(m), float32(rs)
		for j, v := range x {
			t := (float64(v) - m) * rs
			if k.gamma != nil {
				t *= float64(k.gamma[j])
			}
			if k.beta != nil {
				t += float64(k.beta[j])
			}
			y[j] = float32(t)
		}
	}
}

// lnGradRows sets dx for rows [lo, hi): with g = dy·gamma and x̂ = (x −
// mean)·rstd, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
func (k *normKern) lnGradRows(lo, hi int) {
	cols := k.cols
	n := float64(cols)
	for r := lo; r < hi; r++ {
		x, dy, dx := k.x[r*cols:r*cols+cols], k.dy[r*cols:r*cols+cols], k.dx[r*cols:r*cols+cols]
		m, rs := float64(k.mean[r]), float64(k.rstd[r])
		s, sx := 0.0, 0.0
		for j, v := range x {
			g := float64(dy[j])
			if k.gamma != nil {
				g *= float64(k.gamma[j])
			}
			s += g
			sx += g * ((float64(v) - m) * rs)
		}
		m1, m2 := s/n, sx/n
		for j, v := range x {
			g := float64(dy[j])
			if k.gamma != nil {
				g *= float64(k.gamma[j])
			}
			dx[j] = float32(rs * (g - m1 - (float64(v)-m)*rs*m2))
		}
	}
}

// lnGradCols sets dgamma and dbeta (those wanted) for columns [lo, hi),
// each summed over the rows in order.
func (k *normKern) lnGradCols(lo, hi int) {
	cols := k.cols
	sdyx, sdy := k.acc[lo:hi], k.acc[cols+lo:cols+hi]
	clear(sdyx)
	clear(sdy)
	for r := 0; r < k.rows; r++ {
		x, dy := k.x[r*cols+lo:r*cols+hi], k.dy[r*cols+lo:r*cols+hi]
		m, rs := float64(k.mean[r]), float64(k.rstd[r])
		for j, v := range x {
			g := float64(dy[j])
			sdy[j] += g
			sdyx[j] += g * ((float64(v) - m) * rs)
		}
	}
	for j := range sdy {
		if k.dgamma != nil {
			k.dgamma[lo+j] = normAccum(k.accum, k.dgamma[lo+j], sdyx[j])
		}
		if k.dbeta != nil {
			k.dbeta[lo+j] = normAccum(k.accum, k.dbeta[lo+j], sdy[j])
		}
	}
}
