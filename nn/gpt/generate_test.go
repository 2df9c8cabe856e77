package gpt

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/kilnml/kiln/nn"
)

// TestKVCacheMatchesFullForward feeds a sequence through the cache, in a
// multi-token prefill and then one token per step, and compares the
// logits of every position with one full forward pass of the whole
// sequence, to 1e-5 relative (absolute below 1): the two compute the same
// sums in different groupings (GEMM over a T-row batch vs. one row), so
// they differ by float32 rounding only.
func TestKVCacheMatchesFullForward(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	m := newModel(t, dev, cfg, 11)
	roughen(t, m)
	T, V := cfg.Context, cfg.VocabSize
	seq := tokens(T, V, 2)
	full := logitsOf(t, m, seq, 1, T)
	ref := make([]float64, len(full))
	for i, v := range full {
		ref[i] = float64(v)
	}
	for _, prefill := range []int{1, 5} {
		c, err := m.cacheFor()
		if err != nil {
			t.Fatal(err)
		}
		c.n = 0
		lg, err := m.step(c, seq[:prefill], true)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := lg.Values()
		closeRel(t, "prefill logits", got, ref[:prefill*V], 1e-5)
		for p := prefill; p < T; p++ {
			lg, err := m.step(c, seq[p:p+1], false)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := lg.Values()
			closeRel(t, "cached logits at position "+itoa(p), got, ref[p*V:(p+1)*V], 1e-5)
		}
		if _, err := m.step(c, seq[:1], false); err == nil {
			t.Fatal("a step past the context was accepted")
		}
	}
}

// naiveGenerate is nanoGPT's generate: a full forward of the last Context
// tokens for every new token, greedy.
func naiveGenerate(t *testing.T, m *Model, prompt []int32, n int) []int32 {
	seq := slices.Clone(prompt)
	var out []int32
	V := m.Config.VocabSize
	for len(out) < n {
		w := seq
		if len(w) > m.Config.Context {
			w = w[len(w)-m.Config.Context:]
		}
		lg := logitsOf(t, m, w, 1, len(w))
		last := lg[(len(w)-1)*V:]
		best := 0
		for i, v := range last {
			if v > last[best] {
				best = i
			}
		}
		out = append(out, int32(best))
		seq = append(seq, int32(best))
	}
	return out
}

// TestGenerateGreedyMatchesNaive runs past the context (16) so that the
// crop-and-recompute path is taken, and compares with the naive loop.
func TestGenerateGreedyMatchesNaive(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	m := newModel(t, dev, cfg, 4)
	roughen(t, m)
	prompt := tokens(5, cfg.VocabSize, 8)
	var streamed []int32
	got, err := m.Generate(prompt, 20, Sampler{}, func(tok int32) error {
		streamed = append(streamed, tok)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := naiveGenerate(t, m, prompt, 20)
	if !slices.Equal(got, want) || !slices.Equal(streamed, want) {
		t.Fatalf("greedy tokens %v (streamed %v), nanoGPT's loop gives %v", got, streamed, want)
	}
	// Dropout is off while generating, even from training mode.
	dcfg := cfg
	dcfg.Dropout = 0.5
	dm := newModel(t, dev, dcfg, 4)
	roughen(t, dm)
	nn.SetTraining(dm, true)
	dg, err := dm.Generate(prompt, 20, Sampler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !dm.Transformer.training || !dm.Transformer.H[0].Attn.training {
		t.Fatal("Generate did not restore training mode")
	}
	if !slices.Equal(dg, want) {
		t.Fatalf("generating from training mode: %v, want %v (dropout applied?)", dg, want)
	}
	// A prompt longer than the context is cropped to its last tokens.
	long := tokens(40, cfg.VocabSize, 3)
	g1, err := m.Generate(long, 3, Sampler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := naiveGenerate(t, m, long, 3); !slices.Equal(g1, want) {
		t.Fatalf("long prompt: %v, want %v", g1, want)
	}
}

// TestGenerateSampling: the same seed gives the same tokens, other seeds
// others; top-k 1 is greedy; the empirical distribution of the first token
// follows softmax(logits/T) (chi-square-free check: every token drawn
// ≥ 200 times out of 4000 lies within 25% of its expected count, far
// beyond the ±10% three-sigma band of a binomial at these counts).
func TestGenerateSampling(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	m := newModel(t, dev, cfg, 4)
	roughen(t, m)
	prompt := []int32{1, 2, 3}
	s := Sampler{Temperature: 0.8, TopK: 10, Seed: 42}
	a, err := m.Generate(prompt, 30, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(prompt, 30, s, nil)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different tokens: %v vs %v", a, b)
	}
	s.Seed = 43
	c, _ := m.Generate(prompt, 30, s, nil)
	if slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same 30 tokens %v", a)
	}
	greedy, _ := m.Generate(prompt, 10, Sampler{}, nil)
	k1, _ := m.Generate(prompt, 10, Sampler{Temperature: 1, TopK: 1, Seed: 5}, nil)
	if !slices.Equal(greedy, k1) {
		t.Fatalf("top-k 1 %v differs from greedy %v", k1, greedy)
	}

	V := cfg.VocabSize
	lg := logitsOf(t, m, prompt, 1, 3)[2*V:]
	const temp, topK, draws = 1.5, 5, 4000
	sorted := slices.Clone(lg)
	slices.Sort(sorted)
	thr := float64(sorted[V-topK])
	p := make([]float64, V)
	sum := 0.0
	for i, v := range lg {
		if float64(v) >= thr {
			p[i] = math.Exp(float64(v) / temp)
			sum += p[i]
		}
	}
	counts := make([]int, V)
	for seed := uint64(0); seed < draws; seed++ {
		tok, err := m.Generate(prompt, 1, Sampler{Temperature: temp, TopK: topK, Seed: seed}, nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[tok[0]]++
	}
	for i := range p {
		exp := p[i] / sum * draws
		if exp == 0 && counts[i] > 0 {
			t.Errorf("token %d outside the top %d was drawn %d times", i, topK, counts[i])
		}
		if exp >= 200 && math.Abs(float64(counts[i])-exp) > 0.25*exp {
			t.Errorf("token %d drawn %d times, expected %.0f", i, counts[i], exp)
		}
	}
}

func TestGenerateCallbackAndErrors(t *testing.T) {
	dev := openCPU(t)
	m := newModel(t, dev, Tiny(), 1)
	n := 0
	out, err := m.Generate([]int32{0}, 10, Sampler{}, func(int32) error {
		n++
		if n == 3 {
			return ErrStop
		}
		return nil
	})
	if err != nil || len(out) != 3 {
		t.Fatalf("ErrStop after 3 tokens: %v, %v", out, err)
	}
	boom := errors.New("boom")
	if _, err := m.Generate([]int32{0}, 10, Sampler{}, func(int32) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
	for name, f := range map[string]func() error{
		"empty prompt": func() error { _, err := m.Generate(nil, 1, Sampler{}, nil); return err },
		"bad token":    func() error { _, err := m.Generate([]int32{32}, 1, Sampler{}, nil); return err },
		"negative n":   func() error { _, err := m.Generate([]int32{1}, -1, Sampler{}, nil); return err },
		"temperature":  func() error { _, err := m.Generate([]int32{1}, 1, Sampler{Temperature: -1}, nil); return err },
		"top-k":        func() error { _, err := m.Generate([]int32{1}, 1, Sampler{TopK: -2}, nil); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
