package gpt

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// Sampler says how Generate picks each token from the logits of the last
// position.
type Sampler struct {
	// Temperature divides the logits before the softmax; 0 picks the most
	// likely token (greedy decoding, the lowest id among equal logits).
	Temperature float32
	// TopK keeps only the K most likely tokens (those whose logit is at
	// least the K-th largest, as nanoGPT); 0 keeps all.
	TopK int
	// Seed seeds the host generator (PCG) that draws each token, so a
	// seed gives the same tokens on every run and every backend whose
	// logits agree.
	Seed uint64
}

// ErrStop, returned by Generate's callback, ends the generation without
// an error.
var ErrStop = errors.New("gpt: stop generating")

// kvCache holds, per layer, the keys and values of the positions seen so
// far in one buffer kv laid out [2·Heads, Context, d]: the keys of every
// head, then their values (head-major, so that each head's keys are one
// matrix for GemmBatched; k and v are views of its two halves). It also
// holds the scratch of one attention step and eye, the d×d identity that
// turns GemmBatched into the strided copy appending a step's keys and
// values (see step).
type kvCache struct {
	kv     []device.Buffer
	k, v   []device.Buffer // views of kv, not freed on their own
	eye    device.Buffer
	n      int // positions held
	att, y device.Buffer
	attN   int // capacity of att and y
	yN     int
	tok    device.Buffer // int32 [Context]: the ids of one step
	g      *nn.Graph
	logits []float32
	probs  []float64
	order  []int
}

func (c *kvCache) free(dev device.Device) error {
	var errs []error
	for _, b := range append(c.kv, c.eye, c.att, c.y, c.tok) {
		if b != nil {
			errs = append(errs, dev.Free(b))
		}
	}
	if c.g != nil {
		errs = append(errs, c.g.Free())
	}
	return errors.Join(errs...)
}

// cacheFor returns the model's cache, allocating it on first use.
func (m *Model) cacheFor() (*kvCache, error) {
	if m.cache != nil {
		return m.cache, nil
	}
	cfg := m.Config
	c := &kvCache{g: nn.NewGraph(m.dev)}
	c.g.SetGradEnabled(false)
	n := cfg.Context * cfg.Width
	for i := 0; i < cfg.Layers; i++ {
		kv, err := m.dev.Alloc(device.Float32, 2*n)
		if err != nil {
			_ = c.free(m.dev)
			return nil, fmt.Errorf("gpt: KV cache: %w", err)
		}
		c.kv = append(c.kv, kv)
		k, err := m.dev.View(kv, 0, n)
		if err != nil {
			_ = c.free(m.dev)
			return nil, fmt.Errorf("gpt: KV cache: %w", err)
		}
		v, err := m.dev.View(kv, n, n)
		if err != nil {
			_ = c.free(m.dev)
			return nil, fmt.Errorf("gpt: KV cache: %w", err)
		}
		c.k, c.v = append(c.k, k), append(c.v, v)
	}
	d := cfg.HeadSize()
	eye := make([]float32, d*d)
	for i := 0; i < d; i++ {
		eye[i*d+i] = 1
	}
	var err error
	if c.eye, err = m.dev.Alloc(device.Float32, d*d); err != nil {
		_ = c.free(m.dev)
		return nil, fmt.Errorf("gpt: KV cache: %w", err)
	}
	if err = m.dev.WriteF32(c.eye, 0, eye); err != nil {
		_ = c.free(m.dev)
		return nil, fmt.Errorf("gpt: KV cache: %w", err)
	}
	if c.tok, err = m.dev.Alloc(device.Int32, cfg.Context); err != nil {
		_ = c.free(m.dev)
		return nil, fmt.Errorf("gpt: KV cache: %w", err)
	}
	m.cache = c
	return c, nil
}

// scratch makes sure att holds na and y holds ny values.
func (c *kvCache) scratch(dev device.Device, na, ny int) error {
	grow := func(b *device.Buffer, have *int, need int) error {
		if *have >= need {
			return nil
		}
		if *b != nil {
			if err := dev.Free(*b); err != nil {
				return err
			}
			*b = nil
		}
		nb, err := dev.Alloc(device.Float32, need)
		if err != nil {
			return err
		}
		*b, *have = nb, need
		return nil
	}
	if err := grow(&c.att, &c.attN, na); err != nil {
		return err
	}
	return grow(&c.y, &c.yN, ny)
}

