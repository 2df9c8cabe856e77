//go:build cuda

package cuda_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
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

// Benchmarks of the primitives beyond MLPs (device.Ops2) at the shapes of
// the models kiln trains: attention (48 heads·sequences of 256, GPT-2
// small's 12·8 of 1024), a ResNet stage, GPT-2's LayerNorm, causal softmax,
// vocabulary-sized cross-entropy and embedding gradient. Bandwidth figures
// (GB/s) count the least traffic the primitive must make: each big buffer
// read or written once (the per-channel or per-row vectors are ignored),
// so they compare with BenchmarkCopy's ceiling and with PyTorch's figures
// computed the same way (bench/torch_gpu.py --only ops2).

// randBuf is alloc filled with U(lo, hi) from the device RNG.
func randBuf(b *testing.B, dev device.Device, n int, lo, hi float32, seed uint64) device.Buffer {
	b.Helper()
	x := alloc(b, dev, n)
	if err := dev.RandUniform(x, n, lo, hi, seed, 0); err != nil {
		b.Fatal(err)
	}
	return x
}

// allocI32 is an int32 buffer holding vals, freed when the benchmark ends.
func allocI32(b *testing.B, dev device.Device, vals []int32) device.Buffer {
	b.Helper()
	x, err := dev.Alloc(device.Int32, len(vals))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dev.Free(x) })
	if err := dev.WriteI32(x, 0, vals); err != nil {
		b.Fatal(err)
	}
	return x
}

// gbps reports GB/s for bufs float32 buffers of n elements moved per call.
func gbps(b *testing.B, s float64, bufs, n int) {
	b.ReportMetric(float64(bufs)*float64(n)*4/s/1e9, "GB/s")
}

// BenchmarkGemmBatched reports TFLOP/s (2mnk per product, batch products)
// of attention's two batched products, scores Q·Kᵀ (m = n = T, k = head
// size, transB) and values P·V (m = T, n = head size, k = T), at 48
// sequences·heads of T = 256 and at GPT-2 small's 12 heads × 8 sequences of
// T = 1024, head size 64, fp32 and TF32.
func BenchmarkGemmBatched(b *testing.B) {
	for _, sh := range []struct {
		name   string
		t, hd  int
		batch  int
		scores bool
	}{
		{"attn48x256/QKt", 256, 64, 48, true},
		{"attn48x256/PV", 256, 64, 48, false},
		{"gpt2_96x1024/QKt", 1024, 64, 96, true},
		{"gpt2_96x1024/PV", 1024, 64, 96, false},
	} {
		for _, tf32 := range []bool{false, true} {
			mode := "fp32"
			if tf32 {
				mode = "tf32"
			}
			b.Run(sh.name+"/"+mode, func(b *testing.B) {
				dev := openCUDA(b)
				dev.(device.TF32Setter).SetAllowTF32(tf32)
				b.Cleanup(func() { dev.(device.TF32Setter).SetAllowTF32(false) })
				m, n, k, transB := sh.t, sh.t, sh.hd, true // scores: Q [T, d] · K [T, d]ᵀ
				if !sh.scores {
					m, n, k, transB = sh.t, sh.hd, sh.t, false // values: P [T, T] · V [T, d]
				}
				a := randBuf(b, dev, sh.batch*m*k, -1, 1, 1)
				bb := randBuf(b, dev, sh.batch*k*n, -1, 1, 2)
				c := alloc(b, dev, sh.batch*m*n)
				s := timed(b, dev, func() error {
					return dev.GemmBatched(false, transB, m, n, k, 1, a, m*k, bb, k*n, 0, c, m*n, sh.batch)
				})
				b.ReportMetric(2*float64(sh.batch)*float64(m)*float64(n)*float64(k)/s/1e12, "TFLOP/s")
			})
		}
	}
}

// resnetStage is the first stage of ResNet-50 at batch 32: 64 channels of
// 56×56, a 3×3 convolution with padding 1.
var resnetStage = device.Window2D{N: 32, C: 64, H: 56, W: 56, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}

