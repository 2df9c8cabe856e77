package cpu

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/kilnml/kiln/device"
)

// blasName names the BLAS that blas32 dispatches to in this build; the
// openblas build tag replaces it (see openblas.go).
var blasName = "gonum (pure Go)"

// BLAS reports which BLAS implementation Gemm uses in this build, for
// benchmark tables and `kiln devices`.
func BLAS() string { return blasName }

// Gemm computes C = alpha·op(A)·op(B) + beta·C through blas32 (row-major).
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
	ga := blas32.General{Rows: m, Cols: k, Stride: k, Data: af}
	ta := blas.NoTrans
	if transA {
		ga = blas32.General{Rows: k, Cols: m, Stride: m, Data: af}
		ta = blas.Trans
	}
	gb := blas32.General{Rows: k, Cols: n, Stride: n, Data: bf}
	tb := blas.NoTrans
	if transB {
		gb = blas32.General{Rows: n, Cols: k, Stride: k, Data: bf}
		tb = blas.Trans
	}
	// Both gonum's Sgemm and OpenBLAS zero C when beta is 0 rather than
	// scaling it (checked by TestGemmBetaZeroIgnoresNaN), so C is not read.
	blas32.Gemm(ta, tb, alpha, ga, gb, beta, blas32.General{Rows: m, Cols: n, Stride: n, Data: cf})
	return nil
}
