package train

import (
	"math"
	"testing"
)

// TestClassMetrics checks the confusion matrix, accuracy and class-1
// precision/recall/F1 against counts worked out by hand, the
// zero_division=0 convention, and the argument errors.
func TestClassMetrics(t *testing.T) {
	truth := []int32{1, 1, 1, 0, 0, 0, 0, 1}
	pred := []int32{1, 0, 1, 0, 1, 0, 0, 1}
	m, err := ClassMetrics(truth, pred, 2)
	if err != nil {
		t.Fatal(err)
	}
	// tp 3, fn 1, fp 1, tn 3.
	if m.Confusion[1][1] != 3 || m.Confusion[1][0] != 1 || m.Confusion[0][1] != 1 || m.Confusion[0][0] != 3 {
		t.Fatalf("confusion %v", m.Confusion)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if !near(m.Accuracy, 6.0/8) || !near(m.Precision, 3.0/4) || !near(m.Recall, 3.0/4) || !near(m.F1, 3.0/4) || m.Samples != 8 {
		t.Fatalf("metrics %+v", m)
	}
	// No positive predictions: precision, recall and F1 are 0, not NaN.
	m, err = ClassMetrics([]int32{0, 1}, []int32{0, 0}, 2)
	if err != nil || m.Precision != 0 || m.Recall != 0 || m.F1 != 0 || !near(m.Accuracy, 0.5) {
		t.Fatalf("zero division: %+v, %v", m, err)
	}
	// Three classes: accuracy only.
	m, err = ClassMetrics([]int32{0, 1, 2, 2}, []int32{0, 2, 2, 2}, 3)
	if err != nil || !near(m.Accuracy, 0.75) || m.Confusion[1][2] != 1 || m.F1 != 0 {
		t.Fatalf("three classes: %+v, %v", m, err)
	}
	for name, args := range map[string][3]any{
		"classes": {[]int32{0}, []int32{0}, 1},
		"lengths": {[]int32{0, 1}, []int32{0}, 2},
		"label":   {[]int32{2}, []int32{0}, 2},
		"pred":    {[]int32{0}, []int32{-1}, 2},
	} {
		if _, err := ClassMetrics(args[0].([]int32), args[1].([]int32), args[2].(int)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
