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
// Packing zero-pads the last sliver of each block. With AVX-512, edge
// tiles run a kernel for their height (1…12 rows) that stores their
// columns with mask registers straight into C; the other kernels compute
// an edge tile into a small temporary tile that is then merged into C.
// Packing copies the operands stored along m or n row by row (so that a
// cold operand streams) and transposes those stored along k in 16×16
// register blocks (AVX-512; Go elsewhere).
//
// Large products are split over a fixed pool of goroutines (one per
// GOMAXPROCS: the package's own, or the one a backend gives SetPool, so
// that its other kernels and the GEMM share one set of helpers), along m
// or n (whichever leaves the busiest goroutine the least work, packing
// included), or — long, thin products whose column slivers would split
// unevenly, such as weight gradients — along k into
// chunks fixed by the shape and summed in order (kChunks); batches of
// small products are split by entry; small ones stay on the calling
// goroutine. Small products with far fewer padded columns as Cᵀ are
// computed so, into scratch (swapEntry). Packing buffers come from free
// lists: no allocation per call in steady state. An operand already laid
// out as the kernel reads it (plain B, transposed A) is read in place
// when the product is too thin for packing to pay and the operand is hot
// or its stride prefetchable (see directMaxM), and vector-shaped
// products (m or n = 1 along contiguous memory) skip the blocking (dot.go).
// Each element of C is a sum over k taken in a fixed order (kc blocks in
// turn, each summed sequentially by one FMA chain; chunks along k added
// in order; eight interleaved partial sums on the dot path), chosen from
// the shape alone — whatever the number of goroutines, the batch size or
// the sharing of an operand: results are deterministic, and an entry of
// a batch has the bits of the same product computed alone.
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
// product. Each C_i has the bits Sgemm gives for that product alone.
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
	// How each entry is computed depends on its shape alone — never on
	// the batch, the sharing of an operand or the number of goroutines —
	// so that an entry's bits are the same in any call (nn's Conv2d
	// relies on it when it works through a batch in groups).
	kr := active.Load()
	if chunks := kChunks(kr, m, n, k); chunks > 1 {
		for i := 0; i < batch; i++ {
			sgemmChunked(kr, chunks, transA, transB, m, n, k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
		}
		return
	}
	j := jobs.get()
	j.p = problem{kr: kr, transA: transA, transB: transB, m: m, n: n, k: k,
		alpha: alpha, beta: beta, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	j.batch, j.strideA, j.strideB, j.strideC = batch, strideA, strideB, strideC
	j.kChunks, j.swapEntries = 0, false
	countA, countB := batch, batch
	if strideA == 0 {
		countA = 1
	}
	if strideB == 0 {
		countB = 1
	}
	if swapEntry(kr, m, n) {
		// Small products with far fewer padded columns as Cᵀ (the CNN's
		// first weight-gradient partials, 32×9 each): each entry is
		// computed as Cᵀ = op(B)ᵀ·op(A)ᵀ into scratch and merged
		// transposed.
		j.swapEntries = true
		j.c0, j.ldc0, j.alpha0, j.beta0 = c, ldc, alpha, beta
		q := &j.p
		q.transA, q.transB = !transB, !transA
		q.m, q.n = n, m
		q.a, q.lda, q.b, q.ldb = b, ldb, a, lda
		q.alpha, q.beta = 1, 0
		j.strideA, j.strideB = strideB, strideA
		countA, countB = countB, countA
	}
	q := &j.p
	q.inPlaceA = q.transA && inPlace(kr, q.lda, k, countA)
	q.inPlaceB = !q.transB && inPlace(kr, q.ldb, k, countB)
	q.kc = kcFor(kr, k)

	// A shared operand is packed once, whole, when the batch reuses it.
	var shared *[]float32
	if batch > 1 && (j.strideA == 0 || j.strideB == 0) {
		shared = sharedBufs.get()
		mp, np := roundUp(q.m, kr.mr), roundUp(q.n, kr.nr)
		need := 0
		if j.strideA == 0 {
			need += mp * k
		}
		if j.strideB == 0 {
			need += np * k
		}
		if cap(*shared) < need {
			*shared = make([]float32, need)
		}
		buf := (*shared)[:need]
		if j.strideA == 0 {
			q.pa = buf[:mp*k]
			buf = buf[mp*k:]
			for pc := 0; pc < k; pc += q.kc {
				kc := min(q.kc, k-pc)
				packA(q.pa[pc*mp:], kr, q.a, q.lda, q.transA, 0, q.m, pc, kc)
			}
		}
		if j.strideB == 0 {
			q.pb = buf[:np*k]
			for pc := 0; pc < k; pc += q.kc {
				kc := min(q.kc, k-pc)
				packB(q.pb[pc*np:], kr, q.b, q.ldb, q.transB, 0, q.n, pc, kc)
			}
		}
	}

	// Split the work: by batch entry when there are enough of them and
	// each is small (always for transposed entries: their scratch is
	// whole products), else by tiles of every product (see split).
	flops := 2 * float64(m) * float64(n) * float64(k)
	threads := poolSize()
	j.parts, j.byBatch, j.serial = 1, false, threads == 1
	switch {
	case threads == 1 || flops*float64(batch) < parallelFlops:
	case (batch >= threads || j.swapEntries) && flops < batchSplitFlops:
		// Several entries a part, but a few parts a goroutine, taken in
		// turn: on a shared machine one core may lose its time slice, and
		// the other then takes more parts instead of waiting for it.
		j.parts, j.byBatch = min(batch, batchParts*threads), true
	default:
		j.splitM, j.parts = q.split(threads)
	}
	j.run()
	j.c0 = nil
	if shared != nil {
		sharedBufs.put(shared)
	}
	j.release()
}

// BPacker gives the B operand of SgemmBatchedPacked by packing it, so
// that a B that is never stored (the columns of a convolution, an
// "implicit GEMM") goes straight from its source into the kernel's
// panels.
type BPacker interface {
	// PackB writes rows [p0, p0+kc) × columns [j0, j0+nc) of B_entry (the
	// k×n operand of batch entry entry) into dst as nr-column slivers:
	// element (p0+p, j0+j) at dst[(j/nr)·nr·kc + p·nr + j%nr], and 0 in
	// the columns of the last sliver past nc. len(dst) is
	// roundUp(nc, nr)·kc; nothing else may be written. nr is the
	// micro-kernel's (Kernel), kc ≤ 256 and nc ≤ 4096 of the kernel's
	// blocking; the calls for one product come in no fixed order and
	// several at once from different goroutines (each with its own
	// dst), so PackB must be safe for concurrent use and must not
	// retain dst.
	PackB(dst []float32, nr, entry, p0, kc, j0, nc int)
}

// SgemmBatchedPacked computes C_i = alpha·op(A_i)·B_i + beta·C_i for
// i = 0 … batch−1 as SgemmBatched does (A_i at a[i·strideA:], strideA 0
// sharing one A; C_i at c[i·strideC:]), with each B_i (k×n) given by
// pb.PackB instead of a matrix. The sums are taken in the same order as
// SgemmBatched's for the materialised B (same bits) whenever that takes
// neither the split along k nor the transposed entries (kChunks,
// swapEntry: long thin or very small products), which this form never
// takes. When alpha is 0, pb is not called; when beta is 0, C is not
// read. It panics on inconsistent arguments, like Sgemm.
func SgemmBatchedPacked(transA bool, m, n, k int, alpha float32, a []float32, lda, strideA int,
	pb BPacker, beta float32, c []float32, ldc, strideC int, batch int) {
	if m < 0 || n < 0 || k < 0 || batch < 0 || strideA < 0 || strideC < 0 {
		panic(fmt.Sprintf("gemm: negative size (m=%d n=%d k=%d batch=%d strides %d %d)", m, n, k, batch, strideA, strideC))
	}
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	if pb == nil {
		panic("gemm: nil BPacker")
	}
	if transA {
		checkOperand("a", a, k, m, lda, strideA, batch)
	} else {
		checkOperand("a", a, m, k, lda, strideA, batch)
	}
	checkOperand("c", c, m, n, ldc, strideC, batch)
	if batch > 1 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("gemm: strideC %d makes the C matrices overlap (each spans %d)", strideC, (m-1)*ldc+n))
	}
	if alpha == 0 || k == 0 {
		for i := 0; i < batch; i++ {
			scaleC(m, n, beta, c[i*strideC:], ldc)
		}
		return
	}
	kr := active.Load()
	j := jobs.get()
	j.p = problem{kr: kr, transA: transA, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, lda: lda, c: c, ldc: ldc, packer: pb}
	j.batch, j.strideA, j.strideB, j.strideC = batch, strideA, 0, strideC
	j.kChunks, j.swapEntries = 0, false
	q := &j.p
	countA := batch
	if strideA == 0 {
		countA = 1
	}
	q.inPlaceA = transA && inPlace(kr, lda, k, countA)
	q.kc = kcFor(kr, k)
	var shared *[]float32
	if batch > 1 && strideA == 0 {
		shared = sharedBufs.get()
		mp := roundUp(m, kr.mr)
		if cap(*shared) < mp*k {
			*shared = make([]float32, mp*k)
		}
		q.pa = (*shared)[:mp*k]
		for pc := 0; pc < k; pc += q.kc {
			packA(q.pa[pc*mp:], kr, a, lda, transA, 0, m, pc, min(q.kc, k-pc))
		}
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	threads := poolSize()
	j.parts, j.byBatch, j.serial = 1, false, threads == 1
	switch {
	case threads == 1 || flops*float64(batch) < parallelFlops:
	case batch >= threads && flops < batchSplitFlops:
		j.parts, j.byBatch = min(batch, batchParts*threads), true
	default:
		j.splitM, j.parts = q.split(threads)
	}
	j.run()
	if shared != nil {
		sharedBufs.put(shared)
	}
	j.release()
}

