package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// classifier is what fit, probs and score need of a model: the embedding
// bag (bagModel) or the convolutional text classifier (convModel).
type classifier interface {
	nn.Module
	// setInputs hands the model the inputs of the next Forward besides
	// the one Forward takes, first(in).
	setInputs(in inputs)
	first(in inputs) *nn.Tensor
	// layout is what batch.load must fill for the model.
	layout() batchLayout
	// table is the embedding table, which fit keeps out of weight decay.
	table() *nn.Param
	setDropout(p float32)
}

// batchLayout is the shape of a model's inputs: P pools of bag tokens (0:
// no bag), V wide columns (0: no wide part), sequences of L words (0: no
// sequences) whose mask is D wide (the embedding width).
type batchLayout struct{ P, V, L, D int }

// convModel is a convolutional text classifier in the style of Kim (2014),
// plus the same wide linear term as bagModel's:
//
//	e = Embedding(seq) ⊙ mask                      [B, L, D]    padding rows → 0
//	for each width k:
//	  c_k = ReLU(Conv2d_k(e as [B, 1, L, D]))       [B, F, L−k+1, 1]   kernel k×D, no bias
//	  m_k = MaxPool(c_k, window L−k+1 × 1)           [B, F]       max over positions
//	logits = Σ_k Out_k(Dropout(m_k)) [+ Wide(bow)]
//
// The sequence is the first L words of the message (tokens.setSeq),
// padded with id 0. The mask zeroes the padding's embeddings, and the
// filters have no bias, so a window of padding alone gives exactly 0
// after the ReLU; since every ReLU output is ≥ 0, such windows never
// change the max: the pooled features of a message are the same whatever
// L beyond its length (TestConvPadding). The windows that run past the
// last word see zeros there, as in Kim's zero-padded sentences. The sum
// of one output layer per width is a linear layer over the concatenated
// pooled features (the Graph has no concatenation), the first Out_k alone
// with a bias.
type convModel struct {
	Embedding *nn.Embedding
	Convs     []*nn.Conv2d
	Dropout   *nn.Dropout
	Outs      []*nn.Linear
	Wide      *nn.Linear // nil without a wide part
	widths    []int
	L         int
	mask, bow *nn.Tensor
}

func newConvModel(buckets, dim, filters int, widths []int, L, wide int) *convModel {
	m := &convModel{Embedding: nn.NewEmbedding(buckets, dim), Dropout: &nn.Dropout{P: 0.2}, widths: widths, L: L}
	// Kim (2014) draws the vectors of words without pretrained ones from
	// U(−0.25, 0.25).
	m.Embedding.Weight.Init = nn.UniformInit(-0.25, 0.25)
	for i, k := range widths {
		m.Convs = append(m.Convs, nn.NewConv2d(1, filters, k, nn.WithKernelHW(k, dim), nn.WithoutBias()))
		m.Outs = append(m.Outs, nn.NewLinear(filters, 2, i == 0))
	}
	if wide > 0 {
		m.Wide = nn.NewLinear(wide, 2, false)
	}
	return m
}

func (m *convModel) Forward(g *nn.Graph, seq *nn.Tensor) (*nn.Tensor, error) {
	if m.mask == nil {
		return nil, fmt.Errorf("convModel: setInputs before Forward")
	}
	sh := seq.Shape()
	if len(sh) != 2 || sh[1] != m.L {
		return nil, fmt.Errorf("convModel: sequences of shape %v, expected [B, %d]", sh, m.L)
	}
	B, D := sh[0], m.Embedding.Dim
	e, err := m.Embedding.Forward(g, seq) // [B, L, D]
	if err != nil {
		return nil, err
	}
	if e, err = g.Mul(e, m.mask); err != nil {
		return nil, err
	}
	x, err := g.Reshape(e, B, 1, m.L, D)
	if err != nil {
		return nil, err
	}
	var out *nn.Tensor
	for i, conv := range m.Convs {
		c, err := conv.Forward(g, x) // [B, F, L−k+1, 1]
		if err != nil {
			return nil, err
		}
		if c, err = g.Activate(device.ReLU, 0, c); err != nil {
			return nil, err
		}
		P := m.L - m.widths[i] + 1
		if c, err = g.MaxPool2d(c, [2]int{P, 1}, [2]int{P, 1}, [2]int{0, 0}); err != nil {
			return nil, err
		}
		if c, err = g.Reshape(c, B, conv.Out); err != nil {
			return nil, err
		}
		if c, err = m.Dropout.Forward(g, c); err != nil {
			return nil, err
		}
		o, err := m.Outs[i].Forward(g, c)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = o
		} else if out, err = g.Add(out, o); err != nil {
			return nil, err
		}
	}
	if m.Wide == nil {
		return out, nil
	}
	if m.bow == nil {
		return nil, fmt.Errorf("convModel: the wide part needs the bag of words (setInputs)")
	}
	wide, err := m.Wide.Forward(g, m.bow)
	if err != nil {
		return nil, err
	}
	return g.Add(out, wide)
}

// Children names the parameters as PyTorch would: embedding.weight,
// conv3.weight, out3.weight, out3.bias, …, wide.weight (by filter width).
func (m *convModel) Children() []nn.Child {
	c := []nn.Child{{Name: "embedding", Module: m.Embedding}, {Name: "dropout", Module: m.Dropout}}
	for i, k := range m.widths {
		c = append(c, nn.Child{Name: fmt.Sprintf("conv%d", k), Module: m.Convs[i]}, nn.Child{Name: fmt.Sprintf("out%d", k), Module: m.Outs[i]})
	}
	if m.Wide != nil {
		c = append(c, nn.Child{Name: "wide", Module: m.Wide})
	}
	return c
}

func (m *convModel) OwnParams() []*nn.Param { return nil }
func (m *convModel) SetTraining(bool)       {}

func (m *convModel) setInputs(in inputs)        { m.mask, m.bow = in.mask, in.bow }
func (m *convModel) first(in inputs) *nn.Tensor { return in.seq }
func (m *convModel) table() *nn.Param           { return m.Embedding.Weight }
func (m *convModel) setDropout(p float32)       { m.Dropout.P = p }
func (m *convModel) layout() batchLayout {
	v := 0
	if m.Wide != nil {
		v = m.Wide.In
	}
	return batchLayout{V: v, L: m.L, D: m.Embedding.Dim}
}

// parseWidths reads "3,5": distinct filter widths ≥ 1, in order.
func parseWidths(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 || seen[k] {
			return nil, fmt.Errorf("-widths %q: expected distinct integers ≥ 1", s)
		}
		seen[k] = true
		out = append(out, k)
	}
	return out, nil
}

// intList writes widths as parseWidths reads them.
func intList(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
