package train

import "fmt"

// ClassMetrics is the classification part of Metrics computed on the host
// from true and predicted class labels, for models whose evaluation the
// caller runs itself (token inputs, ranking, a custom forward): the
// confusion matrix, accuracy and, for two classes, precision, recall and
// F1 of class 1 (0 when undefined, as scikit-learn's zero_division=0).
// Loss is left 0. Labels outside [0, classes) are an error.
func ClassMetrics(truth, pred []int32, classes int) (Metrics, error) {
	var m Metrics
	if classes < 2 {
		return m, fmt.Errorf("train: ClassMetrics: %d classes, expected ≥ 2", classes)
	}
	if len(truth) != len(pred) {
		return m, fmt.Errorf("train: ClassMetrics: %d true labels and %d predictions", len(truth), len(pred))
	}
	m.Samples, m.Classes = len(truth), classes
	m.Confusion = make([][]int, classes)
	for i := range m.Confusion {
		m.Confusion[i] = make([]int, classes)
	}
	for i, t := range truth {
		p := pred[i]
		if t < 0 || int(t) >= classes || p < 0 || int(p) >= classes {
			return Metrics{}, fmt.Errorf("train: ClassMetrics: sample %d: label %d, prediction %d, expected both in [0, %d)", i, t, p, classes)
		}
		m.Confusion[t][p]++
	}
	m.finish()
	return m, nil
}
