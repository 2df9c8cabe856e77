package main

import (
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// bprModel is matrix factorisation with item biases, as an nn.Module:
//
//	s(u, i) = ⟨Users[u], Items[i]⟩ + ItemBias[i]
//
// Its Forward takes a [3, B] int32 tensor of triples (row 0 users, row 1
// items they interacted with, row 2 sampled items they did not) and
// returns [B, 1] logits s(u, i) − s(u, j); BCEWithLogits against 1 is then
// BPR's −ln σ(s(u,i) − s(u,j)).
type bprModel struct {
	Users, Items, ItemBias *nn.Embedding
}

func newBPR(users, items, dim int) *bprModel {
	m := &bprModel{
		Users:    nn.NewEmbedding(users, dim),
		Items:    nn.NewEmbedding(items, dim),
		ItemBias: nn.NewEmbedding(items, 1),
	}
	// Small initial factors (nn.Embedding's default is N(0, 1), which
	// would start every score at a random ±√dim) and zero biases.
	m.Users.Weight.Init = nn.NormalInit(0, 0.1)
	m.Items.Weight.Init = nn.NormalInit(0, 0.1)
	m.ItemBias.Weight.Init = nn.ZerosInit()
	return m
}

func (m *bprModel) Children() []nn.Child {
	return []nn.Child{{Name: "users", Module: m.Users}, {Name: "items", Module: m.Items}, {Name: "item_bias", Module: m.ItemBias}}
}
func (m *bprModel) OwnParams() []*nn.Param { return nil }
func (m *bprModel) SetTraining(bool)       {}

func (m *bprModel) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	b := x.Shape()[1]
	rows := func(r int) (*nn.Tensor, error) { // row r of x as a [B] index tensor
		t, err := g.Narrow(x, r, 1)
		if err != nil {
			return nil, err
		}
		return g.Reshape(t, b)
	}
	u, err := rows(0)
	if err != nil {
		return nil, err
	}
	items, err := g.Narrow(x, 1, 2) // [2, B]: positives then negatives
	if err != nil {
		return nil, err
	}
	items, err = g.Reshape(items, 2*b)
	if err != nil {
		return nil, err
	}
	eu, err := m.Users.Forward(g, u) // [B, D]
	if err != nil {
		return nil, err
	}
	ei, err := m.Items.Forward(g, items) // [2B, D]
	if err != nil {
		return nil, err
	}
	bi, err := m.ItemBias.Forward(g, items) // [2B, 1]
	if err != nil {
		return nil, err
	}
	// diff = e_i − e_j and bias_i − bias_j, with one lookup of each table.
	diff, err := pairDiff(g, ei, b)
	if err != nil {
		return nil, err
	}
	dbias, err := pairDiff(g, bi, b)
	if err != nil {
		return nil, err
	}
	d := m.Users.Dim
	eu3, err := g.Reshape(eu, b, 1, d)
	if err != nil {
		return nil, err
	}
	diff3, err := g.Reshape(diff, b, d, 1)
	if err != nil {
		return nil, err
	}
	dot, err := g.BatchedMatMul(eu3, diff3, false, false) // [B, 1, 1]: row-wise ⟨e_u, e_i − e_j⟩
	if err != nil {
		return nil, err
	}
	dot, err = g.Reshape(dot, b, 1)
	if err != nil {
		return nil, err
	}
	return g.Add(dot, dbias)
}

// pairDiff returns t[:b] − t[b:] of a [2b, …] tensor.
func pairDiff(g *nn.Graph, t *nn.Tensor, b int) (*nn.Tensor, error) {
	pos, err := g.Narrow(t, 0, b)
	if err != nil {
		return nil, err
	}
	neg, err := g.Narrow(t, b, b)
	if err != nil {
		return nil, err
	}
	if neg, err = g.Scale(-1, neg); err != nil {
		return nil, err
	}
	return g.Add(pos, neg)
}

// scoreAll returns s(u, i) for every user and item (users×items, row
// major): one Linear of the user table against the item table and biases,
// on the device, without a tape.
func (m *bprModel) scoreAll(dev device.Device) ([]float32, error) {
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	users, err := g.Param(m.Users.Weight)
	if err != nil {
		return nil, err
	}
	items, err := g.Param(m.Items.Weight)
	if err != nil {
		return nil, err
	}
	bias, err := g.Param(m.ItemBias.Weight)
	if err != nil {
		return nil, err
	}
	if bias, err = g.Reshape(bias, m.ItemBias.Num); err != nil {
		return nil, err
	}
	s, err := g.Linear(users, items, bias)
	if err != nil {
		return nil, err
	}
	out := make([]float32, s.Len())
	return out, dev.ReadF32(out, s.Value(), 0)
}
