package train

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
)

func openCPU(t *testing.T) device.Device {
	t.Helper()
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func buildModel(t *testing.T, dev device.Device, spec string, seed uint64) *nn.Sequential {
	t.Helper()
	s, err := nn.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.Build(dev, s, nn.Init{}, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Free() })
	return m
}

func flatValues(t *testing.T, m *nn.Sequential) []float32 {
	t.Helper()
	v, _ := m.Flat()
	out := make([]float32, v.Len())
	if err := m.Device().ReadF32(out, v, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

// refOpt is a float64 transcription of torch.optim.SGD / Adam / AdamW's
// update (PyTorch 1.13 single-tensor code paths).
type refOpt struct {
	sgd  *device.SGDConfig
	adam *device.AdamConfig
	m, v []float64
	t    int
}

func (r *refOpt) step(p, g []float64, trainable []bool) {
	r.t++
	if r.m == nil {
		r.m, r.v = make([]float64, len(p)), make([]float64, len(p))
	}
	for i := range p {
		if !trainable[i] {
			continue
		}
		gi := g[i]
		if c := r.sgd; c != nil {
			lr, mom, damp, wd := float64(c.LR), float64(c.Momentum), float64(c.Dampening), float64(c.WeightDecay)
			gi += wd * p[i]
			if mom != 0 {
				if r.t == 1 {
					r.m[i] = gi
				} else {
					r.m[i] = mom*r.m[i] + (1-damp)*gi
				}
				if c.Nesterov {
					gi += mom * r.m[i]
				} else {
					gi = r.m[i]
				}
			}
			p[i] -= lr * gi
			continue
		}
		c := r.adam
		lr, b1, b2, eps, wd := float64(c.LR), float64(c.Beta1), float64(c.Beta2), float64(c.Eps), float64(c.WeightDecay)
		if c.Decoupled {
			p[i] *= 1 - lr*wd
		} else {
			gi += wd * p[i]
		}
		r.m[i] = b1*r.m[i] + (1-b1)*gi
		r.v[i] = b2*r.v[i] + (1-b2)*gi*gi
		bc1 := 1 - math.Pow(b1, float64(r.t))
		bc2 := 1 - math.Pow(b2, float64(r.t))
		p[i] -= lr / bc1 * r.m[i] / (math.Sqrt(r.v[i])/math.Sqrt(bc2) + eps)
	}
}

type optCase struct {
	name string
	sgd  *device.SGDConfig
	adam *device.AdamConfig
}

var optCases = []optCase{
	{name: "sgd", sgd: &device.SGDConfig{LR: 0.1}},
	{name: "sgd-wd-momentum-dampening", sgd: &device.SGDConfig{LR: 0.05, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.01}},
	{name: "sgd-nesterov", sgd: &device.SGDConfig{LR: 0.05, Momentum: 0.9, WeightDecay: 0.001, Nesterov: true}},
	{name: "adam", adam: &device.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}},
	{name: "adamw", adam: &device.AdamConfig{LR: 0.01, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1, Decoupled: true}},
}

func newOpt(t *testing.T, m *nn.Sequential, c optCase) Optimizer {
	t.Helper()
	var o Optimizer
	var err error
	if c.sgd != nil {
		o, err = NewSGD(m, *c.sgd)
	} else {
		o, err = NewAdam(m, *c.adam)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Free() })
	return o
}

// TestOptimizersMatchFloat64 feeds known gradients straight into the flat
// gradient buffer and compares each optimiser's parameters with the
// float64 reference after 6 steps. A frozen parameter splits the trainable
// elements into two runs and must not move at all.
func TestOptimizersMatchFloat64(t *testing.T) {
	dev := openCPU(t)
	for _, c := range optCases {
		t.Run(c.name, func(t *testing.T) {
			m := buildModel(t, dev, "3-4-tanh-2", 7)
			if err := m.SetFrozen(true, "0.bias"); err != nil {
				t.Fatal(err)
			}
			o := newOpt(t, m, c)
			if runs := trainableRuns(m.Params()); len(runs) != 2 {
				t.Fatalf("runs %v, want two (0.weight, then 2.weight+2.bias)", runs)
			}
			start := flatValues(t, m)
			n := len(start)
			trainable := make([]bool, n)
			for _, p := range m.Params() {
				for i := p.Offset; i < p.Offset+p.Len(); i++ {
					trainable[i] = !p.Frozen
				}
			}
			p64 := make([]float64, n)
			for i, v := range start {
				p64[i] = float64(v)
			}
			ref := &refOpt{sgd: c.sgd, adam: c.adam}
			_, grads := m.Flat()
			g32 := make([]float32, n)
			g64 := make([]float64, n)
			for step := 1; step <= 6; step++ {
				for i := range g32 {
					g32[i] = float32(math.Sin(float64(i*7+step*3))) * 0.5
					g64[i] = float64(g32[i])
				}
				if err := dev.WriteF32(grads, 0, g32); err != nil {
					t.Fatal(err)
				}
				if err := o.Step(); err != nil {
					t.Fatal(err)
				}
				ref.step(p64, g64, trainable)
			}
			if o.Steps() != 6 {
				t.Errorf("Steps() = %d, want 6", o.Steps())
			}
			got := flatValues(t, m)
			for i := range got {
				if !trainable[i] {
					if got[i] != start[i] {
						t.Errorf("frozen element %d moved: %v → %v", i, start[i], got[i])
					}
					continue
				}
				// float32 arithmetic over 6 steps of O(0.1) updates:
				// 1e-5 absolute is ~100 ulps of the values.
				if d := math.Abs(float64(got[i]) - p64[i]); d > 1e-5 {
					t.Errorf("element %d: %v, float64 reference %v (diff %.3g > 1e-5)", i, got[i], p64[i], d)
				}
			}
		})
	}
}

