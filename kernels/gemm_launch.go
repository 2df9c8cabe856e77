package kernels

// Launch planning for the matrix-product kernels of gemm.cu.
//
// Every GEMM kernel computes C_i = alpha·op(A_i)·op(B_i) + beta·C_i for the
// Batch entries i of a strided batch, each row-major and contiguous, op(A)
// m×k, op(B) k×n, C m×n (see gemm.cu), with A_i = A + i·sA, B_i = B + i·sB
// and C_i = C + i·sC (element strides; Gemm is Batch = 1 with strides 0),
// and takes its arguments in this order:
//
//	(m, n, k int32, alpha float32, A devptr, sA int64, B devptr, sB int64,
//	 beta float32, C devptr, sC int64, splits int32)
//
// A plain plan (Splits == 1, WorkspaceFloats == 0) is one launch:
//
//	Kernel<<<Grid, Block, SharedBytes>>>(m, n, k, alpha, A, sA, B, sB, beta, C, sC, int32(1))
//
// A split-K plan (Splits > 1) needs a scratch buffer W of WorkspaceFloats
// (= Batch·Splits·m·n) floats, which the caller provides (from its pool; it
// may be reused once the second launch has been queued on the same stream),
// and is two launches on one stream:
//
//	Kernel<<<Grid, Block, SharedBytes>>>(m, n, k, float32(1), A, sA, B, sB, float32(0), W, int64(Splits*m*n), int32(Splits))
//	ReduceKernel<<<ReduceGrid, ReduceBlock, 0>>>(int32(m*n), int32(Splits), alpha, W, beta, C, sC)
//
// The reduction sums the partial products in a fixed order: results are
// deterministic. No kernel uses dynamic shared memory (SharedBytes is 0;
// static shared memory stays within 48 KB), so no opt-in attribute is
// needed. Buffers may start at any element offset: the kernels check
// alignment themselves and use 16-byte accesses only where it is safe.
//
// The kiln_sgemm_tf32_* kernels exist only in PTX built for compute_80 and
// later; PlanGemm chooses them only when cc ≥ 80.

import "fmt"

// GemmLaunch is a launch plan for one GEMM.
type GemmLaunch struct {
	Kernel      string    // function name in the PTX module
	Grid, Block [3]uint32 // launch shape
	SharedBytes uint32    // dynamic shared memory (always 0: kernels use static shared memory)

	// Batch is the number of products (gridDim.z = Batch·Splits).
	Batch int

	// Split-K (zero values when not split).
	Splits          int       // k slices per product; 1 when not split
	WorkspaceFloats int       // floats of scratch W needed: Batch·Splits·m·n, or 0
	ReduceKernel    string    // kiln_sgemm_splitk_reduce, or ""
	ReduceGrid      [3]uint32 // launch shape of ReduceKernel (y: the batch entry)
	ReduceBlock     [3]uint32
}

// gemmFamily describes one family of GEMM kernels in gemm.cu.
type gemmFamily struct {
	prefix  string // kernel name without the _nn/_nt/_tn/_tt suffix
	tileM   int    // block tile (rows of C)
	tileN   int    // block tile (columns of C)
	tileK   int    // k-slice depth: split-K slices are multiples of it
	threads int    // block size
	minCC   int    // lowest compute capability (×10) that has the kernel
}

var (
	familyBig   = gemmFamily{"kiln_sgemm", 128, 128, 8, 256, 0}
	familySmall = gemmFamily{"kiln_sgemm_small", 64, 64, 16, 256, 0}
	familyTF32  = gemmFamily{"kiln_sgemm_tf32", 128, 128, 8, 256, 80}

	gemmFamilies = []gemmFamily{familyBig, familySmall, familyTF32}
)

// SplitKReduceKernel is the name of the split-K reduction kernel.
const SplitKReduceKernel = "kiln_sgemm_splitk_reduce"

const (
	reduceThreads = 256
	// gemmTargetBlocks is about one wave of blocks on the largest GPUs we
	// plan for (132 SMs on an H100/H200).
	gemmTargetBlocks = 132
	// splitMinK is the least k a split-K slice gets.
	splitMinK = 64
	// maxSplits bounds the workspace (maxSplits·m·n floats).
	maxSplits = 16
	// MaxGemmBatch is the most products one launch computes: gridDim.z
	// (batch·splits) and the reduction's gridDim.y are at most 65535.
	MaxGemmBatch = 65535
)

// GemmKernelNames lists the GEMM kernels present in the PTX for compute
// capability cc (×10, e.g. 70, 80, 90), for a backend that loads its
// functions up front.
func GemmKernelNames(cc int) []string {
	var names []string
	for _, f := range gemmFamilies {
		if cc < f.minCC {
			continue
		}
		for _, s := range []string{"nn", "nt", "tn", "tt"} {
			names = append(names, f.prefix+"_"+s)
		}
	}
	return append(names, SplitKReduceKernel)
}

