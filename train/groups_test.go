package train

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// nested is a module with named children, as a PyTorch module with
// attributes: features (Linear, Tanh, Dropout, Linear) then head (Linear).
// reversed lists the children head first, which changes the state_dict
// order and so the flat layout, but not the names nor the computation.
type nested struct {
	features *nn.Sequential
	head     *nn.Linear
	reversed bool
}

func newNested(in, hidden, mid, out int, drop float32, reversed bool) *nested {
	return &nested{
		features: nn.NewSequential(nn.NewLinear(in, hidden, true), &nn.Activation{Act: device.Tanh},
			&nn.Dropout{P: drop, Training: true}, nn.NewLinear(hidden, mid, true)),
		head:     nn.NewLinear(mid, out, true),
		reversed: reversed,
	}
}

func (n *nested) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	x, err := n.features.Forward(g, x)
	if err != nil {
		return nil, err
	}
	return n.head.Forward(g, x)
}
func (n *nested) Children() []nn.Child {
	if n.reversed {
		return []nn.Child{{Name: "head", Module: n.head}, {Name: "features", Module: n.features}}
	}
	return []nn.Child{{Name: "features", Module: n.features}, {Name: "head", Module: n.head}}
}
func (n *nested) OwnParams() []*nn.Param { return nil }
func (n *nested) SetTraining(bool)       {}

func nestedSet(t *testing.T, dev device.Device, n *nested, seed uint64) *nn.ParamSet {
	t.Helper()
	ps, err := nn.NewParamSet(dev, n, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Free() })
	return ps
}

