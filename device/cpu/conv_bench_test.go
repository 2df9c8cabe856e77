package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/simd"
)

// cnnWindow is the first convolution of a small CNN on MNIST-sized maps:
// a batch of 64, 32 channels of 28×28, a 3×3 window with padding 1.
var cnnWindow = device.Window2D{N: 64, C: 32, H: 28, W: 28, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}

// BenchmarkIm2Col unfolds the CNN shape: 1.6M inputs into 14.5M column
// entries (58 MB written), split across the workers by planes; "generic"
// is the general loop, "fast" the Device (the stride-1 "same" loop). The
// bytes reported are those written plus those read once.
func BenchmarkIm2Col(b *testing.B) {
	g := cnnWindow
	d := newDev(b)
	in := g.N * g.C * g.H * g.W
	cols := g.N * g.ColRows() * g.OutH() * g.OutW()
	x, c := benchBuf(b, d, in, 0.5), benchBuf(b, d, cols, 0)
	must(b, d.Im2Col(x, c, g)) // page in the output before timing
	xf, _ := d.f32("", "", x, in)
	cf, _ := d.f32("", "", c, cols)
	b.SetBytes(int64(4 * (in + cols)))
	benchConvPaths(b, d, convKern{op: opIm2Col, g: g, oh: g.OutH(), ow: g.OutW(), a: xf, b: cf},
		func() error { return d.Im2Col(x, c, g) }, cols/(g.N*g.C))
}

// poolWindow is the CNN's first max pooling: 2×2, stride 2, on the
// 64×32×28×28 activations.
var poolWindow = device.Window2D{N: 64, C: 32, H: 28, W: 28, KH: 2, KW: 2, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1}

// BenchmarkMaxPool2D and BenchmarkMaxPool2DGrad time the CNN's first max
// pooling forward and backward, general loop against the Device.
func BenchmarkMaxPool2D(b *testing.B) {
	g := poolWindow
	d := newDev(b)
	in, out := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
	x, y := benchBuf(b, d, in, 0.5), benchBuf(b, d, out, 0)
	idx, err := d.Alloc(device.Int32, out)
	must(b, err)
	xf, _ := d.f32("", "", x, in)
	copy(xf, hashData(in))
	yf, _ := d.f32("", "", y, out)
	ix, _ := d.i32("", "", idx, out)
	b.SetBytes(int64(4 * (in + 2*out)))
	benchConvPaths(b, d, convKern{op: opMaxPool, g: g, oh: g.OutH(), ow: g.OutW(), a: xf, b: yf, idx: ix},
		func() error { return d.MaxPool2D(x, y, idx, g) }, (out/(g.N*g.C))*g.KH*g.KW)
}

