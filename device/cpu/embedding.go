package cpu

// The embedding family: Gather (nn.Embedding's lookup), its adjoint
// ScatterAdd, and CrossEntropy with an ignore index. They run on the
// Device's workers through embKern, a second view of the Device's argument
// block d.k (same memory, its own run method), so a call allocates
// nothing.

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// The loops embKern.run executes (its own numbering: kern.run never sees
// them).
const (
	opGather opcode = iota + 1
	opScatterAdd
	opCrossEntropy
)

// embKern is kern with the embedding loops as its run method.
type embKern kern

func (d *Device) embKern() *embKern { return (*embKern)(&d.k) }

func (k *embKern) run(chunk, lo, hi int) {
	switch k.op {
	case opGather:
		// Rows [lo, hi) of out.
		cols := k.cols
		for i := lo; i < hi; i++ {
			r := int(k.lab[i])
			copy(k.c[i*cols:(i+1)*cols], k.a[r*cols:(r+1)*cols])
		}
	case opScatterAdd:
		// Columns [lo, hi) of every row, walking the indices in ascending
		// order: each dtable element receives its terms in ascending i,
		// whatever the chunking.
		cols := k.cols
		for i, r := range k.lab {
			dst := k.c[int(r)*cols+lo : int(r)*cols+hi]
			src := k.a[i*cols+lo : i*cols+hi]
			for j, v := range src {
				dst[j] += v
			}
		}
	case opCrossEntropy:
		k.part[chunk] = k.xentRows(lo, hi)
	}
}

// checkIndices returns an ErrInvalid error naming the first index outside
// [0, rows) (arg names the buffer in the error).
func checkIndices(op, arg string, idx []int32, rows int) error {
	for i, r := range idx {
		if r < 0 || int64(r) >= int64(rows) {
			return device.Errorf(op, arg, device.ErrInvalid, "expected indices in [0, %d), got %d at position %d", rows, r, i)
		}
	}
	return nil
}

// embeddingArgs checks the arguments shared by Gather and ScatterAdd: the
// rows×cols table, n indices and the n×cols rows.
func (d *Device) embeddingArgs(op, tableArg, rowsArg string, table, idx, rowsBuf device.Buffer, rows, cols, n int) (tf, rf []float32, ix []int32, err error) {
	if d.closed {
		return nil, nil, nil, errClosed(op)
	}
	if err := device.CheckDims(op, "rows", rows, "cols", cols, "n", n); err != nil {
		return nil, nil, nil, err
	}
	tn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return nil, nil, nil, err
	}
	on, err := area(op, "n×cols", n, cols)
	if err != nil {
		return nil, nil, nil, err
	}
	if tf, err = d.f32(op, tableArg, table, tn); err != nil {
		return nil, nil, nil, err
	}
	if ix, err = d.i32(op, "idx", idx, n); err != nil {
		return nil, nil, nil, err
	}
	if rf, err = d.f32(op, rowsArg, rowsBuf, on); err != nil {
		return nil, nil, nil, err
	}
	if err := checkIndices(op, "idx", ix[:n], rows); err != nil {
		return nil, nil, nil, err
	}
	return tf, rf, ix[:n], nil
}

// Gather sets out[i, :] = table[idx[i], :] for the n indices of idx.
func (d *Device) Gather(table, idx, out device.Buffer, rows, cols, n int) error {
	const op = "Gather"
	tf, of, ix, err := d.embeddingArgs(op, "table", "out", table, idx, out, rows, cols, n)
	if err != nil {
		return err
	}
	d.k = kern{op: opGather, a: tf, c: of, lab: ix, cols: cols}
	d.w.parallel(d.embKern(), n, d.w.chunks(n, rowGrain(ewGrain, cols)), 1)
	d.release()
	return nil
}

