package cpu

// Batch and layer normalisation: the reference implementation. Statistics
// and sums are accumulated in float64 and every output is rounded once, so
// the results are within an ulp or two of a float64 evaluation of PyTorch's
// definitions. Work is split across the workers by channels (batch norm
// statistics), by rows (layer norm, and the elementwise passes) or by
// columns (layer norm's dgamma/dbeta), so that each sum is taken by one
// goroutine in a fixed order: the results do not depend on the split.
// Batch norm's per-segment sums and elementwise passes are the vector
// kernels of device/cpu/internal/stat (AVX-512 or AVX2, else portable Go,
// all with the same bits): each sums a segment over a fixed set of float64
// chains (its package comment states the order), and the segments of a
// channel are added in outer order. Layer norm's rows use the same
// kernels and stat's row kernels (gamma and beta along the row), and its
// column sums stat.ColSums, one row after the other.

import (
	"math"
	"sync"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/stat"
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
	bnFused                       // stats, then y, channel by channel
	bnGradFused                   // sums, dgamma/dbeta, then dx, channel by channel
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
	runMean, runVar        []float32 // BatchNorm's running statistics (nil: not tracked)
	momentum               float32
	training               bool
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
	k.mean, k.rstd, k.runMean, k.runVar = mf, sf, rm, rv
	k.momentum, k.training = cfg.Momentum, training
	if training && inner >= bnFuseInner {
		// One pass per channel: its statistics, then its y while its
		// values are still in the cache.
		k.op = bnFused
		d.w.parallel(k, channels, min(d.w.chunks(total, ewGrain), channels), 1)
		return nil
	}
	if training {
		// Pass 1: μ and the biased σ² per channel into mu and scale.
		k.op = bnStats
		d.w.parallel(k, channels, min(d.w.chunks(total, ewGrain), channels), normChanAlign(inner))
	}
	for c := 0; c < channels; c++ {
		if !training {
			mu[c], scale[c] = float64(rm[c]), float64(rv[c])
		}
		scale[c] = k.bnFinish(c, mu[c], scale[c])
	}
	// Pass 2: y, over the outer·channels rows of inner elements.
	k.op = bnApply
	d.w.parallel(k, outer*channels, d.w.chunks(total, ewGrain), 1)
	return nil
}

// bnFuseInner is the smallest inner size (H·W) for which BatchNorm and
// BatchNormGrad work channel by channel in one pass: with shorter segments
// neighbouring channels share cache lines, and the passes over all
// channels at once read memory in order.
const bnFuseInner = 64

// bnFinish turns channel c's statistics (μ and σ², batch or running) into
// the saved mean and invstd (where wanted) and, in training, the running
// update; it returns the scale invstd·gamma that y is computed with.
func (k *normKern) bnFinish(c int, mu, v float64) float64 {
	is := 1 / math.Sqrt(v+float64(k.eps))
	if k.mean != nil {
		k.mean[c] = float32(mu)
	}
	if k.rstd != nil {
		k.rstd[c] = float32(is)
	}
	if k.training && k.runMean != nil {
		m := float64(k.momentum)
		plane := k.outer * k.inner
		unbiased := v * float64(plane) / float64(plane-1)
		k.runMean[c] = float32((1-m)*float64(k.runMean[c]) + m*mu)
		k.runVar[c] = float32((1-m)*float64(k.runVar[c]) + m*unbiased)
	}
	if k.gamma != nil {
		is *= float64(k.gamma[c])
	}
	return is
}