func BenchmarkMaxPool2DGrad(b *testing.B) {
	g := poolWindow
	d := newDev(b)
	in, out := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
	x, y, dy, dx := benchBuf(b, d, in, 0), benchBuf(b, d, out, 0), benchBuf(b, d, out, 0.5), benchBuf(b, d, in, 0)
	idx, err := d.Alloc(device.Int32, out)
	must(b, err)
	xf, _ := d.f32("", "", x, in)
	copy(xf, hashData(in))
	must(b, d.MaxPool2D(x, y, idx, g))
	dyf, _ := d.f32("", "", dy, out)
	dxf, _ := d.f32("", "", dx, in)
	ix, _ := d.i32("", "", idx, out)
	b.SetBytes(int64(4 * (in + 2*out)))
	benchConvPaths(b, d, convKern{op: opMaxPoolGrad, g: g, oh: g.OutH(), ow: g.OutW(), a: dyf, b: dxf, idx: ix},
		func() error { return d.MaxPool2DGrad(dy, idx, dx, g) }, in/(g.N*g.C)+out/(g.N*g.C))
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

// dwShapes are the weight-gradient products of the CNN's second and fourth
// convolutions: oc×ck over N images of p outputs each.
var dwShapes = []struct {
	name         string
	n, oc, ck, p int
}{{"conv2", 64, 32, 288, 784}, {"conv4", 64, 64, 576, 196}}

// BenchmarkConvWeightGrad compares ways to compute dW = Σ_n dy_n·cols_nᵀ.
func BenchmarkConvWeightGrad(b *testing.B) {
	for _, s := range dwShapes {
		d := newDev(b)
		dy, cols := benchBuf(b, d, s.n*s.oc*s.p, 0.5), benchBuf(b, d, s.n*s.ck*s.p, 0.25)
		dyT, colsT := benchBuf(b, d, s.n*s.oc*s.p, 0), benchBuf(b, d, s.n*s.ck*s.p, 0)
		part, dw := benchBuf(b, d, s.n*s.oc*s.ck, 0), benchBuf(b, d, s.oc*s.ck, 0)
		dys, colss := make([]device.Buffer, s.n), make([]device.Buffer, s.n)
		for i := range dys {
			var err error
			dys[i], err = d.View(dy, i*s.oc*s.p, s.oc*s.p)
			must(b, err)
			colss[i], err = d.View(cols, i*s.ck*s.p, s.ck*s.p)
			must(b, err)
		}
		b.Run(s.name+"/permute", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				must(b, d.Permute4(dy, dyT, [4]int{1, s.n, s.oc, s.p}, [4]int{0, 2, 1, 3}))
				must(b, d.Permute4(cols, colsT, [4]int{1, s.n, s.ck, s.p}, [4]int{0, 2, 1, 3}))
				must(b, d.Gemm(false, true, s.oc, s.ck, s.n*s.p, 1, dyT, colsT, 0, dw))
			}
		})
		b.Run(s.name+"/batched+sum", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				must(b, d.GemmBatched(false, true, s.oc, s.ck, s.p, 1, dy, s.oc*s.p, cols, s.ck*s.p, 0, part, s.oc*s.ck, s.n))
				must(b, d.BiasGrad(dw, part, s.n, s.oc*s.ck, 0))
			}
		})
		b.Run(s.name+"/batchedT+sum", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				must(b, d.GemmBatched(false, true, s.ck, s.oc, s.p, 1, cols, s.ck*s.p, dy, s.oc*s.p, 0, part, s.oc*s.ck, s.n))
				must(b, d.BiasGrad(dw, part, s.n, s.oc*s.ck, 0))
			}
		})
		b.Run(s.name+"/gemm-per-image", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for j := range dys {
					beta := float32(1)
					if j == 0 {
						beta = 0
					}
					must(b, d.Gemm(false, true, s.oc, s.ck, s.p, 1, dys[j], colss[j], beta, dw))
				}
			}
		})
	}
}