// step feeds tokens at positions [c.n, c.n+len(tokens)) through the model,
// appending their keys and values to the cache, and returns the logits of
// the last position ([1, V]), or of every new position ([n, V]) when all
// is set. The tensor lives until the cache graph's next Reset.
func (m *Model) step(c *kvCache, tokens []int32, all bool) (*nn.Tensor, error) {
	cfg := m.Config
	n, pos := len(tokens), c.n
	if n < 1 || pos+n > cfg.Context {
		return nil, fmt.Errorf("gpt: %d new tokens after %d cached exceed the context of %d", n, pos, cfg.Context)
	}
	g, dev := c.g, m.dev
	g.Reset()
	if err := dev.WriteI32(c.tok, 0, tokens); err != nil {
		return nil, err
	}
	tb, err := dev.View(c.tok, 0, n)
	if err != nil {
		return nil, err
	}
	idx, err := g.InputIndices(tb, 1, n)
	if err != nil {
		return nil, err
	}
	t := m.Transformer
	x, err := t.embed(g, idx, pos, n)
	if err != nil {
		return nil, err
	}
	H, d, L, T := cfg.Heads, cfg.HeadSize(), pos+n, cfg.Context
	if err := c.scratch(dev, H*n*L, H*n*d); err != nil {
		return nil, fmt.Errorf("gpt: KV cache scratch: %w", err)
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	for l, b := range t.H {
		a := b.Attn
		h, err := b.Ln1.Forward(g, x)
		if err != nil {
			return nil, err
		}
		if h, err = a.CAttn.Forward(g, h); err != nil { // [1, n, 3C]
			return nil, err
		}
		// [1, n, 3C] → [3·H, n, d]: the queries, keys and values of each
		// head (splitQKV's layout), the keys and values one [2·H, n, d]
		// block.
		if h, err = g.Reshape(h, n, 3*H, d); err != nil {
			return nil, err
		}
		if h, err = g.Permute(h, 1, 0, 2); err != nil {
			return nil, err
		}
		q, err := g.Narrow(h, 0, H)
		if err != nil {
			return nil, err
		}
		src, err := dev.View(h.Value(), H*n*d, 2*H*n*d)
		if err != nil {
			return nil, err
		}
		// Append them in one call: block i of src ([n, d], i < 2·H) goes to
		// rows [pos, pos+n) of matrix i of the [2·H, Context, d] cache, a
		// strided copy written as GemmBatched by the d×d identity (C_i =
		// A_i·I, with strideC = Context·d; the contract leaves the rows
		// between the C_i alone). A product by the identity is exact in
		// fp32 (each sum has one nonzero term); in TF32 mode it rounds the
		// keys and values as the attention GEMMs below would anyway.
		dst, err := dev.View(c.kv[l], pos*d, 2*H*T*d-pos*d)
		if err != nil {
			return nil, err
		}
		if err := dev.GemmBatched(false, false, n, d, d, 1, src, n*d, c.eye, 0, 0, dst, T*d, 2*H); err != nil {
			return nil, err
		}
		// att [H, n, L] = q·Kᵀ over the L cached keys of each head, then the
		// causal softmax with query i at position pos+i.
		if err := dev.GemmBatched(false, true, n, L, d, 1, q.Value(), n*d, c.k[l], T*d, 0, c.att, n*L, H); err != nil {
			return nil, err
		}
		if err := dev.SoftmaxMasked(c.att, c.att, H*n, L, scale, true, n); err != nil {
			return nil, err
		}
		// y [H, n, d] = att·V.
		if err := dev.GemmBatched(false, false, n, d, L, 1, c.att, n*L, c.v[l], T*d, 0, c.y, n*d, H); err != nil {
			return nil, err
		}
		yb, err := dev.View(c.y, 0, H*n*d)
		if err != nil {
			return nil, err
		}
		y, err := g.Input(yb, H, n, d)
		if err != nil {
			return nil, err
		}
		if y, err = a.mergeHeads(g, y, n, 1, n, cfg.Width); err != nil {
			return nil, err
		}
		if x, err = g.Add(x, y); err != nil {
			return nil, err
		}
		if x, err = b.mlpResidual(g, x); err != nil {
			return nil, err
		}
	}
	c.n = L
	if x, err = g.Reshape(x, n, cfg.Width); err != nil {
		return nil, err
	}
	if !all && n > 1 {
		if x, err = g.Narrow(x, n-1, 1); err != nil {
			return nil, err
		}
	}
	if x, err = t.LnF.Forward(g, x); err != nil {
		return nil, err
	}
	return m.head.Forward(g, x)
}

// Generate continues prompt (token ids in [0, VocabSize), at least one)
// by up to maxTokens tokens, calling emit with each as soon as it is
// drawn (emit may be nil; returning ErrStop from it ends the generation
// cleanly, any other error is returned). It returns the new tokens.
//
// It runs in evaluation mode (no dropout; a model in training mode is
// switched back to it, as a whole, on return) and keeps a KV cache: the
// prompt is fed once, then each new token is one step over the cached
// keys and values of every layer, O(context) work per token. The token is
// drawn on the host from softmax(logits/Temperature) of the last position,
// restricted to the TopK most likely, with a PCG generator seeded by
// Sampler.Seed (one draw per token), so a seed repeats its tokens. When
// the sequence outgrows Context, the model sees its last Context tokens,
// as nanoGPT's generate crops them: the cache is then rebuilt from those
// tokens (positions renumbered from 0), once per token from then on.
func (m *Model) Generate(prompt []int32, maxTokens int, s Sampler, emit func(tok int32) error) ([]int32, error) {
	cfg := m.Config
	if len(prompt) == 0 {
		return nil, fmt.Errorf("gpt: Generate: empty prompt (start with a token, e.g. GPT-2's <|endoftext|> = 50256)")
	}
	for i, t := range prompt {
		if t < 0 || int(t) >= cfg.VocabSize {
			return nil, fmt.Errorf("gpt: Generate: prompt token %d is %d, expected an id in [0, %d)", i, t, cfg.VocabSize)
		}
	}
	if maxTokens < 0 {
		return nil, fmt.Errorf("gpt: Generate: maxTokens %d, expected ≥ 0", maxTokens)
	}
	if f := float64(s.Temperature); !(f >= 0) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("gpt: Generate: temperature %v, expected a finite value ≥ 0", s.Temperature)
	}
	if s.TopK < 0 {
		return nil, fmt.Errorf("gpt: Generate: top-k %d, expected ≥ 0 (0 keeps every token)", s.TopK)
	}
	if maxTokens == 0 {
		return nil, nil
	}
	c, err := m.cacheFor()
	if err != nil {
		return nil, err
	}
	if training := m.Transformer.training; training {
		nn.SetTraining(m, false)
		defer nn.SetTraining(m, true)
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	seq := append([]int32(nil), prompt...)
	window := seq
	if len(window) > cfg.Context {
		window = window[len(window)-cfg.Context:]
	}
	c.n = 0
	logits, err := m.step(c, window, false)
	if err != nil {
		return nil, err
	}
	out := make([]int32, 0, maxTokens)
	for {
		tok, err := c.sample(logits, s, rng)
		if err != nil {
			return out, err
		}
		out = append(out, tok)
		seq = append(seq, tok)
		if emit != nil {
			if err := emit(tok); err != nil {
				if errors.Is(err, ErrStop) {
					return out, nil
				}
				return out, err
			}
		}
		if len(out) == maxTokens {
			return out, nil
		}
		if c.n < cfg.Context {
			logits, err = m.step(c, seq[len(seq)-1:], false)
		} else {
			c.n = 0
			logits, err = m.step(c, seq[len(seq)-cfg.Context:], false)
		}
		if err != nil {
			return out, err
		}
	}
}

// sample draws one token from logits [1, V] (see Sampler).
func (c *kvCache) sample(logits *nn.Tensor, s Sampler, rng *rand.Rand) (int32, error) {
	V := logits.Len()
	if cap(c.logits) < V {
		c.logits, c.probs, c.order = make([]float32, V), make([]float64, V), make([]int, V)
	}
	lv, p := c.logits[:V], c.probs[:V]
	if err := logits.Device().ReadF32(lv, logits.Value(), 0); err != nil {
		return 0, err
	}
	for i, v := range lv {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, fmt.Errorf("gpt: Generate: logit %d is %v", i, v)
		}
	}
	if s.Temperature == 0 {
		best := 0
		for i, v := range lv {
			if v > lv[best] {
				best = i
			}
		}
		return int32(best), nil
	}
	threshold := math.Inf(-1)
	if s.TopK > 0 && s.TopK < V {
		o := c.order[:V]
		for i := range o {
			o[i] = i
		}
		sort.Slice(o, func(a, b int) bool { return lv[o[a]] > lv[o[b]] })
		threshold = float64(lv[o[s.TopK-1]])
	}
	maxv := math.Inf(-1)
	for _, v := range lv {
		maxv = math.Max(maxv, float64(v))
	}
	t := float64(s.Temperature)
	sum := 0.0
	for i, v := range lv {
		p[i] = 0
		if float64(v) >= threshold {
			p[i] = math.Exp((float64(v) - maxv) / t)
		}
		sum += p[i]
	}
	u := rng.Float64() * sum
	last := 0
	for i, w := range p {
		if w == 0 {
			continue
		}
		last = i
		if u < w {
			return int32(i), nil
		}
		u -= w
	}
	return int32(last), nil
}
