package nn

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// TestParseImageSpec parses image specs into the expected layers, writes
// them back in canonical form (defaults dropped), parses that to the same
// Spec, and checks Out.
func TestParseImageSpec(t *testing.T) {
	relu := LayerSpec{Kind: ActivationLayer, Act: device.ReLU}
	cases := []struct {
		in   string
		want Spec
		str  string
		out  int
	}{
		{"1x28x28-conv32k3p1-bn-relu-maxpool2-conv64k3p1-bn-relu-maxpool2-flatten-128-relu-10", Spec{In: 784, Shape: []int{1, 28, 28}, Layers: []LayerSpec{
			{Kind: Conv2dLayer, Units: 32, Kernel: 3, Stride: 1, Padding: 1, Dilation: 1}, {Kind: BatchNormLayer}, relu,
			{Kind: MaxPoolLayer, Kernel: 2, Stride: 2},
			{Kind: Conv2dLayer, Units: 64, Kernel: 3, Stride: 1, Padding: 1, Dilation: 1}, {Kind: BatchNormLayer}, relu,
			{Kind: MaxPoolLayer, Kernel: 2, Stride: 2}, {Kind: FlattenLayer},
			{Kind: LinearLayer, Units: 128}, relu, {Kind: LinearLayer, Units: 10}}},
			"1x28x28-conv32k3p1-bn-relu-maxpool2-conv64k3p1-bn-relu-maxpool2-flatten-128-relu-10", 10},
		{"3X32X32-Conv16k5s2p2d1-avgpool3s2p1-GAP-flatten-bn-drop0.1-10", Spec{In: 3072, Shape: []int{3, 32, 32}, Layers: []LayerSpec{
			{Kind: Conv2dLayer, Units: 16, Kernel: 5, Stride: 2, Padding: 2, Dilation: 1},
			{Kind: AvgPoolLayer, Kernel: 3, Stride: 2, Padding: 1}, {Kind: GlobalAvgPoolLayer}, {Kind: FlattenLayer},
			{Kind: BatchNormLayer}, {Kind: DropoutLayer, P: 0.1}, {Kind: LinearLayer, Units: 10}}},
			"3x32x32-conv16k5s2p2-avgpool3s2p1-gap-flatten-bn-drop0.1-10", 10},
		{"2x9x9-conv3k3d2s1-maxpool3s1-flatten", Spec{In: 162, Shape: []int{2, 9, 9}, Layers: []LayerSpec{
			{Kind: Conv2dLayer, Units: 3, Kernel: 3, Stride: 1, Dilation: 2}, {Kind: MaxPoolLayer, Kernel: 3, Stride: 1},
			{Kind: FlattenLayer}}},
			// 9 → 5 (dilated span 5) → 3: 3·3·3 values out.
			"2x9x9-conv3k3d2-maxpool3s1-flatten", 27},
	}
	for _, c := range cases {
		got := checkParsed(t, c.in, c.want, c.str)
		if out := got.Out(); out != c.out {
			t.Errorf("ParseSpec(%q).Out() = %d, expected %d", c.in, out, c.out)
		}
	}
	// Multiply-adds per sample: the MNIST CNN's two convolutions
	// (32·1·9·28·28 and 64·32·9·14·14) and two linear layers (3136·128 and
	// 128·10), written out by hand.
	want := int64(32*1*9*28*28 + 64*32*9*14*14 + 3136*128 + 128*10)
	if got := MustParseSpec(cases[0].in).MACs(); got != want {
		t.Errorf("MACs = %d, expected %d", got, want)
	}
	if got := MustParseSpec("784-256-relu-10").MACs(); got != 784*256+256*10 {
		t.Errorf("MLP MACs = %d, expected %d", got, 784*256+256*10)
	}
}

