package train

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// TestEvaluateBinary: a 1-1 model with weight 1 and bias 0 outputs x as
// its logit, so every prediction and the loss are known.
func TestEvaluateBinary(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "1-1", 1)
	values, _ := m.Flat()
	if err := dev.WriteF32(values, 0, []float32{1, 0}); err != nil {
		t.Fatal(err)
	}
	x := []float32{-2, -1, 0.5, 3, -0.5, 2}
	labels := []int32{0, 1, 1, 1, 0, 0}
	ds := &data.Dataset{Name: "bin", X: x, Features: 1, Labels: labels, Classes: 2}
	met, err := Evaluate(dev, m, ds, device.BCEWithLogits, 4) // two batches, one partial
	if err != nil {
		t.Fatal(err)
	}
	var loss float64 // torch.nn.BCEWithLogitsLoss in float64
	for i, z := range x {
		zf, y := float64(z), float64(labels[i])
		loss += math.Max(zf, 0) - zf*y + math.Log1p(math.Exp(-math.Abs(zf)))
	}
	loss /= float64(len(x))
	if math.Abs(met.Loss-loss) > 1e-6 { // float32 loss of O(1) terms
		t.Errorf("loss %v, want %v", met.Loss, loss)
	}
	// Predictions (logit > 0): 0 0 1 1 0 1.
	want := [][]int{{2, 1}, {1, 2}}
	for i := range want {
		for j := range want[i] {
			if met.Confusion[i][j] != want[i][j] {
				t.Fatalf("confusion %v, want %v", met.Confusion, want)
			}
		}
	}
	if met.Accuracy != 4.0/6 || met.Precision != 2.0/3 || met.Recall != 2.0/3 || math.Abs(met.F1-2.0/3) > 1e-15 || met.Samples != 6 {
		t.Errorf("metrics %+v, want accuracy 4/6, precision 2/3, recall 2/3, f1 2/3", met)
	}

	// The same model read as a probability (BCE, threshold 0.5) with float
	// targets: predictions x > 0.5 are 0 0 0 1 0 1.
	ds2 := &data.Dataset{Name: "prob", X: []float32{0.1, 0.4, 0.2, 0.9, 0.6, 0.7}, Features: 1, Y: []float32{0, 1, 0, 1, 0, 1}, Outputs: 1}
	met, err = Evaluate(dev, m, ds2, device.BCE, 16)
	if err != nil {
		t.Fatal(err)
	}
	if met.Classes != 2 || met.Confusion[0][0] != 2 || met.Confusion[0][1] != 1 || met.Confusion[1][0] != 1 || met.Confusion[1][1] != 2 {
		t.Errorf("BCE confusion %v, want [[2 1] [1 2]]", met.Confusion)
	}
}

// TestEvaluateMultiClass: a 2-3 model whose logits are (x0, x1, 0.5).
func TestEvaluateMultiClass(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "2-3", 1)
	values, _ := m.Flat()
	if err := dev.WriteF32(values, 0, []float32{1, 0, 0, 1, 0, 0, 0, 0, 0.5}); err != nil {
		t.Fatal(err)
	}
	ds := &data.Dataset{Name: "three", Features: 2, Classes: 3,
		X:      []float32{2, 0, 0, 2, 0, 0, 1, 0.9, 0.1, 0.2},
		Labels: []int32{0, 1, 2, 1, 0}}
	met, err := Evaluate(dev, m, ds, device.SoftmaxCrossEntropy, 2)
	if err != nil {
		t.Fatal(err)
	}
	// argmax: 0, 1, 2, 0, 2 → correct: 0, 1, 2 → 3/5.
	if met.Accuracy != 0.6 || met.Confusion[1][0] != 1 || met.Confusion[0][2] != 1 || met.Classes != 3 {
		t.Errorf("metrics %+v, want accuracy 0.6 with sample 3 (class 1) taken for 0 and sample 4 (class 0) for 2", met)
	}
	var loss float64 // torch.nn.CrossEntropyLoss in float64
	for i := 0; i < 5; i++ {
		z := []float64{float64(ds.X[2*i]), float64(ds.X[2*i+1]), 0.5}
		lse := math.Log(math.Exp(z[0]) + math.Exp(z[1]) + math.Exp(z[2]))
		loss += lse - z[ds.Labels[i]]
	}
	loss /= 5
	if math.Abs(met.Loss-loss) > 1e-6 { // float32 loss of O(1) terms
		t.Errorf("loss %v, want %v", met.Loss, loss)
	}
	if _, err := Evaluate(dev, m, ds, device.SoftmaxCrossEntropy, 0); err == nil {
		t.Error("Evaluate with batch 0: no error")
	}
}

func TestResultJSONWithoutValidation(t *testing.T) {
	r := Result{BestEpoch: -1, BestValLoss: math.Inf(1), TrainLoss: 0.25, StopReason: StopEpochs}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"best_val_loss":null`) || !strings.Contains(s, `"train_loss":0.25`) || !strings.Contains(s, `"stop_reason":"epochs"`) {
		t.Errorf("JSON %s: want best_val_loss null, train_loss 0.25, stop_reason epochs", s)
	}
}

func TestNewOptimizerNames(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "2-3-1", 1)
	for name, check := range map[string]func(Optimizer) bool{
		"sgd":      func(o Optimizer) bool { c := o.(*SGD).Config(); return c.Momentum == 0 && !c.Nesterov },
		"momentum": func(o Optimizer) bool { c := o.(*SGD).Config(); return c.Momentum == 0.9 && !c.Nesterov },
		"nesterov": func(o Optimizer) bool { c := o.(*SGD).Config(); return c.Momentum == 0.9 && c.Nesterov },
		"adam": func(o Optimizer) bool {
			c := o.(*Adam).Config()
			return c.Beta1 == 0.9 && c.Beta2 == 0.999 && c.Eps == 1e-8 && !c.Decoupled
		},
		"adamw": func(o Optimizer) bool { return o.(*Adam).Config().Decoupled },
	} {
		o, err := NewOptimizer(m, OptimizerConfig{Name: name, LR: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		if !check(o) || o.LR() != 0.01 {
			t.Errorf("NewOptimizer(%q) built %#v", name, o)
		}
		o.Free()
	}
	if _, err := NewOptimizer(m, OptimizerConfig{Name: "rmsprop", LR: 0.01}); err == nil || !strings.Contains(err.Error(), "rmsprop") {
		t.Errorf("unknown optimizer: %v, want an error naming it", err)
	}
}
