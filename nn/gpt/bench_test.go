package gpt

import (
	"testing"
)

// BenchmarkDecodeStep measures one cached generation step at positions 16
// and 1000 of a context-1024 model (width 128, 4 layers): with the KV
// cache a step costs the projections (fixed) plus the attention over the
// cached keys (linear in the position), never a forward pass over the
// whole sequence.
func BenchmarkDecodeStep(b *testing.B) {
	dev := openCPU(b)
	cfg := Config{VocabSize: 256, Context: 1024, Layers: 4, Heads: 4, Width: 128, Bias: true}
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