// BenchmarkIm2Col unfolds resnetStage (x 25.7 MB into cols 231 MB); GB/s
// counts x read once and cols written. Col2Im is the adjoint (cols read, dx
// written).
func BenchmarkIm2Col(b *testing.B) {
	g := resnetStage
	nx, ncol := g.N*g.C*g.H*g.W, g.N*g.ColRows()*g.OutH()*g.OutW()
	b.Run("Im2Col/resnet32x64x56x56k3", func(b *testing.B) {
		dev := openCUDA(b)
		x, cols := randBuf(b, dev, nx, -1, 1, 1), alloc(b, dev, ncol)
		s := timed(b, dev, func() error { return dev.Im2Col(x, cols, g) })
		b.ReportMetric(float64(nx+ncol)*4/s/1e9, "GB/s")
	})
	b.Run("Col2Im/resnet32x64x56x56k3", func(b *testing.B) {
		dev := openCUDA(b)
		cols, dx := randBuf(b, dev, ncol, -1, 1, 1), alloc(b, dev, nx)
		s := timed(b, dev, func() error { return dev.Col2Im(cols, dx, g, 0) })
		b.ReportMetric(float64(nx+ncol)*4/s/1e9, "GB/s")
	})
}

// BenchmarkMaxPool2D is ResNet's stem pooling (3×3, stride 2, padding 1)
// over 32×64×112×112; GB/s counts x read and y and idx written (forward),
// dy and idx read and dx written (gradient).
func BenchmarkMaxPool2D(b *testing.B) {
	g := device.Window2D{N: 32, C: 64, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1}
	nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
	for _, grad := range []bool{false, true} {
		name := "fwd"
		if grad {
			name = "grad"
		}
		b.Run(name+"/resnet32x64x112x112k3s2", func(b *testing.B) {
			dev := openCUDA(b)
			x, y, dx := randBuf(b, dev, nx, -1, 1, 1), alloc(b, dev, ny), alloc(b, dev, nx)
			idx, err := dev.Alloc(device.Int32, ny)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = dev.Free(idx) })
			if err := dev.MaxPool2D(x, y, idx, g); err != nil {
				b.Fatal(err)
			}
			fn := func() error { return dev.MaxPool2D(x, y, idx, g) }
			if grad {
				fn = func() error { return dev.MaxPool2DGrad(y, idx, dx, g) }
			}
			s := timed(b, dev, fn)
			b.ReportMetric(float64(nx+2*ny)*4/s/1e9, "GB/s")
		})
	}
}

// BenchmarkBatchNorm is training-mode batch norm (statistics, running
// statistics, normalisation) and its gradient (dx, dgamma, dbeta) over a
// ResNet stage [32, 64, 56·56] and as BatchNorm1d over [8·1024, 768]; GB/s
// counts x read and y written (forward), x and dy read and dx written
// (gradient).
func BenchmarkBatchNorm(b *testing.B) {
	for _, sh := range []struct {
		name                 string
		outer, channels, inr int
	}{{"2d32x64x56x56", 32, 64, 56 * 56}, {"1d8192x768", 8192, 768, 1}} {
		for _, grad := range []bool{false, true} {
			name := "fwd"
			if grad {
				name = "grad"
			}
			b.Run(name+"/"+sh.name, func(b *testing.B) {
				dev := openCUDA(b)
				n, c := sh.outer*sh.channels*sh.inr, sh.channels
				x, y, dy, dx := randBuf(b, dev, n, -1, 2, 1), alloc(b, dev, n), randBuf(b, dev, n, -1, 1, 2), alloc(b, dev, n)
				gamma, beta := randBuf(b, dev, c, 0.5, 1.5, 3), randBuf(b, dev, c, -1, 1, 4)
				mean, invstd, rm, rv := alloc(b, dev, c), alloc(b, dev, c), alloc(b, dev, c), randBuf(b, dev, c, 0.5, 1.5, 5)
				dg, db := alloc(b, dev, c), alloc(b, dev, c)
				cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
				fwd := func() error {
					return dev.BatchNorm(x, y, gamma, beta, mean, invstd, rm, rv, sh.outer, c, sh.inr, true, cfg)
				}
				if err := fwd(); err != nil {
					b.Fatal(err)
				}
				fn, bufs := fwd, 2
				if grad {
					fn, bufs = func() error {
						return dev.BatchNormGrad(x, dy, gamma, mean, invstd, dx, dg, db, sh.outer, c, sh.inr, 0)
					}, 3
				}
				s := timed(b, dev, fn)
				gbps(b, s, bufs, n)
			})
		}
	}
}

