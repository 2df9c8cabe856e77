package gemm

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
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

// cnnShapes are the products of one training step of examples/mnist-cnn
// (batch 64, width 32; see bench/cnnbench) as nn's Conv2d makes them when
// it unfolds the batch in groups of images whose columns fit in 1 MiB
// (nn.convGroupFloats): per group, the forward (W shared), the
// weight-gradient partials (one per image) and the input gradient (Wᵀ
// shared); calls is how many such calls a step makes. Then the linear
// layers' three products, and the whole-batch weight gradient (one
// product over K = batch·OH·OW) of the ungrouped path.
var cnnShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
	batch          int  // entries per call
	shareA         bool // A has stride 0 (the weights); else each entry has its own
	calls          int  // calls per training step
}{
	{"c1_fwd_32x784x9_b37", false, false, 32, 784, 9, 37, true, 2},
	{"c2_fwd_32x784x288_b1", false, false, 32, 784, 288, 1, true, 64},
	{"c3_fwd_64x196x288_b4", false, false, 64, 196, 288, 4, true, 16},
	{"c4_fwd_64x196x576_b2", false, false, 64, 196, 576, 2, true, 32},
	{"c1_dwp_32x9x784_Bt_b37", false, true, 32, 9, 784, 37, false, 2},
	{"c2_dwp_32x288x784_Bt_b1", false, true, 32, 288, 784, 1, false, 64},
	{"c3_dwp_64x288x196_Bt_b4", false, true, 64, 288, 196, 4, false, 16},
	{"c4_dwp_64x576x196_Bt_b2", false, true, 64, 576, 196, 2, false, 32},
	{"c2_dx_288x784x32_At_b1", true, false, 288, 784, 32, 1, true, 64},
	{"c3_dx_288x196x32_At_b4", true, false, 288, 196, 32, 4, true, 16},
	{"c4_dx_576x196x64_At_b2", true, false, 576, 196, 64, 2, true, 32},
	{"fc1_fwd_64x128x3136_Bt", false, true, 64, 128, 3136, 1, true, 1},
	{"fc1_dw_128x3136x64_At", true, false, 128, 3136, 64, 1, true, 1},
	{"fc1_dx_64x3136x128", false, false, 64, 3136, 128, 1, true, 1},
	{"c1_dw_32x9x50176_Bt", false, true, 32, 9, 50176, 1, true, 0},
	{"c2_dw_32x288x50176_Bt", false, true, 32, 288, 50176, 1, true, 0},
	{"c4_dw_64x576x12544_Bt", false, true, 64, 576, 12544, 1, true, 0},
}

// cnnCall returns a function that runs shape s once (all its entries).
func cnnCall(s int) func() {
	sh := cnnShapes[s]
	lda, ldb := sh.k, sh.n
	if sh.transA {
		lda = sh.m
	}
	if sh.transB {
		ldb = sh.k
	}
	strideA := sh.m * sh.k
	if sh.shareA {
		strideA = 0
	}
	entriesA := sh.batch
	if sh.shareA {
		entriesA = 1
	}
	a := make([]float32, sh.m*sh.k*entriesA)
	bb := make([]float32, sh.k*sh.n*sh.batch)
	c := make([]float32, sh.m*sh.n*sh.batch)
	for i := range a {
		a[i] = float32(i%7) * 0.25
	}
	for i := range bb {
		bb[i] = float32(i%5) * 0.5
	}
	return func() {
		SgemmBatched(sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, a, lda, strideA, bb, ldb, sh.k*sh.n, 0, c, sh.n, sh.m*sh.n, sh.batch)
	}
}

// BenchmarkCNN runs the CNN step's products with the active micro-kernel
// (KILN_GEMM_KERNEL picks another): GFLOP/s = 2mnk·batch per call, on the
// wall clock, with every goroutine of the pool.
func BenchmarkCNN(b *testing.B) {
	for si, s := range cnnShapes {
		b.Run(s.name, func(b *testing.B) {
			call := cnnCall(si)
			call()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				call()
			}
			flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.batch) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if s.calls > 0 {
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*float64(s.calls)*1e3, "ms/step")
			}
		})
	}
}

