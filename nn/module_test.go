package nn

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// fakeNorm has BatchNorm1d's state_dict layout (weight, bias, running_mean,
// running_var and the int64 num_batches_tracked as extra state) and is the
// identity in Forward: it exercises buffers and Stateful without the norm
// ops, which are not this file's subject.
type fakeNorm struct {
	Weight, Bias, Mean, Var *Param
	Tracked                 int64
	training                bool
}

func newFakeNorm(n int) *fakeNorm {
	return &fakeNorm{
		Weight: NewParam("weight", OnesInit(), n), Bias: NewParam("bias", ZerosInit(), n),
		Mean: NewBuffer("running_mean", ZerosInit(), n), Var: NewBuffer("running_var", OnesInit(), n),
	}
}

func (f *fakeNorm) Forward(g *Graph, x *Tensor) (*Tensor, error) { return x, nil }
func (f *fakeNorm) Children() []Child                            { return nil }
func (f *fakeNorm) OwnParams() []*Param                          { return []*Param{f.Weight, f.Bias, f.Mean, f.Var} }
func (f *fakeNorm) SetTraining(t bool)                           { f.training = t }
func (f *fakeNorm) ExtraState() []NamedHost {
	return []NamedHost{{Local: "num_batches_tracked", Tensor: HostTensor{Shape: []int{}, DType: HostI64, Int64: []int64{f.Tracked}}}}
}
func (f *fakeNorm) SetExtraState(local string, t HostTensor) error {
	if local != "num_batches_tracked" || t.DType != HostI64 || len(t.Int64) != 1 {
		return fmt.Errorf("fakeNorm: bad extra state %q", local)
	}
	f.Tracked = t.Int64[0]
	return nil
}

// netModule is features (Sequential: Linear, ReLU, Dropout, Linear) → norm →
// head (Linear), as a PyTorch module with attributes features, norm, head.
type netModule struct {
	features *Sequential
	norm     *fakeNorm
	head     *Linear
}

func newNet(in, hidden, mid, out int) *netModule {
	return &netModule{
		features: NewSequential(NewLinear(in, hidden, true), &Activation{Act: device.ReLU}, &Dropout{P: 0.5, Training: true}, NewLinear(hidden, mid, true)),
		norm:     newFakeNorm(mid),
		head:     NewLinear(mid, out, true),
	}
}

func (n *netModule) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	x, err := n.features.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if x, err = n.norm.Forward(g, x); err != nil {
		return nil, err
	}
	return n.head.Forward(g, x)
}
func (n *netModule) Children() []Child {
	return []Child{{"features", n.features}, {"norm", n.norm}, {"head", n.head}}
}
func (n *netModule) OwnParams() []*Param { return nil }
func (n *netModule) SetTraining(bool)    {}

func newNetSet(t *testing.T, dev device.Device, seed uint64) (*netModule, *ParamSet) {
	t.Helper()
	n := newNet(4, 8, 6, 3)
	ps, err := NewParamSet(dev, n, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Free() })
	return n, ps
}

