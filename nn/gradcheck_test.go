package nn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// The tolerances of these checks are GradCheck's defaults (see
// GradCheckConfig): analytic (device, float32) against central differences
// of a float64 reference, |a−n| ≤ 1e-5 + 1e-4·|n|, loss values within
// 1e-5·(1+|L|). The float32 forward/backward passes of these small shapes
// carry errors around 1e-7 … 1e-6, well inside.

func mustCheck(t *testing.T, dev device.Device, inputs []GradInput, build func(g *Graph, xs []*Tensor) (*Tensor, error), ref func(xs [][]float64) float64) {
	t.Helper()
	res, err := GradCheck(dev, inputs, build, ref, GradCheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked == 0 {
		t.Fatal("no gradient component was checked")
	}
	t.Logf("loss %.7g (ref %.7g), %d components, max |err| %.2g", res.Loss, res.RefLoss, res.Checked, res.MaxAbsErr)
}

// mseTo returns a build step and a reference for MSE against a fixed
// random target, the scalar head the op checks use.
func mseTo(t *testing.T, dev device.Device, r *rng, n int) (device.Buffer, []float64) {
	target := rounded(r.uniform(n, -1, 1))
	return upload(t, dev, f32s(target)), target
}

func TestGradLinear(t *testing.T) {
	dev := openCPU(t)
	r := rng(1)
	const rows, in, out = 5, 4, 3
	tb, target := mseTo(t, dev, &r, rows*out)
	inputs := []GradInput{
		{"x", []int{rows, in}, r.uniform(rows*in, -1, 1)},
		{"w", []int{out, in}, r.uniform(out*in, -1, 1)},
		{"b", []int{out}, r.uniform(out, -1, 1)},
	}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		y, err := g.Linear(xs[0], xs[1], xs[2])
		if err != nil {
			return nil, err
		}
		return g.Loss(device.MSE, y, tb)
	}, func(xs [][]float64) float64 {
		return refLoss(device.MSE, refLinear(xs[0], xs[1], xs[2], rows, in, out), target, nil, rows, out)
	})
}

// TestGradLinear3D: a [2, 3, in] input is 6 rows of a matrix, as PyTorch's
// nn.Linear treats leading axes.
func TestGradLinear3D(t *testing.T) {
	dev := openCPU(t)
	r := rng(2)
	const in, out = 4, 2
	tb, target := mseTo(t, dev, &r, 6*out)
	inputs := []GradInput{
		{"x", []int{2, 3, in}, r.uniform(6*in, -1, 1)},
		{"w", []int{out, in}, r.uniform(out*in, -1, 1)},
	}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		y, err := g.Linear(xs[0], xs[1], nil)
		if err != nil {
			return nil, err
		}
		if got := y.Shape(); len(got) != 3 || got[2] != out {
			t.Errorf("Linear output shape %v, expected [2 3 %d]", got, out)
		}
		return g.Loss(device.MSE, y, tb)
	}, func(xs [][]float64) float64 {
		return refLoss(device.MSE, refLinear(xs[0], xs[1], nil, 6, in, out), target, nil, 6, out)
	})
}

func TestGradActivations(t *testing.T) {
	dev := openCPU(t)
	cases := []struct {
		act   device.Activation
		alpha float32
	}{
		{device.Identity, 0}, {device.ReLU, 0}, {device.LeakyReLU, 0.01}, {device.LeakyReLU, 0.2},
		{device.Tanh, 0}, {device.Sigmoid, 0}, {device.GELU, 0}, {device.GELUTanh, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s%g", c.act, c.alpha), func(t *testing.T) {
			r := rng(3)
			const rows, cols = 4, 5
			tb, target := mseTo(t, dev, &r, rows*cols)
			// |x| ≥ 0.05 keeps the relu kink far from every x ± h.
			inputs := []GradInput{{"x", []int{rows, cols}, r.awayFromZero(rows*cols, 0.05, 2.5)}}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				y, err := g.Activate(c.act, c.alpha, xs[0])
				if err != nil {
					return nil, err
				}
				return g.Loss(device.MSE, y, tb)
			}, func(xs [][]float64) float64 {
				y := make([]float64, len(xs[0]))
				for i, v := range xs[0] {
					y[i] = refAct(c.act, float64(c.alpha), v)
				}
				return refLoss(device.MSE, y, target, nil, rows, cols)
			})
		})
	}
}

