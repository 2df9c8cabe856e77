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
// GOMAXPROCS), along m or n (whichever leaves the busiest goroutine the
// least work, packing included); small ones stay on the calling
// goroutine. Packing buffers come from free lists: no allocation
// per call in steady state. An operand already laid out as the kernel
// reads it (plain B, transposed A) is read in place when the product is
// too thin for packing to pay (see directMaxM), and vector-shaped
// products (m or n = 1 along contiguous memory) skip the blocking (dot.go).
// Each element of C is a sum over k taken in a fixed order (kc blocks in
// turn, each summed sequentially by one FMA chain; eight interleaved
// partial sums on the dot path), whatever the number of goroutines:
// results are deterministic.
package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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
	j := jobs.get()
	j.p = problem{kr: active.Load(), transA: transA, transB: transB, m: m, n: n, k: k,
		alpha: alpha, beta: beta, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	j.batch, j.strideA, j.strideB, j.strideC = batch, strideA, strideB, strideC
	kr := j.p.kr
	// Depth blocks of equal size (k = 784 with kc 256: four blocks of 196,
	// not 256, 256, 256 and a thin 16, each of which costs a pass over C).
	j.p.kc = (k + (k+kr.kc-1)/kr.kc - 1) / ((k + kr.kc - 1) / kr.kc)

	// A shared operand is packed once, whole, when the batch reuses it.
	var shared *[]float32
	if batch > 1 && (strideA == 0 || strideB == 0) {
		shared = sharedBufs.get()
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
			for pc := 0; pc < k; pc += j.p.kc {
				kc := min(j.p.kc, k-pc)
				packA(j.p.pa[pc*mp:], kr.mr, a, lda, transA, 0, m, pc, kc)
			}
		}
		if strideB == 0 {
			j.p.pb = buf[:np*k]
			for pc := 0; pc < k; pc += j.p.kc {
				kc := min(j.p.kc, k-pc)
				packB(j.p.pb[pc*np:], kr.nr, b, ldb, transB, 0, n, pc, kc)
			}
		}
	}

	// Split the work: by batch entry when there are enough of them and
	// each is small, else by tiles of every product (see split).
	flops := 2 * float64(m) * float64(n) * float64(k)
	threads := poolSize()
	j.parts, j.byBatch = 1, false
	switch {
	case threads == 1 || flops*float64(batch) < parallelFlops:
	case batch >= threads && flops < batchSplitFlops:
		j.parts, j.byBatch = threads, true
	default:
		j.splitM, j.parts = j.p.split(threads)
	}
	j.run()
	if shared != nil {
		sharedBufs.put(shared)
	}
	j.release()
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
	kc             int // depth of the packed blocks, at most kr.kc
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
	pa, pb         []float32
}

// packCost is what packing one element costs, in multiply-adds: about a
// cycle, in which the AVX-512 kernel does 32 (AVX2: 16).
const packCost = 32

// split chooses how to cut the product over t goroutines: along m (each
// part then packs all of op(B) it uses, unless B is read in place) or
// along n (each part packs all of op(A)), in whole slivers. It picks the
// cut whose busiest part has the least work, counting its multiply-adds
// on whole (padded) slivers and packing at packCost per element.
func (p *problem) split(t int) (alongM bool, parts int) {
	kr := p.kr
	slM, slN := (p.m+kr.mr-1)/kr.mr, (p.n+kr.nr-1)/kr.nr
	k := float64(p.k)
	cost := func(alongM bool) (float64, int) {
		sl, tile := slN, kr.nr
		if alongM {
			sl, tile = slM, kr.mr
		}
		parts := min(t, sl)
		span := (sl + parts - 1) / parts * tile // rows or columns of the busiest part
		rows, cols := p.m, span
		if alongM {
			rows, cols = span, p.n
		}
		work := float64(roundUp(rows, kr.mr)) * float64(roundUp(cols, kr.nr)) * k
		if p.pa == nil && !(p.transA && cols <= directMaxN && p.lda%1024 != 0) {
			work += packCost * float64(rows) * k
		}
		if p.pb == nil && !(!p.transB && rows <= directMaxM && p.ldb%1024 != 0) {
			work += packCost * float64(cols) * k
		}
		return work, parts
	}
	cm, pm := cost(true)
	cn, pn := cost(false)
	if cm <= cn {
		return true, pm
	}
	return false, pn
}

