package cpu

import (
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/gemm"
)

// blasName names the GEMM that Gemm uses in this build; the openblas
// build tag replaces it (see openblas.go).
var blasName = "kiln (pure Go + assembly, " + gemm.Kernel() + " micro-kernel)"

// useBLAS32 routes Gemm through gonum's blas32 instead of the internal
// gemm package; the openblas build tag sets it (blas32 then calls
// OpenBLAS).
var useBLAS32 = false

// BLAS reports which BLAS implementation Gemm uses in this build, for
// benchmark tables and `kiln devices`.
func BLAS() string { return blasName }

// Gemm computes C = alpha·op(A)·op(B) + beta·C (row-major) with the
// internal gemm package (or OpenBLAS under the openblas tag).
// When alpha is 0, A and B are not read; when beta is 0, C is not read.
func (d *Device) Gemm(transA, transB bool, m, n, k int, alpha float32, a, b device.Buffer, beta float32, c device.Buffer) error {
	const op = "Gemm"
	if d.closed {
		return errClosed(op)
	}
	if m < 1 || n < 1 || k < 1 {
		return device.CheckDims(op, "m", m, "n", n, "k", k)
	}
	mk, err := area(op, "m×k", m, k)
	if err != nil {
		return err
	}
	kn, err := area(op, "k×n", k, n)
	if err != nil {
		return err
	}
	mn, err := area(op, "m×n", m, n)
	if err != nil {
		return err
	}
	af, err := d.f32(op, "a", a, mk)
	if err != nil {
		return err
	}
	bf, err := d.f32(op, "b", b, kn)
	if err != nil {
		return err
	}
	cf, err := d.f32(op, "c", c, mn)
	if err != nil {
		return err
	}
	if alpha == 0 {
		// BLAS semantics: A and B are not referenced, so NaNs in them do
		// not reach C.
		if beta == 0 {
			d.fill(cf, 0)
		} else if beta != 1 {
			d.scale(beta, cf, cf)
		}
		return nil
	}
	gemmF32(transA, transB, m, n, k, alpha, af, bf, beta, cf)
	return nil
}

// gemmF32 is the backend's single GEMM on dense row-major slices (the
// leading dimensions are the stored widths): C = alpha·op(A)·op(B) +
// beta·C, C not read when beta is 0. The slices are already checked to
// be long enough.
func gemmF32(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	if useBLAS32 {
		blasGemm(transA, transB, m, n, k, alpha, a, b, beta, c)
		return
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, n)
}

// gemmBatchedF32 is the strided-batched GEMM on dense row-major slices:
// C_i = alpha·op(A_i)·op(B_i) + beta·C_i with A_i at a[i·strideA:], B_i at
// b[i·strideB:] and C_i at c[i·strideC:] (strideC ≥ m·n), each shaped as
// in gemmF32. A shared operand (stride 0) is packed once for the whole
// batch, and the batch is spread over goroutines by entry when the
// products are small or by tiles when they are large. The slices are
// already checked to be long enough. When alpha is 0, A and B are not
// read; when beta is 0, C is not read.
//
// The strided-batched form runs on kiln's GEMM in the openblas build too:
// OpenBLAS (0.3.21, Debian 12's) has no batched call, so each entry would
// be a call of its own that packs the shared operand again, and the
// entries of the CNN's convolutions and of attention's heads are small
// products (7 M multiply-adds or fewer), where its single-threaded calls
// left the CNN's step 10–23% behind kiln's (docs/benchmarks.md, fourth
// and fifth sessions). Batch 1 stays here as well: Conv2d's groups of
// images (one image in the smallest) must give the bits of the whole
// batch, which they do because every entry of a batch is computed alike
// whatever the batch size. That moves nn/gpt's Conv1D projections (a
// rank-2 BatchedMatMul, batch 1, 38–50 M multiply-adds in nanoGPT's CPU
// recipe) here too; an A/B of that recipe in the openblas build, before
// and after, gave no loss of speed (fifth session).
func gemmBatchedF32(transA, transB bool, m, n, k int, alpha float32, a []float32, strideA int, b []float32, strideB int,
	beta float32, c []float32, strideC int, batch int) {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	gemm.SgemmBatched(transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, n, strideC, batch)
}
