package train

import (
	"fmt"
	"math"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// Metrics is a model's performance on one dataset.
type Metrics struct {
	// Loss is the mean loss over all samples (each batch's loss weighted
	// by its rows), in the loss's PyTorch definition.
	Loss float64 `json:"loss"`
	// Samples is the number of samples evaluated.
	Samples int `json:"samples"`
	// Classes is the number of classes for a classification task, 0 for
	// regression (then the fields below are zero).
	Classes int `json:"classes,omitempty"`
	// Accuracy is the fraction of samples whose predicted class is the
	// label: the row's argmax for several outputs; for one output, the
	// probability above 0.5 (logit above 0 for BCEWithLogits).
	Accuracy float64 `json:"accuracy,omitempty"`
	// Confusion[t][p] counts samples of true class t predicted as p.
	Confusion [][]int `json:"confusion,omitempty"`
	// Precision, Recall and F1 are for class 1 of a two-class task (0 when
	// undefined, as scikit-learn's zero_division=0).
	Precision float64 `json:"precision,omitempty"`
	Recall    float64 `json:"recall,omitempty"`
	F1        float64 `json:"f1,omitempty"`
	// MacroPrecision, MacroRecall and MacroF1 are the unweighted means
	// over the classes of PerClass (scikit-learn's average="macro").
	MacroPrecision float64 `json:"macro_precision,omitempty"`
	MacroRecall    float64 `json:"macro_recall,omitempty"`
	MacroF1        float64 `json:"macro_f1,omitempty"`
	// PerClass holds every class's precision, recall, F1 and support.
	PerClass []ClassScore `json:"per_class,omitempty"`
	// TopK and TopKAccuracy: the fraction of samples whose true class is
	// among the TopK highest outputs, for tasks of more than 5 classes
	// (TopK 5); 0 otherwise.
	TopK         int     `json:"top_k,omitempty"`
	TopKAccuracy float64 `json:"top_k_accuracy,omitempty"`
	// Regression holds RMSE, MAE and R² for a regression task (float
	// targets, no classes), nil otherwise.
	Regression *RegressionMetrics `json:"regression,omitempty"`
}

// String is a one-line summary for logs.
func (m Metrics) String() string {
	if m.Classes == 0 {
		if r := m.Regression; r != nil {
			return fmt.Sprintf("loss %.6g rmse %.4g mae %.4g r2 %.4f (%d samples)", m.Loss, r.RMSE, r.MAE, r.R2, m.Samples)
		}
		return fmt.Sprintf("loss %.6g (%d samples)", m.Loss, m.Samples)
	}
	s := fmt.Sprintf("loss %.6g accuracy %.4f (%d samples)", m.Loss, m.Accuracy, m.Samples)
	if m.Classes == 2 {
		s += fmt.Sprintf(" precision %.4f recall %.4f f1 %.4f", m.Precision, m.Recall, m.F1)
	}
	return s
}

// finish derives accuracy, precision, recall and F1 from the confusion
// matrix.
func (m *Metrics) finish() {
	if m.Classes == 0 || m.Samples == 0 {
		return
	}
	correct := 0
	for c := range m.Confusion {
		correct += m.Confusion[c][c]
	}
	m.Accuracy = float64(correct) / float64(m.Samples)
	if m.Classes == 2 {
		tp, fp, fn := m.Confusion[1][1], m.Confusion[0][1], m.Confusion[1][0]
		if tp+fp > 0 {
			m.Precision = float64(tp) / float64(tp+fp)
		}
		if tp+fn > 0 {
			m.Recall = float64(tp) / float64(tp+fn)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
	}
	m.PerClass, m.MacroPrecision, m.MacroRecall, m.MacroF1 = classScores(m.Confusion)
}

// evaluator runs a model over a dataset in evaluation mode. The trainer
// keeps one per dataset so that evaluating every epoch allocates nothing
// after the first time.
type evaluator struct {
	dev   device.Device
	m     Model
	shape []int // input shape scratch
	g     *nn.Graph
	b     *batcher
	out   int
	acc   device.Buffer // one element: Σ rows·batch loss
	hout  []float32     // one batch of outputs on the host
	truth []int32       // true classes, nil for regression
	read  Readout       // outputs → class, shared with Predict
	reg   *regressionAcc
	idx   []int
}

// classTruth returns the true class of every sample when the task is a
// classification one the metrics can score, else nil.
func classTruth(ds *data.Dataset, kind device.LossKind, out int) ([]int32, int) {
	if ds.Labels != nil && ds.Classes >= 2 && (out == ds.Classes || (out == 1 && ds.Classes == 2)) {
		return ds.Labels, ds.Classes
	}
	if ds.Y != nil && out == 1 && ds.Outputs == 1 && (kind == device.BCE || kind == device.BCEWithLogits) {
		t := make([]int32, len(ds.Y))
		for i, v := range ds.Y {
			if v >= 0.5 {
				t[i] = 1
			}
		}
		return t, 2
	}
	return nil, 0
}

func newEvaluator(dev device.Device, m Model, ds *data.Dataset, kind device.LossKind, batch int) (*evaluator, error) {
	in, out, err := modelDims(m)
	if err != nil {
		return nil, err
	}
	b, err := newBatcher(dev, ds, kind, in, out, batch)
	if err != nil {
		return nil, err
	}
	e := &evaluator{dev: dev, m: m, shape: make([]int, 1+max(len(m.InputShape), 1)), g: nn.NewGraph(dev), b: b, out: out, idx: make([]int, b.cap)}
	e.g.SetGradEnabled(false)
	e.truth, _ = classTruth(ds, kind, out)
	e.read = ModelReadout(m, kind, e.truth != nil)
	if e.truth == nil && ds.Y != nil && ds.Outputs == out && kind != device.BCE && kind != device.BCEWithLogits {
		e.reg = newRegressionAcc(ds.Y, out)
	}
	if e.acc, err = dev.Alloc(device.Float32, 1); err != nil {
		e.free()
		return nil, fmt.Errorf("train: evaluate: %w", err)
	}
	if e.truth != nil || e.reg != nil {
		e.hout = make([]float32, b.cap*out)
	}
	return e, nil
}

// run evaluates the model on the whole dataset, in file order.
func (e *evaluator) run() (Metrics, error) {
	ds := e.b.ds
	n := ds.Len()
	var met Metrics
	met.Samples = n
	_, classes := classTruth(ds, e.b.kind, e.out)
	if e.truth != nil {
		met.Classes = classes
		met.Confusion = make([][]int, classes)
		for i := range met.Confusion {
			met.Confusion[i] = make([]int, classes)
		}
	}
	nn.SetTraining(e.m.Module, false)
	if err := e.dev.Fill(e.acc, 1, 0); err != nil {
		return met, fmt.Errorf("train: evaluate: %w", err)
	}
	top := topK(met.Classes, e.out)
	topHits := 0
	if e.reg != nil {
		e.reg.reset()
	}
	for start := 0; start < n; start += e.b.cap {
		rows := min(e.b.cap, n-start)
		idx := e.idx[:rows]
		for j := range idx {
			idx[j] = start + j
		}
		if err := e.b.load(idx); err != nil {
			return met, err
		}
		x, err := input(e.g, e.m, e.b, rows, e.shape)
		if err != nil {
			return met, fmt.Errorf("train: evaluate: %w", err)
		}
		pred, err := e.m.Module.Forward(e.g, x)
		if err != nil {
			return met, fmt.Errorf("train: evaluate: forward: %w", err)
		}
		loss, err := e.g.Loss(e.b.kind, pred, e.b.y)
		if err != nil {
			return met, fmt.Errorf("train: evaluate: loss: %w", err)
		}
		if err := e.dev.Axpy(float32(rows), loss.Value(), e.acc, 1); err != nil {
			return met, fmt.Errorf("train: evaluate: %w", err)
		}
		if e.hout != nil {
			out := e.hout[:rows*e.out]
			if err := e.dev.ReadF32(out, pred.Value(), 0); err != nil {
				return met, fmt.Errorf("train: evaluate: %w", err)
			}
			for j := 0; j < rows; j++ {
				row := out[j*e.out : (j+1)*e.out]
				if e.truth != nil {
					t := e.truth[start+j]
					met.Confusion[t][e.read.Class(row)]++
					if top > 0 && inTopK(row, int(t), top) {
						topHits++
					}
				}
			}
			if e.reg != nil {
				e.reg.add(out, start)
			}
		}
		e.g.Reset()
	}
	var sum [1]float32
	if err := e.dev.ReadF32(sum[:], e.acc, 0); err != nil {
		return met, fmt.Errorf("train: evaluate: reading the loss: %w", err)
	}
	met.Loss = float64(sum[0]) / float64(n)
	if math.IsNaN(met.Loss) {
		return met, fmt.Errorf("train: evaluate: the loss on dataset %q is NaN", ds.Name)
	}
	met.finish()
	if top > 0 && n > 0 {
		met.TopK, met.TopKAccuracy = top, float64(topHits)/float64(n)
	}
	if e.reg != nil {
		r := e.reg.result()
		met.Regression = &r
	}
	return met, nil
}

func (e *evaluator) free() {
	if e.g != nil {
		_ = e.g.Free()
	}
	if e.b != nil {
		_ = e.b.free()
	}
	for _, b := range []device.Buffer{e.acc} {
		if b != nil && !b.Freed() {
			_ = e.dev.Free(b)
		}
	}
}

// Evaluate runs m over the whole of ds in batches of batch rows, in
// evaluation mode (dropout off, no gradients), and returns its mean loss
// under loss kind and, for classification, accuracy, the confusion matrix
// and (two classes) precision, recall and F1. It leaves m in evaluation
// mode. The trainer and `kiln eval` both use it.
func Evaluate(dev device.Device, m *nn.Sequential, ds *data.Dataset, loss device.LossKind, batch int) (Metrics, error) {
	if dev == nil || m == nil {
		return Metrics{}, fmt.Errorf("train: Evaluate: device and model must not be nil")
	}
	return EvaluateModel(dev, SequentialModel(m), ds, loss, batch)
}

// EvaluateModel is Evaluate for any module with its parameter set.
func EvaluateModel(dev device.Device, m Model, ds *data.Dataset, loss device.LossKind, batch int) (Metrics, error) {
	if dev == nil || m.Module == nil {
		return Metrics{}, fmt.Errorf("train: Evaluate: device and model must not be nil")
	}
	e, err := newEvaluator(dev, m, ds, loss, batch)
	if err != nil {
		return Metrics{}, err
	}
	defer e.free()
	return e.run()
}
