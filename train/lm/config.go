// Package lm trains GPT language models (nn/gpt) on token data
// (data/text): nanoGPT's and llm.c's training loop as a library, so that
// `kiln lm train` only parses flags.
//
// A step is Accum micro-batches of Batch windows of Context tokens
// (forward, mean cross-entropy scaled by 1/Accum, backward, the parameter
// gradients adding up), then global-norm clipping, the learning rate of
// the schedule (linear warm-up, then cosine decay to MinLR) and one AdamW
// update with weight decay on the 2-D weights only (train.DecayGroups).
// Every EvalEvery steps the validation loss is measured over EvalBatches
// fixed batches; every SaveEvery steps and at the end a checkpoint is
// written from which Resume continues bit for bit.
//
// # Checkpoints
//
// A checkpoint is two safetensors files, written atomically, the state
// first:
//
//	model.safetensors        the model's state_dict with Hugging Face GPT-2
//	                         names (gpt.Model.StateDict; LoRA adapters under
//	                         their PEFT names), and in __metadata__:
//	                         "kiln.gpt.config" (the model's shape, JSON),
//	                         "kiln.tokenizer" (the tokeniser, JSON),
//	                         "kiln.lora" (the adapters' config, when there
//	                         are any) and "kiln.step";
//	model.state.safetensors  AdamW's moments of every trainable parameter
//	                         ("optimizer.<param>.exp_avg", ".exp_avg_sq")
//	                         and in "kiln.lm_state" the iteration, the
//	                         optimiser's step counts, the sampler's position,
//	                         the dropout RNG and the run's shape.
//
// So the model file alone is enough to generate (LoadModel), and the pair
// resumes a run exactly (Trainer.Resume).
package lm

import (
	"fmt"
	"math"
	"path"
	"runtime"
	"strings"

	"github.com/kilnml/kiln/nn"
)

// Config is a training run. DefaultConfig is nanoGPT's CPU recipe for
// character-level Shakespeare (config/train_shakespeare_char.py with the
// README's CPU overrides), which the zero values do not give: start from
// it and change what differs.
type Config struct {
	Batch int // sequences per micro-batch (nanoGPT's batch_size)
	Accum int // micro-batches per optimiser step (gradient_accumulation_steps); effective batch Batch·Accum
	Iters int // optimiser steps of the whole run (max_iters), counted across resumes

	LR          float64 // peak learning rate, after warm-up
	MinLR       float64 // the rate at Iters, where the cosine ends
	Warmup      int     // linear warm-up steps: step i (from 0) uses LR·(i+1)/(Warmup+1)
	Beta1       float32 // AdamW β₁
	Beta2       float32 // AdamW β₂
	Eps         float32 // AdamW ε
	WeightDecay float32 // decoupled decay of the tensors of ≥ 2 dimensions; biases and norms get none
	GradClip    float32 // global-norm clip (clip_grad_norm_); 0 turns clipping off

	EvalEvery   int // steps between validation losses (and at the last step); 0 never
	EvalBatches int // validation batches (of Batch windows) per evaluation
	SaveEvery   int // steps between checkpoints; a checkpoint is always written at the end when Out is set
	LogEvery    int // steps between progress lines; 0 means 1
	// StopAfter is the most steps one Run takes (a time-limited job); it
	// writes a checkpoint where it stops, and a later Resume goes on to
	// Iters. 0 runs to Iters.
	StopAfter int

	// Out is the folder the run writes: model.safetensors and its state,
	// metrics.jsonl, loss.png (and adapter.safetensors for a LoRA model).
	// Empty writes nothing.
	Out string

	// Seed seeds the training sampler (Seed), the validation batches
	// (Seed+1) and the dropout stream (Seed+2).
	Seed uint64

	// PeakFLOPS is the peak the model FLOPs utilisation is measured
	// against, in FLOP/s; 0 means DefaultPeakFLOPS for the device.
	PeakFLOPS float64

	// Freeze lists glob patterns over the model's parameter names (Hugging
	// Face GPT-2's, e.g. "transformer.h.0.*" or "transformer.wte.weight");
	// NewTrainer sets Param.Frozen on every parameter a pattern matches,
	// so those get no gradient and no update (partial fine-tuning). The
	// patterns have path.Match's syntax (*, ?, [...], \), and since the
	// names contain no '/', a '*' matches any run of characters, dots
	// included: "transformer.h.0.*" is every tensor of block 0,
	// "transformer.h.*.attn.*" every attention tensor ("transformer.h.1*"
	// would also match blocks 10–19). A pattern that matches no parameter
	// is an error naming it. Freezing only adds to what the model froze
	// itself (a LoRA model's base). A resumed run must freeze the same
	// patterns.
	Freeze []string
}

