package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// optTol bounds the optimisers' float32 rounding relative to the sizes of
// the terms involved (|p| and the accumulated |lr·update| of the steps
// taken). Each step does about ten float32 operations on each element
// (weight decay, two moment updates, sqrt, division, the update), over
// three steps ~30 roundings: 2e-6 ≈ 34·u. A missing bias correction,
// a coupled instead of decoupled decay, dampening applied on step 1, or a
// misplaced eps all change the result by far more.
const optTol = 2e-6

const optSteps = 3

// optSizes: small odd lengths, plus a large one for the parallel paths
// for the configurations marked big.
func (s *suite) optSizes(big bool) []int {
	if s.short || !big {
		return []int{1, 1001}
	}
	return []int{1, 1001, bigN}
}

// optGrad draws a gradient for one step: mostly of order 1, with some
// tiny entries (~1e-8, where Adam's eps matters) and a sign flip now and
// then so momentum terms cancel.
func optGrad(r *rand.Rand, n int) []float32 {
	g := uniform(r, n, -1, 1)
	for i := range g {
		if r.IntN(8) == 0 {
			g[i] *= 1e-8
		}
	}
	return g
}

// sgdRef is torch.optim.SGD in float64, with the magnitudes of each
// quantity (the same recurrences on absolute values) for the tolerance.
type sgdRef struct {
	p, buf       []float64
	pMag, bufMag []float64
}

func (r *sgdRef) step(cfg device.SGDConfig, g []float32, step int) {
	lr, mu, damp, wd := float64(cfg.LR), float64(cfg.Momentum), float64(cfg.Dampening), float64(cfg.WeightDecay)
	for i := range r.p {
		d := float64(g[i])
		dm := math.Abs(d)
		if wd != 0 {
			d += wd * r.p[i]
			dm += wd * math.Abs(r.p[i])
		}
		if mu != 0 {
			if step == 1 {
				r.buf[i], r.bufMag[i] = d, dm // the buffer starts as the gradient, undamped
			} else {
				r.buf[i] = mu*r.buf[i] + (1-damp)*d
				r.bufMag[i] = mu*r.bufMag[i] + (1-damp)*dm
			}
			if cfg.Nesterov {
				d += mu * r.buf[i]
				dm += mu * r.bufMag[i]
			} else {
				d, dm = r.buf[i], r.bufMag[i]
			}
		}
		r.p[i] -= lr * d
		r.pMag[i] += lr * dm
	}
}

func (s *suite) testSGD(t *testing.T) {
	cfgs := []struct {
		name string
		cfg  device.SGDConfig
		big  bool
	}{
		{"plain", device.SGDConfig{LR: 0.1}, false},
		{"weight_decay", device.SGDConfig{LR: 0.1, WeightDecay: 0.05}, false},
		{"momentum", device.SGDConfig{LR: 0.1, Momentum: 0.9}, false},
		{"momentum_dampening", device.SGDConfig{LR: 0.1, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.01}, true},
		{"nesterov", device.SGDConfig{LR: 0.1, Momentum: 0.9, Nesterov: true}, false},
		{"nesterov_weight_decay", device.SGDConfig{LR: 0.05, Momentum: 0.8, WeightDecay: 0.1, Nesterov: true}, true},
	}
	for _, c := range cfgs {
		for _, n := range s.optSizes(c.big) {
			t.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(t *testing.T) {
				r := newRand(t)
				p0 := uniform(r, n, -1, 1)
				ref := &sgdRef{p: f64(p0), buf: make([]float64, n), pMag: make([]float64, n), bufMag: make([]float64, n)}
				for i := range ref.pMag {
					ref.pMag[i] = math.Abs(ref.p[i])
				}
				bp := s.upload(t, p0)
				bg := s.alloc(t, device.Float32, n)
				var bv device.Buffer
				if c.cfg.Momentum != 0 {
					// Step 1 must set the buffer to the gradient, not
					// read it: poison it.
					bv = s.upload(t, filled(n, nan))
				}
				for step := 1; step <= optSteps; step++ {
					g := optGrad(r, n)
					s.write(t, bg, g)
					do(t, "SGDStep", func() error { return s.dev.SGDStep(bp, bg, bv, n, c.cfg, step) })
					ref.step(c.cfg, g, step)
					got := s.read(t, bp, n)
					ck := newChecker(t, fmt.Sprintf("step %d: p", step))
					for i := range got {
						ck.near(i, got[i], ref.p[i], optTol*ref.pMag[i]+1e-30)
					}
					if !ck.done() {
						return
					}
					if bv != nil {
						gv := s.read(t, bv, n)
						ck := newChecker(t, fmt.Sprintf("step %d: momentum buffer", step))
						for i := range gv {
							ck.near(i, gv[i], ref.buf[i], optTol*ref.bufMag[i]+1e-30)
						}
						if !ck.done() {
							return
						}
					}
				}
			})
		}
	}
	// Momentum 0 with v == nil is allowed.
	t.Run("plain/v=nil", func(t *testing.T) {
		bp := s.upload(t, []float32{1, 2})
		bg := s.upload(t, []float32{0.5, -1})
		do(t, "SGDStep", func() error { return s.dev.SGDStep(bp, bg, nil, 2, device.SGDConfig{LR: 0.5}, 1) })
		if got := s.read(t, bp, 2); got[0] != 0.75 || got[1] != 2.5 {
			t.Errorf("p = %v; want [0.75 2.5]", got)
		}
	})
}