// kcFor is the depth of the packed blocks for a product of depth k:
// blocks of equal size (k = 784 with kc 256: four blocks of 196, not
// 256, 256, 256 and a thin 16, each of which costs a pass over C).
func kcFor(kr *kernel, k int) int {
	blocks := (k + kr.kc - 1) / kr.kc
	return (k + blocks - 1) / blocks
}

// swapEntry reports whether an m×n product is computed as Cᵀ in scratch
// and merged transposed: when it is small (swapMaxFloats) and Cᵀ has at
// least a quarter less padded work (swapCost).
func swapEntry(kr *kernel, m, n int) bool {
	return !kr.noSwap && m*n <= swapMaxFloats && 4*swapCost(kr, n, m) <= 3*swapCost(kr, m, n)
}

// sgemmChunked computes one product split along k (see kChunks): the
// chunks' partial products (as Cᵀ when swapCost says so) go to scratch,
// the goroutines taking chunks in turn, and are then summed in order.
func sgemmChunked(kr *kernel, chunks int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	j := jobs.get()
	j.p = problem{kr: kr, transA: transA, transB: transB, m: m, n: n, k: k,
		alpha: 1, beta: 0, a: a, lda: lda, b: b, ldb: ldb}
	j.batch, j.strideA, j.strideB, j.strideC = 1, 0, 0, 0
	j.kChunks, j.parts, j.byBatch, j.swapEntries = chunks, chunks, false, false
	j.serial = poolSize() == 1
	// The partial products are scratch, so they may as well be Cᵀ =
	// op(B)ᵀ·op(A)ᵀ when that has fewer padded columns (a weight gradient
	// with 9 columns).
	q := &j.p
	if j.swapped = swapCost(kr, n, m) < swapCost(kr, m, n); j.swapped {
		q.transA, q.transB = !transB, !transA
		q.m, q.n = n, m
		q.a, q.lda, q.b, q.ldb = b, ldb, a, lda
	}
	q.inPlaceA = q.transA && inPlace(kr, q.lda, k, 1)
	q.inPlaceB = !q.transB && inPlace(kr, q.ldb, k, 1)
	partial := partials.get()
	if need := chunks * m * n; cap(*partial) < need {
		*partial = make([]float32, need)
	}
	j.partial = (*partial)[:chunks*m*n]
	j.run()
	sumChunks(j.partial, chunks, m, n, j.swapped, alpha, beta, c, ldc)
	j.partial = nil
	partials.put(partial)
	j.release()
}

