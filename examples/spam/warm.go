package main

import (
	"fmt"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// residualStart fits the baseline's logistic regression (trained as
// fitBaseline trains it, with c and seed) on the model's own wide features
// of the training split tk, and starts the model from it: the wide weights
// are the regression's weights, frozen; the output bias is its bias; the
// output weights are 0. The untrained model therefore computes exactly the
// fitted regression, and training only teaches the deep part (and the
// output layer) a correction of its logits, a residual. With the wide part
// over the baseline's vocabulary (-wide equal to -vocab, the defaults) the
// frozen part is the baseline itself: same features in the same column
// order, same initialisation and batch order (TestResidualStart).
func residualStart(dev device.Device, m *bagModel, tk *tokens, c baseCfg, seed uint64) error {
	if m.Wide == nil || len(tk.bow) != len(tk.labels) {
		return fmt.Errorf("-residual needs the wide part (-wide > 0)")
	}
	v := m.Wide.In
	lr, _, err := trainLR(dev, denseBow(tk, v), nil, c, seed)
	if err != nil {
		return err
	}
	defer lr.Free()
	w, b := lr.Param("0.weight"), lr.Param("0.bias")
	if w == nil || b == nil {
		return fmt.Errorf("-residual: the regression has no 0.weight / 0.bias")
	}
	if err := dev.Copy(m.Wide.Weight.Value(), w.Value(), 2*v); err != nil {
		return err
	}
	if err := dev.Copy(m.Out.Bias.Value(), b.Value(), 2); err != nil {
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
// the wide part.
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
