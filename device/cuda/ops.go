//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/kernels"
)

// f32 checks that b is a live float32 buffer of d with at least n elements.
func (d *Device) f32(op, arg string, b device.Buffer, n int) (*buffer, error) {
	if err := device.CheckF32(d, op, arg, b, n); err != nil {
		return nil, err
	}
	return d.own(op, arg, b)
}

// i32 checks that b is a live int32 buffer of d with at least n elements.
func (d *Device) i32(op, arg string, b device.Buffer, n int) (*buffer, error) {
	if err := device.CheckBuf(d, op, arg, b, device.Int32, n); err != nil {
		return nil, err
	}
	return d.own(op, arg, b)
}

// run makes the context current, runs fn and releases the thread.
func (d *Device) run(fn func() error) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return fn()
}

func p(b *buffer) uint64 { return uint64(b.ptr()) }

// vec reports whether the float4 path may be used for these buffers.
func vec(bs ...*buffer) uint64 {
	for _, b := range bs {
		if uint64(b.ptr())%16 != 0 {
			return 0
		}
	}
	return 1
}

// ---------------------------------------------------------------------------
// GEMM

// Gemm computes C = alpha·op(A)·op(B) + beta·C with the kernels of
// kernels/gemm.cu, planned by kernels.PlanGemm (TF32 tensor cores when
// SetAllowTF32(true) and the GPU has them; split-K through the workspace
// for skinny products). When alpha is 0, A and B are not read; when beta is
// 0, C is not read.
func (d *Device) Gemm(transA, transB bool, m, n, k int, alpha float32, a, b device.Buffer, beta float32, c device.Buffer) error {
	const op = "Gemm"
	if d.closed {
		return d.errClosed(op)
	}
	if m < 1 || n < 1 || k < 1 {
		return device.CheckDims(op, "m", m, "n", n, "k", k)
	}
	ab, err := d.f32(op, "a", a, m*k)
	if err != nil {
		return err
	}
	bb, err := d.f32(op, "b", b, k*n)
	if err != nil {
		return err
	}
	cb, err := d.f32(op, "c", c, m*n)
	if err != nil {
		return err
	}
	const lim = math.MaxInt32
	if m > lim/k || k > lim/n || m > lim/n {
		return device.Errorf(op, "", device.ErrInvalid,
			"m·k, k·n and m·n must each fit in an int32 for the CUDA kernels, got m=%d n=%d k=%d", m, n, k)
	}
	// gridDim.y counts 128-row tiles (64-row tiles only in the small
	// kernel, which PlanGemm picks for fewer than 128×128-tile outputs, so
	// far below this limit).
	if (m+127)/128 > 65535 {
		return device.Errorf(op, "m", device.ErrInvalid,
			"the CUDA GEMM takes at most 65535·128 = %d rows of C, got m=%d", 65535*128, m)
	}
	return d.run(func() error {
		if alpha == 0 {
			// BLAS semantics: A and B are not referenced.
			if beta == 0 {
				return d.memsetZero(op, cb, m*n)
			}
			if beta != 1 {
				return d.launch(kScale, d.grid1D(int64(m*n)), argF32(beta), p(cb), p(cb), argI64(m*n), vec(cb))
			}
			return nil
		}
		plan := kernels.PlanGemm(transA, transB, m, n, k, d.tf32, d.cc)
		f, ok := d.gemm[plan.Kernel]
		if !ok {
			return fmt.Errorf("cuda: Gemm: kernel %s planned but not loaded for compute capability %d.%d", plan.Kernel, d.cc/10, d.cc%10)
		}
		// One product: a batch of 1, strides 0 (see kernels/gemm_launch.go).
		return d.launchGemm(op, f, plan, m, n, k, alpha, p(ab), 0, p(bb), 0, beta, p(cb), 0)
	})
}

