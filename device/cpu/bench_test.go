package cpu

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/gemm"
)

// Benchmarks. GEMM reports GFLOP/s (2mnk flops per call); the elementwise
// kernels report GB/s counting every byte read and written, to compare
// with BenchmarkCopyBandwidth, a plain large copy.

func benchBuf(b *testing.B, d *Device, n int, v float32) device.Buffer {
	b.Helper()
	x, err := d.Alloc(device.Float32, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Fill(x, n, v); err != nil {
		b.Fatal(err)
	}
	return x
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range [][3]int{{256, 256, 256}, {1024, 1024, 1024}, {2048, 2048, 2048}, {64, 128, 784}, {256, 1024, 1024}} {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			d := newDev(b)
			A, B, C := benchBuf(b, d, m*k, 0.5), benchBuf(b, d, k*n, 0.25), benchBuf(b, d, m*n, 0)
			// One call before timing: BLAS threads start on the first.
			if err := d.Gemm(false, false, m, n, k, 1, A, B, 0, C); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := d.Gemm(false, false, m, n, k, 1, A, B, 0, C); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

var ewSizes = []int{1 << 20, 16 << 20}

// benchEW runs fn over n elements, moving bytesPerElem bytes each.
func benchEW(b *testing.B, name string, bytesPerElem int, fn func(d *Device, n int, bufs []device.Buffer) error) {
	for _, n := range ewSizes {
		b.Run(fmt.Sprintf("%s/%dM", name, n>>20), func(b *testing.B) {
			d := newDev(b)
			bufs := []device.Buffer{benchBuf(b, d, n, 0.5), benchBuf(b, d, n, 0.25), benchBuf(b, d, n, 0.125), benchBuf(b, d, n, 0.0625)}
			b.SetBytes(int64(bytesPerElem * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := fn(d, n, bufs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytesPerElem)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

func BenchmarkElementwise(b *testing.B) {
	benchEW(b, "Add", 12, func(d *Device, n int, x []device.Buffer) error { return d.Add(x[0], x[1], x[2], n) })
	benchEW(b, "Axpy", 12, func(d *Device, n int, x []device.Buffer) error { return d.Axpy(1e-3, x[0], x[1], n) })
	benchEW(b, "ReLU", 8, func(d *Device, n int, x []device.Buffer) error { return d.Activate(device.ReLU, 0, x[0], x[1], n) })
	// SGD with momentum reads p, g, v and writes p, v.
	benchEW(b, "SGDMomentum", 20, func(d *Device, n int, x []device.Buffer) error {
		return d.SGDStep(x[0], x[1], x[2], n, device.SGDConfig{LR: 1e-3, Momentum: 0.9}, 2)
	})
	// Adam reads p, g, m, v and writes p, m, v.
	benchEW(b, "Adam", 28, func(d *Device, n int, x []device.Buffer) error {
		return d.AdamStep(x[0], x[1], x[2], x[3], n, device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, 2)
	})
}

// BenchmarkCopyBandwidth is the reference: Go's copy of a 16M-float32
// (64 MiB) slice on one goroutine, and d.Copy (split across workers),
// counting bytes read plus written.
func BenchmarkCopyBandwidth(b *testing.B) {
	const n = 16 << 20
	src, dst := make([]float32, n), make([]float32, n)
	for i := range src {
		src[i] = 1
	}
	copy(dst, src)
	b.Run("builtin", func(b *testing.B) {
		b.SetBytes(8 * n)
		for i := 0; i < b.N; i++ {
			copy(dst, src)
		}
		b.ReportMetric(8*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("device", func(b *testing.B) {
		d := newDev(b)
		x, y := benchBuf(b, d, n, 1), benchBuf(b, d, n, 0)
		b.SetBytes(8 * n)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := d.Copy(y, x, n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(8*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

// BenchmarkCutover times Add at sizes around ewGrain with the parallel
// path forced on and off, to place the serial/parallel cut-over.
func BenchmarkCutover(b *testing.B) {
	for _, n := range []int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		for _, par := range []bool{false, true} {
			b.Run(fmt.Sprintf("n=%d/parallel=%v", n, par), func(b *testing.B) {
				d := newDev(b)
				x, y, z := benchBuf(b, d, n, 1), benchBuf(b, d, n, 2), benchBuf(b, d, n, 0)
				xf, yf, zf := x.(*buffer).f, y.(*buffer).f, z.(*buffer).f
				c := 1
				if par {
					c = d.w.n
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					d.k = kern{op: opAdd, a: xf, b: yf, c: zf}
					d.w.parallel(&d.k, n, c, 16)
				}
			})
		}
	}
}

// BenchmarkTrainStepPrimitives times the device calls of one training
// step of a 784-256-128-10 MLP at batch 64 (forward, softmax
// cross-entropy, backward, Adam), to show the per-call overhead.
func BenchmarkTrainStepPrimitives(b *testing.B) {
	const batch = 64
	dims := []int{784, 256, 128, 10}
	d := newDev(b)
	x := benchBuf(b, d, batch*dims[0], 0.1)
	labels, _ := d.Alloc(device.Int32, batch)
	var ws, gs, bs, gbs, ms, vs, acts, grads []device.Buffer
	acts = append(acts, x)
	for l := 0; l+1 < len(dims); l++ {
		in, out := dims[l], dims[l+1]
		ws = append(ws, benchBuf(b, d, in*out, 0.01))
		gs = append(gs, benchBuf(b, d, in*out, 0))
		bs = append(bs, benchBuf(b, d, out, 0))
		gbs = append(gbs, benchBuf(b, d, out, 0))
		ms = append(ms, benchBuf(b, d, in*out, 0), benchBuf(b, d, out, 0))
		vs = append(vs, benchBuf(b, d, in*out, 0), benchBuf(b, d, out, 0))
		acts = append(acts, benchBuf(b, d, batch*out, 0))
		grads = append(grads, benchBuf(b, d, batch*out, 0))
	}
	dx := []device.Buffer{benchBuf(b, d, batch*256, 0), benchBuf(b, d, batch*128, 0)}
	loss := benchBuf(b, d, 1, 0)
	cfg := device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	check := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		L := len(ws)
		for l := 0; l < L; l++ {
			in, out := dims[l], dims[l+1]
			check(d.Gemm(false, true, batch, out, in, 1, acts[l], ws[l], 0, acts[l+1]))
			check(d.AddBias(acts[l+1], bs[l], batch, out))
			if l+1 < L {
				check(d.Activate(device.ReLU, 0, acts[l+1], acts[l+1], batch*out))
			}
		}
		check(d.Loss(device.SoftmaxCrossEntropy, acts[L], labels, batch, dims[L], loss, grads[L-1]))
		for l := L - 1; l >= 0; l-- {
			in, out := dims[l], dims[l+1]
			check(d.Gemm(true, false, out, in, batch, 1, grads[l], acts[l], 0, gs[l]))
			check(d.BiasGrad(gbs[l], grads[l], batch, out, 0))
			if l > 0 {
				check(d.Gemm(false, false, batch, in, out, 1, grads[l], ws[l], 0, dx[l-1]))
				check(d.ActivateGrad(device.ReLU, 0, acts[l], acts[l], dx[l-1], grads[l-1], batch*in))
			}
		}
		for l := 0; l < L; l++ {
			check(d.AdamStep(ws[l], gs[l], ms[2*l], vs[2*l], dims[l]*dims[l+1], cfg, i+1))
			check(d.AdamStep(bs[l], gbs[l], ms[2*l+1], vs[2*l+1], dims[l+1], cfg, i+1))
		}
	}
}

// gemmShapes are the products BenchmarkGemmVsBLAS measures: cubes, the
// MLP layer 784→128 at batch 64 (forward, and its two backward products),
// the CNN im2col product [32×288]·[288×784] and one attention head's
// scores [256×64]·[64×256].
var gemmShapes = []struct {
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

// peakGFLOPs is the machine's theoretical float32 peak: cores × FMA
// lanes (16 per AVX-512 FMA, 8 per AVX2 FMA; two FMA units per core
// assumed) × 2 flops × the clock /proc/cpuinfo reports (the base clock
// on these VMs; turbo makes the real ceiling higher).
func peakGFLOPs() (float64, string) {
	mhz := 0.0
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "cpu MHz") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					mhz, _ = strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
				}
				break
			}
		}
	}
	lanes := 8
	if slices.Contains(gemm.Kernels(), "avx512") {
		lanes = 16
	}
	cores := runtime.GOMAXPROCS(0)
	peak := float64(cores*lanes*2*2) * mhz / 1e3
	return peak, fmt.Sprintf("%d cores × %d lanes × 2 FMA units × 2 flops × %.0f MHz = %.0f GFLOP/s", cores, lanes, mhz, peak)
}

var peakOnce sync.Once

// BenchmarkGemmVsBLAS runs each shape through the internal gemm package
// (kiln, the backend's default), gonum's pure-Go Sgemm and, under the
// openblas build tag, OpenBLAS, one after the other in the same run, so
// the three see the same machine load. Compare medians of -count runs.
func BenchmarkGemmVsBLAS(b *testing.B) {
	_, desc := peakGFLOPs()
	peakOnce.Do(func() {
		fmt.Printf("theoretical peak: %s; kiln kernel %s; OPENBLAS_CORETYPE=%q\n", desc, gemm.Kernel(), os.Getenv("OPENBLAS_CORETYPE"))
	})
	type impl struct {
		name string
		f    func(ta, tb blas.Transpose, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32)
	}
	impls := []impl{
		{"kiln", func(ta, tb blas.Transpose, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32) {
			gemm.Sgemm(ta == blas.Trans, tb == blas.Trans, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		}},
		{"gonum", func(ta, tb blas.Transpose, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32) {
			gonum.Implementation{}.Sgemm(ta, tb, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		}},
	}
	if useBLAS32 { // the openblas tag: blas32 is OpenBLAS
		impls = append(impls, impl{"openblas", func(ta, tb blas.Transpose, m, n, k int, a []float32, lda int, bm []float32, ldb int, c []float32) {
			blas32.Implementation().Sgemm(ta, tb, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		}})
	}
	for _, s := range gemmShapes {
		a := make([]float32, s.m*s.k)
		bm := make([]float32, s.k*s.n)
		c := make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(i%7) * 0.25
		}
		for i := range bm {
			bm[i] = float32(i%5) * 0.5
		}
		ta, tb, lda, ldb := blas.NoTrans, blas.NoTrans, s.k, s.n
		if s.transA {
			ta, lda = blas.Trans, s.m
		}
		if s.transB {
			tb, ldb = blas.Trans, s.k
		}
		for _, im := range impls {
			b.Run(s.name+"/"+im.name, func(b *testing.B) {
				// One call before timing: packing buffers and BLAS threads
				// start on the first.
				im.f(ta, tb, s.m, s.n, s.k, a, lda, bm, ldb, c)
				b.ResetTimer()
				cpu0 := gemm.ProcessCPUTime()
				for i := 0; i < b.N; i++ {
					im.f(ta, tb, s.m, s.n, s.k, a, lda, bm, ldb, c)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				// Per CPU-second of the whole process: on a machine shared
				// with other jobs this moves less than wall time (threads
				// that spin waiting count against their BLAS).
				b.ReportMetric(flops/(gemm.ProcessCPUTime()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
			})
		}
	}
}