// PlanGemm chooses the kernel and launch shape for C = alpha·op(A)·op(B) +
// beta·C with op(A) m×k and op(B) k×n. tf32 allows TensorFloat-32 tensor
// cores (used only when cc ≥ 80 and the product is large enough to gain
// from them); cc is the compute capability ×10 (e.g. 90 for an H200).
// m and n must be at least 1 (the caller skips empty products) and m, n, k
// and m·n must fit in an int32, and m ≤ 65535·64 (gridDim.y counts tiles of
// rows); k may be 0 (C = beta·C).
func PlanGemm(transA, transB bool, m, n, k int, tf32 bool, cc int) GemmLaunch {
	return PlanGemmBatched(transA, transB, m, n, k, 1, tf32, cc)
}

// PlanGemmBatched is PlanGemm for batch products of the same shape (one
// launch, gridDim.z = batch·splits): the kernel is chosen by the blocks of
// the whole batch, and split-K only when the batch gives few of them.
// batch must be between 1 and MaxGemmBatch.
func PlanGemmBatched(transA, transB bool, m, n, k, batch int, tf32 bool, cc int) GemmLaunch {
	tiles128 := ceilDiv(m, 128) * ceilDiv(n, 128) * batch
	switch {
	case tf32 && cc >= familyTF32.minCC && tiles128 >= 16 && k >= 64:
		return planGemmBatchedWith(familyTF32, transA, transB, m, n, k, batch, 1)
	case tiles128 >= 128:
		return planGemmBatchedWith(familyBig, transA, transB, m, n, k, batch, 1)
	}
	return planGemmBatchedWith(familySmall, transA, transB, m, n, k, batch, chooseSplits(m, n, k, batch, familySmall))
}

// chooseSplits picks the split-K factor for batch products with family f:
// enough blocks for about one wave when the outputs alone give few, each
// slice at least splitMinK deep, and no empty slice.
func chooseSplits(m, n, k, batch int, f gemmFamily) int {
	tiles := ceilDiv(m, f.tileM) * ceilDiv(n, f.tileN) * batch
	if tiles >= gemmTargetBlocks/2 || k < 2*splitMinK {
		return 1
	}
	s := min(maxSplits, ceilDiv(gemmTargetBlocks, tiles), k/splitMinK)
	return effectiveSplits(k, s, f.tileK)
}

// splitChunk is the k-slice of each split, exactly as gemm.cu's
// kiln_split_range computes it: ceil(k/splits) rounded up to tileK.
func splitChunk(k, splits, tileK int) int {
	return ceilDiv(ceilDiv(k, splits), tileK) * tileK
}

// effectiveSplits lowers splits until no slice is empty.
func effectiveSplits(k, splits, tileK int) int {
	if splits <= 1 || k == 0 {
		return 1
	}
	return ceilDiv(k, splitChunk(k, splits, tileK))
}

// planGemmWith builds the plan of one product for family f with the given
// split factor.
func planGemmWith(f gemmFamily, transA, transB bool, m, n, k, splits int) GemmLaunch {
	return planGemmBatchedWith(f, transA, transB, m, n, k, 1, splits)
}

// planGemmBatchedWith builds the plan of batch products for family f with
// the given split factor (lowered so that batch·splits ≤ MaxGemmBatch).
func planGemmBatchedWith(f gemmFamily, transA, transB bool, m, n, k, batch, splits int) GemmLaunch {
	if splits < 1 || batch*splits > MaxGemmBatch {
		splits = 1
	}
	l := GemmLaunch{
		Kernel: f.prefix + "_" + transSuffix(transA, transB),
		Grid:   [3]uint32{uint32(ceilDiv(n, f.tileN)), uint32(ceilDiv(m, f.tileM)), uint32(batch * splits)},
		Block:  [3]uint32{uint32(f.threads), 1, 1},
		Batch:  batch,
		Splits: splits,
	}
	if splits > 1 {
		mn := m * n
		l.WorkspaceFloats = batch * splits * mn
		l.ReduceKernel = SplitKReduceKernel
		l.ReduceGrid = [3]uint32{uint32(min(ceilDiv(mn, reduceThreads), 65535)), uint32(batch), 1}
		l.ReduceBlock = [3]uint32{reduceThreads, 1, 1}
	}
	return l
}

func transSuffix(transA, transB bool) string {
	return fmt.Sprintf("%c%c", tn(transA), tn(transB))
}

func tn(trans bool) byte {
	if trans {
		return 't'
	}
	return 'n'
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