// memsetZero queues x[0:n] = 0.
func (d *Device) memsetZero(op string, x *buffer, n int) error {
	if err := cu.MemsetD32Async(x.ptr(), 0, int64(n), d.stream); err != nil {
		return fmt.Errorf("cuda: %s: zeroing %d elements (cuMemsetD32Async): %w", op, n, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Bias

// AddBias adds bias[j] to x[i,j] for a rows×cols x.
func (d *Device) AddBias(x, bias device.Buffer, rows, cols int) error {
	const op = "AddBias"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	xb, err := d.f32(op, "x", x, rows*cols)
	if err != nil {
		return err
	}
	bb, err := d.f32(op, "bias", bias, cols)
	if err != nil {
		return err
	}
	v := vec(xb, bb)
	if cols%4 != 0 {
		v = 0
	}
	total := int64(rows) * int64(cols)
	work := total
	if v == 1 {
		work = total / 4
	}
	return d.run(func() error {
		return d.launch(kAddBias, d.grid1D(work), p(xb), p(bb), argI64(int(total)), argI32(cols), v)
	})
}

// BiasGrad sets db = beta·db + Σ_i dy[i,:], the column sums in float64,
// deterministic: per-chunk column sums into the workspace, then the chunks
// in order (one pass when the columns alone fill the GPU or the input is
// small). When beta is 0, db is not read.
func (d *Device) BiasGrad(db, dy device.Buffer, rows, cols int, beta float32) error {
	const op = "BiasGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	dbb, err := d.f32(op, "db", db, cols)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, rows*cols)
	if err != nil {
		return err
	}
	colBlocks := (cols + blockSize - 1) / blockSize
	chunks := 1
	if colBlocks < 2*d.sms && rows >= 32 {
		chunks = min((rows+15)/16, max(1, 4*d.sms/colBlocks), 1024)
	}
	rowsPer := (rows + chunks - 1) / chunks
	chunks = (rows + rowsPer - 1) / rowsPer
	return d.run(func() error {
		if chunks == 1 {
			return d.launch(kBiasGradDirect, uint32(colBlocks), p(dyb), argI32(rows), argI32(cols), p(dbb), argF32(beta))
		}
		ws, err := d.workspace(int64(chunks) * int64(cols) * 8)
		if err != nil {
			return err
		}
		if err := d.launchShape(kBiasGradPartial, [3]uint32{uint32(colBlocks), uint32(chunks), 1}, [3]uint32{blockSize, 1, 1},
			p(dyb), argI32(rows), argI32(cols), argI32(rowsPer), uint64(ws)); err != nil {
			return err
		}
		return d.launch(kBiasGradFinal, uint32(colBlocks), uint64(ws), argI32(chunks), argI32(cols), p(dbb), argF32(beta))
	})
}

// ---------------------------------------------------------------------------
// Activations

// Activate sets y = f(x) over n elements; y may be x.
func (d *Device) Activate(act device.Activation, alpha float32, x, y device.Buffer, n int) error {
	const op = "Activate"
	if d.closed {
		return d.errClosed(op)
	}
	if err := act.Check(op); err != nil {
		return err
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kActivate, d.grid1D(int64(n)), argI32(int(act)), argF32(alpha), p(xb), p(yb), argI64(n))
	})
}

// ActivateGrad sets dx = dy·f'(x), reading what the CPU backend reads: ReLU
// reads x (or y when x is nil); LeakyReLU, GELU, GELUTanh, SiLU and ELU read x; Tanh
// and Sigmoid read y (or recompute f from x when y is nil); Identity reads
// neither.
func (d *Device) ActivateGrad(act device.Activation, alpha float32, x, y, dy, dx device.Buffer, n int) error {
	const op = "ActivateGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if err := act.Check(op); err != nil {
		return err
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
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
	// A buffer that is given is checked even when the function does not
	// read it (a freed or foreign buffer is a mistake either way); one that
	// is needed must be given.
	var src uint64
	if needX || x != nil {
		xb, err := d.f32(op, "x", x, n)
		if err != nil {
			return err
		}
		if needX {
			src = p(xb)
		}
	}
	if needY || y != nil {
		yb, err := d.f32(op, "y", y, n)
		if err != nil {
			return err
		}
		if needY {
			src = p(yb)
		}
	}
	dyb, err := d.f32(op, "dy", dy, n)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, n)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kActivateGrad, d.grid1D(int64(n)), argI32(int(act)), argF32(alpha), src, argBool(needY),
			p(dyb), p(dxb), argI64(n))
	})
}

// Softmax sets y to the row-wise softmax of rows×cols x (one warp a row).
func (d *Device) Softmax(x, y device.Buffer, rows, cols int) error {
	const op = "Softmax"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	xb, err := d.f32(op, "x", x, rows*cols)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, rows*cols)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kSoftmax, rowGrid(rows), p(xb), p(yb), argI32(rows), argI32(cols))
	})
}

// SoftmaxGrad sets dx = y ⊙ (dy − Σ_j dy⊙y) row by row; dx may be dy.
func (d *Device) SoftmaxGrad(y, dy, dx device.Buffer, rows, cols int) error {
	const op = "SoftmaxGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn := rows * cols
	yb, err := d.f32(op, "y", y, nn)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, nn)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, nn)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kSoftmaxGrad, rowGrid(rows), p(yb), p(dyb), p(dxb), argI32(rows), argI32(cols))
	})
}

// ---------------------------------------------------------------------------
// Elementwise