func psValues(t *testing.T, ps *nn.ParamSet) []float32 {
	t.Helper()
	v, _ := ps.Flat()
	out := make([]float32, v.Len())
	if err := ps.Device().ReadF32(out, v, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

// adamRef is a float64 transcription of torch.optim.AdamW (Decoupled) or
// Adam with per-element learning rate, weight decay and step count — what
// param_groups and per-parameter state give in PyTorch.
type adamRef struct {
	b1, b2, eps float64
	decoupled   bool
	m, v        []float64
	t           []int
}

func (r *adamRef) step(p, g, lr, wd []float64, trainable []bool) {
	if r.m == nil {
		r.m, r.v, r.t = make([]float64, len(p)), make([]float64, len(p)), make([]int, len(p))
	}
	for i := range p {
		if !trainable[i] {
			continue
		}
		r.t[i]++
		gi := g[i]
		if r.decoupled {
			p[i] *= 1 - lr[i]*wd[i]
		} else {
			gi += wd[i] * p[i]
		}
		r.m[i] = r.b1*r.m[i] + (1-r.b1)*gi
		r.v[i] = r.b2*r.v[i] + (1-r.b2)*gi*gi
		bc1 := 1 - math.Pow(r.b1, float64(r.t[i]))
		bc2 := 1 - math.Pow(r.b2, float64(r.t[i]))
		p[i] -= lr[i] / bc1 * r.m[i] / (math.Sqrt(r.v[i])/math.Sqrt(bc2) + r.eps)
	}
}

// perElem spreads a per-parameter value over the flat layout.
func perElem(ps *nn.ParamSet, f func(p *nn.Param) float64) []float64 {
	out := make([]float64, ps.NumParams())
	for _, p := range ps.Params() {
		for i := p.Offset; i < p.Offset+p.Len(); i++ {
			out[i] = f(p)
		}
	}
	return out
}

// gradsFor writes known gradients of step s into the flat gradient buffer.
func gradsFor(t *testing.T, ps *nn.ParamSet, s int) []float64 {
	t.Helper()
	_, grads := ps.Flat()
	g32 := make([]float32, ps.NumParams())
	g64 := make([]float64, len(g32))
	for i := range g32 {
		g32[i] = float32(math.Sin(float64(i*7+s*3))) * 0.5
		g64[i] = float64(g32[i])
	}
	if err := ps.Device().WriteF32(grads, 0, g32); err != nil {
		t.Fatal(err)
	}
	return g64
}

func closeTo(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	for i := range got {
		// float32 arithmetic over ≤ 10 steps of O(0.01) updates: 1e-5
		// absolute is ~100 ulps of the values.
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5 {
			t.Fatalf("%s: element %d: %v, float64 reference %v (diff %.3g > 1e-5)", what, i, got[i], want[i], d)
		}
	}
}

// TestParamGroupsAdamW: nanoGPT's decay/no_decay split plus a head group
// with twice the rate and its own decay, and one parameter left in the
// default group, against a float64 AdamW with those param_groups; then
// SetLR halves every group's rate in proportion.
func TestParamGroupsAdamW(t *testing.T) {
	dev := openCPU(t)
	for _, decoupled := range []bool{true, false} {
		n := newNested(3, 5, 4, 2, 0, false)
		ps := nestedSet(t, dev, n, 4)
		dg := DecayGroups(ps, 0.1)
		var names []string
		for _, p := range dg[0].Params {
			names = append(names, p.Name)
		}
		if !slices.Equal(names, []string{"features.0.weight", "features.3.weight", "head.weight"}) || len(dg[1].Params) != 3 || dg[1].WeightDecay != 0 {
			t.Fatalf("DecayGroups: decay %v, no_decay %d params", names, len(dg[1].Params))
		}
		head := ParamGroup{Name: "head", Params: []*nn.Param{n.head.Weight, n.head.Bias}, LR: 0.02, WeightDecay: 0.05}
		strip := func(g ParamGroup) ParamGroup {
			g.Params = slices.DeleteFunc(slices.Clone(g.Params), func(p *nn.Param) bool {
				return strings.HasPrefix(p.Name, "head.") || p.Name == "features.0.bias"
			})
			return g
		}
		groups := []ParamGroup{strip(dg[0]), strip(dg[1]), head}
		cfg := device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01, Decoupled: decoupled}
		o, err := NewAdam(ps, cfg, groups...)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Free()
		group := func(p *nn.Param) string {
			switch {
			case strings.HasPrefix(p.Name, "head."):
				return "head"
			case p.Name == "features.0.bias":
				return "default"
			case len(p.Shape) >= 2:
				return "decay"
			}
			return "no_decay"
		}
		lrOf := map[string]float64{"head": 0.02, "default": 0.01, "decay": 0.01, "no_decay": 0.01}
		wdOf := map[string]float64{"head": 0.05, "default": 0.01, "decay": 0.1, "no_decay": 0}
		wd := perElem(ps, func(p *nn.Param) float64 { return wdOf[group(p)] })
		trainable := make([]bool, ps.NumParams())
		for i := range trainable {
			trainable[i] = true
		}
		p64 := make([]float64, ps.NumParams())
		for i, v := range psValues(t, ps) {
			p64[i] = float64(v)
		}
		ref := &adamRef{b1: 0.9, b2: 0.99, eps: 1e-8, decoupled: decoupled}
		scale := 1.0
		for s := 1; s <= 8; s++ {
			if s == 5 {
				o.SetLR(0.005)
				scale = 0.5
				if lr, _ := o.GroupLR("head"); lr != 0.01 {
					t.Errorf("head group rate after SetLR(0.005): %v, want 0.01", lr)
				}
			}
			lr := perElem(ps, func(p *nn.Param) float64 { return float64(float32(lrOf[group(p)] * scale)) })
			g := gradsFor(t, ps, s)
			if err := o.Step(); err != nil {
				t.Fatal(err)
			}
			ref.step(p64, g, lr, wd, trainable)
		}
		closeTo(t, "AdamW groups", psValues(t, ps), p64)
		// One launch per contiguous run of one group: f0.w | f0.b | f3.w | f3.b | head.
		if len(o.runs) != 5 {
			t.Errorf("%d runs, want 5", len(o.runs))
		}
	}
}

func TestParamGroupErrors(t *testing.T) {
	dev := openCPU(t)
	n := newNested(3, 5, 4, 2, 0, false)
	ps := nestedSet(t, dev, n, 4)
	other := nn.NewLinear(2, 2, true)
	ops := nestedSet(t, dev, &nested{features: nn.NewSequential(other), head: nn.NewLinear(2, 2, true)}, 0)
	_ = ops
	for name, groups := range map[string][]ParamGroup{
		"twice":     {{Name: "a", Params: []*nn.Param{n.head.Weight}}, {Name: "b", Params: []*nn.Param{n.head.Weight}}},
		"foreign":   {{Name: "a", Params: []*nn.Param{other.Weight}}},
		"negative":  {{Name: "a", LR: -1}},
		"nil param": {{Name: "a", Params: []*nn.Param{nil}}},
	} {
		if o, err := NewAdam(ps, DefaultAdamW(0.01), groups...); err == nil {
			o.Free()
			t.Errorf("%s: no error", name)
		}
	}
}

// TestFreezeAfterConstruction: freezing a parameter after the optimiser
// was made takes effect at the next step (the parameter stops moving), and
// unfreezing resumes it with its own step count, as PyTorch's per-parameter
// state does (the bias correction counts only the parameter's updates).
func TestFreezeAfterConstruction(t *testing.T) {
	dev := openCPU(t)
	n := newNested(3, 5, 4, 2, 0, false)
	ps := nestedSet(t, dev, n, 6)
	o, err := NewAdam(ps, device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	c, err := NewGradClipper(ps, 1e9) // never clips: checks only that it follows Frozen
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	p64 := make([]float64, ps.NumParams())
	for i, v := range psValues(t, ps) {
		p64[i] = float64(v)
	}
	lr := perElem(ps, func(*nn.Param) float64 { return 0.01 })
	wd := make([]float64, ps.NumParams())
	ref := &adamRef{b1: 0.9, b2: 0.999, eps: 1e-8}
	w := ps.Lookup("features.0.weight")
	var frozenAt []float32
	for s := 1; s <= 9; s++ {
		switch s {
		case 3:
			w.Frozen = true // directly, after construction
		case 6:
			if err := ps.SetFrozen(false, "features.0.weight"); err != nil {
				t.Fatal(err)
			}
		}
		if s == 4 {
			frozenAt = psValues(t, ps)[w.Offset : w.Offset+w.Len()]
		}
		trainable := perElemBool(ps)
		g := gradsFor(t, ps, s)
		if err := c.Clip(); err != nil {
			t.Fatal(err)
		}
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
		ref.step(p64, g, lr, wd, trainable)
		if s == 3 && len(o.runs) != 1 {
			t.Errorf("with the first parameter frozen: %d runs, want 1", len(o.runs))
		}
		if s == 5 {
			if got := psValues(t, ps)[w.Offset : w.Offset+w.Len()]; !slices.Equal(got, frozenAt) {
				t.Error("a frozen parameter moved")
			}
		}
		if s == 6 && len(o.runs) != 2 {
			// features.0.weight has 3 fewer steps than the others: its
			// own launch.
			t.Errorf("after unfreezing: %d runs, want 2", len(o.runs))
		}
	}
	closeTo(t, "freeze after construction", psValues(t, ps), p64)
	st, err := o.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 9 || st.ParamSteps["features.0.weight"] != 6 || len(st.ParamSteps) != 1 {
		t.Errorf("state: step %d, param steps %v; want 9 and features.0.weight: 6", st.Step, st.ParamSteps)
	}
}

func perElemBool(ps *nn.ParamSet) []bool {
	out := make([]bool, ps.NumParams())
	for _, p := range ps.Params() {
		for i := p.Offset; i < p.Offset+p.Len(); i++ {
			out[i] = !p.Frozen
		}
	}
	return out
}

// TestSteadyStepNoAllocs: a whole training step of a nested model (zero
// grad, forward with dropout, loss, backward, clipping, AdamW with groups)
// makes no device allocation once warm, and the optimiser and clipper
// steps make no Go allocation either.
func TestSteadyStepNoAllocs(t *testing.T) {
	dev := openCPU(t)
	n := newNested(4, 16, 8, 3, 0.2, false)
	ps := nestedSet(t, dev, n, 2)
	o, err := NewAdamW(ps, DefaultAdamW(0.01), DecayGroups(ps, 0.1)...)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	c, err := NewGradClipper(ps, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	x := make([]float32, 8*4)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	xb, _ := dev.Alloc(device.Float32, len(x))
	yb, _ := dev.Alloc(device.Int32, 8)
	defer dev.Free(xb)
	defer dev.Free(yb)
	if err := dev.WriteF32(xb, 0, x); err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteI32(yb, 0, []int32{0, 1, 2, 0, 1, 2, 0, 1}); err != nil {
		t.Fatal(err)
	}
	g := nn.NewGraph(dev)
	defer g.Free()
	step := func() {
		defer g.Reset()
		if err := ps.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		xt, _ := g.Input(xb, 8, 4)
		y, err := n.Forward(g, xt)
		if err != nil {
			t.Fatal(err)
		}
		l, err := g.Loss(device.SoftmaxCrossEntropy, y, yb)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(l); err != nil {
			t.Fatal(err)
		}
		if err := c.Clip(); err != nil {
			t.Fatal(err)
		}
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		step()
	}
	before := dev.Stats()
	for i := 0; i < 5; i++ {
		step()
	}
	after := dev.Stats()
	if after.SystemAllocs != before.SystemAllocs || after.Allocs != before.Allocs {
		t.Errorf("steady steps allocated on the device: Allocs %d → %d, SystemAllocs %d → %d",
			before.Allocs, after.Allocs, before.SystemAllocs, after.SystemAllocs)
	}
	if a := testing.AllocsPerRun(10, func() {
		if err := c.Clip(); err != nil {
			t.Fatal(err)
		}
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("clip + optimiser step: %v Go allocations per step, want 0", a)
	}
}

// TestNestedResumeByName: a nested model with dropout, AdamW param groups,
// clipping and shuffling trains 4 epochs in one go; the same run stopped
// after 2 epochs, checkpointed, and resumed into a model whose children
// are listed in the other order (so every parameter sits at another flat
// offset) ends with bit-identical weights: model and optimiser state are
// matched by name.
func TestNestedResumeByName(t *testing.T) {
	dev := openCPU(t)
	trainSet, valSet := blobs(40, 0), blobs(12, 1)
	path := filepath.Join(t.TempDir(), "nested.safetensors")
	run := func(reversed bool, seed uint64, epochs int, ckpt string, load bool) (*nested, *nn.ParamSet) {
		n := newNested(4, 16, 8, 3, 0.3, reversed)
		ps := nestedSet(t, dev, n, seed)
		o, err := NewAdamW(ps, DefaultAdamW(0.01), DecayGroups(ps, 0.1)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Free() })
		cfg := resumeConfig(epochs, ckpt)
		tr, err := NewModelTrainer(dev, Model{Module: n, Params: ps, Outputs: 3}, o, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Free() })
		if load {
			if err := tr.LoadCheckpoint(ckpt); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Fit(trainSet, valSet); err != nil {
			t.Fatal(err)
		}
		return n, ps
	}
	wn, wps := run(false, 1, 4, "", false)
	run(false, 1, 2, path, false)
	rn, rps := run(true, 77, 4, path, true)
	if wps.Params()[0].Name != "features.0.weight" || rps.Params()[0].Name != "head.weight" {
		t.Fatal("the reversed model does not have another layout")
	}
	for _, p := range wps.Params() {
		a, _ := p.Values()
		b, _ := rps.Lookup(p.Name).Values()
		sameBits(t, p.Name, a, b)
	}
	_, _ = wn, rn
	ssd, err := nn.LoadSafetensors(StatePath(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ssd.Tensors["optimizer.features.0.weight.exp_avg"]; !ok || len(ssd.Tensors) != 2*len(wps.Params()) {
		t.Errorf("state file tensors %v, want optimizer.<param>.<moment> for every parameter", ssd.Names)
	}
}
