package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// lossRef is a float64 reference of one loss, following PyTorch's
// definitions and default (mean) reductions. It returns the loss, a
// magnitude M (the mean of the absolute sizes of the terms summed, which
// bounds the float32 rounding error of the loss), the gradient and, per
// element, the scale of its absolute error floor.
type lossRef struct {
	loss, mag float64
	grad      []float64
	gscale    []float64
}

// bceLog is PyTorch's clamped log: max(log(v), -100).
func bceLog(v float64) float64 { return math.Max(math.Log(v), -100) }

func computeLoss(kind device.LossKind, pred, target []float32, labels []int32, rows, cols int) lossRef {
	n := rows * cols
	N := float64(n)
	ref := lossRef{grad: make([]float64, n), gscale: make([]float64, n)}
	var sum, mag float64
	switch kind {
	case device.MSE, device.HalfSSE:
		div, gdiv := N, 2/N // torch.nn.MSELoss: mean over all elements
		if kind == device.HalfSSE {
			div, gdiv = 2*float64(rows), 1/float64(rows) // J = 1/(2·rows) Σ (h−y)²
		}
		for i := range pred {
			d := float64(pred[i]) - float64(target[i])
			sum += d * d
			ref.grad[i] = gdiv * d
			ref.gscale[i] = gdiv
		}
		ref.loss = sum / div
		mag = ref.loss
	case device.BCE:
		for i := range pred {
			p, y := float64(pred[i]), float64(target[i])
			a, b := y*bceLog(p), (1-y)*bceLog(1-p)
			sum -= a + b
			mag += math.Abs(a) + math.Abs(b)
			// torch's binary_cross_entropy_backward:
			// (p − y) / max(p·(1−p), 1e-12), then the mean's 1/N.
			ref.grad[i] = (p - y) / math.Max(p*(1-p), 1e-12) / N
			ref.gscale[i] = 1 / N
		}
		ref.loss = sum / N
		mag /= N
	case device.BCEWithLogits:
		for i := range pred {
			x, y := float64(pred[i]), float64(target[i])
			// Stable: max(x, 0) − x·y + log(1 + e^−|x|).
			l := math.Log1p(math.Exp(-math.Abs(x)))
			sum += math.Max(x, 0) - x*y + l
			mag += math.Abs(x) + math.Abs(x*y) + l
			sig := 1 / (1 + math.Exp(-x))
			ref.grad[i] = (sig - y) / N
			ref.gscale[i] = 1 / N
		}
		ref.loss = sum / N
		mag /= N
	case device.SoftmaxCrossEntropy:
		R := float64(rows)
		for r := 0; r < rows; r++ {
			row := pred[r*cols : (r+1)*cols]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			var se float64
			for _, v := range row {
				se += math.Exp(float64(v) - mx)
			}
			lse := mx + math.Log(se)
			lab := int(labels[r])
			sum += lse - float64(row[lab])
			mag += math.Abs(lse) + math.Abs(float64(row[lab])) + 1
			for j, v := range row {
				g := math.Exp(float64(v)-mx) / se
				if j == lab {
					g--
				}
				ref.grad[r*cols+j] = g / R
				ref.gscale[r*cols+j] = 1 / R
			}
		}
		ref.loss = sum / R
		mag /= R
	}
	ref.mag = mag
	return ref
}

// lossInputs draws predictions and targets for kind: values of each
// loss's natural range, with the awkward ones first when extreme (logits
// ±100, probabilities exactly 0 and 1, hard 0/1 labels).
func lossInputs(r *rand.Rand, kind device.LossKind, rows, cols int, extreme bool) (pred, target []float32, labels []int32) {
	n := rows * cols
	switch kind {
	case device.MSE, device.HalfSSE:
		pred, target = uniform(r, n, -3, 3), uniform(r, n, -3, 3)
	case device.BCE:
		pred, target = uniform(r, n, 0.001, 0.999), uniform(r, n, 0, 1)
		if extreme {
			for i := range pred {
				switch r.IntN(4) {
				case 0:
					pred[i] = 0
				case 1:
					pred[i] = 1
				}
				if r.IntN(2) == 0 {
					target[i] = float32(r.IntN(2))
				}
			}
		}
	case device.BCEWithLogits:
		pred, target = uniform(r, n, -8, 8), uniform(r, n, 0, 1)
		if extreme {
			for i := range pred {
				switch r.IntN(3) {
				case 0:
					pred[i] = 100
				case 1:
					pred[i] = -100
				}
				if r.IntN(2) == 0 {
					target[i] = float32(r.IntN(2))
				}
			}
		}
	case device.SoftmaxCrossEntropy:
		pred = softmaxInput(r, rows, cols, extreme)
		labels = make([]int32, rows)
		for i := range labels {
			labels[i] = int32(r.IntN(cols))
		}
	}
	return pred, target, labels
}

var lossKinds = []device.LossKind{device.MSE, device.HalfSSE, device.BCE, device.BCEWithLogits, device.SoftmaxCrossEntropy}

