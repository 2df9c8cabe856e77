package gpt

import (
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/internal/race"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// TestSteadyStateAllocs: after a warm-up, a training step (forward, loss,
// backward, AdamW) and a whole Generate call ask the device for no new
// buffer (Stats().Allocs unchanged): the graph and the KV cache reuse
// theirs; and a training step makes no Go heap allocation either.
func TestSteadyStateAllocs(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	cfg.Dropout = 0.1
	m := newModel(t, dev, cfg, 1)
	opt, err := train.NewAdamW(m, device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	idx := uploadI32(t, dev, tokens(32, cfg.VocabSize, 1))
	tg := uploadI32(t, dev, tokens(32, cfg.VocabSize, 2))
	g := nn.NewGraph(dev)
	defer g.Free()
	step := func() {
		g.Reset()
		if err := m.Params.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		_, loss, err := m.Loss(g, idx, tg, 2, 16)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(loss); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	step()
	before := dev.Stats().Allocs
	for i := 0; i < 3; i++ {
		step()
	}
	if got := dev.Stats().Allocs; got != before {
		t.Errorf("training steps allocated %d device buffers", got-before)
	}
	// Nor on the Go heap: the graph keeps its tensors, tape, buffers and
	// the Narrow views (q, k, v, their gradients, the position rows)
	// across steps, and the optimiser its runs.
	if heap := testing.AllocsPerRun(3, step); heap != 0 && !race.Enabled {
		t.Errorf("a steady training step makes %v Go heap allocations, expected 0", heap)
	}
	gen := func() {
		if _, err := m.Generate([]int32{1, 2, 3}, 20, Sampler{Temperature: 1, Seed: 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	gen()
	before = dev.Stats().Allocs
	gen()
	if got := dev.Stats().Allocs; got != before {
		t.Errorf("a second Generate allocated %d device buffers", got-before)
	}
}