func TestNestedNames(t *testing.T) {
	dev := openCPU(t)
	n, ps := newNetSet(t, dev, 3)
	want := []string{"features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
		"norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "head.weight", "head.bias"}
	var got []string
	for _, p := range ps.All() {
		got = append(got, p.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if len(ps.Params()) != 8 || len(ps.Buffers()) != 2 || ps.NumParams() != 4*8+8+8*6+6+6+6+6*3+3 || ps.NumBuffers() != 12 {
		t.Errorf("params %d buffers %d, NumParams %d NumBuffers %d", len(ps.Params()), len(ps.Buffers()), ps.NumParams(), ps.NumBuffers())
	}
	if ps.Lookup("head.bias") != n.head.Bias || n.head.Bias.Local != "bias" || ps.Lookup("nope") != nil {
		t.Error("Lookup does not find head.bias by its full name")
	}
	// Flat layout: parameters back to back in state_dict order.
	off := 0
	for _, p := range ps.Params() {
		if p.Offset != off || p.Tensor == nil || p.Len() != p.numel() {
			t.Errorf("%s at %d (len %d), want offset %d", p.Name, p.Offset, p.Len(), off)
		}
		off += p.numel()
	}
	var prefixes []string
	if err := Walk(n, func(prefix string, _ Module) error { prefixes = append(prefixes, prefix); return nil }); err != nil {
		t.Fatal(err)
	}
	if w := []string{"", "features", "features.0", "features.1", "features.2", "features.3", "norm", "head"}; !slices.Equal(prefixes, w) {
		t.Errorf("Walk prefixes %v, want %v", prefixes, w)
	}
	names := func(ps []*Param) (s []string) {
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return s
	}
	if !slices.Equal(names(NamedParams(n)), want) {
		t.Errorf("NamedParams %v", names(NamedParams(n)))
	}
	sd, err := ps.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	if w := append(slices.Clone(want[:8]), "norm.num_batches_tracked", "head.weight", "head.bias"); !slices.Equal(sd.Names, w) {
		t.Errorf("state_dict names %v, want %v", sd.Names, w)
	}
	// Inits: norm weight ones, running_var ones, head.bias inside ±1/√6.
	if v, _ := n.norm.Var.Values(); v[0] != 1 || v[5] != 1 {
		t.Errorf("running_var %v, want ones", v)
	}
	b, _ := n.head.Bias.Values()
	for _, x := range b {
		if math.Abs(float64(x)) > 1/math.Sqrt(6) || x == 0 {
			t.Errorf("head.bias %v outside PyTorch's default U(±1/√6)", b)
		}
	}
	// SetTraining walks the tree: the Dropout deep inside follows.
	SetTraining(n, false)
	if n.features.Modules()[2].(*Dropout).Training || n.norm.training {
		t.Error("SetTraining(false) did not reach features.2 and norm")
	}
	SetTraining(n, true)
	if !n.features.Modules()[2].(*Dropout).Training || !n.norm.training {
		t.Error("SetTraining(true) did not reach features.2 and norm")
	}
}

// TestNewSequentialMatchesBuild: the same MLP declared with NewSequential
// and NewLinear draws bit for bit the weights Build draws (the stream
// positions rule), so today's checkpoints and seeds keep their meaning.
func TestNewSequentialMatchesBuild(t *testing.T) {
	dev := openCPU(t)
	a := buildModel(t, dev, "5-7-relu-3", Init{}, 11)
	b := NewSequential(NewLinear(5, 7, true), &Activation{Act: device.ReLU}, NewLinear(7, 3, true))
	ps, err := NewParamSet(dev, b, 11)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	if b.ParamSet() != ps {
		t.Error("NewParamSet did not attach itself to the Sequential root")
	}
	sa, _ := a.StateDict()
	sb, _ := b.StateDict()
	if !reflect.DeepEqual(sa.Tensors, sb.Tensors) {
		t.Error("NewSequential+NewLinear weights differ from Build's for the same seed")
	}
	// And the positions: parameter k starts at pos_k (rounded up to 4).
	w := make([]float32, 5*7)
	buf := upload(t, dev, w)
	lim := float32(1 / math.Sqrt(7))
	if err := dev.RandUniform(buf, 3*7, -lim, lim, 11, uint64(36+8)); err != nil { // 0.weight 35→36, 0.bias 7→8
		t.Fatal(err)
	}
	if err := dev.ReadF32(w[:21], buf, 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w[:21], sb.Tensors["2.weight"].Data) {
		t.Error("2.weight was not drawn from stream position 44")
	}
}

func TestFrozenAtForward(t *testing.T) {
	dev := openCPU(t)
	n, ps := newNetSet(t, dev, 5)
	x := upload(t, dev, testValues(2, 2*4))
	target := upload(t, dev, make([]float32, 2*3))
	step := func() {
		t.Helper()
		g := NewGraph(dev)
		defer g.Free()
		SetTraining(n, false)
		if err := ps.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		xt, _ := g.Input(x, 2, 4)
		y, err := n.Forward(g, xt)
		if err != nil {
			t.Fatal(err)
		}
		l, err := g.Loss(device.MSE, y, target)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(l); err != nil {
			t.Fatal(err)
		}
	}
	nonzero := func(p *Param) bool {
		v, err := p.GradValues()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(v, func(x float32) bool { return x != 0 })
	}
	if err := ps.SetFrozen(true, "features.", "nope.", "x"); err == nil || !strings.Contains(err.Error(), `"nope."`) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("SetFrozen with unknown names: %v, want both listed", err)
	}
	for _, p := range ps.Params() {
		if p.Frozen {
			t.Errorf("a failed SetFrozen froze %s", p.Name)
		}
	}
	if err := ps.SetFrozen(true, "features."); err != nil {
		t.Fatal(err)
	}
	n.head.Bias.Frozen = true // setting the field directly works as well
	step()
	for _, p := range ps.Params() {
		// Only head.weight is trainable and used (norm is the identity).
		if want := p.Name == "head.weight"; nonzero(p) != want {
			t.Errorf("%s (frozen %v): gradient nonzero %v, want %v", p.Name, p.Frozen, nonzero(p), want)
		}
	}
	if err := ps.SetFrozen(false, "features.0.weight"); err != nil {
		t.Fatal(err)
	}
	n.head.Bias.Frozen = false
	step()
	if !nonzero(ps.Lookup("features.0.weight")) || !nonzero(n.head.Bias) || nonzero(ps.Lookup("features.3.weight")) {
		t.Error("unfreezing did not take effect at the next forward")
	}
}

// TestLoadStateDictStrictAndPartial: strict loading lists every missing and
// unexpected key; non-strict loading of a backbone keeps a new head; a
// failing load (bad shape, bad dtype) changes nothing at all.
func TestLoadStateDictStrictAndPartial(t *testing.T) {
	dev := openCPU(t)
	src, sps := newNetSet(t, dev, 1)
	src.norm.Tracked = 42
	full, err := sps.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	full.Path = "backbone.safetensors"
	// A new model with a new head of another width.
	dst := newNet(4, 8, 6, 5)
	dps, err := NewParamSet(dev, dst, 99)
	if err != nil {
		t.Fatal(err)
	}
	defer dps.Free()
	before, _ := dps.StateDict()

	bad := &StateDict{Path: "x.safetensors", Tensors: map[string]HostTensor{}}
	for k, v := range full.Tensors {
		if !strings.HasPrefix(k, "head.") && k != "features.0.bias" && k != "norm.running_var" {
			bad.Tensors[k] = v
		}
	}
	bad.Tensors["extra.a"] = HostTensor{Shape: []int{1}, Data: []float32{1}}
	bad.Tensors["extra.b"] = HostTensor{Shape: []int{1}, Data: []float32{1}}
	_, err = dps.LoadStateDict(bad, LoadOptions{Strict: true})
	for _, w := range []string{"x.safetensors", `missing tensor "features.0.bias"`, `"norm.running_var"`, `"head.weight"`, `"head.bias"`, `"extra.a"`, `"extra.b"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("strict load: error %v lacks %s", err, w)
		}
	}
	after, _ := dps.StateDict()
	if !reflect.DeepEqual(before.Tensors, after.Tensors) {
		t.Error("a failed strict load changed the model")
	}

	// All-or-nothing: one wrong shape or dtype among good tensors.
	for name, edit := range map[string]func(sd *StateDict){
		"shape": func(sd *StateDict) {
			sd.Tensors["features.3.weight"] = HostTensor{Shape: []int{8, 6}, Data: make([]float32, 48)}
		},
		"dtype": func(sd *StateDict) {
			sd.Tensors["norm.num_batches_tracked"] = HostTensor{Shape: []int{}, Data: []float32{3}}
		},
		"i64 param": func(sd *StateDict) {
			sd.Tensors["features.0.bias"] = HostTensor{Shape: []int{8}, DType: HostI64, Int64: make([]int64, 8)}
		},
	} {
		sd := &StateDict{Path: "y.safetensors", Tensors: map[string]HostTensor{}}
		for k, v := range full.Tensors {
			if !strings.HasPrefix(k, "head.") {
				sd.Tensors[k] = v
			}
		}
		edit(sd)
		if _, err := dps.LoadStateDict(sd, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "y.safetensors") {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
		after, _ := dps.StateDict()
		if !reflect.DeepEqual(before.Tensors, after.Tensors) || dst.norm.Tracked != 0 {
			t.Errorf("%s: a failed load changed the model", name)
		}
	}

	// Non-strict backbone load: head.* of another shape left out.
	backbone := &StateDict{Tensors: map[string]HostTensor{}}
	for k, v := range full.Tensors {
		if !strings.HasPrefix(k, "head.") {
			backbone.Tensors[k] = v
		}
	}
	rep, err := dps.LoadStateDict(backbone, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Missing, []string{"head.weight", "head.bias"}) || len(rep.Unexpected) != 0 {
		t.Errorf("report %+v, want missing head.weight, head.bias", rep)
	}
	after, _ = dps.StateDict()
	for k, v := range after.Tensors {
		want := full.Tensors[k]
		if strings.HasPrefix(k, "head.") {
			want = before.Tensors[k]
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%s after the backbone load: %v, want %v", k, v, want)
		}
	}
	if dst.norm.Tracked != 42 {
		t.Errorf("num_batches_tracked %d, want 42", dst.norm.Tracked)
	}
}

func TestTiedParams(t *testing.T) {
	dev := openCPU(t)
	a := NewLinear(3, 3, false)
	b := &Linear{In: 3, Out: 3, Weight: a.Weight} // shares a's weight
	s := NewSequential(a, b)
	ps, err := NewParamSet(dev, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	if ps.NumParams() != 9 || ps.Lookup("1.weight") != a.Weight || a.Weight.Name != "0.weight" {
		t.Errorf("tied weight: NumParams %d, Lookup(1.weight) %v", ps.NumParams(), ps.Lookup("1.weight"))
	}
	sd, _ := ps.StateDict()
	if !slices.Equal(sd.Names, []string{"0.weight"}) {
		t.Errorf("state_dict of a tied model %v, want only the first name", sd.Names)
	}
	// A file that has only the later name loads, as does one with both.
	sd2 := &StateDict{Tensors: map[string]HostTensor{"1.weight": {Shape: []int{3, 3}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}}}}
	if _, err := ps.LoadStateDict(sd2, LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Weight.Values(); v[8] != 9 {
		t.Errorf("tied weight not loaded from its second name: %v", v)
	}
	if _, err := NewParamSet(dev, s, 0); err == nil {
		t.Error("placing parameters that live in another set: no error")
	}
}

func TestParamSetErrors(t *testing.T) {
	dev := openCPU(t)
	for name, m := range map[string]Module{
		"dotted local": &Linear{Weight: NewParam("w.x", ZerosInit(), 2)},
		"empty local":  &Linear{Weight: NewParam("", ZerosInit(), 2)},
		"bad shape":    &Linear{Weight: NewParam("w", ZerosInit(), 2, 0)},
		"bad init":     &Linear{Weight: NewParam("w", UniformInit(1, -1), 2)},
		"nil child":    NewSequential(nil),
		"dup names":    NewSequential(&Linear{Weight: NewParam("w", ZerosInit(), 2), Bias: NewParam("w", ZerosInit(), 2)}),
	} {
		if ps, err := NewParamSet(dev, m, 0); err == nil {
			ps.Free()
			t.Errorf("%s: no error", name)
		}
	}
	// A freed set: forward and state dict report it, no panic.
	l := NewLinear(2, 2, true)
	ps, err := NewParamSet(dev, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	ps.Free()
	g := NewGraph(dev)
	defer g.Free()
	x, _ := g.Input(upload(t, dev, []float32{1, 2}), 1, 2)
	if _, err := l.Forward(g, x); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("forward after Free: %v", err)
	}
	if _, err := ps.StateDict(); err == nil {
		t.Error("StateDict after Free: no error")
	}
	if _, err := l.Forward(g, x); err == nil {
		t.Error("a Linear whose set was freed: no error")
	}
	if _, err := NewLinear(2, 2, false).Forward(g, x); err == nil || !strings.Contains(err.Error(), "NewParamSet") {
		t.Errorf("forward of an unplaced Linear: %v", err)
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

const torchNested = `
import json, struct, sys, torch
from torch import nn
def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    h = json.loads(data[8:8+n]); body = data[8+n:]; h.pop("__metadata__", None)
    dt = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(body[s:e]), dtype=dt[v["dtype"]]).reshape(v["shape"]).clone()
    return out
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 6))
        self.norm = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)
    def forward(self, x):
        return self.head(self.features(x))
