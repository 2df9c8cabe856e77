package nn

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/internal/race"
)

// newTestCNN is conv-bn-relu-maxpool-conv-bn-relu-adaptiveavgpool-flatten-
// linear, as torch.nn.Sequential with the same indices.
func newTestCNN() (*Sequential, []*BatchNorm) {
	bn1, bn2 := NewBatchNorm2d(8), NewBatchNorm2d(16)
	m := NewSequential(
		NewConv2d(3, 8, 3, WithPadding(1)), bn1, &Activation{Act: device.ReLU}, NewMaxPool2d(2, 0, 0),
		NewConv2d(8, 16, 3, WithPadding(1), WithStride(1)), bn2, &Activation{Act: device.ReLU},
		NewAdaptiveAvgPool2d(1, 1), NewFlatten(), NewLinear(16, 10, true))
	return m, []*BatchNorm{bn1, bn2}
}

func TestLayerStateDictNames(t *testing.T) {
	dev := openCPU(t)
	m, bns := newTestCNN()
	ps, err := NewParamSet(dev, m, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	var names []string
	for _, p := range ps.All() {
		names = append(names, p.Name)
	}
	want := "0.weight 0.bias 1.weight 1.bias 1.running_mean 1.running_var 4.weight 4.bias 5.weight 5.bias 5.running_mean 5.running_var 9.weight 9.bias"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("state_dict names\n%s\nexpected\n%s", got, want)
	}
	if s := ps.Lookup("0.weight").Shape; len(s) != 4 || s[0] != 8 || s[1] != 3 || s[2] != 3 || s[3] != 3 {
		t.Errorf("0.weight shape %v, expected [8 3 3 3]", s)
	}
	// Extra state round trip, and its validation.
	if es := bns[0].ExtraState(); len(es) != 1 || es[0].Local != "num_batches_tracked" || es[0].Tensor.DType != HostI64 {
		t.Errorf("ExtraState %+v", es)
	}
	if err := bns[0].SetExtraState("num_batches_tracked", HostTensor{Shape: []int{}, DType: HostI64, Int64: []int64{7}}); err != nil || bns[0].NumBatchesTracked != 7 {
		t.Errorf("SetExtraState: %v, n = %d", err, bns[0].NumBatchesTracked)
	}
	if err := bns[0].SetExtraState("num_batches_tracked", HostTensor{Data: []float32{1}}); err == nil {
		t.Error("SetExtraState accepted a float32")
	}
	if err := bns[0].SetExtraState("momentum", HostTensor{DType: HostI64, Int64: []int64{1}}); err == nil {
		t.Error("SetExtraState accepted an unknown name")
	}
	// Init: conv weight U(±1/√27), BN weight 1, running var 1, embedding N(0,1).
	w, _ := ps.Lookup("0.weight").Values()
	bound := 1 / math.Sqrt(27)
	for _, v := range w {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("conv weight %v outside ±%v", v, bound)
		}
	}
	if v, _ := ps.Lookup("1.running_var").Values(); v[0] != 1 {
		t.Errorf("running_var starts at %v, expected 1", v[0])
	}
	e := NewEmbedding(50, 40)
	eps, err := NewParamSet(dev, e, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer eps.Free()
	ev, _ := e.Weight.Values()
	var s, ss float64
	for _, v := range ev {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	// 2000 N(0,1) draws: mean within 4σ/√n ≈ 0.09, variance within ±0.15.
	if mean, vr := s/2000, ss/2000-(s/2000)*(s/2000); math.Abs(mean) > 0.09 || math.Abs(vr-1) > 0.15 {
		t.Errorf("embedding init mean %v var %v, expected N(0, 1)", mean, vr)
	}
}

// TestBatchNormLayerModes: training forwards count batches and move the
// running statistics; evaluation forwards do neither; shape errors name
// the layer.
func TestBatchNormLayerModes(t *testing.T) {
	dev := openCPU(t)
	bn := NewBatchNorm1d(3)
	ps, err := NewParamSet(dev, bn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	g := NewGraph(dev)
	defer g.Free()
	r := rng(5)
	x, _ := g.Input(upload(t, dev, f32s(r.uniform(12, 1, 3))), 4, 3)
	for i := 0; i < 2; i++ {
		if _, err := bn.Forward(g, x); err != nil {
			t.Fatal(err)
		}
	}
	rm1, _ := bn.RunningMean.Values()
	SetTraining(bn, false)
	if _, err := bn.Forward(g, x); err != nil {
		t.Fatal(err)
	}
	rm2, _ := bn.RunningMean.Values()
	if bn.NumBatchesTracked != 2 || rm1[0] == 0 || rm1[0] != rm2[0] {
		t.Errorf("after 2 training and 1 eval forwards: num_batches_tracked %d, running mean %v then %v", bn.NumBatchesTracked, rm1, rm2)
	}
	x4, _ := g.Input(upload(t, dev, make([]float32, 24)), 2, 3, 2, 2)
	if _, err := bn.Forward(g, x4); err == nil || !strings.Contains(err.Error(), "BatchNorm1d(3)") {
		t.Errorf("4-D input to BatchNorm1d: err = %v", err)
	}
	bad, _ := g.Input(upload(t, dev, make([]float32, 8)), 2, 4)
	if _, err := bn.Forward(g, bad); err == nil || !strings.Contains(err.Error(), "expected 3 channels") {
		t.Errorf("4 channels into BatchNorm1d(3): err = %v", err)
	}
}

// TestSteadyStepAllocs: after warm-up, a training step of the small CNN
// and of the transformer block asks the device for nothing (Allocs and
// SystemAllocs flat).
func TestSteadyStepAllocs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		model    func() Module
		shape    []int
		out      int
		goAllocs int
	}{
		{"cnn", func() Module { m, _ := newTestCNN(); return m }, []int{4, 3, 8, 8}, 4 * 10, 0},
		{"block", func() Module { return newTestBlock(32, 4) }, []int{2, 6, 32}, 2 * 6 * 32, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := openCPU(t)
			m := tc.model()
			ps, err := NewParamSet(dev, m, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Free()
			n := 1
			for _, d := range tc.shape {
				n *= d
			}
			r := rng(9)
			s := &trainStepper{g: NewGraph(dev), ps: ps, m: m, shape: tc.shape,
				x: upload(t, dev, f32s(r.uniform(n, -1, 1))), tgt: upload(t, dev, f32s(r.uniform(tc.out, -1, 1)))}
			defer s.g.Free()
			for i := 0; i < 2; i++ {
				if err := s.step(); err != nil {
					t.Fatal(err)
				}
			}
			before := dev.Stats()
			for i := 0; i < 3; i++ {
				if err := s.step(); err != nil {
					t.Fatal(err)
				}
			}
			after := dev.Stats()
			if after.SystemAllocs != before.SystemAllocs || after.Allocs != before.Allocs {
				t.Errorf("3 steady steps: SystemAllocs %d → %d, Allocs %d → %d, expected no change",
					before.SystemAllocs, after.SystemAllocs, before.Allocs, after.Allocs)
			}
			// Go heap: neither step allocates (the attention's Narrow views
			// of q, k, v and of their gradients are kept by the graph).
			heap := testing.AllocsPerRun(3, func() {
				if err := s.step(); err != nil {
					t.Fatal(err)
				}
			})
			if heap > float64(tc.goAllocs) && !race.Enabled {
				t.Errorf("a steady step makes %v Go heap allocations, expected at most %d", heap, tc.goAllocs)
			}
		})
	}
}

