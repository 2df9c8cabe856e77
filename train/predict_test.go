package train

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// TestReadoutRows checks every kind of output against float64 references.
// Tolerance 1e-12: the readout computes in float64 from float32 inputs
// that are exact here, so only the last bits of exp may differ.
func TestReadoutRows(t *testing.T) {
	two := math.Float32frombits(0x40000000) // 2
	p := Readout{Loss: device.SoftmaxCrossEntropy, Classify: true}.Row([]float32{0, 0, two})
	if p.Class != 2 || math.Abs(p.Probabilities[2]-math.Exp(2)/(2+math.Exp(2))) > 1e-12 || math.Abs(p.Probabilities[0]-1/(2+math.Exp(2))) > 1e-12 {
		t.Errorf("cross_entropy logits 0,0,2: %+v", p)
	}
	p = Readout{Loss: device.BCEWithLogits, Classify: true}.Row([]float32{-1})
	if p.Class != 0 || len(p.Probabilities) != 2 || math.Abs(p.Probabilities[1]-1/(1+math.E)) > 1e-12 {
		t.Errorf("bce_logits -1: %+v", p)
	}
	p = Readout{Loss: device.BCE, Classify: true}.Row([]float32{0.75})
	if p.Class != 1 || p.Probabilities[0] != 0.25 || p.Probabilities[1] != 0.75 {
		t.Errorf("bce 0.75: %+v", p)
	}
	// An mse classifier with one output: a score thresholded at 0.5, as
	// Evaluate scores it (kiln predict used to say class 0 for every row).
	for _, c := range []struct {
		v    float32
		want int
	}{{0.7, 1}, {0.5, 0}, {0.2, 0}, {1.4, 1}} {
		p = Readout{Loss: device.MSE, Classify: true}.Row([]float32{c.v})
		if p.Class != c.want || p.Probabilities != nil || len(p.Scores) != 1 {
			t.Errorf("mse output %v: %+v, want class %d and a score", c.v, p, c.want)
		}
	}
	p = Readout{Loss: device.SoftmaxCrossEntropy, Classify: true, SoftmaxOutput: true}.Row([]float32{0.25, 0.75})
	if p.Class != 1 || p.Probabilities[1] != 0.75 {
		t.Errorf("softmax output: %+v", p)
	}
	p = Readout{Loss: device.MSE}.Row([]float32{1.5, -2})
	if p.Class != -1 || len(p.Outputs) != 2 || p.Outputs[1] != -2 {
		t.Errorf("regression: %+v", p)
	}
}

// TestPredictMatchesEvaluate: a one-output model trained with mse on two
// classes gets the same class for every row from Predict as from
// Evaluate's confusion matrix.
func TestPredictMatchesEvaluate(t *testing.T) {
	dev := openCPU(t)
	ds, err := data.Moons(200, 0.2, 3)
	if err != nil {
		t.Fatal(err)
	}
	m := buildModel(t, dev, "2-16-tanh-1", 1)
	o, err := NewAdam(m, DefaultAdam(0.02))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 15, BatchSize: 20, Loss: device.MSE, Seed: 1, Shuffle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	if _, err := tr.Fit(ds, nil); err != nil {
		t.Fatal(err)
	}
	met, err := Evaluate(dev, m, ds, device.MSE, 64)
	if err != nil {
		t.Fatal(err)
	}
	md := SequentialModel(m)
	preds, err := Predict(dev, md, ds.X, ds.Len(), 37, ModelReadout(md, device.MSE, true))
	if err != nil {
		t.Fatal(err)
	}
	conf := [2][2]int{}
	ones := 0
	for i, p := range preds {
		conf[ds.Labels[i]][p.Class]++
		ones += p.Class
	}
	for a := 0; a < 2; a++ {
		for b := 0; b < 2; b++ {
			if conf[a][b] != met.Confusion[a][b] {
				t.Fatalf("Predict's confusion %v, Evaluate's %v", conf, met.Confusion)
			}
		}
	}
	if ones == 0 || ones == len(preds) || met.Accuracy < 0.8 {
		t.Fatalf("a trained mse model predicts %d of %d rows as class 1 (accuracy %.3f): want both classes", ones, len(preds), met.Accuracy)
	}
	if _, err := Predict(dev, md, ds.X[:5], 2, 8, ModelReadout(md, device.MSE, true)); err == nil {
		t.Error("5 values for 2 rows: no error")
	}
	if _, err := Predict(dev, md, make([]float32, 6), 2, 8, ModelReadout(md, device.MSE, true)); err == nil {
		t.Error("3 features for a 2-input model: no error")
	}
}