// TestParseImageSpecErrors checks that every malformed image spec is
// refused with an error naming the token and what was expected.
func TestParseImageSpecErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1x28-10", `token 1 "1x28": expected an input width or an image shape CxHxW`},
		{"0x28x28-flatten-10", "positive integers"},
		{"1x28x28x1-flatten-10", "CxHxW"},
		{"1x100000x2-flatten-10", "≤ 65536"},
		{"1x28x28-conv32p1-flatten-10", `token 2 "conv32p1": no kernel size`},
		{"1x28x28-conv32-flatten-10", "no kernel size"},
		{"1x28x28-convk3-flatten-10", "missing number"},
		{"1x28x28-conv32k3k3-flatten-10", "k given twice"},
		{"1x28x28-conv32k3x2-flatten-10", `unexpected "x2"`},
		{"1x28x28-conv32k3s0-flatten-10", "stride and dilation from 1"},
		{"1x28x28-conv0k3-flatten-10", "out channels"},
		{"1x28x28-conv999999k3-flatten-10", "out of range"},
		{"1x5x5-conv4k7-flatten-10", "does not fit the 5x5 input"},
		{"1x5x5-conv4k3d3-flatten-10", "spanning 7"},
		{"1x28x28-conv8k3-10", `token 3 "10" (input 8x26x26): a width needs a flat input`},
		{"1x28x28-softmax", "softmax needs a flat input"},
		{"1x28x28-conv8k3", "the output is an image (8x26x26)"},
		{"784-conv8k3-10", "a convolution needs an image input"},
		{"784-maxpool2-10", "pooling needs an image input"},
		{"784-gap-10", "global average pooling needs an image input"},
		{"1x28x28-maxpool2p2-flatten-10", "more than half the kernel"},
		{"1x2x2-maxpool3-flatten-10", "does not fit the 2x2 input"},
		{"1x28x28-maxpool2d1-flatten-10", `unexpected "d1"`},
		{"1x28x28-maxpool-flatten-10", "missing number"},
		{"1x28x28-bnx-flatten-10", "unknown layer"},
		{"65536x1x1-conv65536k3p1-flatten-10", "its weight [65536, 65536, 3, 3] has 38654705664 values"},
		{"1x8x8", "no layers after the input shape 1x8x8"},
	}
	for _, c := range cases {
		_, err := ParseSpec(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%q) error = %v, expected one containing %q", c.in, err, c.want)
		}
	}
	// Validate catches the same in a Spec written in code.
	bad := Spec{In: 784, Shape: []int{1, 28, 28}, Layers: []LayerSpec{{Kind: Conv2dLayer, Units: 4, Kernel: 3}, {Kind: FlattenLayer}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "stride and dilation from 1") {
		t.Errorf("Validate of a convolution with stride 0: %v", err)
	}
	if err := (Spec{In: 100, Shape: []int{1, 28, 28}, Layers: []LayerSpec{{Kind: FlattenLayer}}}).Validate(); err == nil || !strings.Contains(err.Error(), "has 784 values, but the input width is 100") {
		t.Errorf("Validate of a shape that disagrees with In: %v", err)
	}
	// A padding whose double overflows.
	huge := Spec{In: 100, Shape: []int{1, 10, 10}, Layers: []LayerSpec{{Kind: AvgPoolLayer, Kernel: 2, Stride: 2, Padding: math.MaxInt}, {Kind: FlattenLayer}}}
	if err := huge.Validate(); err == nil || !strings.Contains(err.Error(), "padding from 0 to 65536") {
		t.Errorf("Validate of a pool with padding MaxInt: %v", err)
	}
}