// abVariants are the kernels BenchmarkCNNAB compares: the active one and
// copies of it with some of its paths turned off (the "before" of a
// change), so that a change is measured side by side in one process.
func abVariants() []*kernel {
	cur0 := active.Load()
	cur, base := new(kernel), new(kernel)
	*cur, *base = *cur0, *cur0
	base.name += "-base"
	switch os.Getenv("GEMM_AB") {
	case "direct": // packing every operand vs reading some in place
		base.noDirect = !cur.noDirect
	case "ksplit": // long products split along k vs by tiles
		base.noKSplit = true
	case "swap": // small batched products as Cᵀ vs as they come
		base.noSwap = true
	case "copy": // the assembly row copies of packing vs Go's copy
		base.copyA, base.copyB = nil, nil
	case "rows": // packing row by row vs sliver by sliver
		base.sliverPack = true
	case "rowsnodirect": // the same, with no operand read in place
		cur.noDirect, base.noDirect, base.sliverPack = true, true, true
	default: // this session's edge kernels and transposing packs
		base.edge, base.trans = nil, nil
	}
	return []*kernel{cur, base}
}

// BenchmarkCNNAB times the CNN shapes on each of abVariants in turn
// (round-robin: b.N rounds of a few calls per variant) and reports each
// variant's median GFLOP/s and the ratios of the first to the second
// (of the medians and of the best rounds): the load of a shared machine
// falls on both alike. GEMM_AB picks the pair (see abVariants).
func BenchmarkCNNAB(b *testing.B) {
	vs := abVariants()
	for si, s := range cnnShapes {
		b.Run(s.name, func(b *testing.B) {
			call := cnnCall(si)
			old := active.Load()
			defer active.Store(old)
			reps := max(3, 20/max(1, s.batch)) // short calls: several a sample
			times := make([][]float64, len(vs))
			for r := 0; r < b.N; r++ {
				for v, kr := range vs {
					active.Store(kr)
					call()
					t0 := time.Now()
					for range reps {
						call()
					}
					times[v] = append(times[v], time.Since(t0).Seconds()/float64(reps))
				}
			}
			flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.batch)
			med, best := make([]float64, len(vs)), make([]float64, len(vs))
			for v := range vs {
				slices.Sort(times[v])
				med[v], best[v] = times[v][len(times[v])/2], times[v][0]
				b.ReportMetric(flops/med[v]/1e9, "GFLOP/s-"+vs[v].name)
			}
			// The median and, less exposed to the other work of a loaded
			// machine, the best round.
			b.ReportMetric(med[1]/med[0], "speedup")
			b.ReportMetric(best[1]/best[0], "speedup-best")
		})
	}
}

// BenchmarkPackRows packs a 144×784 block of a plain B (the CNN's second
// convolution, hot in cache) into 32-wide slivers, with the assembly row
// copies and with Go's copy, in alternating rounds (GB/s of source read).
func BenchmarkPackRows(b *testing.B) {
	kr := active.Load()
	if kr.copyB == nil {
		b.Skip("no assembly copies for", kr.name)
	}
	const kc, n = 144, 784
	src := make([]float32, kc*n)
	dst := make([]float32, kc*roundUp(n, kr.nr))
	var t [2][]float64
	for i := 0; i < b.N; i++ {
		for v, cp := range []copyKernel{kr.copyB, nil} {
			t0 := time.Now()
			for range 20 {
				packRows(cp, dst, kr.nr, src, n, 0, n, kc)
			}
			t[v] = append(t[v], time.Since(t0).Seconds()/20)
		}
	}
	for v, name := range []string{"asm", "go"} {
		slices.Sort(t[v])
		b.ReportMetric(4*kc*n/t[v][len(t[v])/2]/1e9, "GB/s-"+name)
	}
}
