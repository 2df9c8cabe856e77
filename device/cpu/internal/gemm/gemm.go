// Package gemm is the CPU backend's float32 matrix product: a
// GotoBLAS/BLIS-structured SGEMM for row-major C = alpha·op(A)·op(B) +
// beta·C, in pure Go plus Go assembly (no cgo).
//
// Structure (the classic five loops around a micro-kernel):
//
//	for jc over n in steps of nc:         B block kc×nc, packed, lives in L3
//	  for pc over k in steps of kc:
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into nr-column slivers
//	    for ic over m in steps of mc:     A block mc×kc, packed, lives in L2
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into mr-row slivers
//	      for jr over the block by nr:    B sliver kc×nr stays in L1
//	        for ir over the block by mr:
//	          micro-kernel: C[mr×nr] = alpha·Asliver·Bsliver + beta'·C
//
// where beta' is beta for the first kc block and 1 after it (so C is not
// read when beta is 0). The micro-kernel keeps its mr×nr tile of C in
// vector registers: 12×32 in 24 zmm registers with AVX-512, 6×16 in 12
// ymm registers with AVX2+FMA, 4×4 in scalars in the portable Go kernel;
// the best the CPU supports is chosen at start-up (golang.org/x/sys/cpu)
// and KILN_GEMM_KERNEL=avx512|avx2|generic overrides it (see EnvKernel).
// Packing zero-pads the last sliver of each block, so edge tiles run the
// same kernel into a small temporary tile that is then merged into C.
//
// Large products are split over a fixed pool of goroutines (one per
// GOMAXPROCS), along m or n (whichever is larger, so that the operand
// each goroutine packs again is the smaller one); small ones stay on the
// calling goroutine. Packing buffers come from a sync.Pool: no allocation
// per call in steady state. Each element of C is a sum over k taken in a
// fixed order (kc blocks in turn, each summed sequentially by one FMA
// chain), whatever the number of goroutines: results are deterministic.
package gemm

import (
	"fmt"
	"runtime"
	"sync"
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices:
// op(A) is m×k (A is stored m×k, or k×m when transA), op(B) is k×n (B is
// stored k×n, or n×k when transB), C is m×n; lda, ldb and ldc are the
// leading dimensions (elements between rows, at least the stored width).
// When alpha is 0, A and B are not read; when beta is 0, C is not read
// (NaNs in it do not propagate). It panics on inconsistent arguments:
// callers validate user input first.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	SgemmBatched(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1)
}

