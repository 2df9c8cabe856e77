//go:build openblas

package cpu

// #cgo LDFLAGS: -lopenblas
// char *openblas_get_corename(void);
// char *openblas_get_config(void);
// void openblas_set_num_threads(int);
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

// Under the openblas build tag, blas32 (and so Gemm) calls OpenBLAS's
// cblas_sgemm through gonum's netlib wrapper, which links no library of
// its own: the cgo line above adds -lopenblas. The core OpenBLAS picked
// when it loaded (its DYNAMIC_ARCH choice, or OPENBLAS_CORETYPE's) goes
// into BLAS() and BLASAdvice (openblas_advice.go).
func init() {
	blas32.Use(netlib.Implementation{})
	useBLAS32 = true
	// One thread per call: the products run on the shared workers, cut
	// into slabs (blas_split.go), not on OpenBLAS's own threads.
	C.openblas_set_num_threads(1)
	blasCore = C.GoString(C.openblas_get_corename())
	blasConfig = C.GoString(C.openblas_get_config())
	blasName = "OpenBLAS (cgo, gonum.org/v1/netlib), core " + blasCore
}