func TestGradSoftmax(t *testing.T) {
	dev := openCPU(t)
	r := rng(4)
	const rows, cols = 3, 6
	tb, target := mseTo(t, dev, &r, rows*cols)
	inputs := []GradInput{{"x", []int{rows, cols}, r.uniform(rows*cols, -3, 3)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		y, err := g.Softmax(xs[0])
		if err != nil {
			return nil, err
		}
		return g.Loss(device.MSE, y, tb)
	}, func(xs [][]float64) float64 {
		return refLoss(device.MSE, refSoftmax(xs[0], rows, cols), target, nil, rows, cols)
	})
}

// TestGradDropout fixes the mask through the graph's (seed, offset): the
// reference rebuilds it from device.DropoutAt at the same positions.
func TestGradDropout(t *testing.T) {
	dev := openCPU(t)
	r := rng(5)
	const rows, cols, p = 4, 8, 0.3
	const seed, offset = 11, 8
	tb, target := mseTo(t, dev, &r, rows*cols)
	inputs := []GradInput{{"x", []int{rows, cols}, r.uniform(rows*cols, -1, 1)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		g.SetRNG(seed, offset)
		y, err := g.Dropout(xs[0], p)
		if err != nil {
			return nil, err
		}
		if s, o := g.RNG(); s != seed || o != offset+rows*cols {
			t.Errorf("RNG after a %d-element mask: (%d, %d), expected (%d, %d)", rows*cols, s, o, seed, offset+rows*cols)
		}
		return g.Loss(device.MSE, y, tb)
	}, func(xs [][]float64) float64 {
		y := make([]float64, len(xs[0]))
		zeros := 0
		for i, v := range xs[0] {
			m := float64(device.DropoutAt(seed, uint64(offset+i), p))
			if m == 0 {
				zeros++
			}
			y[i] = v * m
		}
		return refLoss(device.MSE, y, target, nil, rows, cols)
	})
}

func TestGradAddMulScale(t *testing.T) {
	dev := openCPU(t)
	r := rng(6)
	const n = 7
	tb, target := mseTo(t, dev, &r, n)
	inputs := []GradInput{
		{"a", []int{n}, r.uniform(n, -1, 1)},
		{"b", []int{n}, r.uniform(n, -1, 1)},
	}
	// z = 0.5·(a + b) ⊙ a: a reaches the loss along two paths, so its
	// gradient is accumulated from both.
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		s, err := g.Add(xs[0], xs[1])
		if err != nil {
			return nil, err
		}
		m, err := g.Mul(s, xs[0])
		if err != nil {
			return nil, err
		}
		z, err := g.Scale(0.5, m)
		if err != nil {
			return nil, err
		}
		return g.Loss(device.MSE, z, tb)
	}, func(xs [][]float64) float64 {
		z := make([]float64, n)
		for i := range z {
			z[i] = 0.5 * (xs[0][i] + xs[1][i]) * xs[0][i]
		}
		return refLoss(device.MSE, z, target, nil, n, 1)
	})
}

// TestGradSharedIntermediate: an intermediate used by two ops receives
// two gradient contributions (the first overwrites, the second adds).
func TestGradSharedIntermediate(t *testing.T) {
	dev := openCPU(t)
	r := rng(7)
	const rows, cols = 3, 4
	tb, target := mseTo(t, dev, &r, rows*cols)
	inputs := []GradInput{{"x", []int{rows, cols}, r.awayFromZero(rows*cols, 0.05, 2)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		h, err := g.Activate(device.Tanh, 0, xs[0])
		if err != nil {
			return nil, err
		}
		a, err := g.Activate(device.Sigmoid, 0, h)
		if err != nil {
			return nil, err
		}
		b, err := g.Activate(device.ReLU, 0, h)
		if err != nil {
			return nil, err
		}
		s, err := g.Add(a, b)
		if err != nil {
			return nil, err
		}
		return g.Loss(device.MSE, s, tb)
	}, func(xs [][]float64) float64 {
		y := make([]float64, len(xs[0]))
		for i, v := range xs[0] {
			h := refAct(device.Tanh, 0, v)
			y[i] = refAct(device.Sigmoid, 0, h) + refAct(device.ReLU, 0, h)
		}
		return refLoss(device.MSE, y, target, nil, rows, cols)
	})
}