// fastWindows are geometries for the special-cased loops (stride 1 and
// dilation 1 for Im2Col/Col2Im, 2×2 stride-2 pooling) and their edges:
// padding 0 to 3, kernels 1 to 5 wide, maps narrower than the kernel's
// interior, one-row and one-column maps, odd sizes.
var fastWindows = []device.Window2D{
	{N: 2, C: 3, H: 7, W: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 5, W: 9, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 4, W: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1},
	{N: 1, C: 1, H: 2, W: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 1, W: 1, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 6, W: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	{N: 2, C: 2, H: 6, W: 7, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1, DilH: 1, DilW: 1},
	{N: 1, C: 3, H: 5, W: 8, KH: 2, KW: 4, StrideH: 1, StrideW: 1, PadH: 1, PadW: 2, DilH: 1, DilW: 1},
	{N: 2, C: 2, H: 5, W: 5, KH: 1, KW: 1, StrideH: 1, StrideW: 1, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 2, W: 2, KH: 7, KW: 7, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 1, W: 1, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 4, W: 3, KH: 3, KW: 5, StrideH: 1, StrideW: 1, PadH: 0, PadW: 2, DilH: 1, DilW: 1},
	// A kernel column that sees only padding in every output (the general
	// Im2Col once sliced left of the row here).
	{N: 1, C: 1, H: 3, W: 1, KH: 1, KW: 6, StrideH: 1, StrideW: 1, PadH: 0, PadW: 3, DilH: 1, DilW: 1},
	{N: 2, C: 3, H: 8, W: 6, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 7, W: 9, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 3, W: 2, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	// Rows of 14, 17 and 33 windows: the 16-wide steps of the AVX-512
	// pooling, their tails, odd sizes.
	{N: 2, C: 3, H: 28, W: 28, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 5, W: 34, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 1, C: 2, H: 6, W: 67, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
	{N: 8, C: 16, H: 28, W: 28, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
}

// genericKern runs the general loops of a convKern on the workers, split
// as runConv splits the call: the "before" of the benchmarks.
type genericKern struct{ k *convKern }

func (g genericKern) run(_, lo, hi int) {
	switch g.k.op {
	case opIm2Col:
		g.k.im2col(lo, hi)
	case opCol2Im:
		g.k.col2im(lo, hi)
	case opMaxPool:
		g.k.maxPool(lo, hi)
	case opMaxPoolGrad:
		g.k.maxPoolGrad(lo, hi)
	}
}

// benchConvPaths times one conv-family call on the Device ("fast": the
// special-cased loops where they apply) and the general loops split the
// same way ("generic"), interleaved in one run so the machine's load falls
// on both alike. work is runConv's per-plane element count.
func benchConvPaths(b *testing.B, d *Device, k convKern, call func() error, work int) {
	items := k.g.N * k.g.C
	gk := genericKern{&k}
	b.Run("generic", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d.w.parallel(gk, items, d.w.chunks(items, max(1, ewGrain/work)), 1)
		}
	})
	b.Run("fast", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCol2Im folds the CNN's second-convolution columns back (the
// adjoint of BenchmarkIm2Col's shape), beta 0.
func BenchmarkCol2Im(b *testing.B) {
	g := cnnWindow
	d := newDev(b)
	in := g.N * g.C * g.H * g.W
	nc := g.N * g.ColRows() * g.OutH() * g.OutW()
	c, dx := benchBuf(b, d, nc, 0.5), benchBuf(b, d, in, 0)
	cf, _ := d.f32("", "", c, nc)
	df, _ := d.f32("", "", dx, in)
	b.SetBytes(int64(4 * (in + nc)))
	benchConvPaths(b, d, convKern{op: opCol2Im, g: g, oh: g.OutH(), ow: g.OutW(), a: cf, b: df},
		func() error { return d.Col2Im(c, dx, g, 0) }, nc/(g.N*g.C))
}

// genericConv runs the general loop of op (the one every geometry can
// take) on k directly, bypassing the special cases: the reference the fast
// paths must match bit for bit.
func genericConv(k *convKern, items int) {
	switch k.op {
	case opIm2Col:
		k.im2col(0, items)
	case opCol2Im:
		k.col2im(0, items)
	case opMaxPool:
		k.maxPool(0, items)
	case opMaxPoolGrad:
		k.maxPoolGrad(0, items)
	}
}

// sinData is n deterministic values in (−1, 1) with an irregular pattern.
func sinData(n int, phase float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.731 + phase))
	}
	return x
}

// hashData is n pseudo-random values in [−1, 1): which tap of a pooling
// window wins is as unpredictable as on real activations.
func hashData(n int) []float32 {
	x := make([]float32, n)
	s := uint64(0x9e3779b97f4a7c15)
	for i := range x {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		x[i] = float32(s>>40)/(1<<23) - 1
	}
	return x
}

// sameBits reports the first element where got and want differ in bits.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, generic loop gives %v", what, i, got[i], want[i])
		}
	}
}

