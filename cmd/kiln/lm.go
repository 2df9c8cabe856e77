package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn/gpt"
	"github.com/kilnml/kiln/train/lm"
)

// lmTrainFlags holds every `kiln lm train` flag. The defaults are
// nanoGPT's CPU recipe for character-level text (4 layers, 4 heads, width
// 128, context 64, batch 12, AdamW 1e-3 → 1e-4, β₂ 0.99, weight decay
// 0.1, clip 1, dropout 0, no biases) on the embedded Moby-Dick, cut to
// 300 steps so that a bare `kiln lm train` shows a falling validation
// loss in a couple of minutes on two cores; --iters 2000 is the recipe.
type lmTrainFlags struct {
	data, tokenizer, cacheDir         string
	layers, heads, width, context     int
	dropout                           float32
	bias                              bool
	batch, accum, iters, warmup       int
	lr, minLR                         float64
	beta1, beta2, wd, clip            float32
	evalEvery, evalBatches, saveEvery int
	logEvery, stopAfter               int
	valFrac                           float64
	out, resume, init, device         string
	loraRank                          int
	loraAlpha                         float32
	loraTargets                       []string
	freeze                            []string
	tf32                              bool
	seed                              uint64
	peak                              float64
}

func newLMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lm",
		Short: "Train GPT language models (see 'kiln generate' to sample from them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("expected a subcommand: kiln lm train (see 'kiln lm --help')")
		},
	}
	cmd.AddCommand(newLMTrainCmd(), newLMMergeCmd())
	return cmd
}

