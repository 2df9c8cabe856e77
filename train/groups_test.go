package train

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/internal/race"
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
	// A fresh optimiser restored from that state continues exactly as the
	// original: same per-parameter step counts, same split into runs.
	o2, err := NewAdam(ps, device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Free()
	if err := o2.LoadState(st); err != nil {
		t.Fatal(err)
	}
	save := psValues(t, ps)
	gradsFor(t, ps, 10)
	if err := o.Step(); err != nil {
		t.Fatal(err)
	}
	want := psValues(t, ps)
	vals, _ := ps.Flat()
	if err := dev.WriteF32(vals, 0, save); err != nil {
		t.Fatal(err)
	}
	if err := o2.Step(); err != nil {
		t.Fatal(err)
	}
	if len(o2.runs) != 2 {
		t.Errorf("restored optimiser: %d runs, want 2", len(o2.runs))
	}
	sameBits(t, "restored optimiser step", want, psValues(t, ps))
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
	}); a != 0 && !race.Enabled {
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

// TestOptimizerStateFile: per-parameter tensors are assembled by name;
// a missing parameter, an unknown one and a wrong length are all reported
// together; the first format (one flat tensor per moment) still loads.
func TestOptimizerStateFile(t *testing.T) {
	dev := openCPU(t)
	n := newNested(3, 5, 4, 2, 0, false)
	ps := nestedSet(t, dev, n, 4)
	oj := optimizerJSON{Kind: "adam", Step: 3, LR: 0.01}
	sd := &nn.StateDict{Tensors: map[string]nn.HostTensor{}}
	for _, p := range ps.Params() {
		for _, m := range []string{"exp_avg", "exp_avg_sq"} {
			d := make([]float32, p.Len())
			for i := range d {
				d[i] = float32(p.Offset + i)
			}
			sd.Names = append(sd.Names, "optimizer."+p.Name+"."+m)
			sd.Tensors["optimizer."+p.Name+"."+m] = nn.HostTensor{Shape: p.Shape, Data: d}
		}
	}
	ost, err := optimizerState(ps, oj, sd)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range ost.Buffers["exp_avg_sq"] {
		if v != float32(i) {
			t.Fatalf("exp_avg_sq[%d] = %v, want %d (placed at each parameter's offset)", i, v, i)
		}
	}
	bad := &nn.StateDict{Tensors: map[string]nn.HostTensor{}}
	for _, k := range sd.Names {
		if k != "optimizer.head.bias.exp_avg" {
			bad.Names = append(bad.Names, k)
			bad.Tensors[k] = sd.Tensors[k]
		}
	}
	bad.Names = append(bad.Names, "optimizer.nope.exp_avg", "optimizer.features.0.bias.exp_avg_sq")
	bad.Tensors["optimizer.nope.exp_avg"] = nn.HostTensor{Shape: []int{1}, Data: []float32{0}}
	bad.Tensors["optimizer.features.0.bias.exp_avg_sq"] = nn.HostTensor{Shape: []int{1}, Data: []float32{0}}
	_, err = optimizerState(ps, oj, bad)
	for _, w := range []string{"optimizer.head.bias.exp_avg is missing", `"optimizer.nope.exp_avg" names no parameter`, `"optimizer.features.0.bias.exp_avg_sq" has 1 values, expected 5`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
	legacy := &nn.StateDict{Names: []string{"optimizer.exp_avg"}, Tensors: map[string]nn.HostTensor{
		"optimizer.exp_avg": {Shape: []int{ps.NumParams()}, Data: make([]float32, ps.NumParams())}}}
	if ost, err := optimizerState(ps, oj, legacy); err != nil || len(ost.Buffers["exp_avg"]) != ps.NumParams() {
		t.Errorf("first-format state: %v", err)
	}
}

const torchAdamWGroups = `
import struct, sys, torch
torch.set_default_dtype(torch.float64)
f = open(sys.argv[1], "rb").read()
vals = struct.unpack("<%dd" % (len(f) // 8), f)
pos = 0
def take(k):
    global pos
    out = vals[pos:pos + k]; pos += k
    return out
nparams, steps, decoupled = [int(v) for v in take(3)]
b1, b2, eps = take(3)
params, groups = [], {}
for _ in range(nparams):
    n, gi, lr, wd = take(4)
    p = torch.nn.Parameter(torch.tensor(take(int(n))))
    params.append(p)
    groups.setdefault(int(gi), {"params": [], "lr": lr, "weight_decay": wd})["params"].append(p)
cls = torch.optim.AdamW if decoupled else torch.optim.Adam
opt = cls(list(groups.values()), betas=(b1, b2), eps=eps)
base = [g["lr"] for g in opt.param_groups]
for s in range(steps):
    (scale,) = take(1)
    for g, b in zip(opt.param_groups, base):
        g["lr"] = b * scale
    for p in params:
        p.grad = torch.tensor(take(p.numel()))
    opt.step()
out = b"".join(struct.pack("<%dd" % p.numel(), *p.detach().tolist()) for p in params)
open(sys.argv[2], "wb").write(out)
`

// TestParamGroupsMatchTorch runs the same param_groups (decay, no_decay,
// a head group with its own rate and decay) through torch.optim.AdamW and
// Adam in float64 and compares kiln's float32 run with it (1e-5 absolute,
// the float32 accumulated error over 8 steps of O(0.01) updates).
func TestParamGroupsMatchTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch comparison in -short mode")
	}
	requireTorch(t)
	dev := openCPU(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "adamw.py")
	if err := os.WriteFile(script, []byte(torchAdamWGroups), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, decoupled := range []bool{true, false} {
		n := newNested(3, 5, 4, 2, 0, false)
		ps := nestedSet(t, dev, n, 9)
		dg := DecayGroups(ps, 0.1)
		notHead := func(g ParamGroup) ParamGroup {
			g.Params = slices.DeleteFunc(slices.Clone(g.Params), func(p *nn.Param) bool { return strings.HasPrefix(p.Name, "head.") })
			return g
		}
		head := ParamGroup{Name: "head", Params: []*nn.Param{n.head.Weight, n.head.Bias}, LR: 0.03, WeightDecay: 0.2}
		groups := []ParamGroup{notHead(dg[0]), notHead(dg[1]), head}
		cfg := device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01, Decoupled: decoupled}
		o, err := NewAdam(ps, cfg, groups...)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Free()
		const steps = 8
		var in []float64
		put := func(v ...float64) { in = append(in, v...) }
		dec := 0.0
		if decoupled {
			dec = 1
		}
		put(float64(len(ps.Params())), steps, dec, 0.9, 0.99, 1e-8)
		start := psValues(t, ps)
		for _, p := range ps.Params() {
			gi, lr, wd := 1.0, 0.01, 0.0
			switch {
			case strings.HasPrefix(p.Name, "head."):
				gi, lr, wd = 2, 0.03, 0.2
			case len(p.Shape) >= 2:
				gi, wd = 0, 0.1
			}
			put(float64(p.Len()), gi, float64(float32(lr)), float64(float32(wd)))
			for _, v := range start[p.Offset : p.Offset+p.Len()] {
				put(float64(v))
			}
		}
		for s := 1; s <= steps; s++ {
			scale := 1.0
			if s > 4 {
				scale = 0.5
				o.SetLR(0.005)
			}
			put(scale)
			g := gradsFor(t, ps, s)
			for _, p := range ps.Params() {
				put(g[p.Offset : p.Offset+p.Len()]...)
			}
			if err := o.Step(); err != nil {
				t.Fatal(err)
			}
		}
		inPath, outPath := filepath.Join(dir, "in.f64"), filepath.Join(dir, "out.f64")
		var raw []byte
		for _, v := range in {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
		}
		if err := os.WriteFile(inPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := exec.Command(python, script, inPath, outPath).CombinedOutput(); err != nil {
			t.Fatalf("torch: %v\n%s", err, o)
		}
		b, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, len(b)/8)
		for i := range want {
			want[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		if len(want) != ps.NumParams() {
			t.Fatalf("torch returned %d values, want %d", len(want), ps.NumParams())
		}
		closeTo(t, "kiln vs torch param_groups", psValues(t, ps), want)
	}
}

// requireTorch skips without /usr/bin/python3 and torch, except under
// CI=true, where the test must run and so fails.
func requireTorch(t *testing.T) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if _, err := os.Stat(python); err != nil {
		fail("PyTorch test: %s not found", python)
	}
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		fail("PyTorch test: %s cannot import torch (install Debian's python3-torch): %s", python, out)
	}
}

