package lm

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/nn/gpt"
	"github.com/kilnml/kiln/train"
)

// Trainer runs Config over a model and two spans of tokens. Build it with
// NewTrainer, optionally Resume, then Run (or Step and Eval yourself).
type Trainer struct {
	cfg  Config
	m    *gpt.Model
	ps   *nn.ParamSet
	tok  text.Tokenizer
	dev  device.Device
	ctx  int
	opt  *train.Adam
	clip *train.GradClipper
	lr   *train.Cosine
	g    *nn.Graph

	sampler, valSampler *text.Sampler

	hx, hy  []int32       // host batch
	x, y    device.Buffer // device batch, int32 [Batch·ctx]
	lossAcc device.Buffer // Σ micro-batch losses / Accum, on the device
	one     [1]float32

	iter   int   // optimiser steps done
	tokens int64 // training tokens seen
	flops  float64
	peak   float64
}

// StepInfo is what one Step measured.
type StepInfo struct {
	Iter      int     `json:"iter"` // steps done, this one included
	Loss      float64 `json:"loss"` // mean training loss over the step's micro-batches
	LR        float64 `json:"lr"`   // the rate this step used
	GradNorm  float64 `json:"grad_norm,omitempty"`
	Seconds   float64 `json:"seconds"`
	TokensPS  float64 `json:"tokens_per_s"`
	MFU       float64 `json:"mfu"` // model FLOPs / s over the peak, a fraction
	Tokens    int64   `json:"tokens"`
	ValLoss   float64 `json:"val_loss,omitempty"` // set on evaluation records only
	IsEval    bool    `json:"-"`
	flopsStep float64
}

