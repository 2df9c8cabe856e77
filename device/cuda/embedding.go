//go:build cuda

package cuda

// The embedding family (kernels/embedding.cu): Gather, ScatterAdd and
// CrossEntropy with an ignore index.
//
// Indices and labels must be refused with ErrInvalid when out of range, as
// the CPU backend refuses them, without reading them back every step: as
// Loss does (labels.go), each call first asks the range the host knows of
// the int32 allocation ([min, max] of what WriteI32 and the kernels wrote),
// and only when that range does not prove the values valid reads the n
// values back and checks them exactly. For CrossEntropy, labels equal to
// the ignore index are valid; a range proves that only when the ignore
// index is next to [0, cols) (−1 or cols) or the range is the ignore index
// alone, or when every negative value the host wrote is the ignore index
// (labels.go keeps that summary), which covers labels padded with PyTorch's
// −100; other layouts are read back and checked.

import (
	"math"
	"sync"

	"github.com/kilnml/kiln/device"
)

// maxEmbDim bounds the dimensions passed to the kernels as int (and keeps
// the staging arithmetic of scatter_add_rows_f32 below 2³¹).
const maxEmbDim = math.MaxInt32 - 1024

// idxScratch holds the host slices that index checks read back into, so a
// steady loop of read-back checks allocates nothing.
var idxScratch = sync.Pool{New: func() any { return new([]int32) }}

// knownWithin reports whether the host knows every value of the allocation
// behind b to lie in [lo, hi].
func knownWithin(b *buffer, lo, hi int64) bool {
	r := b.a.lbl
	return r.known && int64(r.min) >= lo && int64(r.max) <= hi
}

// readIndices reads the first n values of b back, waiting for the stream,
// into a pooled slice the caller returns with idxScratch.Put. It must run
// inside d.run.
func (d *Device) readIndices(op string, b *buffer, n int) (*[]int32, error) {
	sp := idxScratch.Get().(*[]int32)
	if cap(*sp) < n {
		*sp = make([]int32, n)
	}
	*sp = (*sp)[:n]
	if err := d.readBytes(op, i32Bytes(*sp), b.ptr()); err != nil {
		idxScratch.Put(sp)
		return nil, err
	}
	return sp, nil
}

// learn records the values just read back as b's exact range when they
// cover its whole allocation, so the next call can skip the read.
func learn(b *buffer, vals []int32) {
	if b.off == 0 && len(vals) >= b.a.n {
		b.noteWrite(0, vals)
	}
}

// checkIndices makes sure every one of the n indices of b lies in
// [0, rows), reading them back only when their range is not known to. It
// must run inside d.run.
func (d *Device) checkIndices(op string, b *buffer, n, rows int) error {
	if knownWithin(b, 0, int64(rows)-1) {
		return nil
	}
	sp, err := d.readIndices(op, b, n)
	if err != nil {
		return err
	}
	defer idxScratch.Put(sp)
	for i, r := range *sp {
		if r < 0 || int64(r) >= int64(rows) {
			return device.Errorf(op, "idx", device.ErrInvalid, "expected indices in [0, %d), got %d at position %d", rows, r, i)
		}
	}
	learn(b, *sp)
	return nil
}

// checkXentLabels makes sure every one of the rows labels of b is ignore
// or lies in [0, cols), reading them back only when their range does not
// prove it. It must run inside d.run.
func (d *Device) checkXentLabels(op string, b *buffer, rows, cols int, ignore int32) error {
	ig := int64(ignore)
	switch {
	case knownWithin(b, 0, int64(cols)-1), knownWithin(b, ig, ig):
		return nil
	case ig >= -1 && ig <= int64(cols) && knownWithin(b, min(0, ig), max(int64(cols)-1, ig)):
		return nil // [0, cols) ∪ {ignore} is one interval
	case b.a.lbl.validWithIgnore(cols, ignore):
		return nil // every negative value is the ignore index (padding with −100)
	}
	sp, err := d.readIndices(op, b, rows)
	if err != nil {
		return err
	}
	defer idxScratch.Put(sp)
	for i, l := range *sp {
		if l != ignore && (l < 0 || int64(l) >= int64(cols)) {
			return device.Errorf(op, "labels", device.ErrInvalid,
				"expected class labels in [0, %d) or the ignore index %d, got %d at row %d", cols, ignore, l, i)
		}
	}
	learn(b, *sp)
	return nil
}

// checkEmbDims checks that each named dimension is at least 1 and small
// enough for the kernels' int arguments.
func checkEmbDims(op string, namesAndDims ...any) error {
	if err := device.CheckDims(op, namesAndDims...); err != nil {
		return err
	}
	for i := 0; i+1 < len(namesAndDims); i += 2 {
		name, _ := namesAndDims[i].(string)
		if v, _ := namesAndDims[i+1].(int); v > maxEmbDim {
			return device.Errorf(op, name, device.ErrSize, "expected a dimension ≤ %d, got %d", maxEmbDim, v)
		}
	}
	return nil
}

