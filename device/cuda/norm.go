//go:build cuda

package cuda

// Batch and layer normalisation: launch glue for kernels/norm.cu. The
// statistics and parameter gradients are deterministic two-pass reductions
// through the device's workspace (per-chunk partials, then a final kernel
// that adds them in a fixed order); no float atomics.

import (
	"math"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
)

// normOptF32 is f32 for an argument that may be nil (then it returns nil).
func (d *Device) normOptF32(op, arg string, b device.Buffer, n int) (*buffer, error) {
	if b == nil {
		return nil, nil
	}
	return d.f32(op, arg, b, n)
}

// normPtr is a kernel's pointer argument for an optional buffer: 0 (null)
// when it is nil.
func normPtr(b *buffer) uint64 {
	if b == nil {
		return 0
	}
	return p(b)
}

// normCheckEps rejects an eps that is negative or NaN (the variance plus
// eps must not be negative). Same words as the CPU backend.
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

// normCheckI32 rejects dimensions the kernels' int arguments cannot hold.
func normCheckI32(op string, namesAndDims ...any) error {
	for i := 0; i+1 < len(namesAndDims); i += 2 {
		name, _ := namesAndDims[i].(string)
		v, _ := namesAndDims[i+1].(int)
		if v > math.MaxInt32 {
			return device.Errorf(op, name, device.ErrInvalid, "the CUDA kernels take at most %d, got %d", math.MaxInt32, v)
		}
	}
	return nil
}

// normMaxElems bounds every element count (2⁴⁰, as the CPU backend): no
// buffer is that long, and products below it do not overflow.
const normMaxElems = 1 << 40

// normArea returns a·b (both ≥ 1), or an ErrSize error when no buffer can
// hold that many elements.
func normArea(op, names string, a, b int) (int, error) {
	if a > normMaxElems/b {
		return 0, device.Errorf(op, names, device.ErrSize, "%d × %d elements is more than any buffer holds", a, b)
	}
	return a * b, nil
}

// bnMinChunk is the fewest values of one channel a batch-norm block
// reduces (below it the hand-off through the workspace costs more than the
// block's work).
const bnMinChunk = 1024

// bnPlan splits each channel's plane of values into chunks of per values,
// one block each, aiming at 4 blocks per SM in all (a copy lives in
// kernels/norm_emu_test.go: keep them in step).
func bnPlan(sms, plane, channels int) (chunks, per int) {
	chunks = min((plane+bnMinChunk-1)/bnMinChunk, max(1, (4*sms+channels-1)/channels), maxPartials)
	per = (plane + chunks - 1) / chunks
	chunks = (plane + per - 1) / per
	return chunks, per
}

// lnColsPlan is the row chunking of LayerNormGrad's column sums, as
// BiasGrad's (a copy lives in kernels/norm_emu_test.go).
func lnColsPlan(sms, rows, cols int) (colBlocks, chunks, rowsPer int) {
	colBlocks = (cols + blockSize - 1) / blockSize
	chunks = 1
	if colBlocks < 2*sms && rows >= 32 {
		chunks = min((rows+15)/16, max(1, 4*sms/colBlocks), maxPartials)
	}
	rowsPer = (rows + chunks - 1) / chunks
	chunks = (rows + rowsPer - 1) / rowsPer
	return colBlocks, chunks, rowsPer
}

// wsAt is the workspace pointer off float64 elements in.
func wsAt(ws cu.DevicePtr, off int) uint64 { return uint64(ws) + 8*uint64(off) }

