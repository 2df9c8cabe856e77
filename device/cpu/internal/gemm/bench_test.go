package gemm

import (
	"fmt"
	"testing"
)

// benchShapes are the products benchmarked: cubes, the MLP layer
// 784→128 at batch 64 (forward, and its two backward products), the CNN
// im2col product and one attention head's scores.
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"256^3", false, false, 256, 256, 256},
	{"1024^3", false, false, 1024, 1024, 1024},
	{"2048^3", false, false, 2048, 2048, 2048},
	{"mlp_fwd_64x128x784", false, false, 64, 128, 784},
	{"mlp_dx_64x784x128_Bt", false, true, 64, 784, 128},
	{"mlp_dw_784x128x64_At", true, false, 784, 128, 64},
	{"cnn_32x784x288", false, false, 32, 784, 288},
	{"attn_256x256x64_Bt", false, true, 256, 256, 64},
}

// BenchmarkKernels runs every shape on every micro-kernel this CPU has
// (GFLOP/s = 2mnk per call). BenchmarkGemmVsBLAS in device/cpu compares
// the default with gonum and OpenBLAS.
func BenchmarkKernels(b *testing.B) {
	for _, s := range benchShapes {
		for _, name := range Kernels() {
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				useKernel(b, name)
				a := make([]float32, s.m*s.k)
				bb := make([]float32, s.k*s.n)
				c := make([]float32, s.m*s.n)
				for i := range a {
					a[i] = float32(i%7) * 0.25
				}
				for i := range bb {
					bb[i] = float32(i%5) * 0.5
				}
				lda, ldb := s.k, s.n
				if s.transA {
					lda = s.m
				}
				if s.transB {
					ldb = s.k
				}
				Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
				b.ResetTimer()
				cpu0 := ProcessCPUTime()
				for i := 0; i < b.N; i++ {
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(flops/(ProcessCPUTime()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

// BenchmarkMicroKernel runs each micro-kernel alone on one tile of depth
// 256 with its operands in L1: the ceiling of one core (GFLOP/s).
func BenchmarkMicroKernel(b *testing.B) {
	for _, kr := range kernels {
		b.Run(kr.name, func(b *testing.B) {
			const kc = 256
			a := make([]float32, kr.mr*kc)
			bb := make([]float32, kr.nr*kc)
			c := make([]float32, kr.mr*kr.nr)
			for i := 0; i < b.N; i++ {
				kr.fn(kc, &a[0], &bb[0], &c[0], kr.nr, 1, 0, 0, kr.mr, kr.nr)
			}
			b.ReportMetric(2*float64(kr.mr*kr.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
