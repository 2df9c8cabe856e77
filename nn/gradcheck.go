package nn

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/kilnml/kiln/device"
)

// GradInput is one input of a gradient check: a name for messages, a
// shape, and host values (rounded to float32 before use, so the device and
// the reference see the same numbers).
type GradInput struct {
	Name  string
	Shape []int
	Data  []float64
}

// GradCheckConfig sets the step and tolerances of GradCheck. Zero fields
// take the defaults named below.
type GradCheckConfig struct {
	// H is the central-difference step, on the float64 reference
	// (default 1e-6: truncation error O(h²) ≈ 1e-12, rounding ≈ 1e-16/h
	// ≈ 1e-10, both far below float32 noise).
	H float64
	// RelTol and AbsTol accept an analytic gradient a against the
	// numerical n when |a−n| ≤ AbsTol + RelTol·|n|. Defaults 1e-4 and
	// 1e-5: the analytic gradient is computed by the device in float32
	// (unit roundoff 6e-8); sums of tens of O(1) terms carry absolute
	// errors of order 1e-6, so a floor of 1e-5 keeps near-zero components
	// from failing on roundoff while still catching a wrong formula.
	RelTol, AbsTol float64
	// ValueTol accepts the device's loss value d against the reference r
	// when |d−r| ≤ ValueTol·(1+|r|); default 1e-5 (float32 forward pass).
	ValueTol float64
}

func (c GradCheckConfig) withDefaults() GradCheckConfig {
	if c.H == 0 {
		c.H = 1e-6
	}
	if c.RelTol == 0 {
		c.RelTol = 1e-4
	}
	if c.AbsTol == 0 {
		c.AbsTol = 1e-5
	}
	if c.ValueTol == 0 {
		c.ValueTol = 1e-5
	}
	return c
}

// GradCheckResult summarises a passed or failed check.
type GradCheckResult struct {
	Loss, RefLoss float64 // device loss and float64 reference
	Checked       int     // gradient components compared
	MaxAbsErr     float64 // largest |analytic − numerical|
}

// GradCheck verifies reverse-mode gradients against finite differences.
// build records a scalar loss on a graph from the inputs (given as
// Variables, whose gradients Backward fills); ref computes the same
// function in float64 on the host. The analytic gradients come from the
// device (float32); the numerical ones are central differences
// (f(x+h)−f(x−h))/2h of ref, so the check measures the device's gradients
// against the exact function rather than against float32 noise. It also
// compares the loss values. The error lists up to ten disagreeing
// components with both values.
func GradCheck(dev device.Device, inputs []GradInput, build func(g *Graph, xs []*Tensor) (*Tensor, error),
	ref func(xs [][]float64) float64, cfg GradCheckConfig) (GradCheckResult, error) {
	cfg = cfg.withDefaults()
	var res GradCheckResult
	host := make([][]float64, len(inputs))
	bufs := make([]device.Buffer, 0, len(inputs))
	defer func() {
		for _, b := range bufs {
			_ = dev.Free(b)
		}
	}()
	g := NewGraph(dev)
	defer func() { _ = g.Free() }()
	xs := make([]*Tensor, len(inputs))
	for i, in := range inputs {
		n := 1
		for _, d := range in.Shape {
			n *= d
		}
		if n != len(in.Data) || n < 1 {
			return res, fmt.Errorf("GradCheck: input %q: shape %v needs %d values, got %d", in.Name, in.Shape, n, len(in.Data))
		}
		f32 := make([]float32, n)
		host[i] = make([]float64, n)
		for j, v := range in.Data {
			f32[j] = float32(v)
			host[i][j] = float64(f32[j])
		}
		b, err := dev.Alloc(device.Float32, n)
		if err != nil {
			return res, err
		}
		bufs = append(bufs, b)
		if err := dev.WriteF32(b, 0, f32); err != nil {
			return res, err
		}
		if xs[i], err = g.Variable(b, in.Shape...); err != nil {
			return res, err
		}
	}
	loss, err := build(g, xs)
	if err != nil {
		return res, fmt.Errorf("GradCheck: build: %w", err)
	}
	lv, err := loss.Values()
	if err != nil {
		return res, err
	}
	if len(lv) != 1 {
		return res, fmt.Errorf("GradCheck: loss has shape %v, expected one element", loss.shape)
	}
	res.Loss, res.RefLoss = float64(lv[0]), ref(host)
	var bad []string
	if d := math.Abs(res.Loss - res.RefLoss); !(d <= cfg.ValueTol*(1+math.Abs(res.RefLoss))) {
		bad = append(bad, fmt.Sprintf("loss value: device %.9g, reference %.9g (|diff| %.3g > %.3g)",
			res.Loss, res.RefLoss, d, cfg.ValueTol*(1+math.Abs(res.RefLoss))))
	}
	if err := g.Backward(loss); err != nil {
		return res, fmt.Errorf("GradCheck: %w", err)
	}
	mismatches := 0
	for i, in := range inputs {
		an, err := xs[i].GradValues()
		if err != nil {
			return res, err
		}
		x := host[i]
		for j := range x {
			orig := x[j]
			x[j] = orig + cfg.H
			fp := ref(host)
			x[j] = orig - cfg.H
			fm := ref(host)
			x[j] = orig
			num := (fp - fm) / (2 * cfg.H)
			d := math.Abs(float64(an[j]) - num)
			res.Checked++
			if d > res.MaxAbsErr || d != d {
				res.MaxAbsErr = d
			}
			if !(d <= cfg.AbsTol+cfg.RelTol*math.Abs(num)) {
				mismatches++
				if len(bad) < 10 {
					bad = append(bad, fmt.Sprintf("d loss/d %s[%d]: analytic %.9g, numerical %.9g (|diff| %.3g > %.3g)",
						in.Name, j, an[j], num, d, cfg.AbsTol+cfg.RelTol*math.Abs(num)))
				}
			}
		}
	}
	if len(bad) > 0 {
		return res, errors.New("GradCheck: " + fmt.Sprint(mismatches) + " gradient mismatch(es):\n  " + strings.Join(bad, "\n  "))
	}
	return res, nil
}