// NewTrainer prepares cfg on m, sampling training windows of m's context
// from trainSpan and validation windows from valSpan; tok is stored in
// the checkpoints. It freezes the parameters cfg.Freeze names (on m
// itself). Free releases what it allocated (not the model).
func NewTrainer(m *gpt.Model, tok text.Tokenizer, trainSpan, valSpan text.Span, cfg Config) (*Trainer, error) {
	if m == nil || m.Params == nil {
		return nil, fmt.Errorf("lm: NewTrainer: nil model")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if tok != nil && tok.VocabSize() > m.Config.VocabSize {
		return nil, fmt.Errorf("lm: the tokenizer %s has %d symbols, more than the model's vocabulary of %d", tok, tok.VocabSize(), m.Config.VocabSize)
	}
	if cfg.LogEvery == 0 {
		cfg.LogEvery = 1
	}
	t := &Trainer{cfg: cfg, m: m, ps: m.Params, tok: tok, dev: m.Device(), ctx: m.Config.Context}
	var err error
	if t.sampler, err = text.NewSampler(trainSpan, t.ctx, cfg.Seed); err != nil {
		return nil, fmt.Errorf("lm: training data: %w", err)
	}
	if cfg.EvalEvery > 0 {
		if t.valSampler, err = text.NewSampler(valSpan, t.ctx, cfg.Seed+1); err != nil {
			return nil, fmt.Errorf("lm: validation data: %w", err)
		}
	}
	if _, err := freeze(m.Params, cfg.Freeze); err != nil {
		return nil, err
	}
	fail := func(err error) (*Trainer, error) { _ = t.Free(); return nil, err }
	groups := train.DecayGroups(m, cfg.WeightDecay)
	if t.opt, err = train.NewAdamW(m, device.AdamConfig{LR: float32(cfg.LR), Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay}, groups...); err != nil {
		return fail(fmt.Errorf("lm: %w", err))
	}
	if cfg.GradClip > 0 {
		if t.clip, err = train.NewGradClipper(m, cfg.GradClip); err != nil {
			return fail(fmt.Errorf("lm: %w", err))
		}
	}
	t.lr = &train.Cosine{Base: cfg.LR, Min: cfg.MinLR, Warmup: cfg.Warmup, Total: cfg.Iters, StartFactor: 1 / float64(cfg.Warmup+1), Steps: true}
	n := cfg.Batch * t.ctx
	t.hx, t.hy = make([]int32, n), make([]int32, n)
	for _, b := range []*device.Buffer{&t.x, &t.y} {
		if *b, err = t.dev.Alloc(device.Int32, n); err != nil {
			return fail(fmt.Errorf("lm: %w", err))
		}
	}
	if t.lossAcc, err = t.dev.Alloc(device.Float32, 1); err != nil {
		return fail(fmt.Errorf("lm: %w", err))
	}
	t.g = nn.NewGraph(t.dev)
	t.g.SetRNG(cfg.Seed+2, 0)
	t.flops = FLOPsPerToken(m.Config) * float64(n*cfg.Accum)
	t.peak = cfg.PeakFLOPS
	if t.peak == 0 {
		t.peak = DefaultPeakFLOPS(t.dev.Name())
	}
	return t, nil
}

// FLOPsPerToken is the model FLOPs of training on one token, as llm.c
// and nanoGPT's estimate_mfu count them (PaLM's appendix B): 6·N for the
// forward and backward matrix products of the N parameters (every
// parameter, embeddings included, as llm.c), plus 12·L·C·T for attention
// (QKᵀ and AV over the context T, forward and backward).
func FLOPsPerToken(c gpt.Config) float64 {
	return 6*float64(c.NumParams()) + 12*float64(c.Layers)*float64(c.Width)*float64(c.Context)
}

// Iter is the number of optimiser steps done (the checkpoint's step).
func (t *Trainer) Iter() int { return t.iter }

// Model is the model being trained.
func (t *Trainer) Model() *gpt.Model { return t.m }

// PeakFLOPS is the peak MFU is measured against.
func (t *Trainer) PeakFLOPS() float64 { return t.peak }

// Free releases the trainer's device buffers, optimiser and graph.
func (t *Trainer) Free() error {
	var errs []error
	for _, b := range []device.Buffer{t.x, t.y, t.lossAcc} {
		if b != nil && !b.Freed() {
			errs = append(errs, t.dev.Free(b))
		}
	}
	if t.opt != nil {
		errs = append(errs, t.opt.Free())
	}
	if t.clip != nil {
		errs = append(errs, t.clip.Free())
	}
	if t.g != nil {
		errs = append(errs, t.g.Free())
	}
	return errors.Join(errs...)
}

// Step runs one optimiser step of Accum micro-batches and reads its loss
// (and the gradient norm when clipping). In steady state it asks the
// device for no memory.
func (t *Trainer) Step() (StepInfo, error) { return t.step(true) }

// step is Step; when read is false it leaves the loss and the gradient
// norm on the device (StepInfo.Loss and GradNorm are NaN and 0), so the
// step queues its work without waiting for the device: Run reads them
// only on the steps it reports.
func (t *Trainer) step(read bool) (StepInfo, error) {
	if t.iter >= t.cfg.Iters {
		return StepInfo{}, fmt.Errorf("lm: Step: the run's %d iterations are done", t.cfg.Iters)
	}
	start := time.Now()
	nn.SetTraining(t.m, true)
	if err := t.lr.LoadState(train.ScheduleState{Kind: "cosine", T: t.iter}); err != nil {
		return StepInfo{}, err
	}
	lr := t.lr.LR()
	t.opt.SetLR(float32(lr))
	if err := t.ps.ZeroGrad(); err != nil {
		return StepInfo{}, err
	}
	inv := float32(1) / float32(t.cfg.Accum)
	for a := 0; a < t.cfg.Accum; a++ {
		if err := t.micro(a, inv); err != nil {
			return StepInfo{}, fmt.Errorf("lm: step %d: %w", t.iter+1, err)
		}
	}
	info := StepInfo{LR: lr}
	if t.clip != nil {
		if err := t.clip.Clip(); err != nil {
			return StepInfo{}, err
		}
	}
	if err := t.opt.Step(); err != nil {
		return StepInfo{}, fmt.Errorf("lm: step %d: %w", t.iter+1, err)
	}
	info.Loss = math.NaN()
	if read {
		if err := t.dev.ReadF32(t.one[:], t.lossAcc, 0); err != nil {
			return StepInfo{}, err
		}
		info.Loss = float64(t.one[0])
		if t.clip != nil {
			var err error
			if info.GradNorm, err = t.clip.Norm(); err != nil {
				return StepInfo{}, err
			}
		}
	}
	t.iter++
	t.tokens += int64(t.cfg.Batch * t.ctx * t.cfg.Accum)
	info.Iter, info.Tokens = t.iter, t.tokens
	info.Seconds = time.Since(start).Seconds()
	info.TokensPS = float64(t.cfg.Batch*t.ctx*t.cfg.Accum) / info.Seconds
	info.MFU = t.flops / info.Seconds / t.peak
	if read && (math.IsNaN(info.Loss) || math.IsInf(info.Loss, 0)) {
		return info, fmt.Errorf("lm: step %d: the loss is %v", t.iter, info.Loss)
	}
	return info, nil
}

// micro runs micro-batch a: forward, loss·inv added to lossAcc, backward.
func (t *Trainer) micro(a int, inv float32) error {
	if err := t.sampler.Batch(t.hx, t.hy); err != nil {
		return err
	}
	if err := t.dev.WriteI32(t.x, 0, t.hx); err != nil {
		return err
	}
	if err := t.dev.WriteI32(t.y, 0, t.hy); err != nil {
		return err
	}
	t.g.Reset()
	_, loss, err := t.m.Loss(t.g, t.x, t.y, t.cfg.Batch, t.ctx)
	if err != nil {
		return err
	}
	beta := float32(1)
	if a == 0 {
		beta = 0
	}
	// lossAcc = beta·lossAcc + inv·loss.
	if beta == 0 {
		if err := t.dev.Scale(inv, loss.Value(), t.lossAcc, 1); err != nil {
			return err
		}
	} else if err := t.dev.Axpy(inv, loss.Value(), t.lossAcc, 1); err != nil {
		return err
	}
	if t.cfg.Accum > 1 {
		if loss, err = t.g.Scale(inv, loss); err != nil {
			return err
		}
	}
	return t.g.Backward(loss)
}

// Eval is the mean loss over EvalBatches validation batches, the same
// batches at every call (the validation sampler starts from its seed each
// time), in evaluation mode (no dropout) without gradients. It leaves the
// training state (sampler, dropout RNG) untouched.
func (t *Trainer) Eval() (float64, error) {
	if t.valSampler == nil {
		return 0, fmt.Errorf("lm: Eval: no validation (Config.EvalEvery is 0)")
	}
	nn.SetTraining(t.m, false)
	defer nn.SetTraining(t.m, true)
	t.g.SetGradEnabled(false)
	defer t.g.SetGradEnabled(true)
	seed, off := t.g.RNG()
	defer t.g.SetRNG(seed, off)
	t.valSampler.Seek(0)
	for i := 0; i < t.cfg.EvalBatches; i++ {
		if err := t.valSampler.Batch(t.hx, t.hy); err != nil {
			return 0, err
		}
		if err := t.dev.WriteI32(t.x, 0, t.hx); err != nil {
			return 0, err
		}
		if err := t.dev.WriteI32(t.y, 0, t.hy); err != nil {
			return 0, err
		}
		t.g.Reset()
		_, loss, err := t.m.Loss(t.g, t.x, t.y, t.cfg.Batch, t.ctx)
		if err != nil {
			return 0, fmt.Errorf("lm: Eval: %w", err)
		}
		inv := 1 / float32(t.cfg.EvalBatches)
		if i == 0 {
			err = t.dev.Scale(inv, loss.Value(), t.lossAcc, 1)
		} else {
			err = t.dev.Axpy(inv, loss.Value(), t.lossAcc, 1)
		}
		if err != nil {
			return 0, err
		}
	}
	t.g.Reset()
	if err := t.dev.ReadF32(t.one[:], t.lossAcc, 0); err != nil {
		return 0, err
	}
	return float64(t.one[0]), nil
}

// Save writes a checkpoint (see the package comment) to path, a model
// file; Run saves to Out/model.safetensors.
func (t *Trainer) Save(path string) error { return t.saveCheckpoint(path) }

// Run trains from the current iteration to Config.Iters: a progress line
// every LogEvery steps on out (nil for none), a JSON line per reported step
// and per evaluation in Out/metrics.jsonl (a new file for a run from step 0,
// appended to on resume), the
// validation loss every EvalEvery steps and at the end, checkpoints every
// SaveEvery steps and at the end, and Out/loss.png. It returns the last
// validation loss (NaN when there was none).
func (t *Trainer) Run(out io.Writer) (float64, error) {
	if out == nil {
		out = io.Discard
	}
	cfg := t.cfg
	var metrics io.Writer // nil without Out (a nil *os.File here would not be a nil Writer)
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return math.NaN(), fmt.Errorf("lm: --out: %w", err)
		}
		mode := os.O_CREATE | os.O_APPEND | os.O_WRONLY
		if t.iter == 0 {
			mode |= os.O_TRUNC // a new run: not the records of an old one
		}
		f, err := os.OpenFile(filepath.Join(cfg.Out, MetricsFile), mode, 0o644)
		if err != nil {
			return math.NaN(), fmt.Errorf("lm: metrics: %w", err)
		}
		defer f.Close()
		metrics = f
	}
	mc := t.m.Config
	fmt.Fprintf(out, "model: %d layers, %d heads, width %d, context %d, vocabulary %d: %.2fM parameters (%d trainable)\n",
		mc.Layers, mc.Heads, mc.Width, mc.Context, mc.VocabSize, float64(mc.NumParams())/1e6, trainable(t.ps))
	fmt.Fprintf(out, "training: %d steps of %d × %d sequences × %d tokens = %d tokens/step on %s; MFU against a peak of %.3g FLOP/s\n",
		cfg.Iters, cfg.Batch, cfg.Accum, t.ctx, cfg.Batch*cfg.Accum*t.ctx, t.dev.Name(), t.peak)
	val := math.NaN()
	evalNow := func() error {
		v, err := t.Eval()
		if err != nil {
			return err
		}
		val = v
		fmt.Fprintf(out, "step %d: val loss %.4f\n", t.iter, v)
		return writeJSONLine(metrics, StepInfo{Iter: t.iter, ValLoss: v, Tokens: t.tokens, IsEval: true})
	}
	if t.iter == 0 && cfg.EvalEvery > 0 {
		if err := evalNow(); err != nil {
			return val, err
		}
	}
	stop := cfg.Iters
	if cfg.StopAfter > 0 && t.iter+cfg.StopAfter < stop {
		stop = t.iter + cfg.StopAfter
	}
	var secs float64
	steps := 0
	for t.iter < stop {
		// Only the steps that are reported wait for the device to read the
		// loss back (and check it is finite); the others only queue work.
		report := (t.iter+1)%cfg.LogEvery == 0 || t.iter+1 == stop
		info, err := t.step(report)
		if err != nil {
			return val, err
		}
		secs += info.Seconds
		steps++
		if report {
			fmt.Fprintln(out, progressLine(info, cfg.Iters))
			if err := writeJSONLine(metrics, info); err != nil {
				return val, err
			}
		}
		last := t.iter == cfg.Iters
		if cfg.EvalEvery > 0 && (t.iter%cfg.EvalEvery == 0 || last) {
			if err := evalNow(); err != nil {
				return val, err
			}
		}
		if cfg.Out != "" && (last || t.iter == stop || (cfg.SaveEvery > 0 && t.iter%cfg.SaveEvery == 0)) {
			if err := t.saveAll(); err != nil {
				return val, err
			}
		}
	}
	if steps > 0 {
		tps := float64(steps*cfg.Batch*cfg.Accum*t.ctx) / secs
		fmt.Fprintf(out, "trained %d steps in %.1f s of steps (evaluation and checkpoints excluded): mean %.0f tokens/s, MFU %.2f%%\n",
			steps, secs, tps, 100*t.flops*float64(steps)/secs/t.peak)
	}
	if cfg.Out != "" {
		p := filepath.Join(cfg.Out, PlotFile)
		if err := PlotMetrics(filepath.Join(cfg.Out, MetricsFile), p); err != nil {
			fmt.Fprintf(out, "loss plot not written: %v\n", err)
		} else {
			fmt.Fprintf(out, "checkpoint: %s\nmetrics: %s\nplot: %s\n", filepath.Join(cfg.Out, ModelFile), filepath.Join(cfg.Out, MetricsFile), p)
		}
	}
	return val, nil
}