// TestBuildImageSpec builds an image spec and checks its state_dict names
// and shapes (torch.nn.Sequential's), the default initialisation's bounds
// (PyTorch's fan_in of a convolution is in·k·k), and that the model's
// output equals the same ops applied by hand to its own parameters, for a
// flat input (viewed as NCHW) and an NCHW one alike.
func TestBuildImageSpec(t *testing.T) {
	dev := openCPU(t)
	spec := MustParseSpec("2x6x6-conv4k3p1-bn-relu-maxpool2-flatten-5")
	m, err := Build(dev, spec, Init{}, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	type ps struct {
		name  string
		shape []int
	}
	var got []ps
	for _, p := range m.ParamSet().All() {
		got = append(got, ps{p.Name, p.Shape})
	}
	want := []ps{{"0.weight", []int{4, 2, 3, 3}}, {"0.bias", []int{4}}, {"1.weight", []int{4}}, {"1.bias", []int{4}},
		{"1.running_mean", []int{4}}, {"1.running_var", []int{4}}, {"5.weight", []int{5, 36}}, {"5.bias", []int{5}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parameters %v, expected %v", got, want)
	}
	read := func(b device.Buffer, n int) []float32 {
		v := make([]float32, n)
		if err := dev.ReadF32(v, b, 0); err != nil {
			t.Fatal(err)
		}
		return v
	}
	host := func(p *Param) []float32 { return read(p.Value(), p.Len()) }
	// U(−1/√18, 1/√18) for the convolution (fan_in 2·3·3), U(−1/6, 1/6)
	// for the linear layer (fan_in 36): the largest draw is near the bound.
	for _, c := range []struct {
		name  string
		bound float64
	}{{"0.weight", 1 / math.Sqrt(18)}, {"5.weight", 1.0 / 6}} {
		mx := 0.0
		for _, v := range host(m.Param(c.name)) {
			mx = math.Max(mx, math.Abs(float64(v)))
		}
		if mx > c.bound || mx < 0.75*c.bound {
			t.Errorf("%s: largest |w| %.4f, expected just below %.4f", c.name, mx, c.bound)
		}
	}

	const n = 3
	x := make([]float32, n*72)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.37))
	}
	run := func(shape []int, byHand bool) []float32 {
		g := NewGraph(dev)
		defer g.Free()
		in, err := g.Input(upload(t, dev, x), shape...)
		if err != nil {
			t.Fatal(err)
		}
		var y *Tensor
		if byHand {
			p := func(name string) *Tensor {
				v, err := g.Param(m.Param(name))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			h, err := g.Reshape(in, n, 2, 6, 6)
			if err == nil {
				h, err = g.Conv2d(h, p("0.weight"), p("0.bias"), [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1})
			}
			if err == nil {
				h, err = g.BatchNorm(h, p("1.weight"), p("1.bias"), p("1.running_mean"), p("1.running_var"), false, device.NormConfig{Eps: 1e-5, Momentum: 0.1})
			}
			if err == nil {
				h, err = g.Activate(device.ReLU, 0, h)
			}
			if err == nil {
				h, err = g.MaxPool2d(h, [2]int{2, 2}, [2]int{2, 2}, [2]int{0, 0})
			}
			if err == nil {
				h, err = g.Flatten(h, 1)
			}
			if err == nil {
				y, err = g.Linear(h, p("5.weight"), p("5.bias"))
			}
			if err != nil {
				t.Fatal(err)
			}
		} else {
			m.SetTraining(false)
			if y, err = m.Forward(g, in); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(y.Shape(), []int{n, 5}) {
			t.Fatalf("output shape %v, expected [%d 5]", y.Shape(), n)
		}
		return read(y.Value(), y.Len())
	}
	ref := run([]int{n, 72}, true)
	for _, shape := range [][]int{{n, 72}, {n, 2, 6, 6}} {
		out := run(shape, false)
		for i := range ref {
			if out[i] != ref[i] {
				t.Fatalf("input %v: output[%d] = %v, by hand %v", shape, i, out[i], ref[i])
			}
		}
	}
	g := NewGraph(dev)
	defer g.Free()
	in, err := g.Input(upload(t, dev, x[:n*71]), n, 71)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(g, in); err == nil || !strings.Contains(err.Error(), "expected [N, 72] or [N, 2, 6, 6]") {
		t.Errorf("Forward of [%d 71]: %v", n, err)
	}
}

// FuzzParseSpec checks that no spec string panics the parser, and that
// every spec it accepts validates and round-trips through String.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"784-256-relu-10", "1x28x28-conv32k3p1-bn-relu-maxpool2-flatten-10",
		"3x32x32-conv16k5s2p2-avgpool3s2p1-gap-flatten-bn-10", "2-leakyrelu0.2-drop0.5-1", "1x2x2-maxpool2p1-flatten-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSpec(%q) accepted %s, which Validate refuses: %v", in, s, err)
		}
		again, err := ParseSpec(s.String())
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseSpec(%q) = %s does not round-trip: %+v, %v", in, s, again, err)
		}
	})
}
