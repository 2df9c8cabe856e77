//go:build cuda

package cuda

// The attention family: strided-batched GEMM (gemm.cu's kernels with a
// batch index), the scaled softmax with an optional causal mask and its
// gradient, and the 4-D permutation (kernels/attention.cu).

// #include <cuda.h>
import "C"

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/kernels"
)

// batchSpan is the elements a strided batch needs: (batch−1)·stride + size,
// or an ErrSize error when that overflows.
func batchSpan(op, arg string, batch, stride, size int) (int, error) {
	if stride > 0 && batch-1 > (math.MaxInt64/4-size)/stride {
		return 0, device.Errorf(op, arg, device.ErrSize,
			"%d matrices %d elements apart span more elements than any buffer holds", batch, stride)
	}
	return (batch-1)*stride + size, nil
}

// GemmBatched computes C_i = alpha·op(A_i)·op(B_i) + beta·C_i for i < batch
// with A_i at element i·strideA of a, B_i at i·strideB of b and C_i at
// i·strideC of c: one launch of gemm.cu's kernels (gridDim.z = batch, and
// split-K as kernels.PlanGemmBatched chooses) per kernels.MaxGemmBatch
// entries. When alpha is 0, A and B are not read; when beta is 0, C is not
// read. The elements of c between the C_i are left alone.
func (d *Device) GemmBatched(transA, transB bool, m, n, k int, alpha float32, a device.Buffer, strideA int, b device.Buffer, strideB int, beta float32, c device.Buffer, strideC int, batch int) error {
	const op = "GemmBatched"
	if d.closed {
		return d.errClosed(op)
	}
	if m < 1 || n < 1 || k < 1 || batch < 1 {
		return device.CheckDims(op, "m", m, "n", n, "k", k, "batch", batch)
	}
	const lim = math.MaxInt32
	if m > lim/k || k > lim/n || m > lim/n {
		return device.Errorf(op, "", device.ErrInvalid,
			"m·k, k·n and m·n must each fit in an int32 for the CUDA kernels, got m=%d n=%d k=%d", m, n, k)
	}
	mk, kn, mn := m*k, k*n, m*n
	switch {
	case strideA < 0:
		return device.Errorf(op, "strideA", device.ErrInvalid, "expected a stride ≥ 0, got %d", strideA)
	case strideB < 0:
		return device.Errorf(op, "strideB", device.ErrInvalid, "expected a stride ≥ 0, got %d", strideB)
	case strideC < mn:
		return device.Errorf(op, "strideC", device.ErrInvalid,
			"expected strideC ≥ m·n = %d (the C_i must not overlap), got %d", mn, strideC)
	}
	na, err := batchSpan(op, "a", batch, strideA, mk)
	if err != nil {
		return err
	}
	nb, err := batchSpan(op, "b", batch, strideB, kn)
	if err != nil {
		return err
	}
	nc, err := batchSpan(op, "c", batch, strideC, mn)
	if err != nil {
		return err
	}
	ab, err := d.f32(op, "a", a, na)
	if err != nil {
		return err
	}
	bb, err := d.f32(op, "b", b, nb)
	if err != nil {
		return err
	}
	cb, err := d.f32(op, "c", c, nc)
	if err != nil {
		return err
	}
	if (m+127)/128 > 65535 {
		return device.Errorf(op, "m", device.ErrInvalid,
			"the CUDA GEMM takes at most 65535·128 = %d rows of C, got m=%d", 65535*128, m)
	}
	return d.run(func() error {
		if alpha == 0 {
			// BLAS semantics: A and B are not referenced.
			if beta == 1 {
				return nil
			}
			if strideC == mn { // the C_i are one block
				return d.scaleOrZero(op, cb, 0, batch*mn, beta)
			}
			for i := 0; i < batch; i++ {
				if err := d.scaleOrZero(op, cb, i*strideC, mn, beta); err != nil {
					return err
				}
			}
			return nil
		}
		for b0 := 0; b0 < batch; b0 += kernels.MaxGemmBatch {
			nb := min(batch-b0, kernels.MaxGemmBatch)
			plan := kernels.PlanGemmBatched(transA, transB, m, n, k, nb, d.tf32, d.cc)
			f, ok := d.gemm[plan.Kernel]
			if !ok {
				return fmt.Errorf("cuda: %s: kernel %s planned but not loaded for compute capability %d.%d", op, plan.Kernel, d.cc/10, d.cc%10)
			}
			if err := d.launchGemm(op, f, plan, m, n, k, alpha,
				uint64(ab.at(b0*strideA)), strideA, uint64(bb.at(b0*strideB)), strideB,
				beta, uint64(cb.at(b0*strideC)), strideC); err != nil {
				return err
			}
		}
		return nil
	})
}

// scaleOrZero queues x[off : off+n] = beta·x[off : off+n], or zeros when
// beta is 0 (x is then not read).
func (d *Device) scaleOrZero(op string, x *buffer, off, n int, beta float32) error {
	if beta == 0 {
		if err := cu.MemsetD32Async(x.at(off), 0, int64(n), d.stream); err != nil {
			return fmt.Errorf("cuda: %s: zeroing %d elements (cuMemsetD32Async): %w", op, n, err)
		}
		return nil
	}
	ptr := uint64(x.at(off))
	v := uint64(1)
	if ptr%16 != 0 {
		v = 0
	}
	return d.launch(kScale, d.grid1D(int64(n)), argF32(beta), ptr, ptr, argI64(n), v)
}