// SgemmBatched computes C_i = alpha·op(A_i)·op(B_i) + beta·C_i for
// i = 0 … batch−1, each product shaped as in Sgemm, where A_i starts at
// element i·strideA of a, B_i at i·strideB of b and C_i at i·strideC of c.
// strideA or strideB may be 0: that operand is then shared and is packed
// once for the whole batch. The C_i must not overlap. Small products are
// spread over goroutines by batch entry, large ones by tiles of each
// product.
func SgemmBatched(transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int,
	b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	checkArgs(transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch)
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		for i := 0; i < batch; i++ {
			scaleC(m, n, beta, c[i*strideC:], ldc)
		}
		return
	}
	if dotPath(transA, transB, m, n) {
		for i := 0; i < batch; i++ {
			gemv(transA, transB, m, n, k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
		}
		return
	}
	j := jobPool.Get().(*job)
	j.p = problem{kr: active.Load(), transA: transA, transB: transB, m: m, n: n, k: k,
		alpha: alpha, beta: beta, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	j.batch, j.strideA, j.strideB, j.strideC = batch, strideA, strideB, strideC
	kr := j.p.kr

	// A shared operand is packed once, whole, when the batch reuses it.
	var shared *[]float32
	if batch > 1 && (strideA == 0 || strideB == 0) {
		shared = sharedPool.Get().(*[]float32)
		mp, np := roundUp(m, kr.mr), roundUp(n, kr.nr)
		need := 0
		if strideA == 0 {
			need += mp * k
		}
		if strideB == 0 {
			need += np * k
		}
		if cap(*shared) < need {
			*shared = make([]float32, need)
		}
		buf := (*shared)[:need]
		if strideA == 0 {
			j.p.pa = buf[:mp*k]
			buf = buf[mp*k:]
			for pc := 0; pc < k; pc += kr.kc {
				kc := min(kr.kc, k-pc)
				packA(j.p.pa[pc*mp:], kr.mr, a, lda, transA, 0, m, pc, kc)
			}
		}
		if strideB == 0 {
			j.p.pb = buf[:np*k]
			for pc := 0; pc < k; pc += kr.kc {
				kc := min(kr.kc, k-pc)
				packB(j.p.pb[pc*np:], kr.nr, b, ldb, transB, 0, n, pc, kc)
			}
		}
	}

	// Split the work: by batch entry when there are enough of them and
	// each is small, else by tiles of every product (along the larger of m
	// and n, in whole slivers).
	flops := 2 * float64(m) * float64(n) * float64(k)
	threads := poolSize()
	j.parts, j.byBatch = 1, false
	switch {
	case threads == 1 || flops*float64(batch) < parallelFlops:
	case batch >= threads && flops < batchSplitFlops:
		j.parts, j.byBatch = threads, true
	default:
		j.splitM = m >= n
		slivers := (n + kr.nr - 1) / kr.nr
		if j.splitM {
			slivers = (m + kr.mr - 1) / kr.mr
		}
		j.parts = min(threads, slivers)
	}
	j.run()
	if shared != nil {
		sharedPool.Put(shared)
	}
	j.p = problem{} // drop references to the caller's slices
	jobPool.Put(j)
}

// parallelFlops is the smallest total work (2·m·n·k·batch) worth handing
// to other goroutines: about 10 µs on one core, several times the cost of
// waking a worker.
const parallelFlops = 1 << 21

// batchSplitFlops: products smaller than this (about 0.3 ms on one core)
// are spread over goroutines by batch entry rather than split in tiles.
const batchSplitFlops = 1 << 25

func roundUp(x, r int) int { return (x + r - 1) / r * r }

// checkArgs panics unless every matrix the arguments describe lies
// inside its slice.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda, strideA int, b []float32, ldb, strideB int, c []float32, ldc, strideC int, batch int) {
	if m < 0 || n < 0 || k < 0 || batch < 0 || strideA < 0 || strideB < 0 || strideC < 0 {
		panic(fmt.Sprintf("gemm: negative size (m=%d n=%d k=%d batch=%d strides %d %d %d)", m, n, k, batch, strideA, strideB, strideC))
	}
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	need := func(name string, s []float32, rows, cols, ld, stride int) {
		if ld < max(cols, 1) {
			panic(fmt.Sprintf("gemm: leading dimension of %s is %d, less than its width %d", name, ld, cols))
		}
		if rows == 0 || cols == 0 {
			return
		}
		if n := (batch-1)*stride + (rows-1)*ld + cols; len(s) < n {
			panic(fmt.Sprintf("gemm: %s has %d elements, needs %d", name, len(s), n))
		}
	}
	if transA {
		need("a", a, k, m, lda, strideA)
	} else {
		need("a", a, m, k, lda, strideA)
	}
	if transB {
		need("b", b, n, k, ldb, strideB)
	} else {
		need("b", b, k, n, ldb, strideB)
	}
	need("c", c, m, n, ldc, strideC)
	if batch > 1 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("gemm: strideC %d makes the C matrices overlap (each spans %d)", strideC, (m-1)*ldc+n))
	}
}

// scaleC sets C = beta·C (0 without reading C when beta is 0).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// problem is one product, with the shared operands already packed when
// pa or pb is set (pa: op(A) as whole mr-row slivers, the block for depth
// pc at pa[pc·roundUp(m, mr):]; pb likewise for op(B) in nr-column
// slivers).
type problem struct {
	kr             *kernel
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
	pa, pb         []float32
}

