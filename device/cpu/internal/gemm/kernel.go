package gemm

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// microKernel computes the mr×nr tile C = alpha·A·B + beta·C from an A
// sliver (element (i, p) at a[p·sa+i]; packed, sa = mr) and a B sliver
// (element (p, j) at b[p·sb+j]; packed, sb = nr) of length kc ≥ 1; C is
// row-major with leading dimension ldc. When loadC is 0, C is not read.
// With sa > mr or sb > nr the kernel reads an operand where it lies (a
// transposed A, a plain B) instead of a packed copy.
type microKernel func(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int)

// edgeKernel is a microKernel for the first rows of the tile only, which
// reads and writes only the columns j of C whose bit j of mask is set: an
// edge tile goes straight into C (no temporary tile, no merge). Its A
// sliver keeps the full kernel's layout (sa ≥ mr).
type edgeKernel func(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

// transKernel transposes blocks×16 columns of r source rows (the kernel's
// trans[r-1]; s row-major with leading dimension ls) into 16-lane rows of
// d (leading dimension ld): d[p·ld + i] = s[i·ls + p] for i < r, 0 for
// r ≤ i < 16, writing only the lanes i set in mask.
type transKernel func(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

// copyKernel copies count pieces of a sliver's width w from one row,
// piece i from s[w·i:], to d[i·ld:].
type copyKernel func(d *float32, ld int, s *float32, count int)

// kernel is a micro-kernel with the blocking it is tuned for.
type kernel struct {
	name   string
	mr, nr int
	fn     microKernel
	// kc is the depth of one packed block (the B sliver, kc×nr, stays in
	// L1 while the A slivers stream past), mc the rows of a packed A block
	// (mc×kc stays in L2), nc the columns of a packed B block (kc×nc, L3).
	kc, mc, nc int
	// edge[r-1] computes an edge tile of r rows in place (nil: edge tiles
	// go through a temporary tile and a merge); trans[r-1] is the
	// transposing copy of r ≤ 16 rows that packing uses (nil: scalar).
	edge  []edgeKernel
	trans []transKernel
	// edgeHalf[r-1] is edge[r-1] for tiles of at most nr/2 columns,
	// computing only those (nil: edge serves them too).
	edgeHalf []edgeKernel
	// copyA and copyB copy pieces of mr and nr floats of one row into
	// consecutive slivers (see copyKernel; nil: Go).
	copyA, copyB copyKernel
	// noDirect turns off reading operands in place (see directMaxM): a
	// knob for benchmarks that compare the two.
	noDirect bool
	// sliverPack packs the operands stored along m or n sliver by
	// sliver (the former order; a benchmark knob).
	sliverPack bool
	// noKSplit turns off the split along k (see kChunks): a benchmark
	// knob.
	noKSplit bool
	// noSwap turns off computing small batched products transposed
	// (see swapMaxFloats): a benchmark knob.
	noSwap bool
}

// kernels lists the micro-kernels this CPU can run, best first; the
// portable one is always last.
var kernels []*kernel

// active is the kernel Sgemm uses.
var active atomic.Pointer[kernel]

// EnvKernel is the environment variable that picks the micro-kernel:
// "avx512", "avx2" or "generic" (the portable Go one). Unset, empty or
// "auto" picks the best this CPU supports; a kernel the CPU cannot run is
// refused (the best one is used and Kernel reports which).
const EnvKernel = "KILN_GEMM_KERNEL"

func init() {
	kernels = append(kernels, archKernels()...)
	kernels = append(kernels, genericKernel)
	if err := SetKernel(os.Getenv(EnvKernel)); err != nil {
		active.Store(kernels[0])
	}
}

// Kernels returns the names of the micro-kernels this CPU can run, best
// first ("generic" is always present and last).
func Kernels() []string {
	names := make([]string, len(kernels))
	for i, k := range kernels {
		names[i] = k.name
	}
	return names
}

// Kernel returns the name of the micro-kernel in use.
func Kernel() string { return active.Load().name }

// SetKernel selects the micro-kernel by name ("avx512", "avx2",
// "generic"; "" or "auto" for the best available). It is what the
// KILN_GEMM_KERNEL variable does at start-up; tests call it to run every
// kernel. It must not be called while a product is in flight.
func SetKernel(name string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || name == "auto" {
		active.Store(kernels[0])
		return nil
	}
	for _, k := range kernels {
		if k.name == name {
			active.Store(k)
			return nil
		}
	}
	return fmt.Errorf("gemm: micro-kernel %q is not available on this CPU (have %s)", name, strings.Join(Kernels(), ", "))
}
