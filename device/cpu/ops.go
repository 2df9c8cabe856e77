package cpu

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// trGrain is the split threshold (elements) for kernels dominated by
// transcendental functions (tanh, erf, exp, Philox: 10–30 ns an element),
// which pay back the ~3 µs hand-off (see ewGrain) from a few hundred
// elements a chunk; 4K keeps a safe margin on a busy machine.
const trGrain = 1 << 12

// rowGrain converts an element grain into a row grain for rows of cols.
func rowGrain(grain, cols int) int {
	return max(1, grain/cols)
}

func (d *Device) copyF32(dst, src []float32) {
	d.k = kern{op: opCopy, a: src, c: dst}
	d.launch(len(dst), ewGrain)
	d.release()
}

func (d *Device) fill(x []float32, v float32) {
	d.k = kern{op: opFill, a: x, s0: v}
	d.launch(len(x), ewGrain)
	d.release()
}

func (d *Device) scale(alpha float32, x, out []float32) {
	d.k = kern{op: opScale, a: x, c: out, s0: alpha}
	d.launch(len(out), ewGrain)
	d.release()
}

// binary runs Add, Sub or Mul after checking the arguments.
func (d *Device) binary(op string, code opcode, a, b, out device.Buffer, n int) error {
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	af, err := d.f32(op, "a", a, n)
	if err != nil {
		return err
	}
	bf, err := d.f32(op, "b", b, n)
	if err != nil {
		return err
	}
	of, err := d.f32(op, "out", out, n)
	if err != nil {
		return err
	}
	d.k = kern{op: code, a: af, b: bf, c: of}
	d.launch(n, ewGrain)
	d.release()
	return nil
}

// Add sets out = a + b over n elements.
func (d *Device) Add(a, b, out device.Buffer, n int) error {
	return d.binary("Add", opAdd, a, b, out, n)
}

// Sub sets out = a − b over n elements.
func (d *Device) Sub(a, b, out device.Buffer, n int) error {
	return d.binary("Sub", opSub, a, b, out, n)
}

// Mul sets out = a ⊙ b over n elements.
func (d *Device) Mul(a, b, out device.Buffer, n int) error {
	return d.binary("Mul", opMul, a, b, out, n)
}

// Scale sets out = alpha·x over n elements.
func (d *Device) Scale(alpha float32, x, out device.Buffer, n int) error {
	const op = "Scale"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	of, err := d.f32(op, "out", out, n)
	if err != nil {
		return err
	}
	d.scale(alpha, xf, of)
	return nil
}

// Axpy sets y = alpha·x + y over n elements.
func (d *Device) Axpy(alpha float32, x, y device.Buffer, n int) error {
	const op = "Axpy"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	d.k = kern{op: opAxpy, a: xf, b: yf, s0: alpha}
	d.launch(n, ewGrain)
	d.release()
	return nil
}

// Fill sets the first n elements of x to v.
func (d *Device) Fill(x device.Buffer, n int, v float32) error {
	const op = "Fill"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	d.fill(xf, v)
	return nil
}

// AddBias adds bias[j] to x[i,j] for a rows×cols x.
func (d *Device) AddBias(x, bias device.Buffer, rows, cols int) error {
	const op = "AddBias"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, nn)
	if err != nil {
		return err
	}
	bf, err := d.f32(op, "bias", bias, cols)
	if err != nil {
		return err
	}
	d.k = kern{op: opAddBias, a: xf, b: bf, cols: cols}
	d.launch(rows, rowGrain(ewGrain, cols))
	d.release()
	return nil
}

// BiasGrad sets db = beta·db + the column sums of rows×cols dy, summed in
// float64.
func (d *Device) BiasGrad(db, dy device.Buffer, rows, cols int, beta float32) error {
	const op = "BiasGrad"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	dbf, err := d.f32(op, "db", db, cols)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, nn)
	if err != nil {
		return err
	}
	if cap(d.colAcc) < cols {
		d.colAcc = make([]float64, cols)
	}
	d.k = kern{op: opBiasGrad, a: dbf, b: dyf, cols: cols, s0: beta, acc: d.colAcc[:cols]}
	// Chunks split the columns; each reads rows·(its columns) elements.
	c := d.w.chunks(nn, ewGrain)
	c = min(c, max(1, cols/16))
	d.w.parallel(&d.k, cols, c, 16)
	d.release()
	return nil
}

func actGrain(act device.Activation) int {
	switch act {
	case device.Identity, device.ReLU, device.LeakyReLU:
		return ewGrain
	}
	return trGrain
}