// TestConvFastPathsMatchGeneric checks that Im2Col and Col2Im (every beta
// case) through the Device, which take the special-cased loops on these
// geometries, agree bit for bit with the general loops: same values, same
// summation order. The float64 correctness of the general loops is the
// conformance suite's (device/devicetest).
//
// It runs with the AVX2 kernels on and off (useAVX2EW): Col2Im's 3×3 loop
// uses simd.Add where they are on, the scalar row loops where not.
func TestConvFastPathsMatchGeneric(t *testing.T) {
	for _, avx := range []bool{simd.HasAVX2, false} {
		t.Run(fmt.Sprintf("avx2=%v", avx), func(t *testing.T) {
			old := useAVX2EW
			useAVX2EW = avx
			defer func() { useAVX2EW = old }()
			testConvFastPaths(t)
		})
	}
}

func testConvFastPaths(t *testing.T) {
	d := newDev(t)
	for _, g := range fastWindows {
		in, out := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
		nc := out * g.KH * g.KW
		x := sinData(in, 0.1)
		bx, bc := upload(t, d, x), upload(t, d, make([]float32, nc))
		// Pooling, on values with ties (multiples of 1/4) and NaNs, whose
		// first-winner rules the fast loop must keep; the gradient also with
		// indices that are not taps of their window (routed nowhere).
		if g.DilH == 1 && 2*g.PadH <= g.KH && 2*g.PadW <= g.KW {
			px := sinData(in, 0.3)
			for i := range px {
				px[i] = float32(math.Round(float64(px[i])*4) / 4)
				if i%37 == 5 {
					px[i] = float32(math.NaN())
				}
			}
			by, bi := upload(t, d, make([]float32, out)), upload(t, d, make([]float32, out))
			bi, err := d.Alloc(device.Int32, out)
			must(t, err)
			must(t, d.MaxPool2D(upload(t, d, px), by, bi, g))
			wantY, wantI := make([]float32, out), make([]int32, out)
			genericConv(&convKern{op: opMaxPool, g: g, oh: g.OutH(), ow: g.OutW(), a: px, b: wantY, idx: wantI}, g.N*g.C)
			sameBits(t, fmt.Sprintf("MaxPool2D %+v: y", g), download(t, d, by), wantY)
			gotI := make([]int32, out)
			must(t, d.ReadI32(gotI, bi, 0))
			for i := range wantI {
				if gotI[i] != wantI[i] {
					t.Fatalf("MaxPool2D %+v: idx[%d] = %d, generic loop gives %d", g, i, gotI[i], wantI[i])
				}
			}
			dy := sinData(out, 1.9)
			for i := 0; i < len(dy); i += 11 {
				dy[i] = float32(math.Copysign(0, -1)) // −0 routed: dx gets 0 + −0 = +0
			}
			for _, corrupt := range []bool{false, true} {
				ix := append([]int32(nil), wantI...)
				if corrupt {
					hw := int32(g.H * g.W)
					for i := range ix {
						ix[i] = int32((i*7919)%int(hw+3)) - 1 // −1 … hw+1, mostly not taps
					}
				}
				bix, err := d.Alloc(device.Int32, out)
				must(t, err)
				must(t, d.WriteI32(bix, 0, ix))
				bdx := upload(t, d, sinData(in, 4.1)) // overwritten: MaxPool2DGrad sets dx
				must(t, d.MaxPool2DGrad(upload(t, d, dy), bix, bdx, g))
				want := make([]float32, in)
				genericConv(&convKern{op: opMaxPoolGrad, g: g, oh: g.OutH(), ow: g.OutW(), a: dy, b: want, idx: ix}, g.N*g.C)
				sameBits(t, fmt.Sprintf("MaxPool2DGrad %+v corrupt %v: dx", g, corrupt), download(t, d, bdx), want)
			}
		}
		if g.StrideH != 1 {
			continue
		}
		must(t, d.Im2Col(bx, bc, g))
		want := make([]float32, nc)
		genericConv(&convKern{op: opIm2Col, g: g, oh: g.OutH(), ow: g.OutW(), a: x, b: want}, g.N*g.C)
		sameBits(t, fmt.Sprintf("Im2Col %+v: cols", g), download(t, d, bc), want)

		if g.StrideH != 1 {
			continue
		}
		cols := sinData(nc, 0.7)
		for _, beta := range []float32{0, 1, 0.37} {
			dx0 := sinData(in, 2.3)
			bcols, bdx := upload(t, d, cols), upload(t, d, dx0)
			must(t, d.Col2Im(bcols, bdx, g, beta))
			want := append([]float32(nil), dx0...)
			genericConv(&convKern{op: opCol2Im, g: g, oh: g.OutH(), ow: g.OutW(), a: cols, b: want, beta: beta}, g.N*g.C)
			sameBits(t, fmt.Sprintf("Col2Im %+v beta %g: dx", g, beta), download(t, d, bdx), want)
		}
	}
}

