package nn

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

func buildModel(t testing.TB, dev device.Device, spec string, init Init, seed uint64) *Sequential {
	t.Helper()
	s, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(dev, s, init, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Free() })
	return m
}

func TestSequentialStateDictNames(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "784-256-relu-128-relu-10", Init{}, 1)
	want := []struct {
		name  string
		shape []int
	}{
		{"0.weight", []int{256, 784}}, {"0.bias", []int{256}},
		{"2.weight", []int{128, 256}}, {"2.bias", []int{128}},
		{"4.weight", []int{10, 128}}, {"4.bias", []int{10}},
	}
	ps := m.Params()
	if len(ps) != len(want) {
		t.Fatalf("%d params, expected %d", len(ps), len(want))
	}
	off := 0
	for i, w := range want {
		p := ps[i]
		if p.Name != w.name || !slices.Equal(p.Shape, w.shape) || p.Offset != off {
			t.Errorf("param %d: %s %v at %d, expected %s %v at %d", i, p.Name, p.Shape, p.Offset, w.name, w.shape, off)
		}
		off += p.Len()
	}
	if m.NumParams() != off || off != 784*256+256+256*128+128+128*10+10 {
		t.Errorf("NumParams %d, expected %d", m.NumParams(), off)
	}
	vals, grads := m.Flat()
	if vals.Len() != off || grads.Len() != off {
		t.Errorf("flat buffers %d and %d elements, expected %d", vals.Len(), grads.Len(), off)
	}
	if len(m.Layers()) != 5 {
		t.Errorf("%d layers, expected 5", len(m.Layers()))
	}
	// Each param's Value is a view of the flat buffer at Offset.
	p := m.Param("2.bias")
	if err := dev.Fill(p.Value(), p.Len(), 7); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 1)
	if err := dev.ReadF32(got, vals, p.Offset+p.Len()-1); err != nil {
		t.Fatal(err)
	}
	if got[0] != 7 {
		t.Errorf("flat buffer at 2.bias's last element is %v, expected 7 written through the view", got[0])
	}
}

// refMLP runs a Sequential's spec on the host in float64 from a flat
// parameter vector; mask gives the dropout multiplier at a dropout layer's
// element i (its n-th dropout layer), nil in evaluation mode.
func refMLP(s Spec, flat []float64, x []float64, rows int, mask func(layer, i int) float64) []float64 {
	width, off := s.In, 0
	for li, l := range s.Layers {
		switch l.Kind {
		case LinearLayer:
			w := flat[off : off+l.Units*width]
			b := flat[off+l.Units*width : off+l.Units*width+l.Units]
			off += l.Units*width + l.Units
			x = refLinear(x, w, b, rows, width, l.Units)
			width = l.Units
		case ActivationLayer:
			y := make([]float64, len(x))
			for i, v := range x {
				y[i] = refAct(l.Act, float64(l.Alpha), v)
			}
			x = y
		case SoftmaxLayer:
			x = refSoftmax(x, rows, width)
		case DropoutLayer:
			if mask != nil {
				y := make([]float64, len(x))
				for i, v := range x {
					y[i] = v * mask(li, i)
				}
				x = y
			}
		}
	}
	return x
}