// Splitting along k: a product whose depth is at least kChunkMin·2 is cut
// into k/kChunkMin chunks, rounded down to an even count (two cores take
// even shares) and at most kChunkMax, when their partial products (m·n
// each) stay small (kChunkMaxFloats in all), the output is thin beside
// the depth (m·n·kChunkRatio ≤ (m+n)·k, so that the extra pass over the
// partials costs little beside the packing) and the product is worth
// splitting at all (parallelFlops).
const (
	kChunkMin       = 4096
	kChunkMax       = 8
	kChunkMaxFloats = 1 << 20
	kChunkRatio     = 4
)

// kChunks is how many chunks along k the product is cut into (0 or 1:
// none). It depends on the shape alone, never on the number of
// goroutines, so that the sums are the same on any of them. Where the
// columns make an even number of nr-wide slivers, or many, the split by
// tiles along n already shares the work evenly and the chunks' extra
// pass costs more than it saves (the CNN's 64×576×12544 weight gradient:
// 8% slower split along k; 32×288×50176, 9 slivers: faster).
func kChunks(kr *kernel, m, n, k int) int {
	if kr.noKSplit || 2*float64(m)*float64(n)*float64(k) < 2*parallelFlops {
		return 0
	}
	c := min(kChunkMax, k/kChunkMin) &^ 1
	if sl := (n + kr.nr - 1) / kr.nr; sl%2 == 0 || sl >= 16 {
		return 0
	}
	if c < 2 || c*m*n > kChunkMaxFloats || kChunkRatio*m*n > (m+n)*k {
		return 0
	}
	return c
}