// BatchNorm normalises x laid out [outer, channels, inner] per channel:
// bn_stats_partial_f32 and bn_stats_final_f32 (statistics and running
// statistics; only the final kernel in evaluation), then bn_apply_f32.
func (d *Device) BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar device.Buffer, outer, channels, inner int,
	training bool, cfg device.NormConfig) error {
	const op = "BatchNorm"
	if d.closed {
		return d.errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	if err := normCheckI32(op, "outer", outer, "channels", channels, "inner", inner); err != nil {
		return err
	}
	plane, err := normArea(op, "outer×inner", outer, inner)
	if err != nil {
		return err
	}
	total, err := normArea(op, "outer×channels×inner", plane, channels)
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
	xb, err := d.f32(op, "x", x, total)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, total)
	if err != nil {
		return err
	}
	gb, err := d.normOptF32(op, "gamma", gamma, channels)
	if err != nil {
		return err
	}
	bb, err := d.normOptF32(op, "beta", beta, channels)
	if err != nil {
		return err
	}
	var mb, sb, rmb, rvb *buffer
	if training {
		mb, err = d.f32(op, "mean", mean, channels)
	} else {
		mb, err = d.normOptF32(op, "mean", mean, channels)
	}
	if err != nil {
		return err
	}
	if training {
		sb, err = d.f32(op, "invstd", invstd, channels)
	} else {
		sb, err = d.normOptF32(op, "invstd", invstd, channels)
	}
	if err != nil {
		return err
	}
	if !training || track {
		// Evaluation needs both; training updates both or neither.
		if rmb, err = d.f32(op, "runMean", runMean, channels); err != nil {
			return err
		}
		if rvb, err = d.f32(op, "runVar", runVar, channels); err != nil {
			return err
		}
	}
	chunks, per := bnPlan(d.sms, plane, channels)
	if !training {
		chunks, per = 0, plane
	}
	finalGrid := uint32((channels + blockSize - 1) / blockSize)
	return d.run(func() error {
		// Workspace: the chunks' (mean, M2) pairs, then coef (μ and
		// invstd·gamma per channel) for bn_apply_f32.
		ws, err := d.workspace(8 * int64(2*chunks*channels+2*channels))
		if err != nil {
			return err
		}
		coef := wsAt(ws, 2*chunks*channels)
		var partials uint64
		if training {
			partials = uint64(ws)
			if err := d.launchShape(kBNStatsPartial, [3]uint32{uint32(channels), uint32(chunks), 1}, [3]uint32{blockSize, 1, 1},
				p(xb), argI32(outer), argI32(channels), argI32(inner), argI64(per), partials); err != nil {
				return err
			}
		}
		if err := d.launch(kBNStatsFinal, finalGrid, partials, argI32(max(chunks, 1)), argI64(per), argI64(plane),
			argI32(channels), argBool(training), argF32(cfg.Eps), argF32(cfg.Momentum),
			normPtr(gb), normPtr(mb), normPtr(sb), normPtr(rmb), normPtr(rvb), coef); err != nil {
			return err
		}
		return d.launch(kBNApply, d.grid1D(int64(total)), p(xb), p(yb), normPtr(bb), coef,
			argI64(total), argI32(channels), argI32(inner))
	})
}

// BatchNormGrad is the backward of BatchNorm in training mode:
// bn_grad_partial_f32 and bn_grad_final_f32 (Σ dy and Σ dy·x̂ per channel,
// dgamma and dbeta), then bn_grad_apply_f32 for dx.
func (d *Device) BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta device.Buffer, outer, channels, inner int, accum float32) error {
	const op = "BatchNormGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	if err := normCheckI32(op, "outer", outer, "channels", channels, "inner", inner); err != nil {
		return err
	}
	plane, err := normArea(op, "outer×inner", outer, inner)
	if err != nil {
		return err
	}
	total, err := normArea(op, "outer×channels×inner", plane, channels)
	if err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, total)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, total)
	if err != nil {
		return err
	}
	gb, err := d.normOptF32(op, "gamma", gamma, channels)
	if err != nil {
		return err
	}
	mb, err := d.f32(op, "mean", mean, channels)
	if err != nil {
		return err
	}
	sb, err := d.f32(op, "invstd", invstd, channels)
	if err != nil {
		return err
	}
	dxb, err := d.normOptF32(op, "dx", dx, total)
	if err != nil {
		return err
	}
	dgb, err := d.normOptF32(op, "dgamma", dgamma, channels)
	if err != nil {
		return err
	}
	dbb, err := d.normOptF32(op, "dbeta", dbeta, channels)
	if err != nil {
		return err
	}
	if dxb == nil && dgb == nil && dbb == nil {
		return nil
	}
	chunks, per := bnPlan(d.sms, plane, channels)
	return d.run(func() error {
		// Workspace: the chunks' (Σ dy, Σ dy·x̂) pairs, then coef
		// (mean(dy), mean(dy·x̂), gamma·invstd per channel).
		ws, err := d.workspace(8 * int64(2*chunks*channels+3*channels))
		if err != nil {
			return err
		}
		coef := wsAt(ws, 2*chunks*channels)
		if err := d.launchShape(kBNGradPartial, [3]uint32{uint32(channels), uint32(chunks), 1}, [3]uint32{blockSize, 1, 1},
			p(xb), p(dyb), p(mb), p(sb), argI32(outer), argI32(channels), argI32(inner), argI64(per), uint64(ws)); err != nil {
			return err
		}
		if err := d.launch(kBNGradFinal, uint32((channels+blockSize-1)/blockSize), uint64(ws), argI32(chunks),
			argI32(channels), argI64(plane), normPtr(gb), p(sb), normPtr(dgb), normPtr(dbb), argF32(accum), coef); err != nil {
			return err
		}
		if dxb == nil {
			return nil
		}
		return d.launch(kBNGradApply, d.grid1D(int64(total)), p(xb), p(dyb), p(mb), p(sb), coef, p(dxb),
			argI64(total), argI32(channels), argI32(inner))
	})
}