// launchGemm queues the launches of plan (one, or two when split-K) for
// plan.Batch products C_i = alpha·op(A_i)·op(B_i) + beta·C_i, with A_i at
// device address a + 4·i·sa (element strides) and likewise B_i and C_i.
// f is plan.Kernel's function.
func (d *Device) launchGemm(op string, f C.CUfunction, plan kernels.GemmLaunch, m, n, k int, alpha float32,
	a uint64, sa int, b uint64, sb int, beta float32, c uint64, sc int) error {
	if plan.Splits <= 1 {
		return d.launchFn(f, plan.Kernel, plan.Grid, plan.Block, plan.SharedBytes,
			[]uint64{argI32(m), argI32(n), argI32(k), argF32(alpha), a, argI64(sa), b, argI64(sb),
				argF32(beta), c, argI64(sc), argI32(1)})
	}
	ws, err := d.workspace(int64(plan.WorkspaceFloats) * 4)
	if err != nil {
		return err
	}
	if err := d.launchFn(f, plan.Kernel, plan.Grid, plan.Block, plan.SharedBytes,
		[]uint64{argI32(m), argI32(n), argI32(k), argF32(1), a, argI64(sa), b, argI64(sb),
			argF32(0), uint64(ws), argI64(plan.Splits * m * n), argI32(plan.Splits)}); err != nil {
		return err
	}
	rf, ok := d.gemm[plan.ReduceKernel]
	if !ok {
		return fmt.Errorf("cuda: %s: kernel %s planned but not loaded", op, plan.ReduceKernel)
	}
	return d.launchFn(rf, plan.ReduceKernel, plan.ReduceGrid, plan.ReduceBlock, 0,
		[]uint64{argI32(m * n), argI32(plan.Splits), argF32(alpha), uint64(ws), argF32(beta), c, argI64(sc)})
}

// SoftmaxMasked sets y to the row-wise softmax of scale·x, with the causal
// mask when causal (softmax_masked_rows_f32: one warp per row, the same
// arithmetic as the CPU backend). y may be x.
func (d *Device) SoftmaxMasked(x, y device.Buffer, rows, cols int, scale float32, causal bool, qLen int) error {
	const op = "SoftmaxMasked"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	if causal && (qLen < 1 || qLen > cols) {
		return device.Errorf(op, "qLen", device.ErrInvalid, "expected 1 ≤ qLen ≤ cols = %d when causal, got %d", cols, qLen)
	}
	if rows > math.MaxInt32/cols {
		return device.Errorf(op, "", device.ErrInvalid, "rows·cols must fit in an int32 for the CUDA kernel, got %d×%d", rows, cols)
	}
	xb, err := d.f32(op, "x", x, rows*cols)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, rows*cols)
	if err != nil {
		return err
	}
	if !causal {
		qLen = 1 // unused by the kernel
	}
	return d.run(func() error {
		return d.launch(kSoftmaxMasked, rowGrid(rows), p(xb), p(yb), argI32(rows), argI32(cols),
			argF32(scale), argBool(causal), argI32(qLen))
	})
}

// SoftmaxMaskedGrad sets dx = scale · y ⊙ (dy − Σ_j dy⊙y) row by row
// (softmax_masked_grad_rows_f32). dx may be dy.
func (d *Device) SoftmaxMaskedGrad(y, dy, dx device.Buffer, rows, cols int, scale float32) error {
	const op = "SoftmaxMaskedGrad"
	if d.closed {
		return d.errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	if rows > math.MaxInt32/cols {
		return device.Errorf(op, "", device.ErrInvalid, "rows·cols must fit in an int32 for the CUDA kernel, got %d×%d", rows, cols)
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
		return d.launch(kSoftmaxMaskedGrad, rowGrid(rows), p(yb), p(dyb), p(dxb), argI32(rows), argI32(cols), argF32(scale))
	})
}

// Permute4 writes y = x.permute(perm).contiguous() for the 4-D x of
// dimensions dims (permute4_f32: a grid-stride gather, one thread per
// element of y). y must not overlap x.
func (d *Device) Permute4(x, y device.Buffer, dims [4]int, perm [4]int) error {
	const op = "Permute4"
	if d.closed {
		return d.errClosed(op)
	}
	if err := device.CheckDims(op, "dims[0]", dims[0], "dims[1]", dims[1], "dims[2]", dims[2], "dims[3]", dims[3]); err != nil {
		return err
	}
	var seen [4]bool
	for _, q := range perm {
		if q < 0 || q > 3 || seen[q] {
			return device.Errorf(op, "perm", device.ErrInvalid, "expected a permutation of 0, 1, 2, 3, got %v", perm)
		}
		seen[q] = true
	}
	n := 1
	for _, v := range dims {
		if v > math.MaxInt32 {
			return device.Errorf(op, "dims", device.ErrInvalid, "the CUDA kernel takes dimensions below 2³¹, got %v", dims)
		}
		if n > (1<<40)/v {
			return device.Errorf(op, "dims", device.ErrSize, "%v is more elements than any buffer holds", dims)
		}
		n *= v
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	xs := [4]int{dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1} // x's row-major strides
	var od, st [4]int
	for k, q := range perm {
		od[k], st[k] = dims[q], xs[q]
	}
	return d.run(func() error {
		return d.launch(kPermute4, d.grid1D(int64(n)), p(xb), p(yb), argI64(n),
			argI32(od[1]), argI32(od[2]), argI32(od[3]),
			argI64(st[0]), argI64(st[1]), argI64(st[2]), argI64(st[3]))
	})
}
