package gpt

import (
	"testing"
)

// BenchmarkDecodeStep measures one cached generation step (one token) at
// positions 16 and 1000 of GPT-2 small's shape (vocabulary 50257, context
// 1024, 12 layers, 12 heads, width 768) on the CPU. With the KV cache a
// step costs the projections, the MLP and the LM head (about 2·124M
// multiply-adds, the same at every position) plus the attention over the
// cached keys and values (2·Width·position multiply-adds per layer,
// linear in the position and about 15% of the step at position 1000),
// never a forward pass over the whole sequence.
func BenchmarkDecodeStep(b *testing.B) {
	dev := openCPU(b)
	cfg := Config{VocabSize: 50257, Context: 1024, Layers: 12, Heads: 12, Width: 768, Bias: true}
	m := newModel(b, dev, cfg, 1)
	c, err := m.cacheFor()
	if err != nil {
		b.Fatal(err)
	}
	seq := tokens(cfg.Context, cfg.VocabSize, 1)
	for _, pos := range []int{16, 1000} {
		b.Run("pos="+itoa(pos), func(b *testing.B) {
			c.n = 0
			if _, err := m.step(c, seq[:pos], false); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.n = pos
				if _, err := m.step(c, seq[pos:pos+1], false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