// runTorchParity runs a PyTorch script; without /usr/bin/python3 or torch
// the test is skipped, except under CI=true where it fails.
func runTorchParity(t *testing.T, script string, args ...string) {
	t.Helper()
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PyTorch parity cannot run under CI: %s", why)
		}
		t.Skipf("skipping PyTorch parity: %s", why)
	}
	if _, err := os.Stat(python); err != nil {
		missing(python + " not found")
	}
	o, err := exec.Command(python, append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil && strings.Contains(string(o), "No module named 'torch'") {
		missing(python + " cannot import torch (install Debian's python3-torch)")
	}
	if err != nil {
		t.Fatalf("torch script: %v\n%s", err, o)
	}
}

// The parity script: reads the manifest (model kind, parameter names and
// shapes) and raw float32 files written by the Go side, runs the same
// steps in PyTorch and writes its results as out_<name>.f32.
const torchParityScript = `
import json, math, struct, sys
import torch, torch.nn as nn, torch.nn.functional as F
torch.backends.cudnn.enabled = False
d = sys.argv[1]
man = json.load(open(d + '/manifest.json'))
def rd(name, shape):
    b = open('%s/%s.f32' % (d, name), 'rb').read()
    return torch.tensor(struct.unpack('<%df' % (len(b) // 4), b), dtype=torch.float32).reshape(shape)
def wr(name, t):
    v = t.detach().contiguous().reshape(-1).tolist()
    open('%s/out_%s.f32' % (d, name), 'wb').write(struct.pack('<%df' % len(v), *v))

class CSA(nn.Module):  # nanoGPT's CausalSelfAttention, no dropout
    def __init__(s, C, H):
        super().__init__(); s.H = H
        s.c_attn = nn.Linear(C, 3 * C); s.c_proj = nn.Linear(C, C)
    def forward(s, x):
        B, T, C = x.size()
        q, k, v = s.c_attn(x).split(C, dim=2)
        q = q.view(B, T, s.H, C // s.H).transpose(1, 2)
        k = k.view(B, T, s.H, C // s.H).transpose(1, 2)
        v = v.view(B, T, s.H, C // s.H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = F.softmax(att.masked_fill(~mask, float('-inf')), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return s.c_proj(y)
class MLP(nn.Module):
    def __init__(s, C):
        super().__init__(); s.c_fc = nn.Linear(C, 4 * C); s.c_proj = nn.Linear(4 * C, C)
    def forward(s, x): return s.c_proj(F.gelu(s.c_fc(x), approximate='tanh'))
class Block(nn.Module):
    def __init__(s, C, H):
        super().__init__()
        s.ln_1 = nn.LayerNorm(C); s.attn = CSA(C, H); s.ln_2 = nn.LayerNorm(C); s.mlp = MLP(C)
    def forward(s, x):
        x = x + s.attn(s.ln_1(x))
        return x + s.mlp(s.ln_2(x))

class GPT(nn.Module):
    def __init__(s, V, T, C, H):
        super().__init__()
        s.wte = nn.Embedding(V, C); s.wpe = nn.Embedding(T, C); s.h = Block(C, H)
        s.ln_f = nn.LayerNorm(C); s.lm_head = nn.Linear(C, V, bias=False)
    def forward(s, idx):
        x = s.wte(idx) + s.wpe.weight[:idx.size(1)]
        return s.lm_head(s.ln_f(s.h(x)))

if man['kind'] == 'gpt':
    m = GPT(man['vocab'], man['ctx'], man['width'], man['heads'])
    m.load_state_dict({n: rd('p_' + n, s) for n, s in man['params']}, strict=True)
    idx = rd('idx', man['x_shape']).long()
    logits = m(idx)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), rd('tgt', [-1]).long(), ignore_index=-1)
    loss.backward()
    wr('loss', loss.reshape(1)); wr('logits', logits)
    for n, p in m.named_parameters():
        wr('g_' + n, p.grad)
    sys.exit(0)
if man['kind'] == 'cnn':
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(), nn.Linear(16, 10))
else:
    m = Block(man['width'], man['heads'])
sd = {n: rd('p_' + n, s) for n, s in man['params']}
for n, v in m.state_dict().items():
    if n.endswith('num_batches_tracked'):
        sd[n] = torch.tensor(0)
m.load_state_dict(sd, strict=True)
m.train()
for s in range(man['steps']):
    x = rd('x%d' % s, man['x_shape']).requires_grad_(s == 0)
    y = m(x)
    loss = F.mse_loss(y, rd('t%d' % s, list(y.shape)))
    if s == 0:
        loss.backward()
        wr('y0', y); wr('dx0', x.grad)
        for n, p in m.named_parameters():
            wr('g_' + n, p.grad)
for n, b in m.named_buffers():
    wr('b_' + n, b.float())
m.eval()
with torch.no_grad():
    wr('yeval', m(rd('x0', man['x_shape'])))
`

