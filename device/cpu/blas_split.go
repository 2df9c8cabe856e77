package cpu

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// The openblas build's Gemm products run on the process's worker goroutines,
// OpenBLAS itself single-threaded (openblas.go): one set of threads for
// every kernel, as the default build's GEMM shares them. OpenBLAS's own
// threads would otherwise wake for every call and compete for the cores
// with the helpers polling between kernels. A product is cut into slabs
// of C fixed by its shape alone (rows, or columns when there are few
// rows), each one cblas_sgemm call, so the results do not depend on the
// number of cores. Only Gemm's single products come here: GemmBatched
// runs on kiln's own GEMM in this build too (gemmBatchedF32 says why).
//
// The largest single products (blasThreadMACs) are the exception: cut
// into slabs, every slab packs the whole of the operand the slabs share
// (OpenBLAS packs its panels per call), which on the transformer block's
// weight gradients ([384, 2048]ᵀ·[2048, 1536]: eight slabs of 48 rows,
// each packing all of the second operand) cost a third of their speed
// against one call on OpenBLAS's own threads, which share the packed
// panels. Those run as one call on OpenBLAS's threads (as many as the
// workers), the helpers parked meanwhile (hush) and OpenBLAS's threads
// sleeping as soon as the call ends (openblas.go sets their timeout), so
// neither pool polls on the cores the other is using. The price: how
// OpenBLAS splits a call depends on its thread count, and so do the last
// bits of the elements its edge kernels compute, so these products repeat
// bit for bit at a given GOMAXPROCS but not across core counts (the slabs
// are fixed by shape; the default build's GEMM gives the same bits at any
// core count). TestBLASThreaded checks them against float64 at 1 to 4
// threads.

// blasSplitMACs is the smallest product (m·n·k) worth splitting: below it
// one call on the caller is faster than handing slabs out.
const blasSplitMACs = 1 << 18

// blasThreadMACs is the smallest product (m·n·k) that runs
// as one call on OpenBLAS's own threads when the build has them
// (blasSetThreads): about a millisecond on one core, against the tens of
// microseconds it takes to wake a sleeping OpenBLAS thread.
const blasThreadMACs = 1 << 26

// blasMode is how the library behind blas32 runs its calls: set by the
// openblas build from openblas_get_parallel, blasGo in the default build.
type blasModeKind int

const (
	blasGo         blasModeKind = iota // gonum's Go BLAS: no threads of its own
	blasSequential                     // a sequential OpenBLAS
	blasPthreads                       // OpenBLAS's own pthreads server
	blasOpenMP                         // an OpenMP OpenBLAS
)

// blasMode, with blasSetThreads (openblas_set_num_threads; nil in the
// default build), decides how blasGemm runs a product:
//
//   - blasPthreads: the largest single products run as one call on
//     OpenBLAS's threads (blasWhole). The count is the library's,
//     process-wide, so blasBig keeps every other product out meanwhile:
//     the big ones take it for writing, all others (slabs, small ones,
//     whichever goroutine or device) for reading over their whole
//     call — a slab's call issued meanwhile would otherwise run on
//     OpenBLAS's threads too, and its bits would depend on the moment it
//     came.
//   - blasOpenMP: the thread count OpenBLAS uses is the calling thread's
//     (omp_get_max_threads), and the Go runtime's threads start with
//     libgomp's default, every core — so each chunk sets it to one on its
//     own thread before its calls, or every slab's call would start a
//     team of its own. No threaded path: it could not keep the other
//     threads' calls at one.
//   - blasSequential: Debian builds it without USE_LOCKING, and
//     concurrent calls into it gave wrong results: one whole call at a
//     time in the process, under blasBig.
var (
	blasMode       blasModeKind
	blasSetThreads func(n int)
	blasBig        sync.RWMutex
)

// blasThreading says how the openblas build runs OpenBLAS's calls (in
// BLAS()).
func blasThreading() string {
	const batched = "; batched products on kiln's GEMM"
	switch blasMode {
	case blasPthreads:
		return "slabs on kiln's workers, the largest products on OpenBLAS's pthreads" + batched
	case blasOpenMP:
		return "OpenMP build: slabs on kiln's workers, each call on one thread" + batched
	case blasSequential:
		return "sequential build: one call at a time" + batched
	}
	return "slabs on kiln's workers"
}