// job is one call split into parts, run by the pool.
type job struct {
	p                         problem
	batch                     int
	strideA, strideB, strideC int
	parts                     int
	byBatch                   bool // part t takes a range of batch entries
	splitM                    bool // else part t takes a range of slivers along m (true) or n
	wg                        sync.WaitGroup
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

// sharedPool holds the buffers of whole packed shared operands.
var sharedPool = sync.Pool{New: func() any { return new([]float32) }}

// run runs every part, the first on the calling goroutine.
func (j *job) run() {
	if j.parts == 1 {
		j.part(0)
		return
	}
	startPool()
	j.wg.Add(j.parts - 1)
	for t := 1; t < j.parts; t++ {
		workCh <- task{j, t}
	}
	j.part(0)
	j.wg.Wait()
}

// part runs part t of the job.
func (j *job) part(t int) {
	s := getScratch(j.p.kr)
	defer scratchPool.Put(s)
	p := j.p
	b0, b1 := 0, j.batch
	i0, i1, j0, j1 := 0, p.m, 0, p.n
	switch {
	case j.parts == 1:
	case j.byBatch:
		b0, b1 = t*j.batch/j.parts, (t+1)*j.batch/j.parts
	case j.splitM:
		sl := (p.m + p.kr.mr - 1) / p.kr.mr
		i0, i1 = t*sl/j.parts*p.kr.mr, min(p.m, (t+1)*sl/j.parts*p.kr.mr)
	default:
		sl := (p.n + p.kr.nr - 1) / p.kr.nr
		j0, j1 = t*sl/j.parts*p.kr.nr, min(p.n, (t+1)*sl/j.parts*p.kr.nr)
	}
	for bi := b0; bi < b1; bi++ {
		q := p
		if bi > 0 {
			q.a = p.a[bi*j.strideA:]
			q.b = p.b[bi*j.strideB:]
			q.c = p.c[bi*j.strideC:]
		}
		s.compute(&q, i0, i1, j0, j1)
	}
}

// scratch is one goroutine's packing space: an A block, a B block and a
// temporary tile for edges.
type scratch struct {
	a, b, t []float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch(kr *kernel) *scratch {
	s := scratchPool.Get().(*scratch)
	if len(s.a) < kr.mc*kr.kc {
		s.a = make([]float32, kr.mc*kr.kc)
	}
	if len(s.b) < kr.kc*kr.nc {
		s.b = make([]float32, kr.kc*kr.nc)
	}
	if len(s.t) < kr.mr*kr.nr {
		s.t = make([]float32, kr.mr*kr.nr)
	}
	return s
}

// compute computes rows [i0, i1) × columns [j0, j1) of C (i0 a multiple of
// mr and j0 of nr) on this goroutine.
func (s *scratch) compute(p *problem, i0, i1, j0, j1 int) {
	kr := p.kr
	mp, np := roundUp(p.m, kr.mr), roundUp(p.n, kr.nr)
	for jc := j0; jc < j1; jc += kr.nc {
		nc := min(kr.nc, j1-jc)
		for pc := 0; pc < p.k; pc += kr.kc {
			kc := min(kr.kc, p.k-pc)
			beta, loadC := p.beta, 1
			if pc > 0 {
				beta = 1
			} else if beta == 0 {
				loadC = 0
			}
			var bp []float32
			if p.pb != nil {
				bp = p.pb[pc*np+jc*kc:]
			} else {
				bp = s.b
				packB(bp, kr.nr, p.b, p.ldb, p.transB, jc, nc, pc, kc)
			}
			for ic := i0; ic < i1; ic += kr.mc {
				mc := min(kr.mc, i1-ic)
				var ap []float32
				if p.pa != nil {
					ap = p.pa[pc*mp+ic*kc:]
				} else {
					ap = s.a
					packA(ap, kr.mr, p.a, p.lda, p.transA, ic, mc, pc, kc)
				}
				s.macro(p, ap, bp, ic, mc, jc, nc, kc, beta, loadC)
			}
		}
	}
}

// macro runs the micro-kernel over one packed A block (mc rows from ic)
// and B block (nc columns from jc) of depth kc.
func (s *scratch) macro(p *problem, ap, bp []float32, ic, mc, jc, nc, kc int, beta float32, loadC int) {
	kr := p.kr
	mr, nr, fn := kr.mr, kr.nr, kr.fn
	c, ldc, alpha := p.c, p.ldc, p.alpha
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		bs := bp[jr*kc : jr*kc+nr*kc]
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			as := ap[ir*kc : ir*kc+mr*kc]
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				fn(kc, &as[0], &bs[0], &c[off], ldc, alpha, beta, loadC)
				continue
			}
			// Edge tile: compute the whole padded tile into s.t, then
			// merge the part inside C.
			t := s.t[:mr*nr]
			fn(kc, &as[0], &bs[0], &t[0], nr, 1, 0, 0)
			for r := 0; r < rows; r++ {
				cr := c[off+r*ldc : off+r*ldc+cols]
				tr := t[r*nr : r*nr+cols]
				if loadC == 0 {
					for j, v := range tr {
						cr[j] = alpha * v
					}
				} else {
					for j, v := range tr {
						cr[j] = alpha*v + beta*cr[j]
					}
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mc) × depth [p0, p0+kc) of op(A) into dst as
// mr-row slivers (sliver s at dst[s·mr·kc:], element (i, p) at
// [p·mr+i]), the last sliver zero-padded to mr rows.
func packA(dst []float32, mr int, a []float32, lda int, trans bool, i0, mc, p0, kc int) {
	for s := 0; s*mr < mc; s++ {
		rows := min(mr, mc-s*mr)
		d := dst[s*mr*kc : (s+1)*mr*kc]
		ib := i0 + s*mr
		if trans {
			// op(A)(i, p) = a[p·lda + i]: each step p copies a row piece.
			for p := 0; p < kc; p++ {
				o := (p0+p)*lda + ib
				dp := d[p*mr : p*mr+mr]
				copy(dp, a[o:o+rows])
				clear(dp[rows:])
			}
			continue
		}
		// op(A)(i, p) = a[i·lda + p]: each row is scattered with stride mr.
		for r := 0; r < rows; r++ {
			o := (ib+r)*lda + p0
			src := a[o : o+kc]
			for p, v := range src {
				d[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				d[p*mr+r] = 0
			}
		}
	}
}

// packB packs depth [p0, p0+kc) × columns [j0, j0+nc) of op(B) into dst
// as nr-column slivers (sliver s at dst[s·nr·kc:], element (p, j) at
// [p·nr+j]), the last sliver zero-padded to nr columns.
func packB(dst []float32, nr int, b []float32, ldb int, trans bool, j0, nc, p0, kc int) {
	for s := 0; s*nr < nc; s++ {
		cols := min(nr, nc-s*nr)
		d := dst[s*nr*kc : (s+1)*nr*kc]
		jb := j0 + s*nr
		if !trans {
			// op(B)(p, j) = b[p·ldb + j]: each step p copies a row piece.
			for p := 0; p < kc; p++ {
				o := (p0+p)*ldb + jb
				dp := d[p*nr : p*nr+nr]
				copy(dp, b[o:o+cols])
				clear(dp[cols:])
			}
			continue
		}
		// op(B)(p, j) = b[j·ldb + p]: each column is scattered with stride nr.
		for j := 0; j < cols; j++ {
			o := (jb+j)*ldb + p0
			src := b[o : o+kc]
			for p, v := range src {
				d[p*nr+j] = v
			}
		}
		for j := cols; j < nr; j++ {
			for p := 0; p < kc; p++ {
				d[p*nr+j] = 0
			}
		}
	}
}

// The worker pool: poolSize−1 goroutines that run parts of jobs (the
// caller runs one part itself). A task is a small struct sent by value:
// no allocation per call.
type task struct {
	j    *job
	part int
}

var (
	poolOnce sync.Once
	workCh   chan task
	// nThreads is how many parts a large product is split into.
	nThreads = runtime.GOMAXPROCS(0)
)

func poolSize() int { return nThreads }

func startPool() {
	poolOnce.Do(func() {
		workCh = make(chan task, 64)
		// At least one worker, so that tests may ask for more parts than
		// cores (nThreads); extra parts wait in the channel.
		for i := 0; i < max(1, runtime.GOMAXPROCS(0)-1); i++ {
			go func() {
				for t := range workCh {
					t.j.part(t.part)
					t.j.wg.Done()
				}
			}()
		}
	})
}
