package nn

import (
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/internal/race"
)

// stepper runs the reference training step of the benchmarks: MLP
// 784-256-relu-128-relu-10, batch 64, cross-entropy, forward + backward,
// then one fused SGD update over the flat buffers.
type stepper struct {
	dev    device.Device
	m      *Sequential
	g      *Graph
	x, y   device.Buffer
	batch  int
	step   int
	params device.Buffer
	grads  device.Buffer
}

func newStepper(t testing.TB, spec string, batch int) *stepper {
	dev := openCPU(t)
	m := buildModel(t, dev, spec, Init{}, 1)
	r := rng(13)
	in := m.Spec().In
	x := upload(t, dev, f32s(r.uniform(batch*in, 0, 1)))
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(r.next() % uint64(m.Spec().Out()))
	}
	s := &stepper{dev: dev, m: m, g: NewGraph(dev), x: x, y: uploadI32(t, dev, labels), batch: batch}
	s.params, s.grads = m.Flat()
	t.Cleanup(func() { _ = s.g.Free() })
	return s
}

func (s *stepper) run() error {
	s.g.Reset()
	if err := s.m.ZeroGrad(); err != nil {
		return err
	}
	x, err := s.g.Input(s.x, s.batch, s.m.Spec().In)
	if err != nil {
		return err
	}
	out, err := s.m.Forward(s.g, x)
	if err != nil {
		return err
	}
	loss, err := s.g.Loss(device.SoftmaxCrossEntropy, out, s.y)
	if err != nil {
		return err
	}
	if err := s.g.Backward(loss); err != nil {
		return err
	}
	s.step++
	return s.dev.SGDStep(s.params, s.grads, nil, s.m.NumParams(), device.SGDConfig{LR: 0.01}, s.step)
}

// TestSteadyStepNoDeviceAllocation: after the first steps have filled the
// graph's free lists, a training step reaches neither the system nor even
// the device's pool (Allocs and SystemAllocs unchanged over steps 3..10),
// for an MLP and for an image spec (its flat input viewed as NCHW, batch
// norm, pooling) alike.
func TestSteadyStepNoDeviceAllocation(t *testing.T) {
	for _, spec := range []string{"784-256-relu-128-relu-drop0.1-10", "1x28x28-conv8k3p1-bn-relu-maxpool2-flatten-drop0.1-10"} {
		s := newStepper(t, spec, 64)
		var before device.MemStats
		for i := 1; i <= 10; i++ {
			if i == 3 {
				before = s.dev.Stats()
			}
			if err := s.run(); err != nil {
				t.Fatal(err)
			}
		}
		after := s.dev.Stats()
		if after.SystemAllocs != before.SystemAllocs || after.Allocs != before.Allocs {
			t.Errorf("%s: steps 3..10: SystemAllocs %d → %d, Allocs %d → %d; expected no change",
				spec, before.SystemAllocs, after.SystemAllocs, before.Allocs, after.Allocs)
		}
		if after.InUse != before.InUse {
			t.Errorf("%s: steps 3..10: InUse %d → %d bytes; expected no growth", spec, before.InUse, after.InUse)
		}
	}
}

// steadyAllocs runs three warm-up steps, then returns the Go heap
// allocations per step over ten more.
func (s *stepper) steadyAllocs(t *testing.T) float64 {
	t.Helper()
	for i := 0; i < 3; i++ {
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
	}
	return testing.AllocsPerRun(10, func() {
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStepHeapAllocations bounds Go heap allocations per training step
// outside GEMM: the tape, tensors and buffers are all recycled, so nn
// itself allocates nothing in a steady step. gonum's parallel Sgemm
// allocates per call (goroutine bookkeeping), so the test subtracts the
// allocations of the step's nine GEMMs run alone with the same shapes.
func TestStepHeapAllocations(t *testing.T) {
	s := newStepper(t, "784-256-relu-128-relu-10", 64)
	allocs := s.steadyAllocs(t)
	gemms := s.gemmsAlone(t)
	t.Logf("%.0f heap allocations per step, %.0f of them in the GEMMs", allocs, gemms)
	allocs -= gemms
	if allocs > 0 && !race.Enabled {
		t.Errorf("%.0f heap allocations per training step outside GEMM, expected 0", allocs)
	}
}

// BenchmarkTrainStep is one training step (forward, backward, SGD) of
// 784-256-relu-128-relu-10 at batch 64 on the CPU backend.
func BenchmarkTrainStep(b *testing.B) {
	s := newStepper(b, "784-256-relu-128-relu-10", 64)
	if err := s.run(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.run(); err != nil {
			b.Fatal(err)
		}
	}
}

// gemmsAlone measures the heap allocations of the step's GEMMs (forward,
// dW and dx of each Linear) run directly on the device.
func (s *stepper) gemmsAlone(t *testing.T) float64 {
	type shape struct {
		ta, tb  bool
		m, n, k int
	}
	var shapes []shape
	for i, l := range s.m.Layers() {
		lin, ok := l.(*Linear)
		if !ok {
			continue
		}
		shapes = append(shapes, shape{false, true, s.batch, lin.Out, lin.In}, shape{true, false, lin.Out, lin.In, s.batch})
		if i > 0 {
			shapes = append(shapes, shape{false, false, s.batch, lin.In, lin.Out})
		}
	}
	big, err := s.dev.Alloc(device.Float32, 784*256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.dev.Free(big)
	return testing.AllocsPerRun(10, func() {
		for _, sh := range shapes {
			if err := s.dev.Gemm(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1, big, big, 0, big); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestImageSpecStepHeapAllocations: a steady training step of a model
// built from an image spec makes no Go heap allocation (the NCHW view of
// its input, convolution, batch norm, pooling, flatten and dropout all
// reuse the graph's buffers and views).
func TestImageSpecStepHeapAllocations(t *testing.T) {
	s := newStepper(t, "1x28x28-conv8k3p1-bn-relu-maxpool2-flatten-drop0.1-10", 64)
	allocs := s.steadyAllocs(t)
	if allocs > 0 && !race.Enabled {
		t.Errorf("%.0f heap allocations per training step, expected 0", allocs)
	}
}