// blasSlabs is how many slabs a product of extent e (rows or columns) is
// cut into: at most 8, none narrower than 32.
func blasSlabs(e int) int { return max(1, min(8, e/32)) }

// blasWhole runs q (a single product) as one call on threads of
// OpenBLAS's, w's helpers parked meanwhile.
func blasWhole(q *blasKern, w *workers, threads int) {
	blasBig.Lock()
	defer blasBig.Unlock()
	w.hush(true)
	defer w.hush(false)
	blasSetThreads(threads)
	defer blasSetThreads(1)
	q.run(0, 0, 1)
}

// blasKern is the argument block of one split OpenBLAS product.
type blasKern struct {
	ta, tb      blas.Transpose
	m, n, k     int
	alpha, beta float32
	a, b, c     []float32
	lda, ldb    int
	whole       bool // one call for all of C
	byCols      bool // slabs of columns, not rows
}

var blasKerns = sync.Pool{New: func() any { return new(blasKern) }}

func (q *blasKern) run(_, lo, hi int) {
	impl := blas32.Implementation()
	if blasMode == blasOpenMP {
		// Before the calls below, on the thread they run on.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		blasSetThreads(1)
	}
	switch {
	case q.whole:
		impl.Sgemm(q.ta, q.tb, q.m, q.n, q.k, q.alpha, q.a, q.lda, q.b, q.ldb, q.beta, q.c, q.n)
	case q.byCols: // columns [lo, hi) of C: the same columns of op(B)
		var b []float32
		if q.tb == blas.Trans {
			b = q.b[lo*q.ldb:] // B stored n×k: rows lo… of it
		} else {
			b = q.b[lo:] // B stored k×n
		}
		impl.Sgemm(q.ta, q.tb, q.m, hi-lo, q.k, q.alpha, q.a, q.lda, b, q.ldb, q.beta, q.c[lo:], q.n)
	default: // rows [lo, hi) of C: the same rows of op(A)
		var a []float32
		if q.ta == blas.Trans {
			a = q.a[lo:] // A stored k×m: columns lo… of it
		} else {
			a = q.a[lo*q.lda:] // A stored m×k
		}
		impl.Sgemm(q.ta, q.tb, hi-lo, q.n, q.k, q.alpha, a, q.lda, q.b, q.ldb, q.beta, q.c[lo*q.n:], q.n)
	}
}

// blasGemm is gemmF32 through blas32 on the shared workers (the batched
// form runs on kiln's GEMM in every build, see gemmBatchedF32).
func blasGemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	q := blasKerns.Get().(*blasKern)
	defer q.release()
	*q = blasKern{ta: blas.NoTrans, tb: blas.NoTrans, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, b: b, c: c,
		lda: k, ldb: n}
	if transA {
		q.ta, q.lda = blas.Trans, m
	}
	if transB {
		q.tb, q.ldb = blas.Trans, k
	}
	// Both gonum's Sgemm and OpenBLAS zero C when beta is 0 rather than
	// scaling it (checked by TestGemmBetaZeroIgnoresNaN), so C is not read.
	macs := int64(m) * int64(n) * int64(k)
	w := sharedWorkers()
	switch {
	case blasMode == blasPthreads && macs >= blasThreadMACs:
		// One call on OpenBLAS's threads (see the top of the file); a
		// second such product on another goroutine meanwhile waits.
		q.whole = true
		blasWhole(q, w, w.n)
		return
	case blasMode == blasSequential:
		blasBig.Lock()
		defer blasBig.Unlock()
		q.whole = true
		q.run(0, 0, 1)
		return
	}
	blasBig.RLock()
	defer blasBig.RUnlock()
	switch {
	case macs < blasSplitMACs:
		q.whole = true
		q.run(0, 0, 1)
	case m >= 4*32 || m >= n:
		w.parallel(q, m, blasSlabs(m), 1)
	default:
		q.byCols = true
		w.parallel(q, n, blasSlabs(n), 1)
	}
}

// release clears q and returns it to blasKerns.
func (q *blasKern) release() {
	*q = blasKern{}
	blasKerns.Put(q)
}