// DefaultConfig is nanoGPT's CPU recipe: batch 12, no accumulation, 2000
// steps, AdamW lr 1e-3 decaying to 1e-4 over the run after 100 warm-up
// steps, β = (0.9, 0.99), weight decay 0.1, clip 1.0, validation every
// 250 steps over 20 batches.
func DefaultConfig() Config {
	return Config{Batch: 12, Accum: 1, Iters: 2000,
		LR: 1e-3, MinLR: 1e-4, Warmup: 100, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1,
		EvalEvery: 250, EvalBatches: 20, SaveEvery: 0, LogEvery: 1, Seed: 1337}
}

// DefaultPeakFLOPS is the fp32 peak MFU is measured against when
// Config.PeakFLOPS is 0. On the CPU it is 100 GFLOP/s per core
// (runtime.NumCPU cores): two 8-wide AVX2 FMA units at about 3 GHz,
// 2·2·8·3e9 ≈ 96e9, rounded. On a CUDA device it is the H200's datasheet
// fp32 (non-tensor-core) peak, 67 TFLOP/s; pass the peak of another GPU
// (or TF32's) explicitly.
func DefaultPeakFLOPS(deviceName string) float64 {
	if strings.HasPrefix(deviceName, "cuda") {
		return 67e12
	}
	return 100e9 * float64(runtime.NumCPU())
}

// validate reports the first field out of range.
func (c Config) validate() error {
	bad := func(f string, v any, want string) error {
		return fmt.Errorf("lm: Config.%s is %v, expected %s", f, v, want)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Batch < 1:
		return bad("Batch", c.Batch, "≥ 1")
	case c.Accum < 1:
		return bad("Accum", c.Accum, "≥ 1")
	case c.Iters < 1:
		return bad("Iters", c.Iters, "≥ 1")
	case !(c.LR > 0) || !finite(c.LR):
		return bad("LR", c.LR, "a finite value > 0")
	case !(c.MinLR >= 0) || c.MinLR > c.LR:
		return bad("MinLR", c.MinLR, fmt.Sprintf("0 ≤ MinLR ≤ LR (%g)", c.LR))
	case c.Warmup < 0 || c.Warmup >= c.Iters:
		return bad("Warmup", c.Warmup, fmt.Sprintf("0 ≤ Warmup < Iters (%d)", c.Iters))
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return bad("Beta1", c.Beta1, "in [0, 1)")
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return bad("Beta2", c.Beta2, "in [0, 1)")
	case !(c.Eps > 0):
		return bad("Eps", c.Eps, "> 0")
	case !(c.WeightDecay >= 0) || !finite(float64(c.WeightDecay)):
		return bad("WeightDecay", c.WeightDecay, "a finite value ≥ 0")
	case !(c.GradClip >= 0) || !finite(float64(c.GradClip)):
		return bad("GradClip", c.GradClip, "0 (off) or a finite value > 0")
	case c.EvalEvery < 0:
		return bad("EvalEvery", c.EvalEvery, "0 (never) or ≥ 1")
	case c.EvalEvery > 0 && c.EvalBatches < 1:
		return bad("EvalBatches", c.EvalBatches, "≥ 1 when EvalEvery is set")
	case c.SaveEvery < 0:
		return bad("SaveEvery", c.SaveEvery, "0 (only at the end) or ≥ 1")
	case c.StopAfter < 0:
		return bad("StopAfter", c.StopAfter, "0 (run to Iters) or ≥ 1")
	case c.LogEvery < 0:
		return bad("LogEvery", c.LogEvery, "≥ 0")
	case !(c.PeakFLOPS >= 0) || !finite(c.PeakFLOPS):
		return bad("PeakFLOPS", c.PeakFLOPS, "0 (the device's default) or a finite value > 0")
	}
	for _, p := range c.Freeze {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return bad("Freeze", fmt.Sprintf("%q", p), "glob patterns of path.Match's syntax")
		}
	}
	return nil
}

// freeze sets Frozen on every parameter of ps that a pattern matches
// (see Config.Freeze) and returns how many it froze; a pattern matching
// nothing is an error naming every such pattern.
func freeze(ps *nn.ParamSet, patterns []string) (int, error) {
	if len(patterns) == 0 {
		return 0, nil
	}
	used := make([]bool, len(patterns))
	var hits []*nn.Param
	for _, p := range ps.Params() {
		if p.Buffer {
			continue
		}
		hit := false
		for i, pat := range patterns {
			if ok, _ := path.Match(pat, p.Name); ok {
				used[i], hit = true, true
			}
		}
		if hit {
			hits = append(hits, p)
		}
	}
	var unknown []string
	for i, u := range used {
		if !u {
			unknown = append(unknown, fmt.Sprintf("%q", patterns[i]))
		}
	}
	if len(unknown) > 0 {
		return 0, fmt.Errorf("lm: Config.Freeze: pattern(s) %s match no parameter (names look like %q)",
			strings.Join(unknown, ", "), "transformer.h.0.attn.c_attn.weight")
	}
	for _, p := range hits {
		p.Frozen = true
	}
	return len(hits), nil
}