func TestGradLosses(t *testing.T) {
	dev := openCPU(t)
	const rows, cols = 5, 3
	for _, kind := range []device.LossKind{device.MSE, device.HalfSSE, device.BCE, device.BCEWithLogits, device.SoftmaxCrossEntropy} {
		t.Run(kind.String(), func(t *testing.T) {
			r := rng(8)
			pred := r.uniform(rows*cols, -2, 2)
			target := rounded(r.uniform(rows*cols, -1, 1))
			labels := make([]int32, rows)
			for i := range labels {
				labels[i] = int32(r.next() % cols)
			}
			switch kind {
			case device.BCE:
				pred = r.uniform(rows*cols, 0.05, 0.95) // probabilities away from the log clamp
				target = rounded(r.uniform(rows*cols, 0, 1))
			case device.BCEWithLogits:
				target = rounded(r.uniform(rows*cols, 0, 1))
			}
			var tb device.Buffer
			if kind == device.SoftmaxCrossEntropy {
				tb = uploadI32(t, dev, labels)
			} else {
				tb = upload(t, dev, f32s(target))
			}
			inputs := []GradInput{{"pred", []int{rows, cols}, pred}}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				return g.Loss(kind, xs[0], tb)
			}, func(xs [][]float64) float64 {
				return refLoss(kind, xs[0], target, labels, rows, cols)
			})
		})
	}
}

// TestGradLossUpstream: a loss that is not the final scalar (scaled, or
// summed with another) has an upstream gradient other than the seed 1, so
// the fused gradient must be rescaled on the device.
func TestGradLossUpstream(t *testing.T) {
	dev := openCPU(t)
	r := rng(9)
	const rows, cols = 4, 3
	labels := []int32{0, 2, 1, 2}
	lb := uploadI32(t, dev, labels)
	tb, target := mseTo(t, dev, &r, rows*cols)
	inputs := []GradInput{{"x", []int{rows, cols}, r.uniform(rows*cols, -2, 2)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		ce, err := g.Loss(device.SoftmaxCrossEntropy, xs[0], lb)
		if err != nil {
			return nil, err
		}
		mse, err := g.Loss(device.MSE, xs[0], tb)
		if err != nil {
			return nil, err
		}
		ce3, err := g.Scale(3, ce)
		if err != nil {
			return nil, err
		}
		return g.Add(ce3, mse)
	}, func(xs [][]float64) float64 {
		return 3*refLoss(device.SoftmaxCrossEntropy, xs[0], nil, labels, rows, cols) +
			refLoss(device.MSE, xs[0], target, nil, rows, cols)
	})
}

// TestGradCheckCatchesWrongGradient shows the check can fail: a reference
// of a different function (2× the loss) must be rejected.
func TestGradCheckCatchesWrongGradient(t *testing.T) {
	dev := openCPU(t)
	r := rng(10)
	tb, target := mseTo(t, dev, &r, 6)
	inputs := []GradInput{{"x", []int{6}, r.uniform(6, -1, 1)}}
	_, err := GradCheck(dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		return g.Loss(device.MSE, xs[0], tb)
	}, func(xs [][]float64) float64 {
		return 2 * refLoss(device.MSE, xs[0], target, nil, 6, 1)
	}, GradCheckConfig{})
	if err == nil || !strings.Contains(err.Error(), "d loss/d x[") {
		t.Fatalf("expected a gradient mismatch error, got %v", err)
	}
}