// saveAll writes Out's checkpoint (and adapters).
func (t *Trainer) saveAll() error {
	if err := t.saveCheckpoint(filepath.Join(t.cfg.Out, ModelFile)); err != nil {
		return err
	}
	if t.m.LoRA.Rank == 0 {
		return nil
	}
	sd, err := t.m.AdapterStateDict()
	if err != nil {
		return err
	}
	meta, err := ModelMetadata(t.m, t.tok)
	if err != nil {
		return err
	}
	for k, v := range meta {
		sd.Metadata[k] = v
	}
	return nn.WriteSafetensors(filepath.Join(t.cfg.Out, AdapterFile), sd)
}

func trainable(ps *nn.ParamSet) int {
	n := 0
	for _, p := range ps.Params() {
		if !p.Frozen {
			n += p.Len()
		}
	}
	return n
}

// progressLine is llm.c's: step, loss, lr, norm, time, tokens/s, MFU.
func progressLine(s StepInfo, iters int) string {
	line := fmt.Sprintf("step %4d/%d | loss %.6f | lr %.2e", s.Iter, iters, s.Loss, s.LR)
	if s.GradNorm != 0 {
		line += fmt.Sprintf(" | norm %.4f", s.GradNorm)
	}
	return line + fmt.Sprintf(" | %.1f ms | %.0f tok/s | MFU %.2f%%", s.Seconds*1e3, s.TokensPS, 100*s.MFU)
}
