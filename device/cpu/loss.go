package cpu

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// Loss writes the loss of rows×cols pred against target into loss[0] and,
// when grad is not nil, its gradient into grad. Sums run in float64.
func (d *Device) Loss(kind device.LossKind, pred, target device.Buffer, rows, cols int, loss, grad device.Buffer) error {
	const op = "Loss"
	if d.closed {
		return errClosed(op)
	}
	if err := kind.Check(op); err != nil {
		return err
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	n, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	pf, err := d.f32(op, "pred", pred, n)
	if err != nil {
		return err
	}
	var tf []float32
	var lab []int32
	if kind == device.SoftmaxCrossEntropy {
		if lab, err = d.i32(op, "target", target, rows); err != nil {
			return err
		}
		for i, l := range lab {
			if l < 0 || int(l) >= cols {
				return device.Errorf(op, "target", device.ErrInvalid, "expected class labels in [0, %d), got %d at row %d", cols, l, i)
			}
		}
	} else if tf, err = d.f32(op, "target", target, n); err != nil {
		return err
	}
	lf, err := d.f32(op, "loss", loss, 1)
	if err != nil {
		return err
	}
	var gf []float32
	if grad != nil {
		if gf, err = d.f32(op, "grad", grad, n); err != nil {
			return err
		}
	}
	// norm is the divisor of the reduction: elements for the means, rows
	// for HalfSSE (times two) and cross-entropy.
	var norm float64
	switch kind {
	case device.MSE, device.BCE, device.BCEWithLogits:
		norm = float64(n)
	case device.HalfSSE:
		norm = 2 * float64(rows)
	case device.SoftmaxCrossEntropy:
		norm = float64(rows)
	}
	d.k = kern{part: &d.part, op: opLoss, loss: kind, a: pf, b: tf, lab: lab, c: gf, cols: cols, flag: gf != nil}
	grain := ewGrain
	if kind != device.MSE && kind != device.HalfSSE {
		grain = trGrain
	}
	s := d.partSum(d.launchLoss(rows, rowGrain(grain, cols), norm))
	d.release()
	lf[0] = float32(s / norm)
	return nil
}

// launchLoss is launchReduce with the reduction divisor stored for the
// gradient.
func (d *Device) launchLoss(rows, grain int, norm float64) int {
	d.k.s0 = float32(1 / norm)
	d.k.f = 1 / norm
	return d.launchReduce(rows, grain)
}

// lossRows returns the summed (unnormalised) loss over rows [lo, hi) and
// writes the gradient of those rows when asked.
func (k *kern) lossRows(lo, hi int) float64 {
	cols := k.cols
	p := k.a[lo*cols : hi*cols]
	var g []float32
	if k.flag {
		g = k.c[lo*cols : hi*cols]
	}
	inv := k.f
	s := 0.0
	switch k.loss {
	case device.MSE, device.HalfSSE:
		t := k.b[lo*cols : hi*cols]
		// d/dh of Σ(h−y)²/norm is 2(h−y)/norm.
		gs := 2 * inv
		for i, h := range p {
			r := float64(h) - float64(t[i])
			s += r * r
			if g != nil {
				g[i] = float32(gs * r)
			}
		}
	case device.BCE:
		t := k.b[lo*cols : hi*cols]
		for i, h := range p {
			h64, y := float64(h), float64(t[i])
			lp := math.Max(math.Log(h64), -100)
			l1p := math.Max(math.Log(1-h64), -100)
			s -= y*lp + (1-y)*l1p
			if g != nil {
				// PyTorch: (h − y) / max((1 − h)·h, 1e-12).
				g[i] = float32((h64 - y) / math.Max((1-h64)*h64, 1e-12) * inv)
			}
		}
	case device.BCEWithLogits:
		t := k.b[lo*cols : hi*cols]
		for i, x := range p {
			x64, y := float64(x), float64(t[i])
			s += math.Max(x64, 0) - x64*y + math.Log1p(math.Exp(-math.Abs(x64)))
			if g != nil {
				g[i] = float32((sigmoid64(x64) - y) * inv)
			}
		}
	case device.SoftmaxCrossEntropy:
		for r := lo; r < hi; r++ {
			row := k.a[r*cols : r*cols+cols]
			m := row[0]
			for _, v := range row {
				if v > m {
					m = v
				}
			}
			m64 := float64(m)
			se := 0.0
			for _, v := range row {
				se += math.Exp(float64(v) - m64)
			}
			lse := m64 + math.Log(se)
			label := int(k.lab[r])
			xl := float64(row[label]) // read before grad (which may alias pred) is written
			s += lse - xl
			if g != nil {
				gr := k.c[r*cols : r*cols+cols]
				for j, v := range row {
					gr[j] = float32(math.Exp(float64(v)-lse) * inv)
				}
				gr[label] = float32((math.Exp(xl-lse) - 1) * inv)
			}
		}
	}
	return s
}