func (d *Device) binary(op string, k kernelID, a, b, out device.Buffer, n int) error {
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	ab, err := d.f32(op, "a", a, n)
	if err != nil {
		return err
	}
	bb, err := d.f32(op, "b", b, n)
	if err != nil {
		return err
	}
	ob, err := d.f32(op, "out", out, n)
	if err != nil {
		return err
	}
	v := vec(ab, bb, ob)
	return d.run(func() error {
		return d.launch(k, d.grid1D(vecWork(n, v)), p(ab), p(bb), p(ob), argI64(n), v)
	})
}

// vecWork is the number of loop items of a kernel over n elements.
func vecWork(n int, v uint64) int64 {
	if v == 1 {
		return int64(max(n/4, 1))
	}
	return int64(n)
}

// Add sets out = a + b over n elements.
func (d *Device) Add(a, b, out device.Buffer, n int) error {
	return d.binary("Add", kAdd, a, b, out, n)
}

// Sub sets out = a − b over n elements.
func (d *Device) Sub(a, b, out device.Buffer, n int) error {
	return d.binary("Sub", kSub, a, b, out, n)
}

// Mul sets out = a ⊙ b over n elements.
func (d *Device) Mul(a, b, out device.Buffer, n int) error {
	return d.binary("Mul", kMul, a, b, out, n)
}

// Scale sets out = alpha·x over n elements.
func (d *Device) Scale(alpha float32, x, out device.Buffer, n int) error {
	const op = "Scale"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	ob, err := d.f32(op, "out", out, n)
	if err != nil {
		return err
	}
	v := vec(xb, ob)
	return d.run(func() error {
		return d.launch(kScale, d.grid1D(vecWork(n, v)), argF32(alpha), p(xb), p(ob), argI64(n), v)
	})
}

// Axpy sets y = alpha·x + y over n elements.
func (d *Device) Axpy(alpha float32, x, y device.Buffer, n int) error {
	const op = "Axpy"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	v := vec(xb, yb)
	return d.run(func() error {
		return d.launch(kAxpy, d.grid1D(vecWork(n, v)), argF32(alpha), p(xb), p(yb), argI64(n), v)
	})
}

// Fill sets the first n elements of x to v.
func (d *Device) Fill(x device.Buffer, n int, v float32) error {
	const op = "Fill"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	vv := vec(xb)
	return d.run(func() error {
		return d.launch(kFill, d.grid1D(vecWork(n, vv)), p(xb), argI64(n), argF32(v), vv)
	})
}

// ---------------------------------------------------------------------------
// Losses