// Activate sets y = f(x) over n elements; y may be x.
func (d *Device) Activate(act device.Activation, alpha float32, x, y device.Buffer, n int) error {
	const op = "Activate"
	if d.closed {
		return errClosed(op)
	}
	if err := act.Check(op); err != nil {
		return err
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	d.k = kern{op: opAct, act: act, s0: alpha, a: xf, c: yf}
	d.launch(n, actGrain(act))
	d.release()
	return nil
}

// ActivateGrad sets dx = dy·f'(x). ReLU reads x (or y when x is nil);
// LeakyReLU, GELU, GELUTanh, SiLU and ELU read x; Tanh and Sigmoid read y (or
// recompute it from x when y is nil); Identity reads neither.
func (d *Device) ActivateGrad(act device.Activation, alpha float32, x, y, dy, dx device.Buffer, n int) error {
	const op = "ActivateGrad"
	if d.closed {
		return errClosed(op)
	}
	if err := act.Check(op); err != nil {
		return err
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	var xf, yf []float32
	var err error
	needX, needY := false, false
	switch act {
	case device.ReLU:
		needX = x != nil || y == nil
		needY = !needX
	case device.LeakyReLU, device.GELU, device.GELUTanh, device.SiLU, device.ELU:
		needX = true
	case device.Tanh, device.Sigmoid:
		needY = y != nil || x == nil
		needX = !needY
	}
	// A buffer the function does not read may be nil; when it is given,
	// it is checked like the others, so a stale handle is caught early.
	if needX || x != nil {
		if xf, err = d.f32(op, "x", x, n); err != nil {
			return err
		}
	}
	if needY || y != nil {
		if yf, err = d.f32(op, "y", y, n); err != nil {
			return err
		}
	}
	if !needX {
		xf = nil
	}
	if !needY {
		yf = nil
	}
	dyf, err := d.f32(op, "dy", dy, n)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, n)
	if err != nil {
		return err
	}
	d.k = kern{op: opActGrad, act: act, s0: alpha, a: xf, b: yf, c: dyf, e: dxf}
	d.launch(n, actGrain(act))
	d.release()
	return nil
}

// Softmax sets y to the row-wise softmax of rows×cols x, subtracting each
// row's maximum first.
func (d *Device) Softmax(x, y device.Buffer, rows, cols int) error {
	const op = "Softmax"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, nn)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, nn)
	if err != nil {
		return err
	}
	d.k = kern{op: opSoftmax, a: xf, c: yf, cols: cols}
	d.launch(rows, rowGrain(trGrain, cols))
	d.release()
	return nil
}

// SoftmaxGrad sets dx = y ⊙ (dy − Σ_j dy⊙y) row by row; dx may be dy.
func (d *Device) SoftmaxGrad(y, dy, dx device.Buffer, rows, cols int) error {
	const op = "SoftmaxGrad"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, nn)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, nn)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, nn)
	if err != nil {
		return err
	}
	d.k = kern{op: opSoftmaxGrad, a: yf, b: dyf, c: dxf, cols: cols}
	d.launch(rows, rowGrain(ewGrain, cols))
	d.release()
	return nil
}

// ArgmaxRows writes the index of each row's largest element (the first on
// ties) into the int32 buffer out.
func (d *Device) ArgmaxRows(x device.Buffer, rows, cols int, out device.Buffer) error {
	const op = "ArgmaxRows"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, nn)
	if err != nil {
		return err
	}
	of, err := d.i32(op, "out", out, rows)
	if err != nil {
		return err
	}
	d.k = kern{op: opArgmax, a: xf, lab: of, cols: cols}
	d.launch(rows, rowGrain(ewGrain, cols))
	d.release()
	return nil
}

// reduce runs Sum or SumSquares.
func (d *Device) reduce(op string, code opcode, x device.Buffer, n int, out device.Buffer, beta float32) error {
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	of, err := d.f32(op, "out", out, 1)
	if err != nil {
		return err
	}
	d.k = kern{part: &d.part, op: code, a: xf}
	s := d.partSum(d.launchReduce(n, ewGrain))
	d.release()
	if beta != 0 {
		s += float64(beta) * float64(of[0])
	}
	of[0] = float32(s)
	return nil
}

// Sum sets out[0] = beta·out[0] + Σ x over n elements, summed in float64.
func (d *Device) Sum(x device.Buffer, n int, out device.Buffer, beta float32) error {
	return d.reduce("Sum", opSum, x, n, out, beta)
}

// SumSquares sets out[0] = beta·out[0] + Σ x² over n elements, summed in
// float64.
func (d *Device) SumSquares(x device.Buffer, n int, out device.Buffer, beta float32) error {
	return d.reduce("SumSquares", opSumSq, x, n, out, beta)
}

// ClipByNorm scales x by min(1, maxNorm/(sqrt(sumSq[0])+1e-6)), as
// torch.nn.utils.clip_grad_norm_ does.
func (d *Device) ClipByNorm(x device.Buffer, n int, sumSq device.Buffer, maxNorm float32) error {
	const op = "ClipByNorm"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if !(maxNorm > 0) {
		return device.Errorf(op, "maxNorm", device.ErrInvalid, "expected maxNorm > 0, got %g", maxNorm)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	sf, err := d.f32(op, "sumSq", sumSq, 1)
	if err != nil {
		return err
	}
	norm := float32(math.Sqrt(float64(sf[0])))
	coef := maxNorm / (norm + 1e-6)
	// A NaN or infinite norm gives a NaN coefficient, which propagates
	// into x as it does in PyTorch (error_if_nonfinite=False).
	if !(coef >= 1) {
		d.scale(coef, xf, xf)
	}
	return nil
}