// parityAgree compares a kiln tensor with torch's. Both compute in float32
// with different summation orders (and, for batch norm's gradient, with
// cancellations in Σdy and Σdy·x̂), so the bound is relative to the
// tensor's largest magnitude: max |kiln − torch| ≤ 1e-5·max(|torch|) + 1e-7
// (the floor for tensors that are nearly 0 everywhere).
func parityAgree(t *testing.T, what string, got []float32, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, torch %d", what, len(got), len(want))
		return
	}
	scale, worst, at := 0.0, 0.0, 0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || d != d {
			worst, at = d, i
		}
	}
	if !(worst <= 1e-5*scale+1e-7) {
		t.Errorf("%s: max |kiln − torch| %.3g at %d (kiln %v, torch %v), bound %.3g", what, worst, at, got[at], want[at], 1e-5*scale+1e-7)
		return
	}
	t.Logf("%s: %d values, max |diff| %.2g (scale %.2g)", what, len(got), worst, scale)
}

// TestTorchParity: the small CNN (3 training steps, so BatchNorm's running
// statistics move three times, then an evaluation forward) and a
// transformer block with causal self-attention give PyTorch's outputs,
// input gradients and parameter gradients from the same weights.
func TestTorchParity(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch parity in -short mode (starting torch takes seconds)")
	}
	for _, tc := range []struct {
		kind         string
		model        func() (Module, []*BatchNorm)
		xShape       []int
		steps        int
		width, heads int
	}{
		{"cnn", func() (Module, []*BatchNorm) { m, bns := newTestCNN(); return m, bns }, []int{4, 3, 8, 8}, 3, 0, 0},
		{"block", func() (Module, []*BatchNorm) { return newTestBlock(32, 4), nil }, []int{2, 7, 32}, 1, 32, 4},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dev := openCPU(t)
			m, bns := tc.model()
			ps, err := NewParamSet(dev, m, 11)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Free()
			dir := t.TempDir()
			man := map[string]any{"kind": tc.kind, "x_shape": tc.xShape, "steps": tc.steps, "width": tc.width, "heads": tc.heads}
			var params [][2]any
			for _, p := range ps.All() {
				v, err := p.Values()
				if err != nil {
					t.Fatal(err)
				}
				params = append(params, [2]any{p.Name, p.Shape})
				writeF32(t, filepath.Join(dir, "p_"+p.Name+".f32"), v)
			}
			man["params"] = params
			n := 1
			for _, d := range tc.xShape {
				n *= d
			}
			r := rng(13)
			g := NewGraph(dev)
			defer g.Free()
			var y0, dx0 []float32
			grads := map[string][]float32{}
			var x0 device.Buffer
			for s := 0; s < tc.steps; s++ {
				xs := f32s(r.uniform(n, -2, 2))
				writeF32(t, filepath.Join(dir, "x"+string(rune('0'+s))+".f32"), xs)
				g.Reset()
				if err := ps.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				xb := upload(t, dev, xs)
				if s == 0 {
					x0 = xb
				}
				x, err := g.Variable(xb, tc.xShape...)
				if err != nil {
					t.Fatal(err)
				}
				y, err := m.Forward(g, x)
				if err != nil {
					t.Fatal(err)
				}
				ts := f32s(r.uniform(y.Len(), -1, 1))
				writeF32(t, filepath.Join(dir, "t"+string(rune('0'+s))+".f32"), ts)
				loss, err := g.Loss(device.MSE, y, upload(t, dev, ts))
				if err != nil {
					t.Fatal(err)
				}
				if s == 0 {
					if err := g.Backward(loss); err != nil {
						t.Fatal(err)
					}
					y0, _ = y.Values()
					dx0, _ = x.GradValues()
					for _, p := range ps.Params() {
						grads[p.Name], _ = p.GradValues()
					}
				}
			}
			mj, err := json.Marshal(man)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mj, 0o644); err != nil {
				t.Fatal(err)
			}
			runTorchParity(t, torchParityScript, dir)
			out := func(name string) []float32 { return readF32(t, filepath.Join(dir, "out_"+name+".f32")) }
			parityAgree(t, "output", y0, out("y0"))
			parityAgree(t, "d loss/d input", dx0, out("dx0"))
			for _, p := range ps.Params() {
				parityAgree(t, "d loss/d "+p.Name, grads[p.Name], out("g_"+p.Name))
			}
			for _, p := range ps.Buffers() {
				v, _ := p.Values()
				parityAgree(t, p.Name+" after 3 steps", v, out("b_"+p.Name))
			}
			for i, bn := range bns {
				if want := out("b_" + strings.TrimSuffix(ps.Buffers()[2*i].Name, "running_mean") + "num_batches_tracked"); bn.NumBatchesTracked != int64(tc.steps) || len(want) != 1 || int64(want[0]) != bn.NumBatchesTracked {
					t.Errorf("BatchNorm %d: num_batches_tracked %d, torch %v", i, bn.NumBatchesTracked, want)
				}
			}
			SetTraining(m, false)
			g.Reset()
			g.SetGradEnabled(false)
			defer g.SetGradEnabled(true)
			x, _ := g.Input(x0, tc.xShape...)
			ye, err := m.Forward(g, x)
			if err != nil {
				t.Fatal(err)
			}
			yv, _ := ye.Values()
			parityAgree(t, "evaluation output", yv, out("yeval"))
		})
	}
}