// newLMMergeCmd is `kiln lm merge`: a LoRA run's merged full checkpoint.
func newLMMergeCmd() *cobra.Command {
	var checkpoint, out, dev string
	cmd := &cobra.Command{
		Use:   "merge",
		Short: "Fold a LoRA run's adapters into its base weights, writing a full checkpoint",
		Long: `Write the merged full checkpoint of a LoRA run: every adapted projection's
weight becomes W + (alpha/rank)·(B·A)ᵀ and the lora_A / lora_B tensors are
dropped, giving a plain GPT-2 state dict (Hugging Face names, the run's
shape and tokenizer in the metadata) that 'kiln generate', 'kiln lm train
--init' and transformers' GPT2LMHeadModel load without adapters.

  kiln lm merge --checkpoint lora-out --out merged.safetensors
  kiln generate --checkpoint merged.safetensors --prompt "Call me"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if checkpoint == "" || out == "" {
				return fmt.Errorf("--checkpoint and --out: both required (kiln lm merge --checkpoint RUN --out merged.safetensors)")
			}
			d, err := openDevice(dev, false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer d.Close()
			if err := lm.WriteMerged(d, lmCheckpointPath(checkpoint), out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %s into %s\n", lmCheckpointPath(checkpoint), out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&checkpoint, "checkpoint", "", "the LoRA run: its folder or model.safetensors; required")
	fl.StringVar(&out, "out", "", "the merged safetensors file to write; required")
	fl.StringVar(&dev, "device", "cpu", "device the merge runs on (it is a host computation; cpu is enough)")
	return cmd
}

func newLMTrainCmd() *cobra.Command {
	f := &lmTrainFlags{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a GPT on a text corpus (the embedded Moby-Dick by default)",
		Long: `Train a GPT-2-style language model. With no flags it trains a small
character-level model (nanoGPT's CPU recipe, 300 steps) on the embedded
Moby-Dick and prints the validation loss as it falls; the checkpoint goes
to lm-out/model.safetensors, with lm-out/metrics.jsonl and lm-out/loss.png.

  kiln lm train --iters 2000                      nanoGPT's full CPU recipe
  kiln lm train --data books/ --tokenizer gpt2    any .txt file or folder
  kiln lm train --resume lm-out                   continue a run exactly
  kiln lm train --init gpt2.safetensors --data my.txt --lora-rank 8
                                                  fine-tune (LoRA) a Hub GPT-2
  kiln lm train --init gpt2.safetensors --data my.txt --freeze 'transformer.h.0.*,transformer.wte.weight'
                                                  full fine-tuning, some tensors frozen
  kiln lm merge --checkpoint lm-out --out merged.safetensors
                                                  fold a LoRA run's adapters in
  kiln generate --checkpoint lm-out/model.safetensors --prompt "Call me"

Parameter names are Hugging Face GPT-2's: transformer.wte.weight,
transformer.wpe.weight, transformer.h.N.{ln_1,attn.c_attn,attn.c_proj,ln_2,
mlp.c_fc,mlp.c_proj}.{weight,bias}, transformer.ln_f.{weight,bias}.
--freeze takes comma-separated glob patterns over them (Go's path.Match;
'*' matches any characters, dots included, so 'transformer.h.0.*' is all
of block 0); a pattern that matches nothing is an error.

LoRA adds, to each target projection <target> (a Conv1D of input size in
and output size out), PEFT's two tensors
  <target>.lora_A.weight  [r, in]   (e.g. transformer.h.0.attn.c_attn.lora_A.weight)
  <target>.lora_B.weight  [out, r]  (zero at the start)
and computes x·W + b + (alpha/r)·(x·Aᵀ)·Bᵀ; only these are trained and
written to adapter.safetensors (model.safetensors holds base and adapters;
'kiln lm merge' folds them in).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLMTrain(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "a .txt file or a folder of them (default: the embedded Moby-Dick)")
	fl.StringVar(&f.tokenizer, "tokenizer", "char", "byte, char (the corpus's characters) or gpt2 (default with --init of a file that names none: gpt2)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "where token files are kept (default $XDG_CACHE_HOME/kiln/tokens)")
	fl.IntVar(&f.layers, "layers", 4, "transformer blocks")
	fl.IntVar(&f.heads, "heads", 4, "attention heads (with --init of a Hub file: its heads, default width/64)")
	fl.IntVar(&f.width, "width", 128, "embedding width, a multiple of --heads")
	fl.IntVar(&f.context, "context", 64, "tokens per sequence")
	fl.Float32Var(&f.dropout, "dropout", 0, "dropout probability")
	fl.BoolVar(&f.bias, "bias", false, "biases in the projections and LayerNorms (GPT-2 has them; nanoGPT's recipe not)")
	fl.IntVar(&f.batch, "batch", 12, "sequences per micro-batch")
	fl.IntVar(&f.accum, "accum", 1, "micro-batches per optimiser step (gradient accumulation)")
	fl.IntVar(&f.iters, "iters", 300, "optimiser steps of the whole run (nanoGPT's recipe: 2000)")
	fl.IntVar(&f.warmup, "warmup", -1, "linear warm-up steps (default min(100, iters/10))")
	fl.Float64Var(&f.lr, "lr", 1e-3, "peak learning rate")
	fl.Float64Var(&f.minLR, "min-lr", -1, "learning rate at the end of the cosine (default lr/10)")
	fl.Float32Var(&f.beta1, "beta1", 0.9, "AdamW β₁")
	fl.Float32Var(&f.beta2, "beta2", 0.99, "AdamW β₂")
	fl.Float32Var(&f.wd, "weight-decay", 0.1, "AdamW weight decay of the 2-D weights")
	fl.Float32Var(&f.clip, "grad-clip", 1, "global gradient-norm clip (0: off)")
	fl.IntVar(&f.evalEvery, "eval-every", 50, "steps between validation losses (0: never)")
	fl.IntVar(&f.evalBatches, "eval-batches", 20, "validation batches per evaluation")
	fl.IntVar(&f.saveEvery, "save-every", 0, "steps between checkpoints (one is always written at the end)")
	fl.IntVar(&f.logEvery, "log-every", 10, "steps between progress lines")
	fl.IntVar(&f.stopAfter, "stop-after", 0, "stop (with a checkpoint) after this many steps of this invocation; --resume goes on")
	fl.Float64Var(&f.valFrac, "val-frac", 0.1, "the last fraction of the tokens held out for validation")
	fl.StringVar(&f.out, "out", "", "output folder (default lm-out, or the --resume folder)")
	fl.StringVar(&f.resume, "resume", "", "resume the run of this checkpoint (folder or model.safetensors) exactly")
	fl.StringVar(&f.init, "init", "", "start from this checkpoint's weights (a kiln checkpoint or a Hugging Face GPT-2 safetensors)")
	fl.IntVar(&f.loraRank, "lora-rank", 0, "train LoRA adapters of this rank on the --init model, the base frozen (0: full training)")
	fl.Float32Var(&f.loraAlpha, "lora-alpha", 0, "LoRA α (scale α/rank; default α = rank)")
	fl.StringSliceVar(&f.loraTargets, "lora-targets", []string{"c_attn"}, "projections that get adapters (c_attn, c_proj, c_fc, or a full name)")
	fl.StringSliceVar(&f.freeze, "freeze", nil, "comma-separated glob patterns of parameters to freeze, e.g. 'transformer.h.0.*' ('*' spans dots; give the same on --resume)")
	fl.Uint64Var(&f.seed, "seed", 1337, "seed of the weights, batches and dropout")
	fl.Float64Var(&f.peak, "peak-flops", 0, "peak FLOP/s for the MFU (default: 100e9 per CPU core; 67e12 on CUDA)")
	fl.StringVar(&f.device, "device", "auto", "device: auto (a GPU when there is one), cpu, cuda or cuda:N")
	fl.BoolVar(&f.tf32, "tf32", false, "allow TF32 tensor cores in the GPU's float32 matrix products (no effect on the CPU)")
	return cmd
}

func runLMTrain(cmd *cobra.Command, f *lmTrainFlags) error {
	stdout := cmd.OutOrStdout()
	set := func(name string) bool { return cmd.Flags().Changed(name) }
	for _, c := range []struct {
		name string
		v    int
	}{{"layers", f.layers}, {"heads", f.heads}, {"width", f.width}, {"context", f.context}, {"batch", f.batch}, {"accum", f.accum}, {"iters", f.iters}, {"eval-batches", f.evalBatches}, {"log-every", f.logEvery}} {
		if err := positive(c.name, c.v); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"eval-every", f.evalEvery}, {"save-every", f.saveEvery}, {"stop-after", f.stopAfter}, {"lora-rank", f.loraRank}} {
		if err := nonNegative(c.name, c.v); err != nil {
			return err
		}
	}
	if !(f.valFrac > 0 && f.valFrac < 1) {
		return fmt.Errorf("--val-frac %v: want a fraction in (0, 1)", f.valFrac)
	}
	if f.resume != "" && f.init != "" {
		return fmt.Errorf("--resume and --init exclude each other: --resume continues a run, --init starts a new one from weights")
	}
	if f.loraRank > 0 && f.init == "" && f.resume == "" {
		return fmt.Errorf("--lora-rank %d: LoRA adapts a pretrained model; give it with --init", f.loraRank)
	}
	switch f.tokenizer {
	case "byte", "char", "gpt2":
	default:
		return fmt.Errorf("--tokenizer %q: want byte, char or gpt2", f.tokenizer)
	}
	warmup := f.warmup
	if warmup < 0 {
		warmup = min(100, f.iters/10)
	}
	if warmup >= f.iters {
		return fmt.Errorf("--warmup %d: want fewer warm-up steps than --iters %d", warmup, f.iters)
	}
	minLR := f.minLR
	if minLR < 0 {
		minLR = f.lr / 10
	}
	cfg := lm.DefaultConfig()
	cfg.Batch, cfg.Accum, cfg.Iters, cfg.Warmup = f.batch, f.accum, f.iters, warmup
	cfg.LR, cfg.MinLR, cfg.Beta1, cfg.Beta2, cfg.WeightDecay, cfg.GradClip = f.lr, minLR, f.beta1, f.beta2, f.wd, f.clip
	cfg.EvalEvery, cfg.EvalBatches, cfg.SaveEvery, cfg.LogEvery, cfg.StopAfter = f.evalEvery, f.evalBatches, f.saveEvery, f.logEvery, f.stopAfter
	cfg.Seed, cfg.PeakFLOPS, cfg.Freeze = f.seed, f.peak, f.freeze
	cfg.Out = f.out
	if cfg.Out == "" {
		cfg.Out = "lm-out"
		if f.resume != "" {
			cfg.Out = filepath.Dir(lmCheckpointPath(f.resume))
		}
	}

	// The model's shape and tokeniser: from the flags, or from the
	// checkpoint of --init / --resume.
	var ck *lm.Checkpoint
	from := f.init
	if f.resume != "" {
		from = lmCheckpointPath(f.resume)
	}
	if from != "" {
		heads := 0
		if set("heads") {
			heads = f.heads
		}
		var err error
		if ck, err = lm.ReadCheckpoint(from, heads); err != nil {
			return err
		}
		c := ck.Config
		for _, v := range []struct {
			name      string
			flag, has any
		}{{"layers", f.layers, c.Layers}, {"heads", f.heads, c.Heads}, {"width", f.width, c.Width}, {"context", f.context, c.Context}, {"bias", f.bias, c.Bias}} {
			if set(v.name) && v.flag != v.has {
				return fmt.Errorf("--%s %v: the model of %s has %v (its shape comes from the checkpoint)", v.name, v.flag, from, v.has)
			}
		}
	}
	var tok text.Tokenizer
	if ck != nil && ck.Tokenizer != nil && (!set("tokenizer") || f.tokenizer == ck.Tokenizer.Name()) {
		tok = ck.Tokenizer
	} else if ck != nil && ck.Tokenizer != nil {
		return fmt.Errorf("--tokenizer %s: %s was trained with the %s tokenizer", f.tokenizer, from, ck.Tokenizer)
	} else if ck != nil && !set("tokenizer") {
		tok = text.NewGPT2() // a Hub GPT-2 file
	}
	opt := text.Options{CacheDir: f.cacheDir}
	if tok == nil {
		var err error
		switch {
		case f.tokenizer != "char":
			tok, err = text.New(f.tokenizer)
		case f.data == "":
			var s string
			if s, err = text.DefaultCorpus(); err == nil {
				tok, err = text.CharFromText(s)
			}
		default:
			tok, err = text.ScanChars(f.data, opt)
		}
		if err != nil {
			return err
		}
	}
	var ts *text.Tokens
	var err error
	if f.data == "" {
		ts, err = text.OpenDefault(tok, opt)
	} else {
		ts, err = text.Open(f.data, tok, opt)
	}
	if err != nil {
		return err
	}
	defer ts.Close()
	trainSpan, valSpan, err := ts.Split(f.valFrac)
	if err != nil {
		return err
	}

	dev, err := openDevice(f.device, f.tf32, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer dev.Close()
	m, err := buildLM(dev, f, ck, tok, set)
	if err != nil {
		return err
	}
	defer m.Free()
	if ck != nil && m.Config.Context > trainSpan.Len()-1 {
		return fmt.Errorf("--data: %d training tokens, too few for the model's context of %d", trainSpan.Len(), m.Config.Context)
	}
	tr, err := lm.NewTrainer(m, tok, trainSpan, valSpan, cfg)
	if err != nil {
		return err
	}
	defer tr.Free()
	if f.resume != "" {
		if err := tr.Resume(from); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "resumed %s at step %d\n", from, tr.Iter())
	} else if f.init != "" {
		fmt.Fprintf(stdout, "initialised from %s\n", f.init)
	}
	fmt.Fprintf(stdout, "data: %s, %s: %d training and %d validation tokens\n", ts.Name(), tok, trainSpan.Len(), valSpan.Len())
	val, err := tr.Run(stdout)
	if err != nil {
		return err
	}
	if f.evalEvery > 0 {
		fmt.Fprintf(stdout, "final val loss: %.4f\n", val)
	}
	return nil
}

// buildLM makes the model: the flags' shape from scratch, or the
// checkpoint's with its weights (and adapters when LoRA is asked for or
// the checkpoint has them).
func buildLM(dev device.Device, f *lmTrainFlags, ck *lm.Checkpoint, tok text.Tokenizer, set func(string) bool) (*gpt.Model, error) {
	if ck == nil {
		cfg := gpt.Config{VocabSize: tok.VocabSize(), Context: f.context, Layers: f.layers, Heads: f.heads, Width: f.width, Dropout: f.dropout, Bias: f.bias}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("model flags: %w", err)
		}
		return gpt.New(dev, cfg, f.seed)
	}
	cfg := ck.Config
	if set("dropout") || f.resume == "" {
		cfg.Dropout = f.dropout
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("the %s tokenizer has %d symbols, the model of %s only %d", tok, tok.VocabSize(), ck.Path, cfg.VocabSize)
	}
	lc := ck.LoRA
	if f.loraRank > 0 {
		if ck.LoRA.Rank > 0 && f.init != "" {
			return nil, fmt.Errorf("--lora-rank: %s already has adapters; merge them first or resume it", ck.Path)
		}
		if f.resume == "" || lc.Rank == 0 {
			lc = gpt.LoRAConfig{Rank: f.loraRank, Alpha: f.loraAlpha, Targets: f.loraTargets}
		}
	}
	var m *gpt.Model
	var err error
	if lc.Rank > 0 {
		m, err = gpt.NewLoRA(dev, cfg, lc, f.seed)
	} else {
		m, err = gpt.New(dev, cfg, f.seed)
	}
	if err != nil {
		return nil, err
	}
	if _, err := m.LoadStateDict(ck.State); err != nil {
		_ = m.Free()
		return nil, err
	}
	return m, nil
}

// lmCheckpointPath is the model file of a folder or file argument.
func lmCheckpointPath(p string) string {
	if strings.HasSuffix(p, ".safetensors") {
		return p
	}
	return filepath.Join(p, lm.ModelFile)
}