net = Net().eval()
sd = read(sys.argv[1])
assert list(sd.keys()) == list(net.state_dict().keys()), (list(sd.keys()), list(net.state_dict().keys()))
net.load_state_dict(sd, strict=True)
assert net.norm.num_batches_tracked.item() == 7 and net.norm.num_batches_tracked.dtype == torch.int64
assert torch.equal(net.norm.running_var, sd["norm.running_var"])
x = torch.frombuffer(bytearray(open(sys.argv[2], "rb").read()), dtype=torch.float32).reshape(-1, 4)
with torch.no_grad():
    open(sys.argv[3], "wb").write(net(x).numpy().astype("<f4").tobytes())
`

// TestNestedStateDictInTorch: the state_dict of a nested kiln module, with
// buffers and an int64 num_batches_tracked, loads strictly into the
// same-shaped torch module (same keys in the same order) and gives kiln's
// outputs.
func TestNestedStateDictInTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch interop in -short mode")
	}
	requireTorch(t)
	dev := openCPU(t)
	n, ps := newNetSet(t, dev, 8)
	n.norm.Tracked = 7
	if err := dev.Fill(n.norm.Var.Value(), 6, 2.5); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ckpt, in, out, script := filepath.Join(dir, "net.safetensors"), filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32"), filepath.Join(dir, "t.py")
	sd, err := ps.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSafetensors(ckpt, sd); err != nil {
		t.Fatal(err)
	}
	const rows = 5
	x := testValues(4, rows*4)
	writeF32(t, in, x)
	if err := os.WriteFile(script, []byte(torchNested), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command(python, script, ckpt, in, out).CombinedOutput(); err != nil {
		t.Fatalf("torch: %v\n%s", err, o)
	}
	g := NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	SetTraining(n, false)
	xt, _ := g.Input(upload(t, dev, x), rows, 4)
	y, err := n.Forward(g, xt)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := y.Values()
	agree(t, "nested module in torch", got, readF32(t, out))
	// And back: the file read by kiln restores everything, exactly.
	back, err := LoadSafetensors(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	n2, ps2 := newNetSet(t, dev, 1)
	if _, err := ps2.LoadStateDict(back, LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	sd2, _ := ps2.StateDict()
	if !reflect.DeepEqual(sd.Tensors, sd2.Tensors) || n2.norm.Tracked != 7 {
		t.Error("save → load round trip changed the state")
	}
}

// testValues is n values in [-2, 2) from the test generator with seed.
func testValues(seed uint64, n int) []float32 {
	r := rng(seed)
	return f32s(r.uniform(n, -2, 2))
}
