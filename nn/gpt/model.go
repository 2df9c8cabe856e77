package gpt

import (
	"fmt"
	"math"
	"strconv"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// IgnoreIndex is the target value Loss skips (nanoGPT's ignore_index
// −1; transformers uses −100 for the same purpose, so shift such labels
// before calling Loss).
const IgnoreIndex int32 = -1

// layerNormEps is GPT-2's layer_norm_epsilon.
const layerNormEps = 1e-5

// Model is GPT2LMHeadModel: the transformer and the language-model head
// tied to its token embedding. It is the root nn.Module of its parameter
// set (children "transformer" and "lm_head"), so nn's ParamSet, train's
// optimisers and checkpoints work on it; Forward maps int32 token ids
// [B, T] (Graph.InputIndices) to logits [B, T, VocabSize].
//
// A new model is in training mode, as a PyTorch module is: call
// nn.SetTraining(m, false) (or SetTraining) for evaluation.
type Model struct {
	Config      Config
	Transformer *Transformer
	// Params holds every parameter: the tied head is one parameter,
	// transformer.wte.weight (its later name lm_head.weight is an alias).
	Params *nn.ParamSet
	// LoRA is the adapter configuration, zero for a model without
	// adapters (see NewLoRA).
	LoRA LoRAConfig

	head     *weightModule // lm_head, sharing Transformer.WTE.Weight
	children []nn.Child
	dev      device.Device
	cache    *kvCache
}

// Transformer is GPT2Model: embeddings, blocks, final LayerNorm (children
// wte, wpe, h, ln_f; the embedding dropout has no parameters).
type Transformer struct {
	WTE, WPE *nn.Embedding
	H        []*Block
	LnF      *nn.LayerNorm
	Dropout  float32
	training bool
	h        *moduleList
	children []nn.Child
}

// Block is GPT2Block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
type Block struct {
	Ln1, Ln2 *nn.LayerNorm
	Attn     *Attention
	MLP      *MLP
	children []nn.Child
}

// Attention is GPT2Attention: causal multi-head self-attention with a
// fused q|k|v projection c_attn and an output projection c_proj, both
// Conv1D. Dropout applies to the attention weights and to the output
// (attn_pdrop, resid_pdrop) in training mode.
type Attention struct {
	Width, Heads int
	CAttn, CProj *Conv1D
	Dropout      float32
	training     bool
	children     []nn.Child
}

// MLP is GPT2MLP: c_fc (Width → 4·Width), GELU with the tanh
// approximation (gelu_new), c_proj (4·Width → Width), dropout.
type MLP struct {
	CFc, CProj *Conv1D
	Dropout    float32
	training   bool
	children   []nn.Child
}

// moduleList is nn.ModuleList: children "0", "1", ….
type moduleList struct{ children []nn.Child }

func (l *moduleList) Forward(*nn.Graph, *nn.Tensor) (*nn.Tensor, error) {
	return nil, fmt.Errorf("gpt: a ModuleList has no forward")
}
func (l *moduleList) Children() []nn.Child   { return l.children }
func (l *moduleList) OwnParams() []*nn.Param { return nil }
func (l *moduleList) SetTraining(bool)       {}

// New builds a GPT-2 model of shape cfg on dev with GPT-2's
// initialisation drawn from seed: weights and embeddings N(0, 0.02²), the
// residual projections attn.c_proj.weight and mlp.c_proj.weight
// N(0, (0.02/√(2·Layers))²), biases 0, LayerNorm weights 1. Free releases
// its device memory.
func New(dev device.Device, cfg Config, seed uint64) (*Model, error) {
	return build(dev, cfg, LoRAConfig{}, seed)
}

func build(dev device.Device, cfg Config, lc LoRAConfig, seed uint64) (*Model, error) {
	if dev == nil {
		return nil, fmt.Errorf("gpt: New: nil device")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	C := cfg.Width
	const std = 0.02
	ln := func() *nn.LayerNorm {
		l := nn.NewLayerNorm(C)
		l.Eps = layerNormEps
		if !cfg.Bias {
			l.Bias = nil
		}
		return l
	}
	t := &Transformer{WTE: nn.NewEmbedding(cfg.VocabSize, C), WPE: nn.NewEmbedding(cfg.Context, C),
		LnF: ln(), Dropout: cfg.Dropout, training: true, h: &moduleList{}}
	t.WTE.Weight.Init = nn.NormalInit(0, std)
	t.WPE.Weight.Init = nn.NormalInit(0, std)
	for i := 0; i < cfg.Layers; i++ {
		b := &Block{Ln1: ln(), Ln2: ln(),
			Attn: &Attention{Width: C, Heads: cfg.Heads, Dropout: cfg.Dropout, training: true,
				CAttn: NewConv1D(C, 3*C, cfg.Bias, std), CProj: NewConv1D(C, C, cfg.Bias, cfg.residualStd())},
			MLP: &MLP{Dropout: cfg.Dropout, training: true,
				CFc: NewConv1D(C, 4*C, cfg.Bias, std), CProj: NewConv1D(4*C, C, cfg.Bias, cfg.residualStd())}}
		t.H = append(t.H, b)
		t.h.children = append(t.h.children, nn.Child{Name: strconv.Itoa(i), Module: b})
	}
	m := &Model{Config: cfg, Transformer: t, head: &weightModule{Weight: t.WTE.Weight}, dev: dev}
	if lc.Rank > 0 {
		if err := m.attachLoRA(lc); err != nil {
			return nil, err
		}
	}
	ps, err := nn.NewParamSet(dev, m, seed)
	if err != nil {
		return nil, fmt.Errorf("gpt: New: %w", err)
	}
	m.Params = ps
	if lc.Rank > 0 {
		if err := m.initLoRAModel(seed); err != nil {
			_ = ps.Free()
			return nil, err
		}
	}
	return m, nil
}

// Device is the device holding the parameters.
func (m *Model) Device() device.Device { return m.dev }

// ParamSet returns the parameter set (train.ParamSource).
func (m *Model) ParamSet() *nn.ParamSet { return m.Params }

// Free releases the parameters and the generation cache.
func (m *Model) Free() error {
	var err error
	if m.cache != nil {
		err = m.cache.free(m.dev)
		m.cache = nil
	}
	if m.Params != nil {
		if e := m.Params.Free(); err == nil {
			err = e
		}
	}
	return err
}

// Forward computes the logits [B, T, VocabSize] of idx, int32 token ids
// [B, T] (Graph.InputIndices) with T ≤ Context.
func (m *Model) Forward(g *nn.Graph, idx *nn.Tensor) (*nn.Tensor, error) {
	h, err := m.Transformer.Forward(g, idx)
	if err != nil {
		return nil, err
	}
	return m.head.Forward(g, h)
}

// Logits wraps idx, an int32 buffer of b·t token ids (row-major [b, t]),
// and returns Forward's logits [b, t, VocabSize].
func (m *Model) Logits(g *nn.Graph, idx device.Buffer, b, t int) (*nn.Tensor, error) {
	x, err := g.InputIndices(idx, b, t)
	if err != nil {
		return nil, err
	}
	return m.Forward(g, x)
}

// Loss runs Forward on idx [b, t] and returns the logits and the mean
// cross-entropy against targets (int32, b·t values, the next token of
// each position), as a [1] tensor for Graph.Backward; targets equal to
// IgnoreIndex count neither in the sum nor in the mean.
func (m *Model) Loss(g *nn.Graph, idx, targets device.Buffer, b, t int) (logits, loss *nn.Tensor, err error) {
	if logits, err = m.Logits(g, idx, b, t); err != nil {
		return nil, nil, err
	}
	if loss, err = g.CrossEntropy(logits, targets, IgnoreIndex); err != nil {
		return nil, nil, err
	}
	return logits, loss, nil
}

// Children are transformer and lm_head.
func (m *Model) Children() []nn.Child {
	if m.children == nil {
		m.children = []nn.Child{{Name: "transformer", Module: m.Transformer}, {Name: "lm_head", Module: m.head}}
	}
	return m.children
}

// OwnParams is empty.
func (m *Model) OwnParams() []*nn.Param { return nil }

// SetTraining does nothing for the root; nn.SetTraining(m, on) switches
// the whole tree (its dropouts).
func (m *Model) SetTraining(bool) {}

// Forward runs the transformer on idx [B, T] and returns the final
// LayerNorm's output [B, T, Width].
func (t *Transformer) Forward(g *nn.Graph, idx *nn.Tensor) (*nn.Tensor, error) {
	if idx == nil || len(idx.Shape()) != 2 {
		var s []int
		if idx != nil {
			s = idx.Shape()
		}
		return nil, fmt.Errorf("gpt: token ids have shape %v, expected [B, T]", s)
	}
	T := idx.Shape()[1]
	if T > t.WPE.Num {
		return nil, fmt.Errorf("gpt: sequence of %d tokens is longer than the context of %d", T, t.WPE.Num)
	}
	x, err := t.embed(g, idx, 0, T)
	if err != nil {
		return nil, err
	}
	if x, err = dropout(g, x, t.Dropout, t.training); err != nil {
		return nil, err
	}
	for _, b := range t.H {
		if x, err = b.Forward(g, x); err != nil {
			return nil, err
		}
	}
	return t.LnF.Forward(g, x)
}

// embed is wte(idx) + wpe rows [pos, pos+T).
func (t *Transformer) embed(g *nn.Graph, idx *nn.Tensor, pos, T int) (*nn.Tensor, error) {
	tok, err := t.WTE.Forward(g, idx)
	if err != nil {
		return nil, err
	}
	wpe, err := g.Param(t.WPE.Weight)
	if err != nil {
		return nil, err
	}
	pe, err := g.Narrow(wpe, pos, T)
	if err != nil {
		return nil, err
	}
	return g.AddBroadcast(tok, pe)
}

// Children are wte, wpe, h and ln_f.
func (t *Transformer) Children() []nn.Child {
	if t.children == nil {
		t.children = []nn.Child{{Name: "wte", Module: t.WTE}, {Name: "wpe", Module: t.WPE},
			{Name: "h", Module: t.h}, {Name: "ln_f", Module: t.LnF}}
	}
	return t.children
}

// OwnParams is empty.
func (t *Transformer) OwnParams() []*nn.Param { return nil }

// SetTraining switches the embedding dropout.
func (t *Transformer) SetTraining(on bool) { t.training = on }

// Forward is the pre-norm block.
func (b *Block) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := b.Ln1.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = b.Attn.Forward(g, h); err != nil {
		return nil, err
	}
	if x, err = g.Add(x, h); err != nil {
		return nil, err
	}
	return b.mlpResidual(g, x)
}

// mlpResidual is x + mlp(ln_2(x)).
func (b *Block) mlpResidual(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := b.Ln2.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = b.MLP.Forward(g, h); err != nil {
		return nil, err
	}
	return g.Add(x, h)
}

// Children are ln_1, attn, ln_2, mlp.
func (b *Block) Children() []nn.Child {
	if b.children == nil {
		b.children = []nn.Child{{Name: "ln_1", Module: b.Ln1}, {Name: "attn", Module: b.Attn},
			{Name: "ln_2", Module: b.Ln2}, {Name: "mlp", Module: b.MLP}}
	}
	return b.children
}

// OwnParams is empty.
func (b *Block) OwnParams() []*nn.Param { return nil }

// SetTraining does nothing (the dropouts live in attn and mlp).
func (b *Block) SetTraining(bool) {}

// splitQKV turns c_attn's output [rows, 3·Width] (rows = B·T) into q, k
// and v, each [Heads, rows, d] (views of one Permute's output).
func (a *Attention) splitQKV(g *nn.Graph, qkv *nn.Tensor, rows int) (q, k, v *nn.Tensor, err error) {
	h, d := a.Heads, a.Width/a.Heads
	if qkv, err = g.Reshape(qkv, rows, 3*h, d); err != nil {
		return
	}
	if qkv, err = g.Permute(qkv, 1, 0, 2); err != nil { // [3·H, rows, d]
		return
	}
	var s [3]*nn.Tensor
	for i := range s {
		if s[i], err = g.Narrow(qkv, i*h, h); err != nil {
			return
		}
	}
	return s[0], s[1], s[2], nil
}

// mergeHeads turns y [Heads, rows, d] into [rows, Width] and applies
// c_proj and the residual dropout, returning [shape...].
func (a *Attention) mergeHeads(g *nn.Graph, y *nn.Tensor, rows int, shape ...int) (*nn.Tensor, error) {
	y, err := g.Permute(y, 1, 0, 2) // [rows, H, d]
	if err != nil {
		return nil, err
	}
	if y, err = g.Reshape(y, shape...); err != nil {
		return nil, err
	}
	if y, err = a.CProj.Forward(g, y); err != nil {
		return nil, err
	}
	return dropout(g, y, a.Dropout, a.training)
}

// Forward applies causal self-attention to x [B, T, Width]:
// y = c_proj(concat_h dropout(softmax(q_h·k_hᵀ/√d, causal))·v_h).
func (a *Attention) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	s := x.Shape()
	if len(s) != 3 || s[2] != a.Width {
		return nil, fmt.Errorf("gpt: attention input has shape %v, expected [B, T, %d]", s, a.Width)
	}
	B, T, h, d := s[0], s[1], a.Heads, a.Width/a.Heads
	qkv, err := a.CAttn.Forward(g, x)
	if err != nil {
		return nil, err
	}
	q, k, v, err := a.splitQKV(g, qkv, B*T)
	if err != nil {
		return nil, err
	}
	// [H, B·T, d] → [H·B, T, d]: sequence (head, batch) major.
	if q, err = g.Reshape(q, h*B, T, d); err != nil {
		return nil, err
	}
	if k, err = g.Reshape(k, h*B, T, d); err != nil {
		return nil, err
	}
	if v, err = g.Reshape(v, h*B, T, d); err != nil {
		return nil, err
	}
	att, err := g.BatchedMatMul(q, k, false, true) // [H·B, T, T]
	if err != nil {
		return nil, err
	}
	if att, err = g.SoftmaxMasked(att, float32(1/math.Sqrt(float64(d))), true); err != nil {
		return nil, err
	}
	if att, err = dropout(g, att, a.Dropout, a.training); err != nil {
		return nil, err
	}
	y, err := g.BatchedMatMul(att, v, false, false) // [H·B, T, d]
	if err != nil {
		return nil, err
	}
	if y, err = g.Reshape(y, h, B*T, d); err != nil {
		return nil, err
	}
	return a.mergeHeads(g, y, B*T, B, T, a.Width)
}

