package train

import (
	"fmt"
	"math"
)

// ClassScore is one class's figures (scikit-learn's classification_report;
// 0 when undefined, as zero_division=0).
type ClassScore struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"` // samples of this true class
}

// classScores derives per-class precision, recall and F1 from a confusion
// matrix (rows: true class), and their unweighted (macro) means.
func classScores(conf [][]int) (per []ClassScore, p, r, f1 float64) {
	k := len(conf)
	if k < 2 {
		return nil, 0, 0, 0
	}
	per = make([]ClassScore, k)
	for c := 0; c < k; c++ {
		tp, predicted, actual := conf[c][c], 0, 0
		for o := 0; o < k; o++ {
			predicted += conf[o][c]
			actual += conf[c][o]
		}
		s := ClassScore{Support: actual}
		if predicted > 0 {
			s.Precision = float64(tp) / float64(predicted)
		}
		if actual > 0 {
			s.Recall = float64(tp) / float64(actual)
		}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		per[c] = s
		p += s.Precision
		r += s.Recall
		f1 += s.F1
	}
	return per, p / float64(k), r / float64(k), f1 / float64(k)
}

// topK is the k of the top-k accuracy reported for a task: 5 for more
// than 5 classes scored by several outputs, else 0 (none).
func topK(classes, outputs int) int {
	if classes > 5 && outputs == classes {
		return 5
	}
	return 0
}

// inTopK reports whether class c is among the k highest outputs of row:
// fewer than k outputs are strictly higher than its own (ties count for
// the true class).
func inTopK(row []float32, c, k int) bool {
	higher := 0
	for _, v := range row {
		if v > row[c] {
			higher++
		}
	}
	return higher < k
}

// TopKAccuracy is the fraction of rows (outputs row-major, width per row)
// whose true class is among the k highest outputs (see inTopK for ties).
func TopKAccuracy(outputs []float32, width int, truth []int32, k int) (float64, error) {
	if width < 1 || k < 1 || len(outputs) != len(truth)*width || len(truth) == 0 {
		return 0, fmt.Errorf("train: TopKAccuracy: %d outputs, width %d, %d labels, k %d: expected width, k ≥ 1 and width outputs per label", len(outputs), width, len(truth), k)
	}
	hits := 0
	for i, t := range truth {
		if t < 0 || int(t) >= width {
			return 0, fmt.Errorf("train: TopKAccuracy: label %d of sample %d is outside [0, %d)", t, i, width)
		}
		if inTopK(outputs[i*width:(i+1)*width], int(t), k) {
			hits++
		}
	}
	return float64(hits) / float64(len(truth)), nil
}

// RegressionMetrics are a regression model's errors beside its loss.
type RegressionMetrics struct {
	// RMSE is the root of the mean squared error over every target value.
	RMSE float64 `json:"rmse"`
	// MAE is the mean absolute error over every target value.
	MAE float64 `json:"mae"`
	// R2 is the coefficient of determination 1 − SS_res/SS_tot of each
	// output, averaged over the outputs (scikit-learn's r2_score,
	// multioutput="uniform_average"); an output whose targets are all
	// equal scores 1 when predicted exactly, else 0 (force_finite).
	R2 float64 `json:"r2"`
}

// regressionAcc accumulates, in float64 and in sample order, the sums the
// regression metrics need.
type regressionAcc struct {
	y      []float32 // all targets, n × out
	out    int
	mean   []float64 // per output, of the targets
	ssTot  []float64 // per output
	ssRes  []float64 // per output
	absSum float64
	count  int
}

func newRegressionAcc(y []float32, out int) *regressionAcc {
	r := &regressionAcc{y: y, out: out, mean: make([]float64, out), ssTot: make([]float64, out), ssRes: make([]float64, out)}
	n := len(y) / out
	for i := 0; i < n; i++ {
		for j := 0; j < out; j++ {
			r.mean[j] += float64(y[i*out+j])
		}
	}
	for j := range r.mean {
		r.mean[j] /= float64(max(n, 1))
	}
	for i := 0; i < n; i++ {
		for j := 0; j < out; j++ {
			d := float64(y[i*out+j]) - r.mean[j]
			r.ssTot[j] += d * d
		}
	}
	return r
}

func (r *regressionAcc) reset() {
	clear(r.ssRes)
	r.absSum, r.count = 0, 0
}

// add takes the outputs of the rows starting at sample start.
func (r *regressionAcc) add(pred []float32, start int) {
	y := r.y[start*r.out : start*r.out+len(pred)]
	for i, p := range pred {
		d := float64(p) - float64(y[i])
		r.ssRes[i%r.out] += d * d
		r.absSum += math.Abs(d)
	}
	r.count += len(pred)
}

func (r *regressionAcc) result() RegressionMetrics {
	var m RegressionMetrics
	if r.count == 0 {
		return m
	}
	sse := 0.0
	for j := range r.ssRes {
		sse += r.ssRes[j]
		switch {
		case r.ssTot[j] > 0:
			m.R2 += 1 - r.ssRes[j]/r.ssTot[j]
		case r.ssRes[j] == 0:
			m.R2++
		}
	}
	m.R2 /= float64(r.out)
	m.RMSE = math.Sqrt(sse / float64(r.count))
	m.MAE = r.absSum / float64(r.count)
	return m
}

// RegressionScores computes RMSE, MAE and R² of predictions against
// targets (both row-major, outputs values per sample) on the host, for
// models evaluated outside Evaluate.
func RegressionScores(pred, target []float32, outputs int) (RegressionMetrics, error) {
	if outputs < 1 || len(pred) != len(target) || len(pred) == 0 || len(pred)%outputs != 0 {
		return RegressionMetrics{}, fmt.Errorf("train: RegressionScores: %d predictions, %d targets, %d outputs: expected equal, non-zero lengths, a multiple of outputs", len(pred), len(target), outputs)
	}
	r := newRegressionAcc(target, outputs)
	r.add(pred, 0)
	return r.result(), nil
}
