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

func archKernels() []*kernel {
	var ks []*kernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return ks
}
