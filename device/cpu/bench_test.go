package cpu

import (
	"fmt"
	"testing"

	"github.com/kilnml/kiln/device"
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