// bnFused is the training forward of channels [lo, hi) for long segments:
// bnStats' two passes, bnFinish, and bnApply's rows, a block of channels
// at a time (bnBlock), so y is computed from values the statistics just
// brought into the cache, and each pass reads the block's segments of one
// outer index together (longer runs of memory than one channel's). Every
// channel's sums are those of bnStats, in the same order.
func (k *normKern) bnFused(lo, hi int) {
	C, inner := k.channels, k.inner
	n := float64(k.outer * inner)
	mu, vr := k.acc[:C], k.acc[C:2*C]
	for c0 := lo; c0 < hi; c0 += k.bnBlock(1) {
		c1 := min(hi, c0+k.bnBlock(1))
		clear(mu[c0:c1])
		clear(vr[c0:c1])
		for o := 0; o < k.outer; o++ {
			for c := c0; c < c1; c++ {
				base := (o*C + c) * inner
				mu[c] += stat.Sum(k.x[base : base+inner])
			}
		}
		for c := c0; c < c1; c++ {
			mu[c] /= n
		}
		for o := 0; o < k.outer; o++ {
			for c := c0; c < c1; c++ {
				base := (o*C + c) * inner
				vr[c] += stat.SqDev(k.x[base:base+inner], mu[c])
			}
		}
		for c := c0; c < c1; c++ {
			vr[c] = k.bnFinish(c, mu[c], vr[c]/n) // now the scale
		}
		for o := 0; o < k.outer; o++ {
			for c := c0; c < c1; c++ {
				m, sc, b := mu[c], vr[c], 0.0
				if k.beta != nil {
					b = float64(k.beta[c])
				}
				base := (o*C + c) * inner
				stat.Affine(k.x[base:base+inner], k.y[base:base+inner], m, sc, b)
			}
		}
	}
}

// bnBlockFloats is the input a block of bnFused and bnGradFused spans:
// 1 MiB, half a core's L2, so that a block's x (bnFused; x and dy
// together in bnGradFused) stay cached between its passes.
const bnBlockFloats = 1 << 18