// Loss writes the loss of rows×cols pred against target into loss[0] and,
// when grad is not nil, its gradient into grad, in one fused pass; the
// scalar is reduced deterministically (per-block partials, then one block).
func (d *Device) Loss(kind device.LossKind, pred, target device.Buffer, rows, cols int, loss, grad device.Buffer) error {
	const op = "Loss"
	if d.closed {
		return d.errClosed(op)
	}
	if err := kind.Check(op); err != nil {
		return err
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	n := rows * cols
	pb, err := d.f32(op, "pred", pred, n)
	if err != nil {
		return err
	}
	var tb *buffer
	if kind == device.SoftmaxCrossEntropy {
		tb, err = d.i32(op, "target", target, rows)
	} else {
		tb, err = d.f32(op, "target", target, n)
	}
	if err != nil {
		return err
	}
	lb, err := d.f32(op, "loss", loss, 1)
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
	var norm float64
	switch kind {
	case device.MSE, device.BCE, device.BCEWithLogits:
		norm = float64(n)
	case device.HalfSSE:
		norm = 2 * float64(rows)
	case device.SoftmaxCrossEntropy:
		norm = float64(rows)
	}
	inv := 1 / norm
	return d.run(func() error {
		if kind == device.SoftmaxCrossEntropy {
			if !tb.labelsValid(cols) {
				if err := d.checkLabels(op, tb, rows, cols); err != nil {
					return err
				}
			}
			ws, err := d.workspace(int64(rows) * 8)
			if err != nil {
				return err
			}
			if err := d.launch(kXent, rowGrid(rows), p(pb), p(tb), argI32(rows), argI32(cols), gptr, argF64(inv), uint64(ws)); err != nil {
				return err
			}
			return d.launch(kReduceFinal, 1, uint64(ws), argI32(rows), p(lb), argF64(norm), argF32(0))
		}
		g := int(min(int64(maxPartials), (int64(n)+4*blockSize-1)/(4*blockSize)))
		g = max(g, 1)
		ws, err := d.workspace(int64(g) * 8)
		if err != nil {
			return err
		}
		if err := d.launch(kLossElem, uint32(g), argI32(int(kind)), p(pb), p(tb), argI64(n), gptr, argF64(inv), uint64(ws)); err != nil {
			return err
		}
		return d.launch(kReduceFinal, 1, uint64(ws), argI32(g), p(lb), argF64(norm), argF32(0))
	})
}

// checkLabels reads the first rows labels of tb back (waiting for the
// stream) and checks them against [0, cols), as the CPU backend does.
func (d *Device) checkLabels(op string, tb *buffer, rows, cols int) error {
	lab := make([]int32, rows)
	if err := d.readBytes(op, i32Bytes(lab), tb.ptr()); err != nil {
		return err
	}
	for i, l := range lab {
		if l < 0 || int(l) >= cols {
			return device.Errorf(op, "target", device.ErrInvalid, "expected class labels in [0, %d), got %d at row %d", cols, l, i)
		}
	}
	if tb.off == 0 && rows >= tb.a.n {
		tb.noteWrite(0, lab) // now known exactly
	}
	return nil
}

// ---------------------------------------------------------------------------
// Reductions

func (d *Device) reduce(op string, squares bool, x device.Buffer, n int, out device.Buffer, beta float32) error {
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	ob, err := d.f32(op, "out", out, 1)
	if err != nil {
		return err
	}
	g := int(min(int64(maxPartials), (int64(n)+4*blockSize-1)/(4*blockSize)))
	g = max(g, 1)
	return d.run(func() error {
		ws, err := d.workspace(int64(g) * 8)
		if err != nil {
			return err
		}
		if err := d.launch(kReducePartial, uint32(g), p(xb), argI64(n), argBool(squares), vec(xb), uint64(ws)); err != nil {
			return err
		}
		return d.launch(kReduceFinal, 1, uint64(ws), argI32(g), p(ob), argF64(1), argF32(beta))
	})
}

// Sum sets out[0] = beta·out[0] + Σ x over n elements, summed in float64
// in a fixed order (deterministic).
func (d *Device) Sum(x device.Buffer, n int, out device.Buffer, beta float32) error {
	return d.reduce("Sum", false, x, n, out, beta)
}

// SumSquares sets out[0] = beta·out[0] + Σ x² over n elements, summed in
// float64 in a fixed order.
func (d *Device) SumSquares(x device.Buffer, n int, out device.Buffer, beta float32) error {
	return d.reduce("SumSquares", true, x, n, out, beta)
}

// ClipByNorm scales x by min(1, maxNorm/(sqrt(sumSq[0])+1e-6)); the kernel
// reads sumSq from device memory, so nothing waits for the host.
func (d *Device) ClipByNorm(x device.Buffer, n int, sumSq device.Buffer, maxNorm float32) error {
	const op = "ClipByNorm"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if !(maxNorm > 0) {
		return device.Errorf(op, "maxNorm", device.ErrInvalid, "expected maxNorm > 0, got %g", maxNorm)
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	sb, err := d.f32(op, "sumSq", sumSq, 1)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kClipByNorm, d.grid1D(int64(n)), p(xb), argI64(n), p(sb), argF32(maxNorm))
	})
}

// ArgmaxRows writes the index of each row's largest element (the first on
// ties) into the int32 buffer out.
func (d *Device) ArgmaxRows(x device.Buffer, rows, cols int, out device.Buffer) error {
	const op = "ArgmaxRows"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	xb, err := d.f32(op, "x", x, rows*cols)
	if err != nil {
		return err
	}
	ob, err := d.i32(op, "out", out, rows)
	if err != nil {
		return err
	}
	err = d.run(func() error {
		return d.launch(kArgmax, rowGrid(rows), p(xb), argI32(rows), argI32(cols), p(ob))
	})
	if err != nil {
		ob.a.lbl.known = false
		return err
	}
	if ob.off == 0 && rows >= ob.a.n {
		ob.a.lbl = labelRange{known: true, min: 0, max: int32(cols - 1), oneNeg: true, nnMax: int32(cols - 1)}
	} else {
		ob.a.lbl.widen(0, int32(cols-1))
	}
	return nil
}

// ---------------------------------------------------------------------------
// Optimizers