// embeddingArgs checks the arguments shared by Gather and ScatterAdd.
func (d *Device) embeddingArgs(op, tableArg, rowsArg string, table, idx, rowsBuf device.Buffer, rows, cols, n int) (tb, ib, rb *buffer, err error) {
	if d.closed {
		return nil, nil, nil, d.errClosed(op)
	}
	if err := checkEmbDims(op, "rows", rows, "cols", cols, "n", n); err != nil {
		return nil, nil, nil, err
	}
	if tb, err = d.f32(op, tableArg, table, rows*cols); err != nil {
		return nil, nil, nil, err
	}
	if ib, err = d.i32(op, "idx", idx, n); err != nil {
		return nil, nil, nil, err
	}
	if rb, err = d.f32(op, rowsArg, rowsBuf, n*cols); err != nil {
		return nil, nil, nil, err
	}
	return tb, ib, rb, nil
}

// Gather sets out[i, :] = table[idx[i], :] (kernels/embedding.cu,
// gather_rows_f32: one thread per output element, grid-stride).
func (d *Device) Gather(table, idx, out device.Buffer, rows, cols, n int) error {
	const op = "Gather"
	tb, ib, ob, err := d.embeddingArgs(op, "table", "out", table, idx, out, rows, cols, n)
	if err != nil {
		return err
	}
	total := int64(n) * int64(cols)
	return d.run(func() error {
		if err := d.checkIndices(op, ib, n, rows); err != nil {
			return err
		}
		return d.launch(kGather, d.grid1D(total), p(tb), p(ib), p(ob), argI32(rows), argI32(cols), argI64(int(total)))
	})
}

// scatterGroups is the number of row groups (grid.y) of
// scatter_add_rows_f32: enough blocks for about four per SM, and no more
// groups than rows or indices (extra groups would find nothing to add).
func (d *Device) scatterGroups(rows, cols, n int) int {
	colBlocks := (cols + blockSize - 1) / blockSize
	g := (4*d.sms + colBlocks - 1) / colBlocks
	return max(1, min(g, rows, n, 65535))
}

// ScatterAdd sets dtable[idx[i], :] += dout[i, :] in ascending i without
// atomics (kernels/embedding.cu, scatter_add_rows_f32: each element of
// dtable is owned by one thread, which walks the indices in order; see the
// kernel's comment for the cost).
func (d *Device) ScatterAdd(dtable, idx, dout device.Buffer, rows, cols, n int) error {
	const op = "ScatterAdd"
	tb, ib, ob, err := d.embeddingArgs(op, "dtable", "dout", dtable, idx, dout, rows, cols, n)
	if err != nil {
		return err
	}
	groups := d.scatterGroups(rows, cols, n)
	grid := [3]uint32{uint32((cols + blockSize - 1) / blockSize), uint32(groups), 1}
	return d.run(func() error {
		if err := d.checkIndices(op, ib, n, rows); err != nil {
			return err
		}
		return d.launchShape(kScatterAdd, grid, [3]uint32{blockSize, 1, 1}, p(tb), p(ib), p(ob),
			argI32(rows), argI32(cols), argI32(n), argI32(groups))
	})
}

// CrossEntropy writes the mean over the rows not labelled ignoreIndex of
// −log softmax(logits)[label] into loss[0] and, when grad is not nil, its
// gradient (kernels/embedding.cu: the count of kept rows, one warp per row
// with an online log-sum-exp, then a fixed-order sum; three launches and
// no host round trip when the labels' range is known).
func (d *Device) CrossEntropy(logits, labels device.Buffer, rows, cols int, ignoreIndex int32, loss, grad device.Buffer) error {
	const op = "CrossEntropy"
	if d.closed {
		return d.errClosed(op)
	}
	if err := checkEmbDims(op, "rows", rows, "cols", cols); err != nil {
		return err
	}
	n := rows * cols
	xb, err := d.f32(op, "logits", logits, n)
	if err != nil {
		return err
	}
	lb, err := d.i32(op, "labels", labels, rows)
	if err != nil {
		return err
	}
	lossb, err := d.f32(op, "loss", loss, 1)
	if err != nil {
		return err
	}
	var gptr uint64
	if grad != nil {
		gb, err := d.f32(op, "grad", grad, n)
		if err != nil {
			return err
		}
		gptr = p(gb)
	}
	return d.run(func() error {
		if err := d.checkXentLabels(op, lb, rows, cols, ignoreIndex); err != nil {
			return err
		}
		// Workspace: [0] the count of kept rows, [1, rows] the row losses.
		ws, err := d.workspace(int64(rows+1) * 8)
		if err != nil {
			return err
		}
		count, rowloss := uint64(ws), uint64(ws)+8
		ig := argI32(int(ignoreIndex))
		if err := d.launch(kXentIgnoreCount, 1, p(lb), argI32(rows), ig, count); err != nil {
			return err
		}
		if err := d.launch(kXentIgnoreRows, rowGrid(rows), p(xb), p(lb), argI32(rows), argI32(cols), ig, gptr, count, rowloss); err != nil {
			return err
		}
		return d.launch(kXentIgnoreFinal, 1, rowloss, argI32(rows), count, p(lossb))
	})
}