// LayerNorm normalises each row of the rows×cols x over its cols values,
// one warp a row (layer_norm_rows_f32).
func (d *Device) LayerNorm(x, y, gamma, beta, mean, rstd device.Buffer, rows, cols int, eps float32) error {
	const op = "LayerNorm"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	if err := normCheckI32(op, "rows", rows, "cols", cols); err != nil {
		return err
	}
	n, err := normArea(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	if err := normCheckEps(op, "eps", eps); err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	gb, err := d.normOptF32(op, "gamma", gamma, cols)
	if err != nil {
		return err
	}
	bb, err := d.normOptF32(op, "beta", beta, cols)
	if err != nil {
		return err
	}
	mb, err := d.f32(op, "mean", mean, rows)
	if err != nil {
		return err
	}
	sb, err := d.f32(op, "rstd", rstd, rows)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kLNRows, rowGrid(rows), p(xb), p(yb), normPtr(gb), normPtr(bb), p(mb), p(sb),
			argI32(rows), argI32(cols), argF32(eps))
	})
}

// LayerNormGrad is the backward of LayerNorm: the column sums dgamma and
// dbeta first (layer_norm_grad_cols_f32, through the workspace and
// layer_norm_grad_cols_final_f32 when the rows are split), then dx one warp
// a row (layer_norm_grad_rows_f32).
func (d *Device) LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta device.Buffer, rows, cols int, accum float32) error {
	const op = "LayerNormGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	if err := normCheckI32(op, "rows", rows, "cols", cols); err != nil {
		return err
	}
	n, err := normArea(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, n)
	if err != nil {
		return err
	}
	gb, err := d.normOptF32(op, "gamma", gamma, cols)
	if err != nil {
		return err
	}
	mb, err := d.f32(op, "mean", mean, rows)
	if err != nil {
		return err
	}
	sb, err := d.f32(op, "rstd", rstd, rows)
	if err != nil {
		return err
	}
	dxb, err := d.normOptF32(op, "dx", dx, n)
	if err != nil {
		return err
	}
	dgb, err := d.normOptF32(op, "dgamma", dgamma, cols)
	if err != nil {
		return err
	}
	dbb, err := d.normOptF32(op, "dbeta", dbeta, cols)
	if err != nil {
		return err
	}
	colBlocks, chunks, rowsPer := lnColsPlan(d.sms, rows, cols)
	return d.run(func() error {
		// The column sums first: they read dy, which dx may overwrite.
		if dgb != nil || dbb != nil {
			if chunks == 1 {
				if err := d.launchShape(kLNGradCols, [3]uint32{uint32(colBlocks), 1, 1}, [3]uint32{blockSize, 1, 1},
					p(xb), p(dyb), p(mb), p(sb), argI32(rows), argI32(cols), argI32(rowsPer), 0,
					normPtr(dgb), normPtr(dbb), argF32(accum)); err != nil {
					return err
				}
			} else {
				ws, err := d.workspace(8 * 2 * int64(chunks) * int64(cols))
				if err != nil {
					return err
				}
				if err := d.launchShape(kLNGradCols, [3]uint32{uint32(colBlocks), uint32(chunks), 1}, [3]uint32{blockSize, 1, 1},
					p(xb), p(dyb), p(mb), p(sb), argI32(rows), argI32(cols), argI32(rowsPer), uint64(ws),
					normPtr(dgb), normPtr(dbb), argF32(accum)); err != nil {
					return err
				}
				if err := d.launch(kLNGradColsFinal, uint32(colBlocks), uint64(ws), argI32(chunks), argI32(cols),
					normPtr(dgb), normPtr(dbb), argF32(accum)); err != nil {
					return err
				}
			}
		}
		if dxb == nil {
			return nil
		}
		return d.launch(kLNGradRows, rowGrid(rows), p(xb), p(dyb), normPtr(gb), p(mb), p(sb), p(dxb),
			argI32(rows), argI32(cols))
	})
}
