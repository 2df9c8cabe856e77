package nn

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/internal/race"
)

// TestGradConv2dWeightPaths gradchecks Conv2d (in float64 against
// refConv2d, as TestGradConv2d) on geometries chosen to take each of the
// weight-gradient forms of conv2dBackward: one image (a single Gemm),
// partial products per image summed by BiasGrad (oc·ck ≤ (oc+ck)·p: small
// kernels on larger maps), and the permuted single Gemm over K = N·p
// (large kernels on 1×1 and 2×1 outputs, where N copies of dW would be
// larger than the activations).
func TestGradConv2dWeightPaths(t *testing.T) {
	dev := openCPU(t)
	cases := []struct {
		name                   string
		n, c, h, w, oc, kh, kw int
		pad                    int
		wantPartials           bool
	}{
		{"one-image", 1, 2, 5, 4, 3, 3, 3, 1, false},
		{"partials", 3, 2, 6, 5, 3, 3, 3, 1, true},
		{"permuted-1x1-output", 2, 3, 3, 3, 4, 3, 3, 0, false},
		{"permuted-2x1-output", 3, 2, 4, 3, 5, 3, 3, 0, false},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rng(300 + ci)
			win := device.Window2D{N: c.n, C: c.c, H: c.h, W: c.w, KH: c.kh, KW: c.kw, StrideH: 1, StrideW: 1,
				PadH: c.pad, PadW: c.pad, DilH: 1, DilW: 1}
			ck, p := win.ColRows(), win.OutH()*win.OutW()
			if got := c.n > 1 && c.oc*ck <= (c.oc+ck)*p; got != c.wantPartials {
				t.Fatalf("geometry takes the partial-products form: %v, the case expects %v", got, c.wantPartials)
			}
			head := newHead(t, dev, &r, c.n*c.oc*p)
			inputs := []GradInput{
				{"x", []int{c.n, c.c, c.h, c.w}, r.uniform(c.n*c.c*c.h*c.w, -1, 1)},
				{"w", []int{c.oc, c.c, c.kh, c.kw}, r.uniform(c.oc*c.c*c.kh*c.kw, -1, 1)},
				{"b", []int{c.oc}, r.uniform(c.oc, -1, 1)},
			}
			one, pad := [2]int{1, 1}, [2]int{c.pad, c.pad}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				return head.of(g)(g.Conv2d(xs[0], xs[1], xs[2], one, pad, one))
			}, func(xs [][]float64) float64 {
				return head.ref(refConv2d(xs[0], xs[1], xs[2], win, c.oc))
			})
		})
	}
}

// withConvGroup sets convGroupFloats for the rest of the test.
func withConvGroup(t *testing.T, floats int) {
	old := convGroupFloats
	convGroupFloats = floats
	t.Cleanup(func() { convGroupFloats = old })
}

