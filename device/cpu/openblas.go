//go:build openblas

package cpu

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

// Under the openblas build tag, blas32 (and so Gemm) calls OpenBLAS's
// cblas_sgemm through gonum's netlib wrapper, which links no library of
// its own: the cgo line above adds -lopenblas.
func init() {
	blas32.Use(netlib.Implementation{})
	useBLAS32 = true
	blasName = "OpenBLAS (cgo, gonum.org/v1/netlib)"
}