// testGPT is a one-block GPT: token and position embeddings (the position
// table added by AddBroadcast of its first T rows), a block, ln_f and an
// untied lm_head without bias.
type testGPT struct {
	wte, wpe *Embedding
	h        *testBlock
	lnf      *LayerNorm
	head     *Linear
	children []Child
}

func newTestGPT(vocab, ctx, width, heads int) *testGPT {
	m := &testGPT{wte: NewEmbedding(vocab, width), wpe: NewEmbedding(ctx, width), h: newTestBlock(width, heads),
		lnf: NewLayerNorm(width), head: NewLinear(width, vocab, false)}
	m.children = []Child{{"wte", m.wte}, {"wpe", m.wpe}, {"h", m.h}, {"ln_f", m.lnf}, {"lm_head", m.head}}
	return m
}

func (m *testGPT) Forward(g *Graph, idx *Tensor) (*Tensor, error) {
	x, err := m.wte.Forward(g, idx)
	if err != nil {
		return nil, err
	}
	wpe, err := g.Param(m.wpe.Weight)
	if err != nil {
		return nil, err
	}
	pos, err := g.Narrow(wpe, 0, idx.Shape()[1])
	if err != nil {
		return nil, err
	}
	if x, err = g.AddBroadcast(x, pos); err != nil {
		return nil, err
	}
	if x, err = m.h.Forward(g, x); err != nil {
		return nil, err
	}
	if x, err = m.lnf.Forward(g, x); err != nil {
		return nil, err
	}
	return m.head.Forward(g, x)
}
func (m *testGPT) Children() []Child   { return m.children }
func (m *testGPT) OwnParams() []*Param { return nil }
func (m *testGPT) SetTraining(bool)    {}