const python = "/usr/bin/python3"

// counter is an identity module with a buffer and int64 extra state that
// change in every training forward (as BatchNorm's running statistics and
// num_batches_tracked do), so checkpoints must carry both.
type counter struct {
	seen    *nn.Param
	tracked int64
	train   bool
}

func (c *counter) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	if c.train {
		c.tracked++
		if err := g.Device().Fill(c.seen.Value(), 1, float32(c.tracked)*0.5); err != nil {
			return nil, err
		}
	}
	return x, nil
}
func (c *counter) Children() []nn.Child   { return nil }
func (c *counter) OwnParams() []*nn.Param { return []*nn.Param{c.seen} }
func (c *counter) SetTraining(t bool)     { c.train = t }
func (c *counter) ExtraState() []nn.NamedHost {
	return []nn.NamedHost{{Local: "num_batches_tracked", Tensor: nn.HostTensor{Shape: []int{}, DType: nn.HostI64, Int64: []int64{c.tracked}}}}
}
func (c *counter) SetExtraState(_ string, t nn.HostTensor) error {
	c.tracked = t.Int64[0]
	return nil
}

// TestResumeWithBuffersAndExtraState: checkpoints of a model with a buffer
// and int64 extra state restore both, so the resumed run ends identical.
func TestResumeWithBuffersAndExtraState(t *testing.T) {
	dev := openCPU(t)
	trainSet := blobs(40, 0)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	run := func(epochs int, ckpt string, load bool) (*counter, *nn.ParamSet) {
		c := &counter{seen: nn.NewBuffer("seen", nn.ZerosInit(), 1)}
		m := nn.NewSequential(nn.NewLinear(4, 6, true), &nn.Activation{Act: device.ReLU}, c, nn.NewLinear(6, 3, true))
		ps := nestedSet(t, dev, &nested{features: m, head: nn.NewLinear(3, 3, true)}, 3)
		o, err := NewSGD(ps, device.SGDConfig{LR: 0.05, Momentum: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Free() })
		tr, err := NewModelTrainer(dev, Model{Module: ps.Root(), Params: ps, InputShape: []int{4}, Outputs: 3}, o, resumeConfig(epochs, ckpt))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Free() })
		if load {
			if err := tr.LoadCheckpoint(ckpt); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Fit(trainSet, nil); err != nil {
			t.Fatal(err)
		}
		return c, ps
	}
	wc, wps := run(4, "", false)
	run(2, path, false)
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := sd.Tensors["features.2.num_batches_tracked"]; n.DType != nn.HostI64 || len(n.Int64) != 1 || n.Int64[0] != 10 {
		t.Errorf("checkpoint num_batches_tracked %+v, want I64 10 after 2 epochs", n)
	}
	rc, rps := run(4, path, true)
	if wc.tracked != 20 || rc.tracked != wc.tracked {
		t.Errorf("num_batches_tracked: resumed %d, uninterrupted %d, want 20 (4 epochs × 5 batches)", rc.tracked, wc.tracked)
	}
	a, _ := wps.StateDict()
	b, _ := rps.StateDict()
	for _, name := range a.Names {
		if a.Tensors[name].DType == nn.HostF32 {
			sameBits(t, name, a.Tensors[name].Data, b.Tensors[name].Data)
		}
	}
	if v := b.Tensors["features.2.seen"].Data; len(v) != 1 || v[0] != 10 {
		t.Errorf("buffer features.2.seen = %v after resume, want [10]", v)
	}
}
