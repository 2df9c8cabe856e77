package main

import (
	"fmt"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// regression is a fitted two-class logistic regression over the wide
// columns, on the host: weight [2, v] (torch's Linear layout) and bias [2].
type regression struct {
	weight, bias []float32
	v            int
}

// fitRegression fits the baseline's logistic regression (trained as
// fitBaseline trains it, with c and seed) on the binary wide features of
// the training split tk. With the wide part over the baseline's vocabulary
// and nothing else (-wide equal to -vocab, no -wide-pairs or -wide-grams:
// the defaults) and the evaluation's seed, it is the baseline itself: the
// same columns in the same order, the same initialisation and batch order
// (TestResidualStart).
func fitRegression(dev device.Device, tk *tokens, v int, c baseCfg, seed uint64) (*regression, error) {
	if v == 0 || len(tk.bow) != len(tk.labels) {
		return nil, fmt.Errorf("-residual needs the wide part (-wide > 0)")
	}
	if tk.bowScale != nil {
		return nil, fmt.Errorf("-residual fits the regression on binary features; -nb scales them")
	}
	lr, _, err := trainLR(dev, denseBow(tk, v), nil, c, seed)
	if err != nil {
		return nil, err
	}
	defer lr.Free()
	w, b := lr.Param("0.weight"), lr.Param("0.bias")
	if w == nil || b == nil {
		return nil, fmt.Errorf("-residual: the regression has no 0.weight / 0.bias")
	}
	r := &regression{weight: make([]float32, 2*v), bias: make([]float32, 2), v: v}
	if err := dev.ReadF32(r.weight, w.Value(), 0); err != nil {
		return nil, err
	}
	if err := dev.ReadF32(r.bias, b.Value(), 0); err != nil {
		return nil, err
	}
	return r, nil
}

// residualStart starts the model from the fitted regression r: the wide
// weights are r's weights, frozen; the output bias is r's bias; the output
// weights are 0. The untrained model therefore computes exactly r, and
// training only teaches the deep part (and the output layer) a correction
// of its logits, a residual, as a boosting stage would.
func residualStart(dev device.Device, m *bagModel, r *regression) error {
	if m.Wide == nil || m.Wide.In != r.v {
		return fmt.Errorf("-residual: the model's wide part does not have the regression's %d columns", r.v)
	}
	if err := dev.WriteF32(m.Wide.Weight.Value(), 0, r.weight); err != nil {
		return err
	}
	if err := dev.WriteF32(m.Out.Bias.Value(), 0, r.bias); err != nil {
		return err
	}
	if err := dev.Fill(m.Out.Weight.Value(), 2*m.Out.In, 0); err != nil {
		return err
	}
	m.Wide.Weight.Frozen = true
	return nil
}

// denseBow is the binary bag of the v wide columns of every message of tk
// as a dataset: the regression's input, the same values batch.load gives
// the wide part (without -nb).
func denseBow(tk *tokens, v int) *data.Dataset {
	ds := &data.Dataset{Name: "spam-wide", X: make([]float32, len(tk.labels)*v), Features: v, Shape: []int{v},
		Labels: append([]int32(nil), tk.labels...), Classes: 2, Source: "SpamAssassin"}
	for i, cols := range tk.bow {
		for _, j := range cols {
			ds.X[i*v+int(j)] = 1
		}
	}
	return ds
}
