package cpu

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

// cnnWindow is the first convolution of a small CNN on MNIST-sized maps:
// a batch of 64, 32 channels of 28×28, a 3×3 window with padding 1.
var cnnWindow = device.Window2D{N: 64, C: 32, H: 28, W: 28, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}

// BenchmarkIm2Col unfolds the CNN shape: 1.6M inputs into 14.5M column
// entries (58 MB written), split across the workers by planes. The bytes
// reported are those written plus those read once.
func BenchmarkIm2Col(b *testing.B) {
	g := cnnWindow
	d := newDev(b)
	in := g.N * g.C * g.H * g.W
	cols := g.N * g.ColRows() * g.OutH() * g.OutW()
	x, c := benchBuf(b, d, in, 0.5), benchBuf(b, d, cols, 0)
	must(b, d.Im2Col(x, c, g)) // page in the output before timing
	b.SetBytes(int64(4 * (in + cols)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Im2Col(x, c, g); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConvNoAllocs checks that the conv primitives allocate nothing per
// call, on the serial path (small planes) and the parallel one.
func TestConvNoAllocs(t *testing.T) {
	d := newDev(t)
	for _, g := range []device.Window2D{
		{N: 1, C: 2, H: 5, W: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
		{N: 8, C: 16, H: 28, W: 28, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	} {
		in, out := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
		x, dx := upload(t, d, make([]float32, in)), upload(t, d, make([]float32, in))
		y, c := upload(t, d, make([]float32, out)), upload(t, d, make([]float32, out*g.KH*g.KW))
		bias := upload(t, d, make([]float32, g.C))
		idx, err := d.Alloc(device.Int32, out)
		must(t, err)
		fns := map[string]func() error{
			"Im2Col":                func() error { return d.Im2Col(x, c, g) },
			"Col2Im":                func() error { return d.Col2Im(c, dx, g, 1) },
			"AddChannelBias":        func() error { return d.AddChannelBias(x, bias, g.N, g.C, g.H*g.W) },
			"ChannelBiasGrad":       func() error { return d.ChannelBiasGrad(bias, x, g.N, g.C, g.H*g.W, 0) },
			"MaxPool2D":             func() error { return d.MaxPool2D(x, y, idx, g) },
			"MaxPool2DGrad":         func() error { return d.MaxPool2DGrad(y, idx, dx, g) },
			"AvgPool2D":             func() error { return d.AvgPool2D(x, y, g) },
			"AvgPool2DGrad":         func() error { return d.AvgPool2DGrad(y, dx, g) },
			"AdaptiveAvgPool2D":     func() error { return d.AdaptiveAvgPool2D(x, y, g.N, g.C, g.H, g.W, 2, 3) },
			"AdaptiveAvgPool2DGrad": func() error { return d.AdaptiveAvgPool2DGrad(y, dx, g.N, g.C, g.H, g.W, 2, 3) },
		}
		for name, fn := range fns {
			must(t, fn())
			if allocs := testing.AllocsPerRun(20, func() { _ = fn() }); allocs > 0 {
				t.Errorf("%s N=%d C=%d: %v heap allocations per call, want 0", name, g.N, g.C, allocs)
			}
		}
	}
}

// TestConvSplitIndependent checks that the results do not depend on how
// the planes are split across workers: a one-worker device and a
// four-worker one agree bit for bit (every element is computed by one
// chunk, its sums in a fixed order).
func TestConvSplitIndependent(t *testing.T) {
	g := device.Window2D{N: 8, C: 16, H: 28, W: 28, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1}
	in, out := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
	cols := out * g.KH * g.KW
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.37))
	}
	run := func(workers int) [][]float32 {
		d := newDev(t)
		d.w.stop()
		d.w = newWorkers(workers)
		bc, bdx, by := upload(t, d, x), upload(t, d, make([]float32, in)), upload(t, d, make([]float32, out))
		bdb := upload(t, d, make([]float32, g.C))
		must(t, d.Col2Im(bc, bdx, g, 0))
		must(t, d.AvgPool2D(bdx, by, g))
		must(t, d.ChannelBiasGrad(bdb, bc, g.N, g.C, cols/(g.N*g.C), 0))
		return [][]float32{download(t, d, bdx), download(t, d, by), download(t, d, bdb)}
	}
	one, four := run(1), run(4)
	for k, name := range []string{"Col2Im", "AvgPool2D", "ChannelBiasGrad"} {
		for i := range one[k] {
			if math.Float32bits(one[k][i]) != math.Float32bits(four[k][i]) {
				t.Fatalf("%s[%d]: %v with 1 worker, %v with 4", name, i, one[k][i], four[k][i])
			}
		}
	}
}