// BenchmarkConvForwardGroups times the CNN's second convolution forward
// (Im2Col, then GemmBatched with the weights shared) on the whole batch at
// once and on groups of images (views), whose columns stay in the cache
// between the two calls.
func BenchmarkConvForwardGroups(b *testing.B) {
	g := cnnWindow
	const oc = 32
	d := newDev(b)
	ck, p := g.ColRows(), g.OutH()*g.OutW()
	img := g.C * g.H * g.W
	x, w := benchBuf(b, d, g.N*img, 0.5), benchBuf(b, d, oc*ck, 0.1)
	y, cols := benchBuf(b, d, g.N*oc*p, 0), benchBuf(b, d, g.N*ck*p, 0)
	for _, group := range []int{64, 16, 8, 4, 2, 1} {
		gw := g
		gw.N = group
		var xs, ys, cs []device.Buffer
		for n := 0; n < g.N; n += group {
			xv, err := d.View(x, n*img, group*img)
			must(b, err)
			yv, err := d.View(y, n*oc*p, group*oc*p)
			must(b, err)
			cv, err := d.View(cols, n*ck*p, group*ck*p)
			must(b, err)
			xs, ys, cs = append(xs, xv), append(ys, yv), append(cs, cv)
		}
		b.Run(fmt.Sprint("group", group), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for k := range xs {
					must(b, d.Im2Col(xs[k], cs[k], gw))
					must(b, d.GemmBatched(false, false, oc, p, ck, 1, w, 0, cs[k], ck*p, 0, ys[k], oc*p, group))
				}
			}
		})
	}
}

// col2imKern runs one of Col2Im's stride-1 loops by name on the workers.
type col2imKern struct {
	k    *convKern
	simd bool
}

func (c col2imKern) run(_, lo, hi int) {
	if c.simd {
		c.k.col2im3x3(lo, hi)
	} else {
		c.k.col2imS1(lo, hi)
	}
}

// BenchmarkCol2ImInCache folds the columns of two images of the CNN's
// second convolution (1.8 MB, what Conv2d's groups hand Col2Im, in cache
// after the first call) with the scalar row loop ("rows") and the AVX2
// plane loop ("simd").
func BenchmarkCol2ImInCache(b *testing.B) {
	g := cnnWindow
	g.N = 2
	d := newDev(b)
	in := g.N * g.C * g.H * g.W
	nc := g.N * g.ColRows() * g.OutH() * g.OutW()
	c, dx := benchBuf(b, d, nc, 0.5), benchBuf(b, d, in, 0)
	cf, _ := d.f32("", "", c, nc)
	df, _ := d.f32("", "", dx, in)
	k := &convKern{op: opCol2Im, g: g, oh: g.OutH(), ow: g.OutW(), a: cf, b: df}
	items := g.N * g.C
	for _, path := range []string{"rows", "simd"} {
		if path == "simd" && !simd.HasAVX2 {
			continue
		}
		ck := col2imKern{k, path == "simd"}
		b.Run(path, func(b *testing.B) {
			b.SetBytes(int64(4 * (in + nc)))
			for i := 0; i < b.N; i++ {
				d.w.parallel(ck, items, d.w.chunks(items, max(1, ewGrain/(nc/items))), 1)
			}
		})
	}
}