// swapCost is the work of an m×n product in multiply-adds per step of
// k: whole nr-wide column slivers, and rows rounded to mr unless the
// kernel has edge kernels for short tiles.
func swapCost(kr *kernel, m, n int) int {
	if kr.edge == nil {
		m = roundUp(m, kr.mr)
	}
	return m * roundUp(n, kr.nr)
}

// kChunkRange is the depth range [k0, k1) of chunk t of c.
func kChunkRange(k, c, t int) (k0, k1 int) { return t * k / c, (t + 1) * k / c }

// sumChunks sets C = alpha·Σ_t P_t + beta·C (C not read when beta is 0),
// the partial products P_t (m×n, dense, chunk t at t·m·n; n×m, their
// transposes, when swapped) added in order t = 0, 1, ….
func sumChunks(partial []float32, chunks, m, n int, swapped bool, alpha, beta float32, c []float32, ldc int) {
	mn := m * n
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			e, step := i*n+j, 0 // element (i, j) of P_0
			if swapped {
				e = j*m + i
			}
			s := partial[e]
			for t := 1; t < chunks; t++ {
				step += mn
				s += partial[step+e]
			}
			if beta == 0 {
				row[j] = alpha * s
			} else {
				row[j] = alpha*s + beta*row[j]
			}
		}
	}
}

// parallelFlops is the smallest total work (2·m·n·k·batch) worth handing
// to other goroutines: about 10 µs on one core, several times the cost of
// waking a worker.
const parallelFlops = 1 << 21

// batchParts is how many parts per goroutine a batch split by entry is
// cut into.
const batchParts = 4

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
	if transA {
		checkOperand("a", a, k, m, lda, strideA, batch)
	} else {
		checkOperand("a", a, m, k, lda, strideA, batch)
	}
	if transB {
		checkOperand("b", b, n, k, ldb, strideB, batch)
	} else {
		checkOperand("b", b, k, n, ldb, strideB, batch)
	}
	checkOperand("c", c, m, n, ldc, strideC, batch)
	if batch > 1 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("gemm: strideC %d makes the C matrices overlap (each spans %d)", strideC, (m-1)*ldc+n))
	}
}

