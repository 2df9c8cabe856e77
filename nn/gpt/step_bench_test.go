package gpt

import (
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// BenchmarkRecipeStep is one training step (forward, loss, backward,
// AdamW) of nanoGPT's CPU recipe — 4 layers, 4 heads, width 128, context
// 64, batch 12, a character vocabulary of 80 — on the CPU: the step that
// `kiln lm train --device cpu` repeats, without the data loader and the
// logging, for profiles (-cpuprofile). bench/lm.sh measures the whole
// command beside PyTorch.
func BenchmarkRecipeStep(b *testing.B) {
	dev := openCPU(b)
	cfg := Config{VocabSize: 80, Context: 64, Layers: 4, Heads: 4, Width: 128, Bias: true}
	m := newModel(b, dev, cfg, 1)
	opt, err := train.NewAdamW(m, device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 12
	idx := uploadI32(b, dev, tokens(batch*cfg.Context, cfg.VocabSize, 1))
	tg := uploadI32(b, dev, tokens(batch*cfg.Context, cfg.VocabSize, 2))
	g := nn.NewGraph(dev)
	defer g.Free()
	step := func() {
		g.Reset()
		if err := m.Params.ZeroGrad(); err != nil {
			b.Fatal(err)
		}
		_, loss, err := m.Loss(g, idx, tg, batch, cfg.Context)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Backward(loss); err != nil {
			b.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			b.Fatal(err)
		}
	}
	step()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(float64(b.N*batch*cfg.Context)/b.Elapsed().Seconds(), "tokens/s")
}