// ScatterAdd sets dtable[idx[i], :] += dout[i, :] for i = 0 … n−1, adding
// in ascending i (float32 sums, as a serial loop would make them). The
// work is split by columns, never by indices, so the order of every sum is
// fixed.
func (d *Device) ScatterAdd(dtable, idx, dout device.Buffer, rows, cols, n int) error {
	const op = "ScatterAdd"
	tf, of, ix, err := d.embeddingArgs(op, "dtable", "dout", dtable, idx, dout, rows, cols, n)
	if err != nil {
		return err
	}
	d.k = kern{op: opScatterAdd, a: of, c: tf, lab: ix, cols: cols}
	// Chunks of at least 16 columns (a cache line), each reading n·(its
	// columns) elements.
	c := d.w.chunks(n*cols, ewGrain)
	c = min(c, max(1, cols/16))
	d.w.parallel(d.embKern(), cols, c, 16)
	d.release()
	return nil
}

// CrossEntropy writes the mean over the rows whose label is not
// ignoreIndex of −log softmax(logits)[label] into loss[0], and its
// gradient into grad when grad is not nil (0 for ignored rows; grad may
// alias logits). Each row is read once for its log-sum-exp (an online
// max and rescaled sum, in float64) and once more for the gradient; the
// row losses are summed in float64.
func (d *Device) CrossEntropy(logits, labels device.Buffer, rows, cols int, ignoreIndex int32, loss, grad device.Buffer) error {
	const op = "CrossEntropy"
	if d.closed {
		return errClosed(op)
	}
	if err := device.CheckDims(op, "rows", rows, "cols", cols); err != nil {
		return err
	}
	n, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "logits", logits, n)
	if err != nil {
		return err
	}
	lab, err := d.i32(op, "labels", labels, rows)
	if err != nil {
		return err
	}
	lf, err := d.f32(op, "loss", loss, 1)
	if err != nil {
		return err
	}
	var gf []float32
	if grad != nil {
		if gf, err = d.f32(op, "grad", grad, n); err != nil {
			return err
		}
	}
	lab = lab[:rows]
	count := 0
	for i, l := range lab {
		if l == ignoreIndex {
			continue
		}
		if l < 0 || int64(l) >= int64(cols) {
			return device.Errorf(op, "labels", device.ErrInvalid,
				"expected class labels in [0, %d) or the ignore index %d, got %d at row %d", cols, ignoreIndex, l, i)
		}
		count++
	}
	// With every row ignored, inv is +Inf but unused (ignored rows get a
	// zero gradient) and the loss 0/0 = NaN, as in PyTorch.
	inv := 1 / float64(count)
	d.k = kern{part: &d.part, op: opCrossEntropy, a: xf, lab: lab, c: gf, cols: cols, f: inv, flag: gf != nil,
		seed: uint64(uint32(ignoreIndex))}
	k := d.embKern()
	s := d.partSum(d.w.parallel(k, rows, reduceChunks(rows, rowGrain(trGrain, cols)), 1))
	d.release()
	lf[0] = float32(s / float64(count))
	return nil
}

// xentRows returns the summed loss of rows [lo, hi) and writes their
// gradient when asked. The ignore index travels in k.seed.
func (k *embKern) xentRows(lo, hi int) float64 {
	cols := k.cols
	ignore := int32(uint32(k.seed))
	inv := k.f
	s := 0.0
	for r := lo; r < hi; r++ {
		label := k.lab[r]
		if label == ignore {
			if k.flag {
				clear(k.c[r*cols : (r+1)*cols])
			}
			continue
		}
		row := k.a[r*cols : (r+1)*cols]
		// Online log-sum-exp: m is the running maximum, se = Σ exp(x − m);
		// a new maximum rescales the sum.
		m := row[0]
		se := 1.0
		for _, v := range row[1:] {
			if v > m {
				se = se*math.Exp(float64(m)-float64(v)) + 1
				m = v
			} else {
				se += math.Exp(float64(v) - float64(m))
			}
		}
		lse := float64(m) + math.Log(se)
		xl := float64(row[label]) // read before grad (which may alias logits) is written
		s += lse - xl
		if k.flag {
			gr := k.c[r*cols : (r+1)*cols]
			for j, v := range row {
				gr[j] = float32(math.Exp(float64(v)-lse) * inv)
			}
			gr[label] = float32((math.Exp(xl-lse) - 1) * inv)
		}
	}
	return s
}