// checkOperand panics unless batch matrices of rows×cols, leading
// dimension ld, stride elements apart, lie inside s.
func checkOperand(name string, s []float32, rows, cols, ld, stride, batch int) {
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
	// inPlaceA, inPlaceB: a transposed A or a plain B may be read where
	// it lies when the product is thin enough (see inPlace, directMaxM).
	inPlaceA, inPlaceB bool
	// packer, when set, gives B (see SgemmBatchedPacked): entry is the
	// batch entry the problem computes.
	packer BPacker
	entry  int
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
		if p.pa == nil && !(p.inPlaceA && cols <= directMaxN) {
			work += packCost * float64(rows) * k
		}
		if p.pb == nil && !(p.inPlaceB && rows <= directMaxM) {
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
	// kChunks > 0: part t computes the partial product of depth chunk t
	// (kChunkRange) into partial[t·m·n:], dense, with alpha 1 and beta 0.
	kChunks int
	partial []float32
	swapped bool // the chunks compute Cᵀ (p is the transposed problem)
	// swapEntries: p (and strideA, strideB) is the transposed problem,
	// computed entry by entry into scratch and merged into c0 as
	// C = alpha0·Tᵀ + beta0·C.
	swapEntries   bool
	c0            []float32
	ldc0          int
	alpha0, beta0 float32
	serial        bool // one goroutine: the caller runs every part
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
	partials   freeList[[]float32] // partial products of the chunks along k
	scratches  freeList[scratch]
)

// run runs every part, on the Pool given to SetPool or else with up to
// parts−1 helpers from the package's own pool, and returns when all are
// done.
func (j *job) run() {
	j.refs.Store(1)
	if j.parts == 1 || j.serial {
		for t := 0; t < j.parts; t++ {
			j.part(t)
		}
		return
	}
	if p := extPool.Load(); p != nil {
		// The pool calls Part for every part and returns only when no
		// goroutine of it will touch j again.
		(*p).Run(j, j.parts)
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

// Part runs part t of the job (Parts, for a Pool).
func (j *job) Part(t int) { j.part(t) }

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
	case j.kChunks > 0:
		k0, k1 := kChunkRange(p.k, j.kChunks, t)
		q := p
		q.k = k1 - k0
		q.kc = kcFor(p.kr, q.k)
		q.alpha, q.beta = 1, 0
		q.c, q.ldc = j.partial[t*p.m*p.n:(t+1)*p.m*p.n], p.n
		if p.transA {
			q.a = p.a[k0*p.lda:]
		} else {
			q.a = p.a[k0:]
		}
		if p.transB {
			q.b = p.b[k0:]
		} else {
			q.b = p.b[k0*p.ldb:]
		}
		s.compute(&q, 0, p.m, 0, p.n)
		return
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
	if j.swapEntries {
		mn := p.m * p.n
		if len(s.sw) < mn {
			s.sw = make([]float32, mn)
		}
		for bi := b0; bi < b1; bi++ {
			q := p
			q.a, q.b = p.a[bi*j.strideA:], p.b[bi*j.strideB:]
			q.c, q.ldc = s.sw[:mn], p.n
			s.compute(&q, 0, p.m, 0, p.n)
			mergeT(j.c0[bi*j.strideC:], j.ldc0, s.sw[:mn], p.n, p.m, j.alpha0, j.beta0)
		}
		return
	}
	for bi := b0; bi < b1; bi++ {
		q := p
		if bi > 0 {
			q.a = p.a[bi*j.strideA:]
			if p.packer == nil {
				q.b = p.b[bi*j.strideB:]
			}
			q.c = p.c[bi*j.strideC:]
		}
		q.entry = bi
		s.compute(&q, i0, i1, j0, j1)
	}
}

// mergeT sets C = alpha·Tᵀ + beta·C (C not read when beta is 0) for the
// m×n matrix C, T dense n×m.
func mergeT(c []float32, ldc int, t []float32, m, n int, alpha, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			v := alpha * t[j*m+i]
			if beta != 0 {
				v = alpha*t[j*m+i] + beta*row[j]
			}
			row[j] = v
		}
	}
}

// swapMaxFloats bounds the products computed transposed entry by entry
// (m·n, the scratch each goroutine holds for one).
const swapMaxFloats = 1 << 13