// job is one call split into parts, run by the pool.
type job struct {
	p                         problem
	batch                     int
	strideA, strideB, strideC int
	parts                     int
	byBatch                   bool // part t takes a range of batch entries
	splitM                    bool // else part t takes a range of slivers along m (true) or n
	// Parts are taken in turn by the caller and the helpers it woke
	// (next), counted when finished (done; whoever finishes the last one
	// signals fin), and the job goes back to the free list when the caller
	// and every woken helper have let go of it (refs). So the caller never
	// waits for a helper that has not started yet (on a loaded machine it
	// may not run for milliseconds): it runs the untaken parts itself, and
	// the late helper finds none left.
	next, done, refs atomic.Int32
	fin              chan struct{}
}

// freeList is a stack of reusable T, shared by all goroutines. Unlike a
// sync.Pool it never drops its items and any goroutine gets any free one,
// so a steady caller allocates nothing (a sync.Pool item put on one P's
// private slot is invisible to a worker running on another).
type freeList[T any] struct {
	mu    sync.Mutex
	items []*T
}

func (f *freeList[T]) get() *T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.items); n > 0 {
		x := f.items[n-1]
		f.items = f.items[:n-1]
		return x
	}
	return new(T)
}

func (f *freeList[T]) put(x *T) {
	f.mu.Lock()
	f.items = append(f.items, x)
	f.mu.Unlock()
}

var (
	jobs       freeList[job]
	sharedBufs freeList[[]float32] // whole packed shared operands
	scratches  freeList[scratch]
)

// run runs every part, with up to parts−1 helpers from the pool, and
// returns when all are done.
func (j *job) run() {
	j.refs.Store(1)
	if j.parts == 1 {
		j.part(0)
		return
	}
	startPool()
	helpers := min(j.parts-1, poolWorkers)
	j.next.Store(0)
	j.done.Store(0)
	j.refs.Add(int32(helpers))
	if j.fin == nil {
		j.fin = make(chan struct{}, 1)
	}
	for i := 0; i < helpers; i++ {
		workCh <- j
	}
	j.work()
	<-j.fin
}

// work runs untaken parts until none is left.
func (j *job) work() {
	for {
		t := int(j.next.Add(1)) - 1
		if t >= j.parts {
			return
		}
		j.part(t)
		if int(j.done.Add(1)) == j.parts {
			j.fin <- struct{}{}
		}
	}
}

// release drops one reference; the last one returns the job to the free
// list, without references to the caller's slices.
func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.p = problem{}
		jobs.put(j)
	}
}