// TestTorchParityGPT: embeddings, position broadcast, a block and
// cross-entropy with ignore_index give PyTorch's loss, logits and every
// parameter gradient (including the embedding tables' scatter-adds, with
// repeated tokens).
func TestTorchParityGPT(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch parity in -short mode (starting torch takes seconds)")
	}
	const vocab, ctx, width, heads, batch, T = 11, 8, 16, 2, 3, 6
	dev := openCPU(t)
	m := newTestGPT(vocab, ctx, width, heads)
	ps, err := NewParamSet(dev, m, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	dir := t.TempDir()
	var params [][2]any
	for _, p := range ps.All() {
		v, _ := p.Values()
		params = append(params, [2]any{p.Name, p.Shape})
		writeF32(t, filepath.Join(dir, "p_"+p.Name+".f32"), v)
	}
	r := rng(17)
	idx, tgt := make([]int32, batch*T), make([]int32, batch*T)
	fi, ft := make([]float32, batch*T), make([]float32, batch*T)
	for i := range idx {
		idx[i], tgt[i] = int32(r.next()%vocab), int32(r.next()%vocab)
		if i%5 == 3 {
			tgt[i] = -1 // ignored
		}
		fi[i], ft[i] = float32(idx[i]), float32(tgt[i])
	}
	writeF32(t, filepath.Join(dir, "idx.f32"), fi)
	writeF32(t, filepath.Join(dir, "tgt.f32"), ft)
	mj, _ := json.Marshal(map[string]any{"kind": "gpt", "vocab": vocab, "ctx": ctx, "width": width, "heads": heads,
		"x_shape": []int{batch, T}, "params": params})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	g := NewGraph(dev)
	defer g.Free()
	if err := ps.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	it, err := g.InputIndices(uploadI32(t, dev, idx), batch, T)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := m.Forward(g, it)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := g.CrossEntropy(logits, uploadI32(t, dev, tgt), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	runTorchParity(t, torchParityScript, dir)
	out := func(name string) []float32 { return readF32(t, filepath.Join(dir, "out_"+name+".f32")) }
	lv, _ := loss.Values()
	parityAgree(t, "loss", lv, out("loss"))
	yv, _ := logits.Values()
	parityAgree(t, "logits", yv, out("logits"))
	for _, p := range ps.Params() {
		gv, _ := p.GradValues()
		parityAgree(t, "d loss/d "+p.Name, gv, out("g_"+p.Name))
	}
}