// scratch is one goroutine's packing space: an A block, a B block, a
// temporary tile for edges and one transposed product (swapEntries).
type scratch struct {
	sw      []float32
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
// So is a cold operand (larger in all than directHotBytes, more than
// the L2 holds) whose steps lie more than directMaxStride bytes apart:
// Intel's L2 stride prefetcher follows strides up to 2 KiB, and past it
// every step of the kernel waits on memory (the CNN's 32×784×288
// forward product over a batch ran at half the speed of packing, whose
// row-by-row copy the streamer prefetches).
const (
	directMaxM      = 96  // rows of C up to which plain B is read in place
	directMaxN      = 128 // columns of C up to which a transposed A is read in place
	directMaxStride = 2048
	directHotBytes  = 2 << 20
)

// inPlace reports whether an operand laid out as the kernel reads it
// (rows steps of ld elements, count distinct matrices of them) may be
// read in place (see directMaxM).
func inPlace(kr *kernel, ld, rows, count int) bool {
	if kr.noDirect || ld%1024 == 0 {
		return false
	}
	return 4*ld <= directMaxStride || 4*float64(ld)*float64(rows)*float64(count) <= directHotBytes
}

// compute computes rows [i0, i1) × columns [j0, j1) of C (i0 a multiple of
// mr and j0 of nr) on this goroutine.
func (s *scratch) compute(p *problem, i0, i1, j0, j1 int) {
	kr := p.kr
	mp, np := roundUp(p.m, kr.mr), roundUp(p.n, kr.nr)
	directA := p.inPlaceA && p.pa == nil && j1-j0 <= directMaxN
	directB := p.inPlaceB && p.pb == nil && i1-i0 <= directMaxM
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
			case p.packer != nil:
				bp = s.b[:roundUp(nc, kr.nr)*kc]
				p.packer.PackB(bp, kr.nr, p.entry, pc, kc, jc, nc)
			case directB:
				// Pack only the partial last sliver, at its place in s.b.
				if rem := nc % kr.nr; rem != 0 {
					last := nc - rem
					packB(s.b[last*kc:], kr, p.b, p.ldb, false, jc+last, rem, pc, kc)
				}
				bp = s.b
			default:
				bp = s.b
				packB(bp, kr, p.b, p.ldb, p.transB, jc, nc, pc, kc)
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
						packA(s.a[last*kc:], kr, p.a, p.lda, true, ic+last, rem, pc, kc)
					}
					ap = s.a
				default:
					ap = s.a
					packA(ap, kr, p.a, p.lda, p.transA, ic, mc, pc, kc)
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
			if kr.edge != nil {
				// Edge tile straight into C: a kernel for its rows,
				// masked stores for its columns.
				ek := kr.edge
				if 2*cols <= nr && kr.edgeHalf != nil {
					ek = kr.edgeHalf // the last sliver of n = 196 or 784: half the work
				}
				ek[rows-1](kc, as, bs, &c[off], ldc, alpha, beta, loadC, sa, sb, 1<<cols-1)
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
func packA(dst []float32, kr *kernel, a []float32, lda int, trans bool, i0, mc, p0, kc int) {
	mr := kr.mr
	if trans && !kr.sliverPack {
		// op(A)(i, p) = a[p·lda + i]: row p of the stored block goes to
		// step p of every sliver.
		packRows(kr.copyA, dst, mr, a, lda, p0*lda+i0, mc, kc)
		return
	}
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
		scatter(kr.trans, d, mr, a, lda, ib*lda+p0, rows, kc)
	}
}

// packB packs depth [p0, p0+kc) × columns [j0, j0+nc) of op(B) into dst
// as nr-column slivers (sliver s at dst[s·nr·kc:], element (p, j) at
// [p·nr+j]), the last sliver zero-padded to nr columns.
func packB(dst []float32, kr *kernel, b []float32, ldb int, trans bool, j0, nc, p0, kc int) {
	nr := kr.nr
	if !trans && !kr.sliverPack {
		// op(B)(p, j) = b[p·ldb + j]: row p of the stored block goes to
		// step p of every sliver.
		packRows(kr.copyB, dst, nr, b, ldb, p0*ldb+j0, nc, kc)
		return
	}
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
		scatter(kr.trans, d, nr, b, ldb, jb*ldb+p0, cols, kc)
	}
}