// part runs part t of the job.
func (j *job) part(t int) {
	s := getScratch(j.p.kr)
	defer scratches.put(s)
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

func getScratch(kr *kernel) *scratch {
	s := scratches.get()
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

// Operands read where they lie (no packing): packing costs about one
// pass over the operand per block, which pays when each packed sliver
// is then reused by many tiles. A B sliver is reused by every A sliver of
// the block (m/mr of them) and an A sliver by every B sliver (n/nr), so
// when m (for B) or n (for A) is small and the operand's layout already
// suits the kernel — plain B (row p of the sliver contiguous), transposed
// A (step p of the sliver contiguous) — the kernel reads it in place,
// with its leading dimension as the sliver stride. Partial edge slivers
// are still packed (zero-padded). Leading dimensions that are a multiple
// of 4 KiB would map every step to the same L1 set, so they are packed.
const (
	directMaxM = 96  // rows of C up to which plain B is read in place
	directMaxN = 128 // columns of C up to which a transposed A is read in place
)

// compute computes rows [i0, i1) × columns [j0, j1) of C (i0 a multiple of
// mr and j0 of nr) on this goroutine.
func (s *scratch) compute(p *problem, i0, i1, j0, j1 int) {
	kr := p.kr
	mp, np := roundUp(p.m, kr.mr), roundUp(p.n, kr.nr)
	directA := p.transA && p.pa == nil && j1-j0 <= directMaxN && p.lda%1024 != 0
	directB := !p.transB && p.pb == nil && i1-i0 <= directMaxM && p.ldb%1024 != 0
	for jc := j0; jc < j1; jc += kr.nc {
		nc := min(kr.nc, j1-jc)
		for pc := 0; pc < p.k; pc += p.kc {
			kc := min(p.kc, p.k-pc)
			beta, loadC := p.beta, 1
			if pc > 0 {
				beta = 1
			} else if beta == 0 {
				loadC = 0
			}
			var bp []float32
			switch {
			case p.pb != nil:
				bp = p.pb[pc*np+jc*kc:]
			case directB:
				// Pack only the partial last sliver, at its place in s.b.
				if rem := nc % kr.nr; rem != 0 {
					last := nc - rem
					packB(s.b[last*kc:], kr.nr, p.b, p.ldb, false, jc+last, rem, pc, kc)
				}
				bp = s.b
			default:
				bp = s.b
				packB(bp, kr.nr, p.b, p.ldb, p.transB, jc, nc, pc, kc)
			}
			for ic := i0; ic < i1; ic += kr.mc {
				mc := min(kr.mc, i1-ic)
				var ap []float32
				switch {
				case p.pa != nil:
					ap = p.pa[pc*mp+ic*kc:]
				case directA:
					if rem := mc % kr.mr; rem != 0 {
						last := mc - rem
						packA(s.a[last*kc:], kr.mr, p.a, p.lda, true, ic+last, rem, pc, kc)
					}
					ap = s.a
				default:
					ap = s.a
					packA(ap, kr.mr, p.a, p.lda, p.transA, ic, mc, pc, kc)
				}
				s.macro(p, ap, bp, directA, directB, ic, mc, jc, nc, pc, kc, beta, loadC)
			}
		}
	}
}

// macro runs the micro-kernel over one A block (mc rows from ic) and B
// block (nc columns from jc) of depth kc from pc: packed in ap and bp, or
// read in place where directA or directB says so (except their partial
// edge slivers, packed in ap and bp).
func (s *scratch) macro(p *problem, ap, bp []float32, directA, directB bool, ic, mc, jc, nc, pc, kc int, beta float32, loadC int) {
	kr := p.kr
	mr, nr, fn := kr.mr, kr.nr, kr.fn
	c, ldc, alpha := p.c, p.ldc, p.alpha
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		bs, sb := &bp[jr*kc], nr
		if directB && cols == nr {
			bs, sb = &p.b[pc*p.ldb+jc+jr], p.ldb
		}
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			as, sa := &ap[ir*kc], mr
			if directA && rows == mr {
				as, sa = &p.a[pc*p.lda+ic+ir], p.lda
			}
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				fn(kc, as, bs, &c[off], ldc, alpha, beta, loadC, sa, sb)
				continue
			}
			// Edge tile: compute the whole padded tile into s.t, then
			// merge the part inside C.
			t := s.t[:mr*nr]
			fn(kc, as, bs, &t[0], nr, 1, 0, 0, sa, sb)
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
		// op(A)(i, p) = a[i·lda + p]: a transpose, rows scattered with
		// stride mr.
		scatter(d, mr, a, lda, ib*lda+p0, rows, kc)
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
		// op(B)(p, j) = b[j·ldb + p]: a transpose, columns scattered with
		// stride nr.
		scatter(d, nr, b, ldb, jb*ldb+p0, cols, kc)
	}
}

// scatter transposes: d[p·w+r] = src[o + r·ld + p] for r < rows, p < kc,
// and d[p·w+r] = 0 for rows ≤ r < w. Four source rows go at once, so
// each step writes four neighbouring elements.
func scatter(d []float32, w int, src []float32, ld, o, rows, kc int) {
	d = d[:w*kc]
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0 := src[o+r*ld : o+r*ld+kc]
		s1 := src[o+(r+1)*ld : o+(r+1)*ld+kc]
		s2 := src[o+(r+2)*ld : o+(r+2)*ld+kc]
		s3 := src[o+(r+3)*ld : o+(r+3)*ld+kc]
		for p := range s0 {
			q := d[p*w+r : p*w+r+4 : p*w+r+4]
			q[0], q[1], q[2], q[3] = s0[p], s1[p], s2[p], s3[p]
		}
	}
	for ; r < rows; r++ {
		s0 := src[o+r*ld : o+r*ld+kc]
		for p, v := range s0 {
			d[p*w+r] = v
		}
	}
	if rows < w {
		for p := 0; p < kc; p++ {
			clear(d[p*w+rows : p*w+w])
		}
	}
}

// The worker pool: GOMAXPROCS−1 goroutines (at least one) that help
// callers with the parts of their jobs. Waking one is a channel send of
// a pointer: no allocation per call.
var (
	poolOnce    sync.Once
	workCh      chan *job
	poolWorkers = max(1, runtime.GOMAXPROCS(0)-1)
	// nThreads, when above 0, overrides how many parts a large product
	// is split into (tests raise it above the number of cores).
	nThreads = 0
)

// poolSize is how many goroutines a large product is split over:
// GOMAXPROCS, read per call.
func poolSize() int {
	if nThreads > 0 {
		return nThreads
	}
	return runtime.GOMAXPROCS(0)
}

func startPool() {
	poolOnce.Do(func() {
		workCh = make(chan *job, 64)
		for i := 0; i < poolWorkers; i++ {
			go func() {
				for j := range workCh {
					j.work()
					j.release()
				}
			}()
		}
	})
}
