//go:build cuda

package cuda_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kilnml/kiln/device"
)

// GPU benchmarks. Each warms up (one call, then Sync) outside the timer,
// runs b.N calls and Syncs before the timer stops, so the figure is GPU
// time for queued work (the host queues ahead of the GPU). Run with e.g.
//
//	cuda.test -test.run '^$' -test.bench . -test.benchtime 2s -test.count 3
//
// and take the median of the counts.

const bigBytes = 256 << 20 // 256 MB buffers for the bandwidth benchmarks

// timed runs fn b.N times after a warm-up and returns the seconds per call.
func timed(b *testing.B, dev device.Device, fn func() error) float64 {
	b.Helper()
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	if err := dev.Sync(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	return el.Seconds() / float64(b.N)
}

func alloc(b *testing.B, dev device.Device, n int) device.Buffer {
	b.Helper()
	x, err := dev.Alloc(device.Float32, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dev.Free(x) })
	return x
}

// BenchmarkLaunchOverhead is the cost of one small primitive: a Fill of one
// element, queued b.N times, synchronised at the end (ns/op is the per-call
// cost: argument checks, cuCtxSetCurrent, cuLaunchKernel, or the GPU's
// per-kernel time if that is longer).
func BenchmarkLaunchOverhead(b *testing.B) {
	dev := openCUDA(b)
	x := alloc(b, dev, 1)
	s := timed(b, dev, func() error { return dev.Fill(x, 1, 1) })
	b.ReportMetric(s*1e6, "µs/launch")
}

// BenchmarkLaunchOverheadAdd is the same for a three-buffer primitive.
func BenchmarkLaunchOverheadAdd(b *testing.B) {
	dev := openCUDA(b)
	x := alloc(b, dev, 1)
	s := timed(b, dev, func() error { return dev.Add(x, x, x, 1) })
	b.ReportMetric(s*1e6, "µs/launch")
}

// BenchmarkGemm reports TFLOP/s (2mnk per product) for square and MLP
// shapes, fp32 and TF32.
func BenchmarkGemm(b *testing.B) {
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"1024x1024x1024", 1024, 1024, 1024},
		{"4096x4096x4096", 4096, 4096, 4096},
		{"8192x8192x8192", 8192, 8192, 8192},
		{"mlp64x784x256", 64, 256, 784},       // batch 64 through 784→256
		{"mlp1024x784x4096", 1024, 4096, 784}, // batch 1024 through 784→4096
		{"mlp1024x4096x4096", 1024, 4096, 4096},
	}
	for _, sh := range shapes {
		for _, tf32 := range []bool{false, true} {
			mode := "fp32"
			if tf32 {
				mode = "tf32"
			}
			b.Run(fmt.Sprintf("%s/%s", sh.name, mode), func(b *testing.B) {
				dev := openCUDA(b)
				dev.(device.TF32Setter).SetAllowTF32(tf32)
				a, bb, c := alloc(b, dev, sh.m*sh.k), alloc(b, dev, sh.k*sh.n), alloc(b, dev, sh.m*sh.n)
				for _, x := range []device.Buffer{a, bb} {
					if err := dev.RandUniform(x, x.Len(), -1, 1, 1, 0); err != nil {
						b.Fatal(err)
					}
				}
				s := timed(b, dev, func() error { return dev.Gemm(false, false, sh.m, sh.n, sh.k, 1, a, bb, 0, c) })
				b.ReportMetric(2*float64(sh.m)*float64(sh.n)*float64(sh.k)/s/1e12, "TFLOP/s")
			})
		}
	}
}

// BenchmarkCopy is a 256 MB device-to-device copy (cuMemcpyDtoDAsync);
// GB/s counts bytes read plus bytes written.
func BenchmarkCopy(b *testing.B) {
	dev := openCUDA(b)
	n := bigBytes / 4
	x, y := alloc(b, dev, n), alloc(b, dev, n)
	s := timed(b, dev, func() error { return dev.Copy(y, x, n) })
	b.ReportMetric(2*bigBytes/s/1e9, "GB/s")
}

// BenchmarkElementwise reports GB/s (bytes read plus written) of the
// elementwise primitives and fused optimizer steps on 256 MB buffers.
func BenchmarkElementwise(b *testing.B) {
	n := bigBytes / 4
	cases := []struct {
		name    string
		bufs    int
		traffic int // buffers' worth of bytes moved per call
		fn      func(dev device.Device, x []device.Buffer) error
	}{
		{"Add", 3, 3, func(d device.Device, x []device.Buffer) error { return d.Add(x[0], x[1], x[2], n) }},
		{"Axpy", 2, 3, func(d device.Device, x []device.Buffer) error { return d.Axpy(0.5, x[0], x[1], n) }},
		{"Scale", 2, 2, func(d device.Device, x []device.Buffer) error { return d.Scale(0.5, x[0], x[1], n) }},
		{"Fill", 1, 1, func(d device.Device, x []device.Buffer) error { return d.Fill(x[0], n, 1) }},
		{"ActivateReLU", 2, 2, func(d device.Device, x []device.Buffer) error { return d.Activate(device.ReLU, 0, x[0], x[1], n) }},
		{"ActivateGELU", 2, 2, func(d device.Device, x []device.Buffer) error { return d.Activate(device.GELU, 0, x[0], x[1], n) }},
		{"ActivateTanh", 2, 2, func(d device.Device, x []device.Buffer) error { return d.Activate(device.Tanh, 0, x[0], x[1], n) }},
		{"ActivateGradReLU", 3, 3, func(d device.Device, x []device.Buffer) error {
			return d.ActivateGrad(device.ReLU, 0, x[0], nil, x[1], x[2], n)
		}},
		{"SumSquares", 2, 1, func(d device.Device, x []device.Buffer) error { return d.SumSquares(x[0], n, x[1], 0) }},
		{"SGDStep", 3, 5, func(d device.Device, x []device.Buffer) error {
			return d.SGDStep(x[0], x[1], x[2], n, device.SGDConfig{LR: 0.01, Momentum: 0.9}, 2)
		}},
		{"AdamStep", 4, 7, func(d device.Device, x []device.Buffer) error {
			return d.AdamStep(x[0], x[1], x[2], x[3], n, device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, 3)
		}},
		{"AdamWStep", 4, 7, func(d device.Device, x []device.Buffer) error {
			return d.AdamStep(x[0], x[1], x[2], x[3], n, device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Decoupled: true}, 3)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			dev := openCUDA(b)
			var xs []device.Buffer
			for i := 0; i < c.bufs; i++ {
				x := alloc(b, dev, n)
				if err := dev.RandUniform(x, n, 0, 1, uint64(i), 0); err != nil {
					b.Fatal(err)
				}
				xs = append(xs, x)
			}
			s := timed(b, dev, func() error { return c.fn(dev, xs) })
			b.ReportMetric(float64(c.traffic)*bigBytes/s/1e9, "GB/s")
		})
	}
}
