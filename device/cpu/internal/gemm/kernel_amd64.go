//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_asm.go

// kernAVX2 is the AVX2+FMA micro-kernel: a 6×16 tile in twelve ymm
// accumulators (kernel_amd64.s, written by asmgen).
//
//go:noescape
func kernAVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int)

// kernAVX512 is the AVX-512 micro-kernel: a 12×32 tile in twenty-four zmm
// accumulators (kernel_amd64.s, written by asmgen).
//
//go:noescape
func kernAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int)

// kernAVX512Edge1 … kernAVX512Edge12 are kernAVX512 for the first 1 … 12
// rows of the tile, storing only the columns of mask (edge tiles written
// straight into C; kernel_amd64.s, written by asmgen).
//
//go:noescape
func kernAVX512Edge1(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge3(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge4(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge5(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge6(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge7(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge8(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge9(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge10(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge11(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Edge12(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

// kernAVX512Half1 … kernAVX512Half12 are the edge kernels for tiles of at
// most 16 columns: they compute only the first 16 columns of the tile (one
// zmm a row), half the work of kernAVX512EdgeN, with the same operations
// for every element they store (kernel_amd64.s, written by asmgen).
//
//go:noescape
func kernAVX512Half1(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half3(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half4(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half5(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half6(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half7(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half8(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half9(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half10(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half11(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

//go:noescape
func kernAVX512Half12(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int, mask uint64)

// transAVX512R1 … transAVX512R16 transpose 16-column blocks of 1 … 16
// source rows into 16-lane destination rows (packing of the operands
// stored along k; kernel_amd64.s, written by asmgen).
//
//go:noescape
func transAVX512R1(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R2(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R3(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R4(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R5(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R6(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R7(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R8(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R9(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R10(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R11(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R12(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R13(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R14(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R15(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

//go:noescape
func transAVX512R16(d *float32, ld int, s *float32, ls int, blocks int, mask uint64)

// copyAVX512W12 and copyAVX512W32 copy count pieces of 12 or 32 floats
// from one row (piece i at s[w·i:]) to d[i·ld:]: the packing of the
// operands stored along m or n (kernel_amd64.s, written by asmgen).
//
//go:noescape
func copyAVX512W12(d *float32, ld int, s *float32, count int)

//go:noescape
func copyAVX512W32(d *float32, ld int, s *float32, count int)

// Blocking, from the caches of the development machine (Intel Xeon,
// lscpu: 48 KiB L1d and 2 MiB L2 per core, 300 MiB L3) and of Zen 3
// (32 KiB L1d, 512 KiB L2, 32 MiB L3):
//   - kc: the kc×nr B sliver plus an mr×kc A sliver fit in L1d
//     (AVX-512: 256·32·4 = 32 KiB + 12 KiB; AVX2: 16 KiB + 6 KiB). On the
//     Xeon, kc = 384 (48 KiB of B) ran 30% slower, 128–320 within a few %;
//   - mc: the mc×kc A block fits well inside L2 (AVX-512:
//     384·256·4 = 384 KiB of 2 MiB; AVX2, sized for Zen 3's 512 KiB:
//     240·256·4 = 240 KiB). 96–960 measured within 5% on the Xeon;
//   - nc: the kc×nc B block is a few MiB, inside L3.
var (
	avx512Kernel = &kernel{name: "avx512", mr: 12, nr: 32, fn: kernAVX512, kc: 256, mc: 384, nc: 4096}
	avx2Kernel   = &kernel{name: "avx2", mr: 6, nr: 16, fn: kernAVX2, kc: 256, mc: 240, nc: 4096}
)

func init() {
	avx512Kernel.edge = []edgeKernel{kernAVX512Edge1, kernAVX512Edge2, kernAVX512Edge3, kernAVX512Edge4, kernAVX512Edge5, kernAVX512Edge6, kernAVX512Edge7, kernAVX512Edge8, kernAVX512Edge9, kernAVX512Edge10, kernAVX512Edge11, kernAVX512Edge12}
	avx512Kernel.edgeHalf = []edgeKernel{kernAVX512Half1, kernAVX512Half2, kernAVX512Half3, kernAVX512Half4, kernAVX512Half5, kernAVX512Half6, kernAVX512Half7, kernAVX512Half8, kernAVX512Half9, kernAVX512Half10, kernAVX512Half11, kernAVX512Half12}
	avx512Kernel.copyA, avx512Kernel.copyB = copyAVX512W12, copyAVX512W32
	avx512Kernel.trans = []transKernel{transAVX512R1, transAVX512R2, transAVX512R3, transAVX512R4, transAVX512R5, transAVX512R6, transAVX512R7, transAVX512R8, transAVX512R9, transAVX512R10, transAVX512R11, transAVX512R12, transAVX512R13, transAVX512R14, transAVX512R15, transAVX512R16}
}

func archKernels() []*kernel {
	return kernelsFor(x86Features{
		avx512f: cpu.X86.HasAVX512F, avx512bw: cpu.X86.HasAVX512BW,
		avx2: cpu.X86.HasAVX2, fma: cpu.X86.HasFMA,
	})
}

// x86Features are the processor features the kernels of kernel_amd64.s
// need.
type x86Features struct{ avx512f, avx512bw, avx2, fma bool }

// kernelsFor returns the kernels a processor with features f can run, best
// first. The AVX-512 edge kernels build their store masks with KMOVD and
// KSHIFTRD, which are AVX512BW (not AVX512F) instructions.
func kernelsFor(f x86Features) []*kernel {
	var ks []*kernel
	if f.avx512f && f.avx512bw && f.avx2 && f.fma {
		ks = append(ks, avx512Kernel)
	}
	if f.avx2 && f.fma {
		ks = append(ks, avx2Kernel)
	}
	return ks
}
