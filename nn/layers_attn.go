package nn

import (
	"fmt"
	"math"
)

// MultiHeadAttention is self-attention over [B, T, Width] inputs with
// Heads heads of Width/Heads features, in nanoGPT's layout: one fused
// projection c_attn (Linear Width → 3·Width, output laid out q | k | v,
// each heads × head size) and an output projection c_proj (Linear
// Width → Width), both with biases and PyTorch's nn.Linear convention
// (weight [out, in]). When Causal, position t attends to positions ≤ t.
//
//	y = c_proj(concat_h softmax(q_h·k_hᵀ/√d, causal)·v_h)
//
// On the graph: Linear, a Reshape to [B·T, 3·Heads, d], one Permute to
// [3·Heads, B·T, d] and Chunk into q, k, v (views), two BatchedMatMuls
// around SoftmaxMasked over the Heads·B sequences, one Permute back and
// the output Linear. No dropout.
type MultiHeadAttention struct {
	Width, Heads int
	Causal       bool
	Attn, Proj   *Linear // c_attn, c_proj
	children     []Child
}

// NewMultiHeadAttention declares self-attention of the given width and
// number of heads (width must be divisible by heads), its projections
// initialised as nn.Linear.
func NewMultiHeadAttention(width, heads int, causal bool) *MultiHeadAttention {
	return &MultiHeadAttention{Width: width, Heads: heads, Causal: causal,
		Attn: NewLinear(width, 3*width, true), Proj: NewLinear(width, width, true)}
}

// NewCausalSelfAttention is nanoGPT's CausalSelfAttention:
// NewMultiHeadAttention(width, heads, true).
func NewCausalSelfAttention(width, heads int) *MultiHeadAttention {
	return NewMultiHeadAttention(width, heads, true)
}

// Forward applies the attention to x [B, T, Width].
func (m *MultiHeadAttention) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	if m.Heads < 1 || m.Width%m.Heads != 0 {
		return nil, fmt.Errorf("nn: MultiHeadAttention: width %d is not divisible by %d heads", m.Width, m.Heads)
	}
	if x == nil || len(x.shape) != 3 || x.shape[2] != m.Width {
		var s []int
		if x != nil {
			s = x.shape
		}
		return nil, fmt.Errorf("nn: MultiHeadAttention: input has shape %v, expected [B, T, %d]", s, m.Width)
	}
	b, t, h, d := x.shape[0], x.shape[1], m.Heads, m.Width/m.Heads
	qkv, err := m.Attn.Forward(g, x) // [B, T, 3·W]
	if err != nil {
		return nil, err
	}
	if qkv, err = g.Reshape(qkv, b*t, 3*h, d); err != nil {
		return nil, err
	}
	if qkv, err = g.Permute(qkv, 1, 0, 2); err != nil { // [3·H, B·T, d]: (q|k|v, head) major
		return nil, err
	}
	var qkvs [3]*Tensor
	for i := range qkvs {
		s, err := g.Narrow(qkv, i*h, h) // [H, B·T, d]
		if err != nil {
			return nil, err
		}
		if qkvs[i], err = g.Reshape(s, h*b, t, d); err != nil {
			return nil, err
		}
	}
	att, err := g.BatchedMatMul(qkvs[0], qkvs[1], false, true) // [H·B, T, T]
	if err != nil {
		return nil, err
	}
	if att, err = g.SoftmaxMasked(att, float32(1/math.Sqrt(float64(d))), m.Causal); err != nil {
		return nil, err
	}
	y, err := g.BatchedMatMul(att, qkvs[2], false, false) // [H·B, T, d]
	if err != nil {
		return nil, err
	}
	if y, err = g.Reshape(y, h, b*t, d); err != nil {
		return nil, err
	}
	if y, err = g.Permute(y, 1, 0, 2); err != nil { // [B·T, H, d]
		return nil, err
	}
	if y, err = g.Reshape(y, b, t, m.Width); err != nil {
		return nil, err
	}
	return m.Proj.Forward(g, y)
}

// Children are c_attn and c_proj.
func (m *MultiHeadAttention) Children() []Child {
	if len(m.children) != 2 || m.children[0].Module != Module(m.Attn) || m.children[1].Module != Module(m.Proj) {
		m.children = []Child{{Name: "c_attn", Module: m.Attn}, {Name: "c_proj", Module: m.Proj}}
	}
	return m.children
}

// OwnParams is empty: the parameters belong to the projections.
func (m *MultiHeadAttention) OwnParams() []*Param { return nil }

// SetTraining does nothing (no dropout).
func (m *MultiHeadAttention) SetTraining(bool) {}