// BenchmarkLayerNorm is LayerNorm over GPT-2's [8·1024, 768] activations
// and its gradient (dx, dgamma, dbeta); GB/s as BenchmarkBatchNorm.
func BenchmarkLayerNorm(b *testing.B) {
	const rows, cols = 8 * 1024, 768
	n := rows * cols
	for _, grad := range []bool{false, true} {
		name := "fwd"
		if grad {
			name = "grad"
		}
		b.Run(name+"/8192x768", func(b *testing.B) {
			dev := openCUDA(b)
			x, y, dy, dx := randBuf(b, dev, n, -1, 2, 1), alloc(b, dev, n), randBuf(b, dev, n, -1, 1, 2), alloc(b, dev, n)
			gamma, beta := randBuf(b, dev, cols, 0.5, 1.5, 3), randBuf(b, dev, cols, -1, 1, 4)
			mean, rstd, dg, db := alloc(b, dev, rows), alloc(b, dev, rows), alloc(b, dev, cols), alloc(b, dev, cols)
			fwd := func() error { return dev.LayerNorm(x, y, gamma, beta, mean, rstd, rows, cols, 1e-5) }
			if err := fwd(); err != nil {
				b.Fatal(err)
			}
			fn, bufs := fwd, 2
			if grad {
				fn, bufs = func() error { return dev.LayerNormGrad(x, dy, gamma, mean, rstd, dx, dg, db, rows, cols, 0) }, 3
			}
			s := timed(b, dev, fn)
			gbps(b, s, bufs, n)
		})
	}
}

// BenchmarkSoftmaxMasked is the causal softmax of GPT-2 small's attention
// scores, 96 heads·sequences × 1024 queries of 1024 keys ([98304, 1024],
// 403 MB), and its gradient; GB/s counts x read and y written (forward), y
// and dy read and dx written (gradient), masked entries included.
func BenchmarkSoftmaxMasked(b *testing.B) {
	const rows, cols = 96 * 1024, 1024
	n := rows * cols
	for _, grad := range []bool{false, true} {
		name := "fwd"
		if grad {
			name = "grad"
		}
		b.Run(name+"/causal98304x1024", func(b *testing.B) {
			dev := openCUDA(b)
			x, y, dy, dx := randBuf(b, dev, n, -4, 4, 1), alloc(b, dev, n), randBuf(b, dev, n, -1, 1, 2), alloc(b, dev, n)
			fwd := func() error { return dev.SoftmaxMasked(x, y, rows, cols, 0.125, true, cols) }
			if err := fwd(); err != nil {
				b.Fatal(err)
			}
			fn, bufs := fwd, 2
			if grad {
				fn, bufs = func() error { return dev.SoftmaxMaskedGrad(y, dy, dx, rows, cols, 0.125) }, 3
			}
			s := timed(b, dev, fn)
			gbps(b, s, bufs, n)
		})
	}
}

// BenchmarkCrossEntropy is the language-model loss over GPT-2's vocabulary
// for 8·1024 tokens ([8192, 50257] logits, 1.65 GB; one label in 16 is the
// ignore index −100), with its gradient (logits read, grad written) and
// without (logits read); GB/s counts those buffers.
func BenchmarkCrossEntropy(b *testing.B) {
	const rows, cols = 8 * 1024, 50257
	n := rows * cols
	for _, withGrad := range []bool{true, false} {
		name := "lossgrad"
		if !withGrad {
			name = "loss"
		}
		b.Run(name+"/8192x50257", func(b *testing.B) {
			dev := openCUDA(b)
			logits, loss := randBuf(b, dev, n, -8, 8, 1), alloc(b, dev, 1)
			var grad device.Buffer
			bufs := 1
			if withGrad {
				grad, bufs = alloc(b, dev, n), 2
			}
			lab := make([]int32, rows)
			for i := range lab {
				lab[i] = int32((i * 7919) % cols)
				if i%16 == 15 {
					lab[i] = -100
				}
			}
			lb := allocI32(b, dev, lab)
			s := timed(b, dev, func() error { return dev.CrossEntropy(logits, lb, rows, cols, -100, loss, grad) })
			gbps(b, s, bufs, n)
		})
	}
}