// TestOptimizerStateResume: an optimiser rebuilt from State continues bit
// for bit like the original.
func TestOptimizerStateResume(t *testing.T) {
	dev := openCPU(t)
	for _, c := range optCases {
		t.Run(c.name, func(t *testing.T) {
			run := func(m *nn.Sequential, o Optimizer, from, to int) {
				_, grads := m.Flat()
				g := make([]float32, grads.Len())
				for s := from; s < to; s++ {
					for i := range g {
						g[i] = float32(math.Cos(float64(i+5*s))) * 0.3
					}
					if err := dev.WriteF32(grads, 0, g); err != nil {
						t.Fatal(err)
					}
					if err := o.Step(); err != nil {
						t.Fatal(err)
					}
				}
			}
			a := buildModel(t, dev, "3-5-relu-2", 3)
			oa := newOpt(t, a, c)
			run(a, oa, 0, 6)

			b := buildModel(t, dev, "3-5-relu-2", 3)
			ob := newOpt(t, b, c)
			run(b, ob, 0, 3)
			st, err := ob.State()
			if err != nil {
				t.Fatal(err)
			}
			ob.SetLR(123) // LoadState must restore the rate too
			ob2 := newOpt(t, b, c)
			if err := ob2.LoadState(st); err != nil {
				t.Fatal(err)
			}
			if ob2.LR() != st.LR || ob2.Steps() != 3 {
				t.Errorf("after LoadState: lr %g steps %d, want %g and 3", ob2.LR(), ob2.Steps(), st.LR)
			}
			run(b, ob2, 3, 6)
			wa, wb := flatValues(t, a), flatValues(t, b)
			for i := range wa {
				if math.Float32bits(wa[i]) != math.Float32bits(wb[i]) {
					t.Fatalf("element %d: resumed %v, uninterrupted %v (want identical bits)", i, wb[i], wa[i])
				}
			}
		})
	}
}

func TestOptimizerBadInput(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "2-3-1", 1)
	if _, err := NewSGD(m, device.SGDConfig{LR: -1}); err == nil {
		t.Error("NewSGD with LR -1: no error")
	}
	if _, err := NewSGD(m, device.SGDConfig{LR: 0.1, Nesterov: true}); err == nil {
		t.Error("NewSGD with Nesterov and no momentum: no error")
	}
	if _, err := NewAdam(m, device.AdamConfig{LR: 0.1, Beta1: 1, Beta2: 0.9}); err == nil {
		t.Error("NewAdam with Beta1 1: no error")
	}
	if _, err := NewSGD(nil, device.SGDConfig{LR: 0.1}); err == nil {
		t.Error("NewSGD with a nil model: no error")
	}
	o, err := NewAdam(m, DefaultAdam(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	st, _ := o.State()
	st.Buffers["exp_avg"] = st.Buffers["exp_avg"][:3]
	if err := o.LoadState(st); err == nil {
		t.Error("LoadState with a short exp_avg: no error")
	}
	st.Kind = "sgd"
	if err := o.LoadState(st); err == nil {
		t.Error("LoadState of an sgd state into adam: no error")
	}
}

// TestClipGradNorm compares with clip_grad_norm_ computed in float64: the
// total norm over the trainable gradients, scaled by max/(norm+1e-6).
func TestClipGradNorm(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "3-4-tanh-2", 1)
	if err := m.SetFrozen(true, "0.bias"); err != nil {
		t.Fatal(err)
	}
	_, grads := m.Flat()
	g := make([]float32, grads.Len())
	for i := range g {
		g[i] = float32(i%5) - 1.5
	}
	if err := dev.WriteF32(grads, 0, g); err != nil {
		t.Fatal(err)
	}
	frozen := m.Param("0.bias")
	var ss float64
	for i, v := range g {
		if i < frozen.Offset || i >= frozen.Offset+frozen.Len() {
			ss += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(ss)
	const maxNorm = 1.0
	c, err := NewGradClipper(m, maxNorm)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	if err := c.Clip(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Norm()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-norm) > 1e-5*norm { // float32 sum of 22 squares
		t.Errorf("norm %v, want %v", got, norm)
	}
	out := make([]float32, len(g))
	if err := dev.ReadF32(out, grads, 0); err != nil {
		t.Fatal(err)
	}
	scale := maxNorm / (norm + 1e-6)
	for i := range g {
		want := float64(g[i]) * scale
		if i >= frozen.Offset && i < frozen.Offset+frozen.Len() {
			want = float64(g[i])
		}
		if math.Abs(float64(out[i])-want) > 1e-6 { // a few float32 ulps of values ≤ 0.3
			t.Errorf("grad %d: %v, want %v", i, out[i], want)
		}
	}
	if _, err := NewGradClipper(m, 0); err == nil {
		t.Error("NewGradClipper with max norm 0: no error")
	}
}