// TestSequentialGradients checks a whole model's parameter gradients, as
// accumulated in the flat gradient buffer, against central differences of
// the float64 host model (tolerances of GradCheckConfig's defaults:
// |a−n| ≤ 1e-5 + 1e-4·|n|, float32 analytic gradients). Dropout draws its
// mask from the graph's stream; the reference reads the same positions.
func TestSequentialGradients(t *testing.T) {
	dev := openCPU(t)
	const spec = "3-6-tanh-5-leakyrelu0.2-drop0.25-4-gelu-3"
	m := buildModel(t, dev, spec, Init{}, 42)
	const rows, seed, p = 7, 5, 0.25
	r := rng(11)
	x := rounded(r.uniform(rows*m.Spec().In, -1.5, 1.5))
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(r.next() % 3)
	}
	xb := upload(t, dev, f32s(x))
	lb := uploadI32(t, dev, labels)

	g := NewGraph(dev)
	defer g.Free()
	g.SetRNG(seed, 0)
	if err := m.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	xt, err := g.Input(xb, rows, m.Spec().In)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(g, xt)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := g.Loss(device.SoftmaxCrossEntropy, out, lb)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	vals, grads := m.Flat()
	flat32 := make([]float32, m.NumParams())
	an := make([]float32, m.NumParams())
	if err := dev.ReadF32(flat32, vals, 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.ReadF32(an, grads, 0); err != nil {
		t.Fatal(err)
	}
	flat := make([]float64, len(flat32))
	for i, v := range flat32 {
		flat[i] = float64(v)
	}
	mask := func(layer, i int) float64 { return float64(device.DropoutAt(seed, uint64(i), p)) }
	f := func() float64 {
		return refLoss(device.SoftmaxCrossEntropy, refMLP(m.Spec(), flat, x, rows, mask), nil, labels, rows, 3)
	}
	lv, _ := loss.Values()
	if d := math.Abs(float64(lv[0]) - f()); d > 1e-5*(1+math.Abs(f())) { // float32 forward pass
		t.Errorf("loss %v, float64 reference %v", lv[0], f())
	}
	const h = 1e-6
	bad := 0
	for i := range flat {
		o := flat[i]
		flat[i] = o + h
		fp := f()
		flat[i] = o - h
		fm := f()
		flat[i] = o
		num := (fp - fm) / (2 * h)
		if d := math.Abs(float64(an[i]) - num); d > 1e-5+1e-4*math.Abs(num) {
			if bad++; bad < 10 {
				t.Errorf("grad[%d]: analytic %v, numerical %v", i, an[i], num)
			}
		}
	}
	// Backward accumulates: a second step without ZeroGrad doubles the grads.
	g.Reset()
	g.SetRNG(seed, 0)
	xt, _ = g.Input(xb, rows, m.Spec().In)
	out, _ = m.Forward(g, xt)
	loss, _ = g.Loss(device.SoftmaxCrossEntropy, out, lb)
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	twice := make([]float32, m.NumParams())
	if err := dev.ReadF32(twice, grads, 0); err != nil {
		t.Fatal(err)
	}
	for i := range twice {
		// 2·a computed again in float32: equal to a few ulps.
		if d := math.Abs(float64(twice[i]) - 2*float64(an[i])); d > 1e-6*(1+math.Abs(float64(an[i]))) {
			t.Fatalf("grad[%d] after two backward passes %v, expected 2×%v (accumulation)", i, twice[i], an[i])
		}
	}
}

func TestDropoutEvalIsIdentity(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "4-drop0.5-3", Init{}, 1)
	r := rng(12)
	x := r.uniform(8, -1, 1)
	xb := upload(t, dev, f32s(x))
	run := func() []float32 {
		g := NewGraph(dev)
		defer g.Free()
		xt, _ := g.Input(xb, 2, 4)
		y, err := m.Forward(g, xt)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := y.Values()
		return v
	}
	train := run()
	m.SetTraining(false)
	eval := run()
	vals, _ := m.StateDict()
	var flat []float64
	for _, n := range vals.Names {
		for _, v := range vals.Tensors[n].Data {
			flat = append(flat, float64(v))
		}
	}
	want := refMLP(m.Spec(), flat, rounded(x), 2, nil)
	for i := range want {
		if math.Abs(float64(eval[i])-want[i]) > 1e-6 { // float32 sums of 4 terms
			t.Fatalf("eval output %v, expected %v (dropout off)", eval, want)
		}
	}
	if slices.Equal(train, eval) {
		t.Errorf("training output equals evaluation output: dropout p=0.5 did nothing")
	}
}

func TestSetFrozen(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "3-4-relu-2", Init{}, 3)
	if err := m.SetFrozen(true, "0.weight", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "0.bias") {
		t.Fatalf("unknown name: expected an error naming it and the known names, got %v", err)
	}
	if m.Param("0.weight").Frozen {
		t.Fatal("a failed SetFrozen changed a parameter")
	}
	if err := m.SetFrozen(true, "0.weight"); err != nil {
		t.Fatal(err)
	}
	m.Param("2.bias").Frozen = true // setting the field directly works too
	xb := upload(t, dev, []float32{1, -2, 0.5, 0.3, 0.2, -0.1})
	yb := upload(t, dev, []float32{1, 0, 0, 1})
	g := NewGraph(dev)
	defer g.Free()
	_ = m.ZeroGrad()
	xt, _ := g.Input(xb, 2, 3)
	out, _ := m.Forward(g, xt)
	loss, _ := g.Loss(device.MSE, out, yb)
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		gv, _ := p.GradValues()
		nonzero := slices.ContainsFunc(gv, func(v float32) bool { return v != 0 })
		if p.Frozen == nonzero {
			t.Errorf("%s (frozen %v): gradient %v", p.Name, p.Frozen, gv)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dev := openCPU(t)
	if _, err := Build(dev, Spec{In: 3, Layers: []LayerSpec{{Kind: ActivationLayer, Act: device.ReLU}}}, Init{}, 0); err == nil || !strings.Contains(err.Error(), "no Linear") {
		t.Errorf("spec without Linear: %v", err)
	}
	if _, err := Build(dev, Spec{In: 0, Layers: []LayerSpec{{Kind: LinearLayer, Units: 2}}}, Init{}, 0); err == nil {
		t.Error("input width 0 accepted")
	}
	if _, err := Build(dev, MustParseSpec("2-3"), Init{Weight: InitNormal}, 0); err == nil || !strings.Contains(err.Error(), "Std") {
		t.Errorf("normal init without Std: %v", err)
	}
}
