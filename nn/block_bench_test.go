package nn

import (
	"testing"

	"github.com/kilnml/kiln/device"
)

// testMLP is nanoGPT's MLP: c_fc (width → 4·width), GELU (tanh form),
// c_proj (4·width → width).
type testMLP struct {
	fc, proj *Linear
	children []Child
}

func newTestMLP(width int) *testMLP {
	m := &testMLP{fc: NewLinear(width, 4*width, true), proj: NewLinear(4*width, width, true)}
	m.children = []Child{{"c_fc", m.fc}, {"c_proj", m.proj}}
	return m
}

func (m *testMLP) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	h, err := m.fc.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = g.Activate(device.GELUTanh, 0, h); err != nil {
		return nil, err
	}
	return m.proj.Forward(g, h)
}
func (m *testMLP) Children() []Child   { return m.children }
func (m *testMLP) OwnParams() []*Param { return nil }
func (m *testMLP) SetTraining(bool)    {}

// testBlock is a pre-norm transformer block as nanoGPT's Block:
// x + attn(ln_1(x)), then + mlp(ln_2(·)).
type testBlock struct {
	ln1, ln2 *LayerNorm
	attn     *MultiHeadAttention
	mlp      *testMLP
	children []Child
}

func newTestBlock(width, heads int) *testBlock {
	b := &testBlock{ln1: NewLayerNorm(width), ln2: NewLayerNorm(width), attn: NewCausalSelfAttention(width, heads), mlp: newTestMLP(width)}
	b.children = []Child{{"ln_1", b.ln1}, {"attn", b.attn}, {"ln_2", b.ln2}, {"mlp", b.mlp}}
	return b
}

func (b *testBlock) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	h, err := b.ln1.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = b.attn.Forward(g, h); err != nil {
		return nil, err
	}
	if x, err = g.Add(x, h); err != nil {
		return nil, err
	}
	if h, err = b.ln2.Forward(g, x); err != nil {
		return nil, err
	}
	if h, err = b.mlp.Forward(g, h); err != nil {
		return nil, err
	}
	return g.Add(x, h)
}
func (b *testBlock) Children() []Child   { return b.children }
func (b *testBlock) OwnParams() []*Param { return nil }
func (b *testBlock) SetTraining(bool)    {}

// trainStepper runs training steps of a model on fixed data: ZeroGrad, forward
// with x as a Variable (so input gradients exist), MSE against target,
// Backward. The graph is Reset at the start of each step, so the last
// step's tensors stay readable.
type trainStepper struct {
	g      *Graph
	ps     *ParamSet
	m      Module
	x, tgt device.Buffer
	shape  []int
	y, xv  *Tensor
}

func (s *trainStepper) step() error {
	s.g.Reset()
	if err := s.ps.ZeroGrad(); err != nil {
		return err
	}
	x, err := s.g.Variable(s.x, s.shape...)
	if err != nil {
		return err
	}
	y, err := s.m.Forward(s.g, x)
	if err != nil {
		return err
	}
	loss, err := s.g.Loss(device.MSE, y, s.tgt)
	if err != nil {
		return err
	}
	s.y, s.xv = y, x
	return s.g.Backward(loss)
}

// BenchmarkBlockStep is one forward and backward pass of a transformer
// block (LayerNorm, causal attention with 6 heads, LayerNorm, 4× GELU-tanh
// MLP, residuals) at batch 8, context 256, width 384 on the CPU, with an
// MSE head.
func BenchmarkBlockStep(b *testing.B) {
	const batch, ctx, width, heads = 8, 256, 384, 6
	dev := openCPU(b)
	m := newTestBlock(width, heads)
	ps, err := NewParamSet(dev, m, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Free()
	r := rng(7)
	n := batch * ctx * width
	s := &trainStepper{g: NewGraph(dev), ps: ps, m: m, shape: []int{batch, ctx, width},
		x: upload(b, dev, f32s(r.uniform(n, -1, 1))), tgt: upload(b, dev, f32s(r.uniform(n, -1, 1)))}
	defer s.g.Free()
	if err := s.step(); err != nil { // warm the graph's free lists
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.step(); err != nil {
			b.Fatal(err)
		}
	}
	if err := dev.Sync(); err != nil {
		b.Fatal(err)
	}
}
