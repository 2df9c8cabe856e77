// Package gpt is a GPT-2 language model built from nn's modules, with
// Hugging Face's GPT-2 parameter names and layouts, KV-cache generation
// and LoRA adapters.
//
// # Names and layouts
//
// The module tree is transformers' GPT2LMHeadModel, so a kiln state_dict
// is one GPT2LMHeadModel.load_state_dict accepts and the other way round:
//
//	transformer.wte.weight              [V, C]   token embedding (tied to lm_head)
//	transformer.wpe.weight              [T, C]   position embedding
//	transformer.h.N.ln_1.{weight,bias}  [C]
//	transformer.h.N.attn.c_attn.weight  [C, 3C]  Conv1D: stored [in, out], y = x·W + b
//	transformer.h.N.attn.c_attn.bias    [3C]     output laid out q | k | v, each heads × head size
//	transformer.h.N.attn.c_proj.{weight [C, C], bias [C]}
//	transformer.h.N.ln_2.{weight,bias}  [C]
//	transformer.h.N.mlp.c_fc.{weight [C, 4C], bias [4C]}
//	transformer.h.N.mlp.c_proj.{weight [4C, C], bias [C]}
//	transformer.ln_f.{weight,bias}      [C]
//	lm_head.weight                      [V, C]   the same parameter as transformer.wte.weight
//
// The head is tied: one parameter, saved under both names as PyTorch's
// state_dict does (StateDict), loaded from either (LoadStateDict). Files
// from the Hub name the tensors without the "transformer." prefix and
// carry the attention buffers h.N.attn.bias (the causal mask) and
// h.N.attn.masked_bias; LoadStateDict accepts both forms and ignores the
// buffers.
//
// # LoRA adapter names
//
// NewLoRA adds to each target projection <target> (a Conv1D of input
// size in and output size out, e.g. transformer.h.0.attn.c_attn) two
// tensors under PEFT's names and layouts:
//
//	<target>.lora_A.weight  [r, in]   e.g. transformer.h.0.attn.c_attn.lora_A.weight [r, C]
//	<target>.lora_B.weight  [out, r]  e.g. transformer.h.0.attn.c_attn.lora_B.weight [3C, r]
//
// and the projection computes x·W + b + (α/r)·(x·Aᵀ)·Bᵀ. StateDict holds
// base and adapters; AdapterStateDict only the adapters (PEFT's
// adapter_model.safetensors, whose "base_model.model." prefix LoadAdapters
// also accepts); MergedStateDict folds them in, W + (α/r)·(B·A)ᵀ, giving a
// plain GPT-2 state dict (what `kiln lm merge` writes).
//
// # Training and generation
//
// Model.Forward maps int32 token ids [B, T] to logits [B, T, V];
// Model.Loss adds the mean cross-entropy over targets, skipping targets
// equal to IgnoreIndex (−1, as nanoGPT). Model.Generate samples tokens
// one at a time with a KV cache (see Generate).
package gpt

import (
	"fmt"
	"math"
)

// Config is the shape of a GPT-2 model (transformers' GPT2Config names in
// parentheses).
type Config struct {
	VocabSize int     // vocab_size
	Context   int     // n_positions: the longest sequence, rows of wpe
	Layers    int     // n_layer
	Heads     int     // n_head
	Width     int     // n_embd; divisible by Heads
	Dropout   float32 // embd_pdrop = attn_pdrop = resid_pdrop, in [0, 1)
	// Bias gives the Conv1D projections and the LayerNorms biases, as in
	// GPT-2. Without it (nanoGPT's bias=False) they have none, and the
	// state_dict has no .bias entries.
	Bias bool
}

// GPT2 is the 124M-parameter gpt2 of the Hub (GPT-2 small).
func GPT2() Config {
	return Config{VocabSize: 50257, Context: 1024, Layers: 12, Heads: 12, Width: 768, Bias: true}
}

// GPT2Medium is gpt2-medium (350M).
func GPT2Medium() Config {
	return Config{VocabSize: 50257, Context: 1024, Layers: 24, Heads: 16, Width: 1024, Bias: true}
}

// GPT2Large is gpt2-large (774M).
func GPT2Large() Config {
	return Config{VocabSize: 50257, Context: 1024, Layers: 36, Heads: 20, Width: 1280, Bias: true}
}

// GPT2XL is gpt2-xl (1558M).
func GPT2XL() Config {
	return Config{VocabSize: 50257, Context: 1024, Layers: 48, Heads: 25, Width: 1600, Bias: true}
}

// Tiny is a model for tests and smoke runs: 2 layers, 2 heads, width 16,
// context 16 over a vocabulary of 32, with biases and no dropout.
func Tiny() Config {
	return Config{VocabSize: 32, Context: 16, Layers: 2, Heads: 2, Width: 16, Bias: true}
}

// Preset returns the named configuration: "gpt2", "gpt2-medium",
// "gpt2-large", "gpt2-xl" or "tiny".
func Preset(name string) (Config, error) {
	switch name {
	case "gpt2":
		return GPT2(), nil
	case "gpt2-medium":
		return GPT2Medium(), nil
	case "gpt2-large":
		return GPT2Large(), nil
	case "gpt2-xl":
		return GPT2XL(), nil
	case "tiny":
		return Tiny(), nil
	}
	return Config{}, fmt.Errorf("gpt: unknown preset %q, expected gpt2, gpt2-medium, gpt2-large, gpt2-xl or tiny", name)
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.VocabSize < 1:
		return fmt.Errorf("gpt: Config.VocabSize is %d, expected ≥ 1", c.VocabSize)
	case c.Context < 1:
		return fmt.Errorf("gpt: Config.Context is %d, expected ≥ 1", c.Context)
	case c.Layers < 1:
		return fmt.Errorf("gpt: Config.Layers is %d, expected ≥ 1", c.Layers)
	case c.Heads < 1:
		return fmt.Errorf("gpt: Config.Heads is %d, expected ≥ 1", c.Heads)
	case c.Width < 1 || c.Width%c.Heads != 0:
		return fmt.Errorf("gpt: Config.Width is %d, expected a positive multiple of Heads (%d)", c.Width, c.Heads)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("gpt: Config.Dropout is %v, expected 0 ≤ p < 1", c.Dropout)
	}
	return nil
}

// HeadSize is Width / Heads.
func (c Config) HeadSize() int { return c.Width / c.Heads }

// NumParams is the number of parameter values of a model of this shape
// without adapters, the tied head counted once (124,439,808 for GPT2).
func (c Config) NumParams() int {
	C := c.Width
	n := c.VocabSize*C + c.Context*C + C // wte, wpe, ln_f.weight
	perLayer := 2*C + C*3*C + C*C + C*4*C + 4*C*C
	if c.Bias {
		n += C
		perLayer += 2*C + 3*C + C + 4*C + C
	}
	return n + c.Layers*perLayer
}

// residualStd is the standard deviation of the residual projections'
// weights (attn.c_proj, mlp.c_proj): 0.02/√(2·Layers), GPT-2's scaling.
func (c Config) residualStd() float32 {
	return float32(0.02 / math.Sqrt(2*float64(c.Layers)))
}
