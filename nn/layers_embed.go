package nn

import "fmt"

// Embedding is nn.Embedding(Num, Dim): a table Weight [Num, Dim] looked
// up by int32 indices (Graph.InputIndices), initialised N(0, 1) as
// PyTorch does.
type Embedding struct {
	Num, Dim int
	Weight   *Param
}

// NewEmbedding is nn.Embedding(num, dim).
func NewEmbedding(num, dim int) *Embedding {
	return &Embedding{Num: num, Dim: dim, Weight: NewParam("weight", NormalInit(0, 1), num, dim)}
}

// Forward looks up the rows of idx, an int32 tensor of any shape: the
// result is [idx shape..., Dim].
func (e *Embedding) Forward(g *Graph, idx *Tensor) (*Tensor, error) {
	if idx == nil {
		return nil, fmt.Errorf("nn: Embedding(%d, %d): nil indices", e.Num, e.Dim)
	}
	w, err := g.Param(e.Weight)
	if err != nil {
		return nil, err
	}
	return g.Embedding(idx, w)
}

// Children is empty.
func (e *Embedding) Children() []Child { return nil }

// OwnParams returns the table.
func (e *Embedding) OwnParams() []*Param { return []*Param{e.Weight} }

// SetTraining does nothing.
func (e *Embedding) SetTraining(bool) {}
