//go:build openblas

package cpu

// #cgo LDFLAGS: -lopenblas
// #include <stdlib.h>
// char *openblas_get_corename(void);
// char *openblas_get_config(void);
// void openblas_set_num_threads(int);
// int openblas_get_num_threads(void);
// int openblas_get_parallel(void);
// static int env_set(const char *name) { return getenv(name) != NULL; }
// // Internal but exported in OpenBLAS's threaded builds; weak, so that a
// // build without them still links (then nothing is changed).
// void openblas_read_env(void) __attribute__((weak));
// int blas_thread_init(void) __attribute__((weak));
// int blas_thread_shutdown_(void) __attribute__((weak));
//
// // sleepy restarts OpenBLAS's thread server with OPENBLAS_THREAD_TIMEOUT
// // at its minimum (2^4 cycles), unless the user set a timeout: its
// // threads then sleep as soon as a call ends instead of spinning for
// // 2^28 cycles (a tenth of a second) on the cores kiln's helpers need
// // next. The variable is read by the library's constructor and by
// // blas_thread_init, so it is set around a restart and removed again
// // (a child process must not inherit it). Returns 1 when it restarted.
// static int sleepy(void) {
// 	if (getenv("OPENBLAS_THREAD_TIMEOUT") || getenv("GOTO_THREAD_TIMEOUT")) return 0;
// 	if (!openblas_read_env || !blas_thread_init || !blas_thread_shutdown_) return 0;
// 	setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
// 	openblas_read_env();
// 	blas_thread_shutdown_();
// 	blas_thread_init();
// 	unsetenv("OPENBLAS_THREAD_TIMEOUT");
// 	openblas_read_env();
// 	return 1;
// }
import "C"

import (
	"unsafe"

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
	// into slabs (blas_split.go), not on OpenBLAS's own threads — except,
	// with OpenBLAS's pthreads server, the largest, which get the
	// workers' count of its threads for their one call (blasMode).
	// openblas_get_parallel: 0 sequential, 1 pthreads (the server whose
	// spin sleepy shortens), 2 OpenMP (libgomp's threads, which
	// OpenBLAS's timeout does not govern).
	blasMode = [...]blasModeKind{blasSequential, blasPthreads, blasOpenMP}[min(max(int(C.openblas_get_parallel()), 0), 2)]
	if blasMode == blasPthreads {
		blasSleepy = C.sleepy() == 1
	}
	blasSetThreads = func(n int) { C.openblas_set_num_threads(C.int(n)) }
	blasSetThreads(1)
	blasCore = C.GoString(C.openblas_get_corename())
	blasConfig = C.GoString(C.openblas_get_config())
	blasName = "OpenBLAS (cgo, gonum.org/v1/netlib), core " + blasCore + ", " + blasThreading()
}

// blasThreadsNow is how many threads OpenBLAS's next call may use.
func blasThreadsNow() int { return int(C.openblas_get_num_threads()) }

// blasEnvSet reports whether the C environment (the one OpenBLAS reads,
// not Go's copy of it) holds name.
func blasEnvSet(name string) bool {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.env_set(cs) != 0
}

// blasSleepy reports whether init restarted OpenBLAS's threads with the
// shortest spin before they sleep (C.sleepy).
var blasSleepy bool
