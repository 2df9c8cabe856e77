package cpu

import (
	"math"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/simd"
)

// useAVX2 selects the vector Adam kernel of internal/simd where the
// processor has it; tests switch it off to check the portable loop.
var useAVX2 = simd.HasAdam

// SGDStep is one torch.optim.SGD update:
// g' = g + wd·p; v = g' on step 1, else μv + (1−dampening)g';
// g' = g' + μv (Nesterov) or v; p −= lr·g'. g itself is not changed.
func (d *Device) SGDStep(p, g, v device.Buffer, n int, cfg device.SGDConfig, step int) error {
	const op = "SGDStep"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if err := device.CheckStep(op, step); err != nil {
		return err
	}
	if err := cfg.Check(op); err != nil {
		return err
	}
	pf, err := d.f32(op, "p", p, n)
	if err != nil {
		return err
	}
	gf, err := d.f32(op, "g", g, n)
	if err != nil {
		return err
	}
	var vf []float32
	if cfg.Momentum != 0 {
		if vf, err = d.f32(op, "v", v, n); err != nil {
			return err
		}
	}
	d.k = kern{op: opSGD, a: pf, b: gf, c: vf, s0: cfg.LR, s1: cfg.Momentum, s2: cfg.Dampening,
		s3: cfg.WeightDecay, flag: step == 1, flag2: cfg.Nesterov}
	d.launch(n, ewGrain)
	d.release()
	return nil
}

func (k *kern) sgd(lo, hi int) {
	p, g := k.a[lo:hi], k.b[lo:hi]
	g = g[:len(p)]
	lr, mom, wd := k.s0, k.s1, k.s3
	if mom == 0 {
		if wd == 0 {
			for i, gi := range g {
				p[i] -= lr * gi
			}
			return
		}
		for i, gi := range g {
			p[i] -= lr * (gi + wd*p[i])
		}
		return
	}
	v := k.c[lo:hi]
	v = v[:len(p)]
	damp1 := 1 - k.s2
	first, nesterov := k.flag, k.flag2
	if !first && !nesterov {
		// The common case, with its loop-invariant branches hoisted.
		if wd == 0 {
			for i, gi := range g {
				vi := mom*v[i] + damp1*gi
				v[i] = vi
				p[i] -= lr * vi
			}
			return
		}
		for i, gi := range g {
			gi += wd * p[i]
			vi := mom*v[i] + damp1*gi
			v[i] = vi
			p[i] -= lr * vi
		}
		return
	}
	for i, gi := range g {
		if wd != 0 {
			gi += wd * p[i]
		}
		var vi float32
		if first {
			vi = gi
		} else {
			vi = mom*v[i] + damp1*gi
		}
		v[i] = vi
		if nesterov {
			gi += mom * vi
		} else {
			gi = vi
		}
		p[i] -= lr * gi
	}
}

// AdamStep is one torch.optim.Adam update (AdamW when cfg.Decoupled):
// Adam adds wd·p to the gradient, AdamW first scales p by 1 − lr·wd; then
// m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², and
// p −= (lr/(1−β1^t))·m / (sqrt(v)/sqrt(1−β2^t) + eps). The bias
// corrections are computed in float64, as PyTorch computes them in Python.
func (d *Device) AdamStep(p, g, m, v device.Buffer, n int, cfg device.AdamConfig, step int) error {
	const op = "AdamStep"
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	if err := device.CheckStep(op, step); err != nil {
		return err
	}
	if err := cfg.Check(op); err != nil {
		return err
	}
	pf, err := d.f32(op, "p", p, n)
	if err != nil {
		return err
	}
	gf, err := d.f32(op, "g", g, n)
	if err != nil {
		return err
	}
	mf, err := d.f32(op, "m", m, n)
	if err != nil {
		return err
	}
	vf, err := d.f32(op, "v", v, n)
	if err != nil {
		return err
	}
	sc := cfg.Scalars(step)
	d.k = kern{op: opAdam, a: pf, b: gf, c: mf, e: vf,
		f1: sc.StepSize, f2: sc.EpsScaled, f: sc.Decay,
		s1: cfg.Beta1, s2: cfg.Beta2, s5: cfg.WeightDecay, flag: cfg.Decoupled,
	}
	d.launch(n, ewGrain)
	d.release()
	return nil
}

func (k *kern) adam(lo, hi int) {
	p := k.a[lo:hi]
	g, m, v := k.b[lo:hi], k.c[lo:hi], k.e[lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	// The update runs in float64 and rounds p, m and v once each: the
	// same formulas as PyTorch with less rounding, which matters where
	// the gradient and the weight-decay term nearly cancel. (A variant
	// with float32 sqrt and division measured no faster here: the loop is
	// bound by memory and scalar issue, not by the float64 units.)
	// Step size and scaled eps come from device.AdamConfig.Scalars.
	step, epsS, wd := k.f1, k.f2, float64(k.s5)
	b1, b2 := float64(k.s1), float64(k.s2)
	c1, c2 := 1-b1, 1-b2
	decay := k.f
	decoupled := k.flag
	if useAVX2 && len(p) >= 8 {
		// Eight lanes at a time in float32 with FMA (internal/simd): the
		// weight-decay term is fused into the gradient with one rounding,
		// so near-cancellation costs no more than in float64.
		n8 := len(p) &^ 7
		dec, wdc := float32(1), float32(0)
		if wd != 0 {
			if decoupled {
				dec = float32(decay)
			} else {
				wdc = float32(wd)
			}
		}
		c := [8]float32{dec, wdc, float32(b1), float32(c1), float32(b2), float32(c2), float32(step), float32(epsS)}
		simd.Adam(&p[0], &g[0], &m[0], &v[0], n8, &c, wdc != 0)
		p, g, m, v = p[n8:], g[n8:], m[n8:], v[n8:]
	}
	for i, g32 := range g {
		pi, gi := float64(p[i]), float64(g32)
		if wd != 0 {
			if decoupled {
				pi *= decay
			} else {
				gi += wd * pi
			}
		}
		mi := b1*float64(m[i]) + c1*gi
		vi := b2*float64(v[i]) + c2*gi*gi
		m[i], v[i] = float32(mi), float32(vi)
		p[i] = float32(pi - step*mi/(math.Sqrt(vi)+epsS))
	}
}