// SGDStep is one torch.optim.SGD update (see device.SGDConfig and
// kernels/optim.cu).
func (d *Device) SGDStep(pp, g, v device.Buffer, n int, cfg device.SGDConfig, step int) error {
	const op = "SGDStep"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if err := device.CheckStep(op, step); err != nil {
		return err
	}
	if err := cfg.Check(op); err != nil {
		return err
	}
	pb, err := d.f32(op, "p", pp, n)
	if err != nil {
		return err
	}
	gb, err := d.f32(op, "g", g, n)
	if err != nil {
		return err
	}
	var vptr uint64
	if cfg.Momentum != 0 {
		vb, err := d.f32(op, "v", v, n)
		if err != nil {
			return err
		}
		vptr = p(vb)
	}
	damp1 := 1 - cfg.Dampening // float32, as the CPU backend
	return d.run(func() error {
		return d.launch(kSGD, d.grid1D(int64(n)), p(pb), p(gb), vptr, argI64(n), argF32(cfg.LR), argF32(cfg.Momentum),
			argF32(damp1), argF32(cfg.WeightDecay), argBool(step == 1), argBool(cfg.Nesterov))
	})
}

// AdamStep is one torch.optim.Adam (AdamW when cfg.Decoupled) update; the
// bias corrections are computed here in float64, as PyTorch computes them
// in Python, and the update runs in float64 as on the CPU backend.
func (d *Device) AdamStep(pp, g, m, v device.Buffer, n int, cfg device.AdamConfig, step int) error {
	const op = "AdamStep"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if err := device.CheckStep(op, step); err != nil {
		return err
	}
	if err := cfg.Check(op); err != nil {
		return err
	}
	pb, err := d.f32(op, "p", pp, n)
	if err != nil {
		return err
	}
	gb, err := d.f32(op, "g", g, n)
	if err != nil {
		return err
	}
	mb, err := d.f32(op, "m", m, n)
	if err != nil {
		return err
	}
	vb, err := d.f32(op, "v", v, n)
	if err != nil {
		return err
	}
	sc := cfg.Scalars(step) // shared with the CPU backend: device/optim.go
	return d.run(func() error {
		return d.launch(kAdam, d.grid1D(int64(n)), p(pb), p(gb), p(mb), p(vb), argI64(n), argF64(sc.StepSize),
			argF64(sc.EpsScaled), argF64(sc.Beta1), argF64(sc.Beta2), argF64(1-sc.Beta1), argF64(1-sc.Beta2),
			argF64(sc.WeightDecay), argF64(sc.Decay), argBool(cfg.Decoupled))
	})
}

// ---------------------------------------------------------------------------
// Random numbers

func (d *Device) rand(op string, k kernelID, x device.Buffer, n int, s0, s1 float32, seed, offset uint64) error {
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	nblk := (offset+uint64(n)+3)>>2 - offset>>2
	return d.run(func() error {
		return d.launch(k, d.grid1D(int64(nblk)), p(xb), argI64(n), argF32(s0), argF32(s1), argU64(seed), argU64(offset))
	})
}

// RandNormal sets x[i] = device.NormalScaled(seed, offset+i, mean, std).
func (d *Device) RandNormal(x device.Buffer, n int, mean, std float32, seed, offset uint64) error {
	const op = "RandNormal"
	if d.closed {
		return d.errClosed(op)
	}
	if !(std >= 0) {
		return device.Errorf(op, "std", device.ErrInvalid, "expected std ≥ 0, got %g", std)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	return d.rand(op, kRandNormal, x, n, mean, std, seed, offset)
}

// RandUniform sets x[i] = device.UniformScaled(seed, offset+i, lo, hi).
func (d *Device) RandUniform(x device.Buffer, n int, lo, hi float32, seed, offset uint64) error {
	const op = "RandUniform"
	if d.closed {
		return d.errClosed(op)
	}
	if !(lo <= hi) {
		return device.Errorf(op, "lo", device.ErrInvalid, "expected lo ≤ hi, got lo %g, hi %g", lo, hi)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	return d.rand(op, kRandUniform, x, n, lo, hi, seed, offset)
}

// DropoutMask sets mask[i] = device.DropoutAt(seed, offset+i, p).
func (d *Device) DropoutMask(mask device.Buffer, n int, prob float32, seed, offset uint64) error {
	const op = "DropoutMask"
	if d.closed {
		return d.errClosed(op)
	}
	if !(prob >= 0 && prob < 1) {
		return device.Errorf(op, "p", device.ErrInvalid, "expected a drop probability 0 ≤ p < 1, got %g", prob)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	keep := 1 / (1 - prob) // float32, as device.DropoutAt
	xb, err := d.f32(op, "mask", mask, n)
	if err != nil {
		return err
	}
	nblk := (offset+uint64(n)+3)>>2 - offset>>2
	return d.run(func() error {
		return d.launch(kDropout, d.grid1D(int64(nblk)), p(xb), argI64(n), argF32(prob), argF32(keep), argU64(seed), argU64(offset))
	})
}