// convStep runs Conv2d (bias, 3×3, padding 1 or stride 2) forward and
// backward under an MSE head on g and returns y, dx, dW and db.
func convStep(t *testing.T, dev device.Device, g *Graph, bufs []device.Buffer, shapes [][]int, target device.Buffer,
	stride, pad [2]int) [][]float32 {
	t.Helper()
	g.Reset()
	var vs []*Tensor
	for i, b := range bufs {
		v, err := g.Variable(b, shapes[i]...)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	y, err := g.Conv2d(vs[0], vs[1], vs[2], stride, pad, [2]int{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := g.Loss(device.MSE, y, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	read := func(b device.Buffer, n int) []float32 {
		h := make([]float32, n)
		if err := dev.ReadF32(h, b, 0); err != nil {
			t.Fatal(err)
		}
		return h
	}
	out := [][]float32{read(y.Value(), y.Len())}
	for _, v := range vs {
		out = append(out, read(v.Grad(), v.Len()))
	}
	return out
}

// TestConv2dGroupsMatchWholeBatch checks that Conv2d run in groups of
// images (convGroupFloats forcing groups of 1, 2 with a remainder, and 3)
// gives bit for bit the y, dx, dW and db of the whole-batch path: the
// primitives compute each image alike whatever batch they are given, and
// the weight gradient sums the same per-image partials in the same order.
// It also checks that a steady grouped step makes no device allocation
// (Stats) and no Go heap allocation (testing.AllocsPerRun, against the
// whole-batch step): the scratch is the graph's, the group views come
// from its cache.
func TestConv2dGroupsMatchWholeBatch(t *testing.T) {
	dev := openCPU(t)
	for _, c := range []struct {
		name        string
		n, c, h, w  int
		oc          int
		stride, pad [2]int
		groups      []int
	}{
		{"3x3pad1", 5, 3, 8, 7, 4, [2]int{1, 1}, [2]int{1, 1}, []int{1, 2, 3}},
		{"stride2", 5, 2, 9, 8, 3, [2]int{2, 2}, [2]int{1, 0}, []int{1, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rng(400)
			win := device.Window2D{N: c.n, C: c.c, H: c.h, W: c.w, KH: 3, KW: 3, StrideH: c.stride[0], StrideW: c.stride[1],
				PadH: c.pad[0], PadW: c.pad[1], DilH: 1, DilW: 1}
			ck, p := win.ColRows(), win.OutH()*win.OutW()
			shapes := [][]int{{c.n, c.c, c.h, c.w}, {c.oc, c.c, 3, 3}, {c.oc}}
			var bufs []device.Buffer
			for _, sh := range shapes {
				n := 1
				for _, d := range sh {
					n *= d
				}
				bufs = append(bufs, upload(t, dev, f32s(r.uniform(n, -1, 1))))
			}
			target := upload(t, dev, f32s(r.uniform(c.n*c.oc*p, -1, 1)))
			g := NewGraph(dev)
			defer g.Free()
			want := convStep(t, dev, g, bufs, shapes, target, c.stride, c.pad)
			names := []string{"y", "dx", "dW", "db"}
			for _, group := range c.groups {
				withConvGroup(t, group*ck*p)
				if got := convGroup(dev, c.n, c.oc, ck, p); got != group {
					t.Fatalf("convGroup = %d, expected %d", got, group)
				}
				got := convStep(t, dev, g, bufs, shapes, target, c.stride, c.pad)
				for k := range want {
					for i := range want[k] {
						if math.Float32bits(got[k][i]) != math.Float32bits(want[k][i]) {
							t.Fatalf("groups of %d: %s[%d] = %v, whole batch %v", group, names[k], i, got[k][i], want[k][i])
						}
					}
				}
				before := dev.Stats()
				heap := testing.AllocsPerRun(3, func() { convStep(t, dev, g, bufs, shapes, target, c.stride, c.pad) })
				if after := dev.Stats(); after.Allocs != before.Allocs || after.SystemAllocs != before.SystemAllocs {
					t.Errorf("groups of %d: steady steps: device Allocs %d → %d, SystemAllocs %d → %d, expected no change",
						group, before.Allocs, after.Allocs, before.SystemAllocs, after.SystemAllocs)
				}
				// convStep itself allocates its host copies (4 slices and
				// the result) and the Variable list: count them out by
				// running it on the whole batch too.
				withConvGroup(t, 1<<30)
				base := testing.AllocsPerRun(3, func() { convStep(t, dev, g, bufs, shapes, target, c.stride, c.pad) })
				if heap > base && !race.Enabled {
					t.Errorf("groups of %d: %v heap allocations per step, whole batch %v: the grouped path allocates", group, heap, base)
				}
			}
		})
	}
}

// TestGradConv2dGroups gradchecks Conv2d in float64 (as TestGradConv2d)
// with the batch worked through in groups of 2 images, the last one short.
func TestGradConv2dGroups(t *testing.T) {
	dev := openCPU(t)
	const n, c, h, w, oc = 3, 2, 6, 5, 3
	win := device.Window2D{N: n, C: c, H: h, W: w, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}
	ck, p := win.ColRows(), win.OutH()*win.OutW()
	withConvGroup(t, 2*ck*p)
	if got := convGroup(dev, n, oc, ck, p); got != 2 {
		t.Fatalf("convGroup = %d, expected 2", got)
	}
	r := rng(500)
	head := newHead(t, dev, &r, n*oc*p)
	inputs := []GradInput{
		{"x", []int{n, c, h, w}, r.uniform(n*c*h*w, -1, 1)},
		{"w", []int{oc, c, 3, 3}, r.uniform(oc*c*9, -1, 1)},
		{"b", []int{oc}, r.uniform(oc, -1, 1)},
	}
	one := [2]int{1, 1}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		return head.of(g)(g.Conv2d(xs[0], xs[1], xs[2], one, one, one))
	}, func(xs [][]float64) float64 {
		return head.ref(refConv2d(xs[0], xs[1], xs[2], win, oc))
	})
}

// BenchmarkConv2dStep is Conv2d forward and backward (x, w and b all
// requiring grad) on the CNN's second and fourth convolutions at batch 64,
// with the batch unfolded at once ("whole") and in groups whose columns
// fit convGroupFloats floats. Run with -count and compare the rows side by
// side: the machine's load moves absolute times.
func BenchmarkConv2dStep(b *testing.B) {
	dev, err := device.Open("cpu")
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	for _, s := range []struct {
		name      string
		c, hw, oc int
	}{{"conv2", 32, 28, 32}, {"conv3", 32, 14, 64}, {"conv4", 64, 14, 64}} {
		const n = 64
		shapes := [][]int{{n, s.c, s.hw, s.hw}, {s.oc, s.c, 3, 3}, {s.oc}}
		var bufs []device.Buffer
		for i, sh := range shapes {
			m := 1
			for _, d := range sh {
				m *= d
			}
			buf, err := dev.Alloc(device.Float32, m)
			if err != nil {
				b.Fatal(err)
			}
			if err := dev.RandUniform(buf, m, -1, 1, uint64(i), 0); err != nil {
				b.Fatal(err)
			}
			bufs = append(bufs, buf)
		}
		target, err := dev.Alloc(device.Float32, n*s.oc*s.hw*s.hw)
		if err != nil {
			b.Fatal(err)
		}
		g := NewGraph(dev)
		step := func() error {
			g.Reset()
			var vs []*Tensor
			for i, buf := range bufs {
				v, err := g.Variable(buf, shapes[i]...)
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
			one := [2]int{1, 1}
			y, err := g.Conv2d(vs[0], vs[1], vs[2], one, one, one)
			if err != nil {
				return err
			}
			loss, err := g.Loss(device.MSE, y, target)
			if err != nil {
				return err
			}
			if err := g.Backward(loss); err != nil {
				return err
			}
			return dev.Sync()
		}
		for _, budget := range []struct {
			name   string
			floats int
		}{{"whole", 1 << 40}, {"2^18", 1 << 18}, {"2^19", 1 << 19}, {"2^20", 1 << 20}} {
			b.Run(s.name+"/"+budget.name, func(b *testing.B) {
				old := convGroupFloats
				convGroupFloats = budget.floats
				defer func() { convGroupFloats = old }()
				if err := step(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := step(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		g.Free()
	}
}

// otherBackend is the CPU device behind a wrapper without its cache hint
// (device.CacheHinter), as a GPU backend: convGroup must keep the whole
// batch.
type otherBackend struct{ device.Device }

func (otherBackend) Name() string { return "cuda:0" }

// TestConvGroup checks the grouping rule on the CNN's shapes and its
// bounds: the whole batch when the columns fit, for one image, when the
// partials would be larger than the activations, and off the CPU backend;
// else as many images as fit in convGroupFloats, but at most
// maxConvGroups groups.
func TestConvGroup(t *testing.T) {
	dev := openCPU(t)
	withConvGroup(t, 1<<19)
	for _, c := range []struct {
		name         string
		dev          device.Device
		n, oc, ck, p int
		want         int
	}{
		{"conv1 fits", dev, 64, 32, 9, 784, 64},
		{"conv2", dev, 64, 32, 288, 784, 2},
		{"conv3: 9 fit, 8 groups of 8", dev, 64, 64, 288, 196, 8},
		{"conv3, batch 50: 9 fit, 6 groups of 9 or fewer", dev, 50, 64, 288, 196, 9},
		{"conv3, batch 40: 9 fit, 5 groups of 8", dev, 40, 64, 288, 196, 8},
		{"conv4", dev, 64, 64, 576, 196, 4},
		{"one image", dev, 1, 32, 288, 784, 1},
		{"large kernel, small map", dev, 64, 512, 4608, 49, 64},
		{"at most 32 groups", dev, 256, 32, 288, 784, 8},
		{"an image larger than the budget", dev, 8, 32, 288, 4096, 1},
		{"another backend", otherBackend{dev}, 64, 32, 288, 784, 64},
	} {
		if got := convGroup(c.dev, c.n, c.oc, c.ck, c.p); got != c.want {
			t.Errorf("%s: convGroup(n=%d, oc=%d, ck=%d, p=%d) = %d, expected %d", c.name, c.n, c.oc, c.ck, c.p, got, c.want)
		}
	}
}

// TestConvGroupFromDeviceHint checks that without a test override the
// budget is the CPU backend's cache hint (2 MiB: groups of 2 images for
// the CNN's second convolution) and that a hint of 0 turns grouping off.
func TestConvGroupFromDeviceHint(t *testing.T) {
	dev := openCPU(t)
	withConvGroup(t, 0)
	h, ok := dev.(device.CacheHinter)
	if !ok {
		t.Fatal("the CPU backend gives no cache hint (device.CacheHinter)")
	}
	if got, want := convGroup(dev, 64, 32, 288, 784), h.CacheBlockBytes()/4/(288*784); got != want || got < 1 {
		t.Errorf("convGroup(conv2) = %d with the device's %d-byte hint, expected %d", got, h.CacheBlockBytes(), want)
	}
	if got := convGroup(zeroHint{dev}, 64, 32, 288, 784); got != 64 {
		t.Errorf("convGroup with a hint of 0 = %d, expected the whole batch (64)", got)
	}
}

type zeroHint struct{ device.Device }

func (zeroHint) CacheBlockBytes() int { return 0 }