func (s *suite) testLoss(t *testing.T) {
	shapes := []shape2{{1, 1}, {7, 13}, {64, 10}, {3, 1000}, {2, 5000}}
	for _, kind := range lossKinds {
		for _, sh := range shapes {
			for _, extreme := range []bool{false, true} {
				if extreme && (kind == device.MSE || kind == device.HalfSSE) {
					continue
				}
				for _, withGrad := range []bool{true, false} {
					name := fmt.Sprintf("%s/%dx%d", kind, sh.rows, sh.cols)
					if extreme {
						name += "/extreme"
					}
					if !withGrad {
						name += "/grad=nil"
					}
					t.Run(name, func(t *testing.T) {
						r := newRand(t)
						pred, target, labels := lossInputs(r, kind, sh.rows, sh.cols, extreme)
						s.checkLoss(t, kind, pred, target, labels, sh.rows, sh.cols, withGrad)
					})
				}
			}
		}
	}
	// The limits, one element at a time.
	limits := []struct {
		name   string
		kind   device.LossKind
		pred   []float32
		target []float32
		labels []int32
		want   float64
	}{
		{"bce_logits/x=100,y=1", device.BCEWithLogits, []float32{100}, []float32{1}, nil, 0},
		{"bce_logits/x=-100,y=1", device.BCEWithLogits, []float32{-100}, []float32{1}, nil, 100},
		{"bce_logits/x=100,y=0", device.BCEWithLogits, []float32{100}, []float32{0}, nil, 100},
		{"bce_logits/x=-100,y=0", device.BCEWithLogits, []float32{-100}, []float32{0}, nil, 0},
		{"bce/p=0,y=1", device.BCE, []float32{0}, []float32{1}, nil, 100},
		{"bce/p=1,y=0", device.BCE, []float32{1}, []float32{0}, nil, 100},
		{"bce/p=0,y=0", device.BCE, []float32{0}, []float32{0}, nil, 0},
		{"bce/p=1,y=1", device.BCE, []float32{1}, []float32{1}, nil, 0},
		{"cross_entropy/right", device.SoftmaxCrossEntropy, []float32{100, -100, 0}, nil, []int32{0}, 0},
		{"cross_entropy/wrong", device.SoftmaxCrossEntropy, []float32{100, -100, 0}, nil, []int32{1}, 200},
		{"cross_entropy/wrong_by_100", device.SoftmaxCrossEntropy, []float32{100, -100, 0}, nil, []int32{2}, 100},
	}
	for _, l := range limits {
		t.Run("limit/"+l.name, func(t *testing.T) {
			cols := len(l.pred)
			got := s.checkLoss(t, l.kind, l.pred, l.target, l.labels, 1, cols, true)
			// Absolute 1e-4: a float32 loss near 100 or 200 carries
			// ~1e-5 of rounding, near 0 it must come out (almost) exact.
			if math.Abs(float64(got)-l.want) > 1e-4 {
				t.Errorf("loss = %v; want %v", got, l.want)
			}
		})
	}
}

// checkLoss runs one Loss call against the reference and returns the loss.
func (s *suite) checkLoss(t *testing.T, kind device.LossKind, pred, target []float32, labels []int32, rows, cols int, withGrad bool) float32 {
	n := rows * cols
	bp := s.upload(t, pred)
	var bt device.Buffer
	if kind == device.SoftmaxCrossEntropy {
		bt = s.uploadI32(t, labels)
	} else {
		bt = s.upload(t, target)
	}
	bl := s.upload(t, []float32{nan})
	var bg device.Buffer
	if withGrad {
		bg = s.upload(t, filled(n, nan))
	}
	do(t, "Loss", func() error { return s.dev.Loss(kind, bp, bt, rows, cols, bl, bg) })
	got := s.read(t, bl, 1)[0]
	ref := computeLoss(kind, pred, target, labels, rows, cols)
	// The loss is a mean of n float32 terms: summing them in any order errs
	// by at most n·u of the sum of their magnitudes (M is its mean), and
	// each term's log/exp adds transRel of its size; cancellations inside a
	// term (1 − p, log near 1) cost an absolute transAbs.
	tol := (2*float64(n)*u+transRel)*ref.mag + transAbs
	if math.IsNaN(float64(got)) || math.IsInf(float64(got), 0) || math.Abs(float64(got)-ref.loss) > tol {
		t.Errorf("loss = %v; want %v ± %.3g", got, ref.loss, tol)
	}
	if withGrad {
		g := s.read(t, bg, n)
		finite(t, "grad", g)
		c := newChecker(t, "grad")
		for i := range g {
			// A handful of float32 operations, possibly through exp or a
			// division by max(p(1−p), 1e-12): transRel of the value, and
			// transAbs of the element's scale (1/N or 1/rows) where
			// σ(x) − y or softmax − onehot cancels.
			c.near(i, g[i], ref.grad[i], transRel*math.Abs(ref.grad[i])+transAbs*ref.gscale[i])
		}
		c.done()
	}
	return got
}