// BenchmarkEmbedding is GPT-2's token embedding at 8·1024 tokens: Gather
// of 768-wide rows from the 50257-row table (table rows read, out written)
// and ScatterAdd of their gradient (dout read, the named table rows read and
// written); GB/s counts those bytes. The tokens are spread over the table
// (a multiplicative hash of the position, almost all distinct).
func BenchmarkEmbedding(b *testing.B) {
	const rows, cols, n = 50257, 768, 8 * 1024
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32((i * 40503) % rows)
	}
	b.Run("Gather/8192x50257x768", func(b *testing.B) {
		dev := openCUDA(b)
		table, out, ib := randBuf(b, dev, rows*cols, -1, 1, 1), alloc(b, dev, n*cols), allocI32(b, dev, idx)
		s := timed(b, dev, func() error { return dev.Gather(table, ib, out, rows, cols, n) })
		gbps(b, s, 2, n*cols)
	})
	b.Run("ScatterAdd/8192x50257x768", func(b *testing.B) {
		dev := openCUDA(b)
		dtable, dout, ib := alloc(b, dev, rows*cols), randBuf(b, dev, n*cols, -1, 1, 2), allocI32(b, dev, idx)
		s := timed(b, dev, func() error { return dev.ScatterAdd(dtable, ib, dout, rows, cols, n) })
		gbps(b, s, 3, n*cols)
	})
}

// BenchmarkPermute4 is attention's head split of the fused projection:
// [8·1024, 36, 64] (q, k and v of 12 heads) to [36, 8·1024, 64]; GB/s
// counts x read and y written.
func BenchmarkPermute4(b *testing.B) {
	dims, perm := [4]int{1, 8 * 1024, 36, 64}, [4]int{0, 2, 1, 3}
	n := dims[1] * dims[2] * dims[3]
	dev := openCUDA(b)
	x, y := randBuf(b, dev, n, -1, 1, 1), alloc(b, dev, n)
	s := timed(b, dev, func() error { return dev.Permute4(x, y, dims, perm) })
	gbps(b, s, 2, n)
}

// trainBench times full training steps (ZeroGrad, forward, loss, Backward,
// Adam) of m on the GPU with one batch resident on the device, the loss
// never read back; it reports the steps' SystemAllocs per step (0 in
// steady state) and returns the seconds per step.
func trainBench(b *testing.B, m nn.Module, setup func(dev device.Device, ps *nn.ParamSet) (stepFunc, func())) float64 {
	dev := openCUDA(b)
	ps, err := nn.NewParamSet(dev, m, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ps.Free() })
	opt, err := train.NewAdam(ps, train.DefaultAdam(1e-3))
	if err != nil {
		b.Fatal(err)
	}
	g := nn.NewGraph(dev)
	b.Cleanup(func() { _ = g.Free() })
	step, done := setup(dev, ps)
	b.Cleanup(done)
	i := 0
	one := func() error {
		if err := ps.ZeroGrad(); err != nil {
			return err
		}
		loss, err := step(g, i)
		i++
		if err != nil {
			return err
		}
		if err := g.Backward(loss); err != nil {
			return err
		}
		if err := opt.Step(); err != nil {
			return err
		}
		g.Reset()
		return nil
	}
	for w := 0; w < 2; w++ { // the first steps fill the graph's free lists
		if err := one(); err != nil {
			b.Fatal(err)
		}
	}
	if err := dev.Sync(); err != nil {
		b.Fatal(err)
	}
	sys := dev.Stats().SystemAllocs
	s := timed(b, dev, one)
	b.ReportMetric(float64(dev.Stats().SystemAllocs-sys)/float64(b.N+1), "sysallocs/step")
	return s
}

// BenchmarkCNNTrainStep trains newTestCNN (two conv–BN stages, pooling,
// linear head) on a batch of 256 3×32×32 images; samples/s.
func BenchmarkCNNTrainStep(b *testing.B) {
	const batch, hw, classes = 256, 32, 10
	xs, ys := cnnData(rand.New(rand.NewPCG(1, 2)), 1, batch, hw, classes)
	s := trainBench(b, newTestCNN(classes), cnnSetup(b, xs, ys, batch, hw))
	b.ReportMetric(batch/s, "samples/s")
}

// BenchmarkLMTrainStep trains testLM (one pre-norm transformer block of
// width 384 with 6 heads, embeddings, head; cross-entropy with ignore
// index) on 8 sequences of 256 tokens, with GPT-2's vocabulary (the head
// and the loss dominate) and with a small one (the block dominates);
// tokens/s.
func BenchmarkLMTrainStep(b *testing.B) {
	const batch, ctx, width, heads = 8, 256, 384, 6
	for _, vocab := range []int{50257, 512} {
		b.Run(fmt.Sprintf("vocab%d", vocab), func(b *testing.B) {
			toks, ys := lmData(rand.New(rand.NewPCG(3, 4)), 1, batch, ctx, vocab)
			m := newTestLM(vocab, ctx, width, heads)
			s := trainBench(b, m, lmSetup(b, m, toks, ys, batch, ctx))
			b.ReportMetric(batch*ctx/s, "tokens/s")
		})
	}
}
