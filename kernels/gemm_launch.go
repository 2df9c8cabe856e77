package kernels

// Launch planning for the matrix-product kernels of gemm.cu.
//
// Every GEMM kernel computes C = alpha·op(A)·op(B) + beta·C, row-major and
// contiguous, op(A) m×k, op(B) k×n, C m×n (see gemm.cu), and takes its
// arguments in this order:
//
//	(m, n, k int32, alpha float32, A, B devptr, beta float32, C devptr)
//
// A plain plan (Splits == 1, WorkspaceFloats == 0) is one launch:
//
//	Kernel<<<Grid, Block, SharedBytes>>>(m, n, k, alpha, A, B, beta, C)
//
// A split-K plan (Splits > 1) needs a scratch buffer W of WorkspaceFloats
// (= Splits·m·n) floats, which the caller provides (from its pool; it may
// be reused once the second launch has been queued on the same stream), and
// is two launches on one stream:
//
//	Kernel<<<Grid, Block, SharedBytes>>>(m, n, k, float32(1), A, B, float32(0), W)
//	ReduceKernel<<<ReduceGrid, ReduceBlock, 0>>>(int32(m*n), int32(Splits), alpha, W, beta, C)
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

	// Split-K (zero values when not split).
	Splits          int       // gridDim.z of Kernel; 1 when not split
	WorkspaceFloats int       // floats of scratch W needed: Splits·m·n, or 0
	ReduceKernel    string    // kiln_sgemm_splitk_reduce, or ""
	ReduceGrid      [3]uint32 // launch shape of ReduceKernel
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
	tiles128 := ceilDiv(m, 128) * ceilDiv(n, 128)
	switch {
	case tf32 && cc >= familyTF32.minCC && tiles128 >= 16 && k >= 64:
		return planGemmWith(familyTF32, transA, transB, m, n, k, 1)
	case tiles128 >= 128:
		return planGemmWith(familyBig, transA, transB, m, n, k, 1)
	}
	return planGemmWith(familySmall, transA, transB, m, n, k, chooseSplits(m, n, k, familySmall))
}

// chooseSplits picks the split-K factor for family f: enough blocks for
// about one wave when the output alone gives few, each slice at least
// splitMinK deep, and no empty slice.
func chooseSplits(m, n, k int, f gemmFamily) int {
	tiles := ceilDiv(m, f.tileM) * ceilDiv(n, f.tileN)
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

// planGemmWith builds the plan for family f with the given split factor.
func planGemmWith(f gemmFamily, transA, transB bool, m, n, k, splits int) GemmLaunch {
	if splits < 1 {
		splits = 1
	}
	l := GemmLaunch{
		Kernel: f.prefix + "_" + transSuffix(transA, transB),
		Grid:   [3]uint32{uint32(ceilDiv(n, f.tileN)), uint32(ceilDiv(m, f.tileM)), uint32(splits)},
		Block:  [3]uint32{uint32(f.threads), 1, 1},
		Splits: splits,
	}
	if splits > 1 {
		mn := m * n
		l.WorkspaceFloats = splits * mn
		l.ReduceKernel = SplitKReduceKernel
		l.ReduceGrid = [3]uint32{uint32(min(ceilDiv(mn, reduceThreads), 65535)), 1, 1}
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
