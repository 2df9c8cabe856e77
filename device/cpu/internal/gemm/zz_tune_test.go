package gemm

import (
	"fmt"
	"testing"
)

func BenchmarkTune(b *testing.B) {
	for _, kc := range []int{128, 192, 256, 384, 512} {
		for _, mc := range []int{96, 192, 480, 960} {
			b.Run(fmt.Sprintf("kc%d_mc%d", kc, mc), func(b *testing.B) {
				kr := *avx512Kernel
				kr.kc, kr.mc = kc, mc
				active.Store(&kr)
				defer SetKernel("")
				n := 1024
				a, bb, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
				old := nThreads
				nThreads = 1
				defer func() { nThreads = old }()
				for i := 0; i < b.N; i++ {
					Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
