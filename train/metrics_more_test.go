package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// TestMulticlassScores: per-class and macro precision, recall and F1 from
// ClassMetrics against a direct float64 count over the label pairs
// (scikit-learn's definitions, zero_division=0). Exact up to 1e-12: both
// are the same few divisions of small integers.
func TestMulticlassScores(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const k, n = 4, 300
	truth, pred := make([]int32, n), make([]int32, n)
	for i := range truth {
		truth[i] = int32(r.IntN(k))
		pred[i] = truth[i]
		if r.Float64() < 0.4 {
			pred[i] = int32(r.IntN(k - 1)) // class 3 is never predicted by mistake
		}
	}
	m, err := ClassMetrics(truth, pred, k)
	if err != nil {
		t.Fatal(err)
	}
	var mp, mr, mf float64
	for c := int32(0); c < k; c++ {
		var tp, fp, fn float64
		for i := range truth {
			switch {
			case truth[i] == c && pred[i] == c:
				tp++
			case truth[i] != c && pred[i] == c:
				fp++
			case truth[i] == c && pred[i] != c:
				fn++
			}
		}
		p, rc := 0.0, 0.0
		if tp+fp > 0 {
			p = tp / (tp + fp)
		}
		if tp+fn > 0 {
			rc = tp / (tp + fn)
		}
		f := 0.0
		if p+rc > 0 {
			f = 2 * p * rc / (p + rc)
		}
		got := m.PerClass[c]
		if math.Abs(got.Precision-p) > 1e-12 || math.Abs(got.Recall-rc) > 1e-12 || math.Abs(got.F1-f) > 1e-12 || got.Support != int(tp+fn) {
			t.Errorf("class %d: %+v, want precision %g recall %g f1 %g support %g", c, got, p, rc, f, tp+fn)
		}
		mp, mr, mf = mp+p/k, mr+rc/k, mf+f/k
	}
	if math.Abs(m.MacroPrecision-mp) > 1e-12 || math.Abs(m.MacroRecall-mr) > 1e-12 || math.Abs(m.MacroF1-mf) > 1e-12 {
		t.Errorf("macro %g %g %g, want %g %g %g", m.MacroPrecision, m.MacroRecall, m.MacroF1, mp, mr, mf)
	}
}

// TestTopK: rows with the true class second-highest count for k = 2, not
// for k = 1; Evaluate reports top-5 for ten classes, at least its accuracy.
func TestTopK(t *testing.T) {
	out := []float32{0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.1, 0.1, 0.8}
	truth := []int32{2, 0, 0} // ranks 2, 1, 2
	for k, want := range map[int]float64{1: 1.0 / 3, 2: 1, 3: 1} {
		got, err := TopKAccuracy(out, 3, truth, k)
		if err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("top-%d: %g (%v), want %g", k, got, err, want)
		}
	}
	if _, err := TopKAccuracy(out, 3, []int32{0, 3, 1}, 1); err == nil {
		t.Error("label 3 of 3 classes: no error")
	}
	dev := openCPU(t)
	digits, err := data.Digits()
	if err != nil {
		t.Fatal(err)
	}
	m := buildModel(t, dev, "64-10", 1)
	met, err := Evaluate(dev, m, digits, device.SoftmaxCrossEntropy, 256)
	if err != nil {
		t.Fatal(err)
	}
	if met.TopK != 5 || met.TopKAccuracy < met.Accuracy || met.TopKAccuracy <= 0 || len(met.PerClass) != 10 {
		t.Errorf("untrained digits model: top-%d %.3f, accuracy %.3f, %d per-class scores; want top-5 ≥ accuracy and 10 scores", met.TopK, met.TopKAccuracy, met.Accuracy, len(met.PerClass))
	}
}

// TestRegressionScores: RMSE, MAE and R² (uniform average over outputs)
// against float64 two-pass references, directly and through Evaluate on a
// two-output regression set. Tolerance 1e-9 relative: the sums run in
// float64 over float32 values, in another order than the reference.
func TestRegressionScores(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, k = 97, 2
	y, p := make([]float32, n*k), make([]float32, n*k)
	for i := range y {
		y[i] = float32(r.NormFloat64()*3 + float64(i%k))
		p[i] = y[i] + float32(r.NormFloat64()*0.5)
	}
	ref := func(p, y []float32) (rmse, mae, r2 float64) {
		var se, ae float64
		for i := range y {
			d := float64(p[i]) - float64(y[i])
			se += d * d
			ae += math.Abs(d)
		}
		for j := 0; j < k; j++ {
			var mean, tot, res float64
			for i := 0; i < n; i++ {
				mean += float64(y[i*k+j]) / n
			}
			for i := 0; i < n; i++ {
				tot += math.Pow(float64(y[i*k+j])-mean, 2)
				res += math.Pow(float64(p[i*k+j])-float64(y[i*k+j]), 2)
			}
			r2 += (1 - res/tot) / k
		}
		return math.Sqrt(se / float64(len(y))), ae / float64(len(y)), r2
	}
	close := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %.12g, want %.12g", what, got, want)
		}
	}
	got, err := RegressionScores(p, y, k)
	if err != nil {
		t.Fatal(err)
	}
	rm, ma, r2 := ref(p, y)
	close("RMSE", got.RMSE, rm)
	close("MAE", got.MAE, ma)
	close("R2", got.R2, r2)

	dev := openCPU(t)
	ds := &data.Dataset{Name: "reg", Features: 3, Shape: []int{3}, Outputs: k}
	for i := 0; i < n; i++ {
		for f := 0; f < 3; f++ {
			ds.X = append(ds.X, float32(r.NormFloat64()))
		}
		ds.Y = append(ds.Y, y[i*k:(i+1)*k]...)
	}
	m := buildModel(t, dev, "3-2", 1)
	met, err := Evaluate(dev, m, ds, device.MSE, 16)
	if err != nil {
		t.Fatal(err)
	}
	md := SequentialModel(m)
	outs, err := Outputs(dev, md, ds.X, n, 50)
	if err != nil {
		t.Fatal(err)
	}
	if met.Regression == nil {
		t.Fatal("Evaluate of a regression set: no regression metrics")
	}
	rm, ma, r2 = ref(outs, ds.Y)
	close("Evaluate RMSE", met.Regression.RMSE, rm)
	close("Evaluate MAE", met.Regression.MAE, ma)
	close("Evaluate R2", met.Regression.R2, r2)
	// mse is the mean squared error per value: RMSE² (float32 loss sums).
	if math.Abs(met.Loss-rm*rm) > 1e-5*rm*rm {
		t.Errorf("loss %g, RMSE² %g", met.Loss, rm*rm)
	}
}
