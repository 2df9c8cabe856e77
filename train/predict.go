package train

import (
	"fmt"
	"math"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// Readout says how a model's raw outputs become predictions: the one rule
// that Evaluate (accuracy, confusion), `kiln predict` and Go callers of
// Predict share, so that they never disagree on a row's class.
//
//   - several outputs: the class is the argmax (the first of equal
//     maxima); the probabilities are the softmax of the outputs for
//     cross_entropy (which takes logits), the outputs themselves when the
//     model ends in a softmax or for bce (one sigmoid per class), the
//     sigmoid of each output for bce_logits; for mse and half_sse the
//     outputs are scores, not probabilities.
//   - one output on two classes: the class is 1 when the output is above
//     0.5 (above 0, a logit, for bce_logits), as Evaluate has always
//     scored it; the probabilities are [1−p, p] for bce and bce_logits,
//     and an mse-trained output is a score thresholded at 0.5.
//   - regression (Classify false): the outputs as they are.
type Readout struct {
	// Loss is the loss the model was trained with.
	Loss device.LossKind
	// Classify is false for regression: no class, only outputs.
	Classify bool
	// SoftmaxOutput says the model ends in a softmax layer: its outputs
	// are already probabilities.
	SoftmaxOutput bool
}

// ModelReadout is the Readout of a model trained with loss: it reads the
// model's spec (Model.Spec) for a final softmax.
func ModelReadout(m Model, loss device.LossKind, classify bool) Readout {
	r := Readout{Loss: loss, Classify: classify}
	if m.Spec != "" {
		if s, err := nn.ParseSpec(m.Spec); err == nil && len(s.Layers) > 0 && s.Layers[len(s.Layers)-1].Kind == nn.SoftmaxLayer {
			r.SoftmaxOutput = true
		}
	}
	return r
}

// Class is the predicted class of one row of outputs (see Readout); -1
// for regression or an empty row.
func (r Readout) Class(row []float32) int {
	if !r.Classify || len(row) == 0 {
		return -1
	}
	if len(row) == 1 {
		threshold := float32(0.5)
		if r.Loss == device.BCEWithLogits {
			threshold = 0
		}
		if row[0] > threshold {
			return 1
		}
		return 0
	}
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// Prediction is one row's result.
type Prediction struct {
	// Class is the predicted class, -1 for regression.
	Class int `json:"class"`
	// Probabilities are the class probabilities when the outputs can be
	// read as such (see Readout), else nil.
	Probabilities []float64 `json:"probabilities,omitempty"`
	// Scores are the outputs of a classifier trained with mse or half_sse:
	// ranked like probabilities, but not probabilities.
	Scores []float64 `json:"scores,omitempty"`
	// Outputs are the raw outputs of a regression model.
	Outputs []float64 `json:"outputs,omitempty"`
}

// Row turns one row of raw outputs into a Prediction.
func (r Readout) Row(row []float32) Prediction {
	v := make([]float64, len(row))
	for i, x := range row {
		v[i] = float64(x)
	}
	p := Prediction{Class: r.Class(row)}
	if !r.Classify {
		p.Outputs = v
		return p
	}
	switch {
	case r.SoftmaxOutput || r.Loss == device.BCE:
		p.Probabilities = v
	case r.Loss == device.SoftmaxCrossEntropy && len(v) > 1:
		p.Probabilities = softmax64(v)
	case r.Loss == device.BCEWithLogits:
		for i := range v {
			v[i] = 1 / (1 + math.Exp(-v[i]))
		}
		p.Probabilities = v
	default:
		p.Scores = v
	}
	if len(v) == 1 && p.Probabilities != nil {
		p.Probabilities = []float64{1 - v[0], v[0]}
	}
	return p
}

func softmax64(v []float64) []float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		out[i] = math.Exp(x - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// Outputs runs m over rows samples of x (row-major, len(x)/rows features
// each, already standardised as the model expects) in batches of batch
// rows, in evaluation mode, and returns the raw outputs on the host, rows ×
// m.Outputs. It leaves m in evaluation mode.
func Outputs(dev device.Device, m Model, x []float32, rows, batch int) ([]float32, error) {
	switch {
	case dev == nil || m.Module == nil:
		return nil, fmt.Errorf("train: Predict: device and model must not be nil")
	case rows < 1 || len(x)%rows != 0:
		return nil, fmt.Errorf("train: Predict: %d values for %d rows, expected rows ≥ 1 and a whole number of features per row", len(x), rows)
	case batch < 1:
		return nil, fmt.Errorf("train: Predict: batch %d, expected ≥ 1", batch)
	}
	features := len(x) / rows
	in, width, err := modelDims(m)
	if err != nil {
		return nil, err
	}
	if in != 0 && in != features {
		return nil, fmt.Errorf("train: Predict: %d features per row, the model takes %d", features, in)
	}
	nn.SetTraining(m.Module, false)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	batch = min(batch, rows)
	buf, err := dev.Alloc(device.Float32, batch*features)
	if err != nil {
		return nil, fmt.Errorf("train: Predict: %w", err)
	}
	defer dev.Free(buf)
	shape := make([]int, 1+max(len(m.InputShape), 1))
	out := make([]float32, rows*width)
	for start := 0; start < rows; start += batch {
		n := min(batch, rows-start)
		if err := dev.WriteF32(buf, 0, x[start*features:(start+n)*features]); err != nil {
			return nil, fmt.Errorf("train: Predict: %w", err)
		}
		shape[0] = n
		if m.InputShape == nil {
			shape[1] = features
		} else {
			copy(shape[1:], m.InputShape)
		}
		xt, err := g.Input(buf, shape...)
		if err != nil {
			return nil, fmt.Errorf("train: Predict: %w", err)
		}
		y, err := m.Module.Forward(g, xt)
		if err != nil {
			return nil, fmt.Errorf("train: Predict: forward: %w", err)
		}
		if y.Len() != n*width {
			return nil, fmt.Errorf("train: Predict: the model gave %d outputs for %d rows, expected %d per row (Model.Outputs)", y.Len(), n, width)
		}
		if err := dev.ReadF32(out[start*width:(start+n)*width], y.Value(), 0); err != nil {
			return nil, fmt.Errorf("train: Predict: %w", err)
		}
		g.Reset()
	}
	return out, nil
}

// Predict runs m over rows samples of x (see Outputs) and reads every row
// with r: host data in, host results out.
func Predict(dev device.Device, m Model, x []float32, rows, batch int, r Readout) ([]Prediction, error) {
	outs, err := Outputs(dev, m, x, rows, batch)
	if err != nil {
		return nil, err
	}
	width := m.Outputs
	preds := make([]Prediction, rows)
	for i := range preds {
		preds[i] = r.Row(outs[i*width : (i+1)*width])
	}
	return preds, nil
}