// bnBlock is how many channels a block of bnFused (inputs 1: x) or
// bnGradFused (inputs 2: x and dy) holds.
func (k *normKern) bnBlock(inputs int) int {
	return max(1, bnBlockFloats/(inputs*k.outer*k.inner))
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
	if inner >= bnFuseInner {
		k.acc = d.normScratch(2 * channels)
		k.op = bnGradFused
		d.w.parallel(k, channels, min(d.w.chunks(2*total, ewGrain), channels), 1)
		return nil
	}
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
	case bnFused:
		k.bnFused(lo, hi)
	case bnGradFused:
		k.bnGradFused(lo, hi)
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
// mean costs no accuracy). It serves short segments only (inner <
// bnFuseInner; longer ones go through bnFused): there neighbouring
// channels share cache lines, so the loops run outer-major over all
// channels of the chunk at once, each segment of inner values summed by
// stat.Sum and stat.SqDev (32 float64 chains in stat's fixed order), the
// segments in outer order.
func (k *normKern) bnStats(lo, hi int) {
	inner := k.inner
	n := float64(k.outer * inner)
	C := k.channels
	mu, vr := k.acc[lo:hi], k.acc[C+lo:C+hi]
	clear(mu)
	clear(vr)
	for o := 0; o < k.outer; o++ {
		seg := k.segment(k.x, o, lo, hi)
		if inner == 1 { // stat.Sum of one value is that value
			for c, v := range seg[:len(mu)] {
				mu[c] += float64(v)
			}
			continue
		}
		for c := range mu {
			mu[c] += stat.Sum(seg[c*inner : c*inner+inner])
		}
	}
	for c := range mu {
		mu[c] /= n
	}
	for o := 0; o < k.outer; o++ {
		seg := k.segment(k.x, o, lo, hi)
		if inner == 1 { // stat.SqDev of one value, without the call
			for c, v := range seg[:len(vr)] {
				t := float64(v) - mu[c]
				vr[c] += float64(t * t)
			}
			continue
		}
		for c := range mu {
			vr[c] += stat.SqDev(seg[c*inner:c*inner+inner], mu[c])
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
	c := lo%C - 1
	for r := lo; r < hi; r++ {
		if c++; c == C { // c = r mod C, without a division per row
			c = 0
		}
		m, s, b := k.acc[c], k.acc[C+c], 0.0
		if k.beta != nil {
			b = float64(k.beta[c])
		}
		x, y := k.x[r*inner:r*inner+inner], k.y[r*inner:r*inner+inner]
		if inner >= 8 {
			stat.Affine(x, y, m, s, b)
			continue
		}
		for i, v := range x { // stat.Affine's arithmetic, without the call
			y[i] = float32(float64((float64(v)-m)*s) + b)
		}
	}
}

// bnGradSums writes Σ dy to acc[c] and Σ dy·x̂ to acc[channels+c] for
// channels [lo, hi), x̂ = (x − mean)·invstd from the saved statistics:
// per channel, the segments in outer order, each by stat.GradSums, and
// Σ dy·x̂ as invstd·Σ dy·(x − mean).
// Short segments run outer-major, as in bnStats.
func (k *normKern) bnGradSums(lo, hi int) {
	C, inner := k.channels, k.inner
	if inner < 64 {
		sdy, sdyx := k.acc[lo:hi], k.acc[C+lo:C+hi]
		clear(sdy)
		clear(sdyx)
		for o := 0; o < k.outer; o++ {
			xs, dys := k.segment(k.x, o, lo, hi), k.segment(k.dy, o, lo, hi)
			if inner == 1 { // stat.GradSums of one value, without the call
				xs, dys = xs[:len(sdy)], dys[:len(sdy)]
				for c, v := range xs {
					g := float64(dys[c])
					sdy[c] += g
					sdyx[c] += float64(g * (float64(v) - float64(k.mean[lo+c])))
				}
				continue
			}
			for c := range sdy {
				a, b := stat.GradSums(xs[c*inner:c*inner+inner], dys[c*inner:c*inner+inner], float64(k.mean[lo+c]))
				sdy[c] += a
				sdyx[c] += b
			}
		}
		for c := range sdyx {
			sdyx[c] *= float64(k.rstd[lo+c])
		}
		return
	}
	for c := lo; c < hi; c++ {
		m := float64(k.mean[c])
		s, sx := 0.0, 0.0
		for o := 0; o < k.outer; o++ {
			base := (o*C + c) * inner
			a, b := stat.GradSums(k.x[base:base+inner], k.dy[base:base+inner], m)
			s += a
			sx += b
		}
		k.acc[c], k.acc[C+c] = s, sx*float64(k.rstd[c])
	}
}

// bnGradFused is BatchNormGrad for channels [lo, hi) with long segments,
// a block of channels at a time as bnFused: bnGradSums' sums, dgamma and
// dbeta, then bnGradApply's dx rows from values the sums just brought into
// the cache, with the arithmetic of the separate passes.
func (k *normKern) bnGradFused(lo, hi int) {
	C, inner := k.channels, k.inner
	n := float64(k.outer * inner)
	sdy, sdyx := k.acc[:C], k.acc[C:2*C]
	for c0 := lo; c0 < hi; c0 += k.bnBlock(2) {
		c1 := min(hi, c0+k.bnBlock(2))
		clear(sdy[c0:c1])
		clear(sdyx[c0:c1])
		for o := 0; o < k.outer; o++ {
			for c := c0; c < c1; c++ {
				base := (o*C + c) * inner
				a, b := stat.GradSums(k.x[base:base+inner], k.dy[base:base+inner], float64(k.mean[c]))
				sdy[c] += a
				sdyx[c] += b
			}
		}
		for c := c0; c < c1; c++ {
			sdyx[c] *= float64(k.rstd[c])
			if k.dgamma != nil {
				k.dgamma[c] = normAccum(k.accum, k.dgamma[c], sdyx[c])
			}
			if k.dbeta != nil {
				k.dbeta[c] = normAccum(k.accum, k.dbeta[c], sdy[c])
			}
		}
		if k.dx == nil {
			continue
		}
		for o := 0; o < k.outer; o++ {
			for c := c0; c < c1; c++ {
				m, is := float64(k.mean[c]), float64(k.rstd[c])
				a := is
				if k.gamma != nil {
					a *= float64(k.gamma[c])
				}
				am1, k1 := a*(sdy[c]/n), a*is*(sdyx[c]/n)
				base := (o*C + c) * inner
				stat.GradApply(k.x[base:base+inner], k.dy[base:base+inner], k.dx[base:base+inner], m, a, am1, k1)
			}
		}
	}
}

// bnGradApply sets dx for rows [lo, hi): dx = a_c·(dy − m1_c − x̂·m2_c)
// with m1 = mean(dy) in acc[c], m2 = mean(dy·x̂) in acc[channels+c] and
// a = gamma·invstd in acc[2·channels+c].
func (k *normKern) bnGradApply(lo, hi int) {
	C, inner := k.channels, k.inner
	c := lo%C - 1
	for r := lo; r < hi; r++ {
		if c++; c == C { // c = r mod C, without a division per row
			c = 0
		}
		m1, m2, a := k.acc[c], k.acc[C+c], k.acc[2*C+c]
		m, is := float64(k.mean[c]), float64(k.rstd[c])
		// a·(dy − m1 − (x − m)·is·m2) = a·dy − (a·m1 + (x − m)·a·is·m2).
		am1, k1 := a*m1, a*is*m2
		x := k.x[r*inner : r*inner+inner]
		dy, dx := k.dy[r*inner:r*inner+inner], k.dx[r*inner:r*inner+inner]
		if inner >= 8 {
			stat.GradApply(x, dy, dx, m, a, am1, k1)
			continue
		}
		dy, dx = dy[:len(x)], dx[:len(x)]
		for i, v := range x { // stat.GradApply's arithmetic, without the call
			dx[i] = float32(float64(a*float64(dy[i])) - (am1 + float64((float64(v)-m)*k1)))
		}
	}
}

// lnRows normalises rows [lo, hi) and saves their mean and rstd: the mean
// by stat.Sum, the biased variance by stat.SqDev (two passes, 32 float64
// chains in stat's fixed order), then y = ((x − mean)·rstd)·gamma + beta
// by stat.AffineRow (stat.Affine without gamma and beta).
func (k *normKern) lnRows(lo, hi int) {
	cols := k.cols
	n, eps := float64(cols), float64(k.eps)
	for r := lo; r < hi; r++ {
		x, y := k.x[r*cols:r*cols+cols], k.y[r*cols:r*cols+cols]
		m := stat.Sum(x) / n
		rs := 1 / math.Sqrt(stat.SqDev(x, m)/n+eps)
		k.mean[r], k.rstd[r] = float32(m), float32(rs)
		switch {
		case k.gamma != nil && k.beta != nil:
			stat.AffineRow(x, y, k.gamma, k.beta, m, rs)
		case k.gamma == nil && k.beta == nil:
			stat.Affine(x, y, m, rs, 0)
		default: // one of the two: AffineRow's arithmetic
			for j, v := range x {
				t := float64((float64(v) - m) * rs)
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
}

// lnGradRows sets dx for rows [lo, hi): with g = dy·gamma and x̂ = (x −
// mean)·rstd, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), evaluated as
// rstd·g − (rstd·mean(g) + (x − mean)·rstd²·mean(g·x̂)) by stat.GradApplyRow
// (stat.GradApply without gamma), the sums Σ g and Σ g·(x − mean) by
// stat.GradSumsRow (stat.GradSums): 16 float64 chains in stat's order.
func (k *normKern) lnGradRows(lo, hi int) {
	cols := k.cols
	n := float64(cols)
	for r := lo; r < hi; r++ {
		x, dy, dx := k.x[r*cols:r*cols+cols], k.dy[r*cols:r*cols+cols], k.dx[r*cols:r*cols+cols]
		m, rs := float64(k.mean[r]), float64(k.rstd[r])
		var s, sx float64
		if k.gamma != nil {
			s, sx = stat.GradSumsRow(x, dy, k.gamma, m)
		} else {
			s, sx = stat.GradSums(x, dy, m)
		}
		// m2 = mean(g·x̂) = rstd·Σ g·(x − mean)/n.
		m1, m2 := s/n, rs*sx/n
		am1, k1 := rs*m1, rs*rs*m2
		if k.gamma != nil {
			stat.GradApplyRow(x, dy, k.gamma, dx, m, rs, am1, k1)
		} else {
			stat.GradApply(x, dy, dx, m, rs, am1, k1)
		}
	}
}

// lnGradCols sets dgamma and dbeta (those wanted) for columns [lo, hi),
// each summed over the rows in order, a row's terms added by stat.ColSums.
func (k *normKern) lnGradCols(lo, hi int) {
	cols := k.cols
	sdyx, sdy := k.acc[lo:hi], k.acc[cols+lo:cols+hi]
	clear(sdyx)
	clear(sdy)
	for r := 0; r < k.rows; r++ {
		x, dy := k.x[r*cols+lo:r*cols+hi], k.dy[r*cols+lo:r*cols+hi]
		stat.ColSums(x, dy, sdy, sdyx, float64(k.mean[r]), float64(k.rstd[r]))
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
