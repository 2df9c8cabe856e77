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

// kernel is a micro-kernel with the blocking it is tuned for.
type kernel struct {
	name   string
	mr, nr int
	fn     microKernel
	// kc is the depth of one packed block (the B sliver, kc×nr, stays in
	// L1 while the A slivers stream past), mc the rows of a packed A block
	// (mc×kc stays in L2), nc the columns of a packed B block (kc×nc, L3).
	kc, mc, nc int
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
