package gpt

import (
	"fmt"

	"github.com/kilnml/kiln/nn"
)

// Conv1D is transformers' GPT-2 Conv1D: a linear layer whose weight is
// stored [In, Out] (the transpose of nn.Linear's), y = x·W + b over the
// last axis of x. Bias may be nil (Config.Bias false). With LoRA set it
// adds the adapter's scale·(x·Aᵀ)·Bᵀ (see LoRA).
//
// On the graph: a Reshape of x to [rows, In], one BatchedMatMul (a single
// matrix product without transposes, whose backward is the two products
// Linear's is), an AddBroadcast of the bias and a Reshape back.
type Conv1D struct {
	In, Out      int
	Weight, Bias *nn.Param
	LoRA         *LoRA // nil without an adapter
	children     []nn.Child
}

// NewConv1D declares a Conv1D with GPT-2's initialisation: weight
// N(0, std²), bias zeros (none when bias is false).
func NewConv1D(in, out int, bias bool, std float32) *Conv1D {
	c := &Conv1D{In: in, Out: out, Weight: nn.NewParam("weight", nn.NormalInit(0, std), in, out)}
	if bias {
		c.Bias = nn.NewParam("bias", nn.ZerosInit(), out)
	}
	return c
}

// Forward computes x·W + b (+ the adapter) for x [..., In].
func (c *Conv1D) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("gpt: Conv1D(%d, %d): nil input", c.In, c.Out)
	}
	s := x.Shape()
	if len(s) == 0 || s[len(s)-1] != c.In || len(s) > 8 {
		return nil, fmt.Errorf("gpt: Conv1D(%d, %d): input has shape %v, expected [..., %d]", c.In, c.Out, s, c.In)
	}
	var buf [8]int
	outShape := append(buf[:0], s...)
	outShape[len(outShape)-1] = c.Out
	rows := x.Len() / c.In
	w, err := g.Param(c.Weight)
	if err != nil {
		return nil, err
	}
	b, err := g.OptionalParam(c.Bias)
	if err != nil {
		return nil, err
	}
	x2, err := g.Reshape(x, rows, c.In)
	if err != nil {
		return nil, err
	}
	y, err := g.BatchedMatMul(x2, w, false, false) // [rows, Out]
	if err != nil {
		return nil, err
	}
	if b != nil {
		if y, err = g.AddBroadcast(y, b); err != nil {
			return nil, err
		}
	}
	if c.LoRA != nil {
		d, err := c.LoRA.delta(g, x2)
		if err != nil {
			return nil, err
		}
		if y, err = g.Add(y, d); err != nil {
			return nil, err
		}
	}
	return g.Reshape(y, outShape...)
}

// Children are the adapter's lora_A and lora_B when LoRA is set.
func (c *Conv1D) Children() []nn.Child {
	if c.LoRA == nil {
		return nil
	}
	if len(c.children) != 2 || c.children[0].Module != nn.Module(c.LoRA.a) || c.children[1].Module != nn.Module(c.LoRA.b) {
		c.children = []nn.Child{{Name: "lora_A", Module: c.LoRA.a}, {Name: "lora_B", Module: c.LoRA.b}}
	}
	return c.children
}

// OwnParams are weight and bias (when present).
func (c *Conv1D) OwnParams() []*nn.Param {
	if c.Bias == nil {
		return []*nn.Param{c.Weight}
	}
	return []*nn.Param{c.Weight, c.Bias}
}

// SetTraining does nothing.
func (c *Conv1D) SetTraining(bool) {}

// weightModule is a module holding one parameter named "weight": the
// lora_A and lora_B of an adapter (PEFT's nn.Linear without bias) and
// the tied lm_head.
type weightModule struct{ Weight *nn.Param }

// Forward is x·Wᵀ (nn.Linear without bias).
func (m *weightModule) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	w, err := g.Param(m.Weight)
	if err != nil {
		return nil, err
	}
	return g.Linear(x, w, nil)
}

// Children is empty.
func (m *weightModule) Children() []nn.Child { return nil }

// OwnParams returns the weight.
func (m *weightModule) OwnParams() []*nn.Param { return []*nn.Param{m.Weight} }

// SetTraining does nothing.
func (m *weightModule) SetTraining(bool) {}