// Children are c_attn and c_proj.
func (a *Attention) Children() []nn.Child {
	if a.children == nil {
		a.children = []nn.Child{{Name: "c_attn", Module: a.CAttn}, {Name: "c_proj", Module: a.CProj}}
	}
	return a.children
}

// OwnParams is empty (transformers' attn.bias mask is not a parameter
// here: SoftmaxMasked applies the causal mask).
func (a *Attention) OwnParams() []*nn.Param { return nil }

// SetTraining switches the attention and residual dropouts.
func (a *Attention) SetTraining(on bool) { a.training = on }

// Forward is c_proj(gelu_tanh(c_fc(x))) with dropout.
func (p *MLP) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := p.CFc.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = g.Activate(device.GELUTanh, 0, h); err != nil {
		return nil, err
	}
	if h, err = p.CProj.Forward(g, h); err != nil {
		return nil, err
	}
	return dropout(g, h, p.Dropout, p.training)
}

// Children are c_fc and c_proj.
func (p *MLP) Children() []nn.Child {
	if p.children == nil {
		p.children = []nn.Child{{Name: "c_fc", Module: p.CFc}, {Name: "c_proj", Module: p.CProj}}
	}
	return p.children
}

// OwnParams is empty.
func (p *MLP) OwnParams() []*nn.Param { return nil }

// SetTraining switches the dropout.
func (p *MLP) SetTraining(on bool) { p.training = on }

// dropout is g.Dropout in training mode with p > 0, else the identity.
func dropout(g *nn.Graph, x *nn.Tensor, p float32, training bool) (*nn.Tensor, error) {
	if !training || p == 0 {
		return x, nil
	}
	return g.Dropout(x, p)
}