// adamRef is torch.optim.Adam / AdamW in float64, with magnitudes for the
// tolerance.
type adamRef struct {
	p, m, v, pMag, mMag, vMag []float64
}

func (r *adamRef) step(cfg device.AdamConfig, g []float32, step int) {
	lr, b1, b2, eps, wd := float64(cfg.LR), float64(cfg.Beta1), float64(cfg.Beta2), float64(cfg.Eps), float64(cfg.WeightDecay)
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range r.p {
		d := float64(g[i])
		dm := math.Abs(d)
		if wd != 0 {
			if cfg.Decoupled {
				r.pMag[i] += lr * wd * math.Abs(r.p[i])
				r.p[i] *= 1 - lr*wd // AdamW: decay the weights directly
			} else {
				d += wd * r.p[i] // Adam: L2 penalty folded into the gradient
				dm += wd * math.Abs(r.p[i])
			}
		}
		r.m[i] = b1*r.m[i] + (1-b1)*d
		r.mMag[i] = b1*r.mMag[i] + (1-b1)*dm
		r.v[i] = b2*r.v[i] + (1-b2)*d*d
		r.vMag[i] = b2*r.vMag[i] + (1-b2)*dm*dm
		// PyTorch: denom = sqrt(v)/sqrt(bc2) + eps; p −= lr/bc1 · m/denom.
		denom := math.Sqrt(r.v[i])/math.Sqrt(bc2) + eps
		r.p[i] -= lr / bc1 * r.m[i] / denom
		// The rounding error of m is relative to mMag; that of sqrt(v) to
		// sqrt(vMag) (by Cauchy-Schwarz over the steps), and it enters the
		// update through 1/denom. Where the coupled decay cancels the
		// gradient (g ≈ −wd·p), v ≪ vMag and the update is ill-conditioned:
		// the bound widens there, and only there.
		r.pMag[i] += lr / bc1 * r.mMag[i] / denom * (1 + math.Sqrt(r.vMag[i]/bc2)/denom)
	}
}

func (s *suite) testAdam(t *testing.T) {
	cfgs := []struct {
		name string
		cfg  device.AdamConfig
		big  bool
	}{
		{"adam", device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, false},
		{"adam_weight_decay", device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}, true},
		{"adamw", device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true}, true},
		{"adamw_betas", device.AdamConfig{LR: 0.003, Beta1: 0.8, Beta2: 0.95, Eps: 1e-6, WeightDecay: 0.5, Decoupled: true}, false},
	}
	for _, c := range cfgs {
		for _, n := range s.optSizes(c.big) {
			t.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(t *testing.T) {
				r := newRand(t)
				p0 := uniform(r, n, -1, 1)
				ref := &adamRef{p: f64(p0), m: make([]float64, n), v: make([]float64, n), pMag: make([]float64, n), mMag: make([]float64, n), vMag: make([]float64, n)}
				for i := range ref.pMag {
					ref.pMag[i] = math.Abs(ref.p[i])
				}
				bp := s.upload(t, p0)
				bg := s.alloc(t, device.Float32, n)
				bm := s.alloc(t, device.Float32, n) // zero, as torch initialises them
				bv := s.alloc(t, device.Float32, n)
				for step := 1; step <= optSteps; step++ {
					g := optGrad(r, n)
					s.write(t, bg, g)
					do(t, "AdamStep", func() error { return s.dev.AdamStep(bp, bg, bm, bv, n, c.cfg, step) })
					ref.step(c.cfg, g, step)
					got := s.read(t, bp, n)
					ck := newChecker(t, fmt.Sprintf("step %d: p", step))
					for i := range got {
						ck.near(i, got[i], ref.p[i], optTol*ref.pMag[i]+1e-30)
					}
					if !ck.done() {
						return
					}
					gm, gv := s.read(t, bm, n), s.read(t, bv, n)
					ck = newChecker(t, fmt.Sprintf("step %d: m", step))
					for i := range gm {
						ck.near(i, gm[i], ref.m[i], optTol*ref.mMag[i]+1e-30)
					}
					if !ck.done() {
						return
					}
					ck = newChecker(t, fmt.Sprintf("step %d: v", step))
					for i := range gv {
						// Relative to the same recurrence on |g + wd·p|; 1e-37
						// is below float32's normal range (tiny gradients
						// squared).
						ck.near(i, gv[i], ref.v[i], optTol*ref.vMag[i]+1e-37)
					}
					if !ck.done() {
						return
					}
				}
			})
		}
	}
}