// packRows packs kc rows of n elements (row p at src[o+p·ld:]) into
// w-wide slivers: element j of row p goes to dst[(j/w)·w·kc + p·w + j%w],
// the last sliver zero-padded to w. It reads each row once, in order, so
// that the hardware prefetcher streams a cold operand (reading sliver by
// sliver walks the rows with a stride past what it follows). cp, when
// set, copies a row's whole slivers (one call a row instead of one
// memmove a sliver).
func packRows(cp copyKernel, dst []float32, w int, src []float32, ld, o, n, kc int) {
	full := n / w * w
	for p := 0; p < kc; p++ {
		row := src[o+p*ld : o+p*ld+n]
		d := dst[p*w:]
		j := 0
		if cp != nil && full > 0 {
			// The kernel reads row[:full] and writes d[i·w·kc : i·w·kc+w]
			// for i < full/w.
			_ = d[(full/w-1)*w*kc+w-1]
			cp(&d[0], w*kc, &row[0], full/w)
			j = full
		}
		for ; j < full; j += w {
			copy(d[j*kc:j*kc+w], row[j:j+w])
		}
		if j < n {
			t := d[j*kc : j*kc+w]
			copy(t, row[j:])
			clear(t[n-j:])
		}
	}
}

// scatter transposes: d[p·w+r] = src[o + r·ld + p] for r < rows, p < kc,
// and d[p·w+r] = 0 for rows ≤ r < w. With transposing kernels (tr, see
// transKernel) whole 16-step blocks go 16 rows at a time through them,
// the rest through scatterGo.
func scatter(tr []transKernel, d []float32, w int, src []float32, ld, o, rows, kc int) {
	d = d[:w*kc]
	p0 := 0
	if tr != nil && kc >= 16 {
		blocks := kc / 16
		p0 = blocks * 16
		for r0 := 0; r0 < w; r0 += 16 {
			lanes := min(16, w-r0)
			nr := min(16, rows-r0)
			if nr <= 0 {
				for p := 0; p < p0; p++ {
					clear(d[p*w+r0 : p*w+r0+lanes])
				}
				continue
			}
			// The kernel reads rows r0 … r0+nr−1 of src up to step p0 and
			// writes lanes r0 … r0+lanes−1 of d's first p0 rows.
			_ = src[o+(r0+nr-1)*ld+p0-1]
			_ = d[(p0-1)*w+r0+lanes-1]
			tr[nr-1](&d[r0], w, &src[o+r0*ld], ld, blocks, 1<<lanes-1)
		}
	}
	if p0 < kc {
		scatterGo(d, w, src, ld, o, rows, p0, kc)
	}
}

// scatterGo is scatter for steps p0 ≤ p < p1 in Go. Four source rows go
// at once, so each step writes four neighbouring elements.
func scatterGo(d []float32, w int, src []float32, ld, o, rows, p0, p1 int) {
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0 := src[o+r*ld+p0 : o+r*ld+p1]
		s1 := src[o+(r+1)*ld+p0 : o+(r+1)*ld+p1]
		s2 := src[o+(r+2)*ld+p0 : o+(r+2)*ld+p1]
		s3 := src[o+(r+3)*ld+p0 : o+(r+3)*ld+p1]
		for i := range s0 {
			p := p0 + i
			q := d[p*w+r : p*w+r+4 : p*w+r+4]
			q[0], q[1], q[2], q[3] = s0[i], s1[i], s2[i], s3[i]
		}
	}
	for ; r < rows; r++ {
		s0 := src[o+r*ld+p0 : o+r*ld+p1]
		for i, v := range s0 {
			d[(p0+i)*w+r] = v
		}
	}
	if rows < w {
		for p := p0; p < p1; p++ {
			clear(d[p*w+rows : p*w+w])
		}
	}
}

// Parts is a job split into parts that may run on any goroutines in any
// order (what a Pool runs): which goroutine runs a part never changes
// what it computes.
type Parts interface {
	Part(t int)
}

// Pool runs the parts of a product on goroutines other than the caller's
// too: Run calls p.Part(t) exactly once for every t in [0, parts), the
// calling goroutine taking parts as well, and returns when every call
// has returned and no goroutine of the pool will touch p again. It must
// be safe for concurrent use (a pool busy with another call may run the
// parts on the caller) and must not allocate.
type Pool interface {
	Run(p Parts, parts int)
}

// extPool is the Pool given to SetPool, if any.
var extPool atomic.Pointer[Pool]

// SetPool makes the products split over goroutines run their parts on p
// (nil: the package's own pool), so that a backend whose other kernels
// have their own helper goroutines shares them with the GEMM instead of
// keeping a second set that has to be woken for every product. Results
// are the same bits on any pool.
func SetPool(p Pool) {
	if p == nil {
		extPool.Store(nil)
		return
	}
	extPool.Store(&p)
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
