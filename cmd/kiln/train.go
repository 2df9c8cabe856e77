package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// trainFlags holds every `kiln train` flag. Defaults are chosen so that a
// bare `kiln train` trains a small model on the embedded digits to about 97%
// test accuracy in a few seconds on two CPU cores: the README's first command.
type trainFlags struct {
	data dataFlags

	model      string
	initScheme string
	dropout    float64
	device     string
	tf32       bool

	loss      string
	optimizer string
	lr        float64
	momentum  float64
	nesterov  bool
	beta1     float64
	beta2     float64
	eps       float64
	decay     float64

	batch      int
	epochs     int
	steps      int
	seed       uint64
	shuffle    bool
	clipNorm   float64
	valSplit   float64
	patience   int
	targetLoss float64

	schedule     string
	warmup       int
	stepSize     int
	gamma        float64
	minLR        float64
	plateauPat   int
	plateauFact  float64
	evalBatch    int
	init         string
	freeze       string
	out          string
	metrics      string
	plot         string
	progressMode string
	saveEvery    string
	resume       string
}

func newTrainCmd() *cobra.Command {
	f := &trainFlags{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model and report its test accuracy",
		Long: `Train a feed-forward network on a dataset and report its accuracy on the
dataset's test split.

With no flags it trains 64-128-relu-10 with Adam on the embedded 8×8 digits
(about 1,440 training and 360 test images) and prints "test accuracy: 0.97…".

The model is a spec string: widths and layers joined by '-', e.g.
784-256-relu-128-relu-10, 2-16-tanh-1-sigmoid, 784-512-relu-drop0.2-10.
The first number is the input width, the last width the number of outputs.
Layers: a width (Linear), relu, leakyrelu[<slope>], tanh, sigmoid, gelu,
gelu_tanh, silu, elu[<alpha>], identity, softmax, drop<p>.

Image models start with the input shape CxHxW (channels × height × width,
e.g. 1x28x28 for MNIST, 1x8x8 for the digits) and add:
  conv<out>k<k>[s<s>][p<p>][d<d>]  Conv2d: out channels, kernel k×k, stride s
                                   (1), zero padding p (0), dilation d (1)
  bn                               BatchNorm2d (BatchNorm1d after flatten)
  maxpool<k>[s<s>][p<p>]           MaxPool2d: window k×k, stride s (k)
  avgpool<k>[s<s>][p<p>]           AvgPool2d, the same arguments
  gap                              global average pooling to C×1×1
  flatten                          C×H×W → C·H·W, needed before a width
e.g. 1x28x28-conv32k3p1-bn-relu-maxpool2-conv64k3p1-bn-relu-maxpool2-flatten-128-relu-10
(state_dict names as torch.nn.Sequential's: 0.weight, 1.running_mean, ...).

Fine-tuning: --init starts from a safetensors checkpoint (PyTorch
nn.Sequential state_dict names: 0.weight, 0.bias, 2.weight, ...) and
--freeze keeps the named parameters fixed.`,
		Example: `  kiln train
  kiln train --data mnist --model 784-256-relu-10 --epochs 5 --out mnist.safetensors
  kiln train --data mnist --model 1x28x28-conv16k3p1-bn-relu-maxpool2-flatten-10 --epochs 1
  kiln train --data moons --model 2-16-tanh-16-tanh-1 --loss bce_logits --optimizer sgd --lr 0.1 --momentum 0.9
  kiln train --init mnist.safetensors --freeze 0.weight,0.bias --data fashion-mnist --lr 1e-4
  kiln train --data iris.csv --label species --standardize --val-split 0.2 --patience 10 --epochs 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd, f)
		},
	}
	f.register(cmd)
	return cmd
}

// register adds every training flag to cmd: `kiln train` and, for the
// configuration they train, `kiln sweep` and `kiln cv`.
func (f *trainFlags) register(cmd *cobra.Command) {
	f.data.register(cmd, "digits")
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model spec, e.g. 64-128-relu-10 (default: chosen from the dataset: 64-128-relu-10 for digits, 784-128-relu-10 for MNIST, 2-32-relu-32-relu-2 for the 2-D sets)")
	fl.StringVar(&f.initScheme, "init-scheme", "default", "weight initialisation: default (PyTorch's nn.Linear and nn.Conv2d), xavier (= xavier_uniform), xavier_normal, he (= he_normal), he_uniform, normal<std> (normal0.01), uniform<range>, zeros; xavier and he take a gain as :1.5")
	fl.Float64Var(&f.dropout, "dropout", 0, "insert dropout with this drop probability after every hidden activation (of an image spec: after flatten only) (0 ≤ p < 1; 0 is off)")
	fl.StringVar(&f.device, "device", "auto", "device: auto (a GPU when there is one), cpu, cuda or cuda:N")
	fl.BoolVar(&f.tf32, "tf32", false, "allow TensorFloat-32 matrix products on GPUs that have them (faster, about 10 bits of mantissa)")

	fl.StringVar(&f.loss, "loss", "", "loss: "+lossHelp+" (default: cross_entropy for classes, bce_logits for one output on two classes, bce when that output ends in sigmoid, mse for regression)")
	fl.StringVar(&f.optimizer, "optimizer", "adam", "optimizer: sgd, adam or adamw")
	fl.Float64Var(&f.lr, "lr", 0, "learning rate (default 0.001 for adam and adamw, 0.01 for sgd)")
	fl.Float64Var(&f.momentum, "momentum", 0, "sgd: momentum (0 is plain SGD)")
	fl.BoolVar(&f.nesterov, "nesterov", false, "sgd: Nesterov momentum (needs --momentum > 0)")
	fl.Float64Var(&f.beta1, "beta1", 0.9, "adam/adamw: first-moment decay")
	fl.Float64Var(&f.beta2, "beta2", 0.999, "adam/adamw: second-moment decay")
	fl.Float64Var(&f.eps, "eps", 1e-8, "adam/adamw: term added to the denominator")
	fl.Float64Var(&f.decay, "weight-decay", 0, "weight decay (L2 for sgd and adam, decoupled for adamw; default 0, 0.01 for adamw)")

	fl.IntVar(&f.batch, "batch-size", 32, "samples per optimiser step (0: the whole training set)")
	fl.IntVar(&f.epochs, "epochs", 20, "passes over the training set")
	fl.IntVar(&f.steps, "steps", 0, "stop after this many optimiser steps in all (0: no limit)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the weight initialisation, batch order, dropout, validation split and synthetic data")
	fl.BoolVar(&f.shuffle, "shuffle", true, "draw a new batch order every epoch (--shuffle=false keeps file order)")
	fl.Float64Var(&f.clipNorm, "clip-norm", 0, "clip the global gradient norm to this value before each step (0: off)")
	fl.Float64Var(&f.valSplit, "val-split", 0, "fraction of the training set held out for validation after every epoch (0 ≤ f < 1)")
	fl.IntVar(&f.patience, "patience", 0, "early stopping: stop when the validation loss has not improved for this many epochs, and keep the best weights (needs --val-split; 0: off)")
	fl.Float64Var(&f.targetLoss, "target-loss", 0, "stop at the end of the first epoch whose training loss is below this (0: off)")

	fl.StringVar(&f.schedule, "schedule", "constant", "learning-rate schedule: constant, step, cosine, cosine-steps or plateau (or the full form, e.g. step:10:0.5, cosine:5:1e-5, plateau:5:0.5)")
	fl.IntVar(&f.warmup, "warmup", 0, "cosine: linear warm-up epochs (steps for cosine-steps) before the cosine decay")
	fl.IntVar(&f.stepSize, "step-size", 10, "step: epochs between decays")
	fl.Float64Var(&f.gamma, "gamma", 0.1, "step: factor applied at every decay")
	fl.Float64Var(&f.minLR, "min-lr", 0, "cosine: final learning rate; plateau: the rate is never reduced below it")
	fl.IntVar(&f.plateauPat, "plateau-patience", 10, "plateau: epochs without improvement before the rate is reduced")
	fl.Float64Var(&f.plateauFact, "plateau-factor", 0.1, "plateau: factor applied at every reduction")
	fl.IntVar(&f.evalBatch, "eval-batch-size", 1024, "samples per batch when validating and testing")

	fl.StringVar(&f.init, "init", "", "start from this safetensors checkpoint (fine-tuning); its kiln.spec metadata, or --model, gives the architecture")
	fl.StringVar(&f.freeze, "freeze", "", "comma-separated parameter names (or prefixes ending in \".\") to keep fixed, e.g. 0.weight,0.bias or 0.")
	fl.StringVar(&f.out, "out", "", "write the trained model to this safetensors checkpoint (with its spec, loss and data statistics in the metadata)")
	fl.StringVar(&f.metrics, "metrics", "", "write one JSON object per epoch to this file (JSON lines)")
	fl.StringVar(&f.plot, "plot", "", "draw the loss and accuracy curves into this PNG file")
	fl.StringVar(&f.progressMode, "progress", "auto", "progress display: auto (bars on a terminal, a line per epoch otherwise), bar, lines or none")
	fl.StringVar(&f.saveEvery, "save-every", "", "write a resumable checkpoint (--out and its .state.safetensors) every N epochs, or every N optimiser steps with the suffix 'steps' (500steps); --out also gets one when training ends or is interrupted (SIGINT, SIGTERM)")
	fl.StringVar(&f.resume, "resume", "", "continue the run whose checkpoint (written with --out) is this file and its .state.safetensors; give the same flags (--epochs is the total), the result is bit-identical on the CPU")
}

// parseSaveEvery reads --save-every: "N" epochs or "Nsteps" (also "Ns")
// optimiser steps; "" is off.
func parseSaveEvery(s string) (epochs, steps int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	num, unit := s, "epochs"
	for _, suf := range []string{"steps", "step", "s", "epochs", "epoch", "e"} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			num, unit = v, suf
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("--save-every %q: want a positive number of epochs (2) or of steps (500steps)", s)
	}
	if unit[0] == 's' {
		return 0, n, nil
	}
	return n, 0, nil
}

// validate checks the flags that can be checked before any data is read, so
// that a typo fails at once and not after a dataset has loaded.
func (f *trainFlags) validate(cmd *cobra.Command) error {
	if err := f.data.validate(); err != nil {
		return err
	}
	if err := positive("epochs", f.epochs); err != nil {
		return err
	}
	for _, c := range []struct {
		flag string
		v    int
	}{{"batch-size", f.batch}, {"steps", f.steps}, {"patience", f.patience}, {"warmup", f.warmup}} {
		if err := nonNegative(c.flag, c.v); err != nil {
			return err
		}
	}
	if err := positive("eval-batch-size", f.evalBatch); err != nil {
		return err
	}
	if f.dropout < 0 || f.dropout >= 1 {
		return fmt.Errorf("--dropout %g: want a drop probability with 0 ≤ p < 1", f.dropout)
	}
	if f.valSplit < 0 || f.valSplit >= 1 {
		return fmt.Errorf("--val-split %g: want a fraction with 0 ≤ f < 1", f.valSplit)
	}
	if f.patience > 0 && f.valSplit == 0 {
		return fmt.Errorf("--patience %d needs a validation set to watch: add --val-split, e.g. --val-split 0.1", f.patience)
	}
	if f.clipNorm < 0 {
		return fmt.Errorf("--clip-norm %g: want a norm > 0, or 0 for no clipping", f.clipNorm)
	}
	if f.targetLoss < 0 {
		return fmt.Errorf("--target-loss %g: want a loss > 0, or 0 for none", f.targetLoss)
	}
	if cmd.Flags().Changed("lr") && !(f.lr > 0) {
		return fmt.Errorf("--lr %g: want a learning rate > 0", f.lr)
	}
	switch strings.ToLower(f.optimizer) {
	case "sgd":
		if f.momentum < 0 || f.momentum >= 1 {
			return fmt.Errorf("--momentum %g: want 0 ≤ momentum < 1", f.momentum)
		}
		if f.nesterov && f.momentum == 0 {
			return errors.New("--nesterov needs --momentum > 0 (as torch.optim.SGD)")
		}
		for _, name := range []string{"beta1", "beta2", "eps"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s applies to --optimizer adam or adamw, not sgd", name)
			}
		}
	case "adam", "adamw":
		if cmd.Flags().Changed("momentum") || f.nesterov {
			return fmt.Errorf("--momentum and --nesterov apply to --optimizer sgd, not %s (its momentum is --beta1)", f.optimizer)
		}
		if f.beta1 < 0 || f.beta1 >= 1 {
			return fmt.Errorf("--beta1 %g: want 0 ≤ beta1 < 1", f.beta1)
		}
		if f.beta2 < 0 || f.beta2 >= 1 {
			return fmt.Errorf("--beta2 %g: want 0 ≤ beta2 < 1", f.beta2)
		}
		if !(f.eps > 0) {
			return fmt.Errorf("--eps %g: want a small positive number such as 1e-8", f.eps)
		}
	default:
		return fmt.Errorf("--optimizer %q: want sgd, adam or adamw", f.optimizer)
	}
	if f.decay < 0 {
		return fmt.Errorf("--weight-decay %g: want 0 or a positive number", f.decay)
	}
	if f.loss != "" {
		if _, err := parseLoss("loss", f.loss); err != nil {
			return err
		}
	}
	if _, err := nn.ParseInit(initAlias(f.initScheme)); err != nil {
		return fmt.Errorf("--init-scheme %q: %w", f.initScheme, err)
	}
	if f.init != "" && cmd.Flags().Changed("init-scheme") {
		return errors.New("--init-scheme has no effect with --init: the weights come from the checkpoint")
	}
	if f.init != "" && f.dropout > 0 {
		return errors.New("--dropout cannot be combined with --init: inserting layers would renumber the checkpoint's parameters (2.weight would become 3.weight); put the dropout layers in the checkpoint's spec instead")
	}
	if f.freeze != "" && f.init == "" && f.resume == "" {
		return errors.New("--freeze keeps pretrained parameters fixed, so it needs --init with the checkpoint to start from")
	}
	if _, _, err := parseSaveEvery(f.saveEvery); err != nil {
		return err
	}
	if f.saveEvery != "" && f.out == "" {
		return fmt.Errorf("--save-every %s writes the checkpoint to --out; give --out as well", f.saveEvery)
	}
	if f.resume != "" {
		if f.init != "" {
			return errors.New("--resume and --init both give the starting weights; use --resume to continue a run, --init to fine-tune")
		}
		if f.dropout > 0 {
			return errors.New("--dropout with --resume: the checkpoint's spec already holds the run's dropout layers")
		}
		if _, err := os.Stat(train.StatePath(f.resume)); err != nil {
			return fmt.Errorf("--resume %s: its state file: %w (written by `kiln train --out`)", f.resume, err)
		}
	}
	switch f.progressMode {
	case "auto", "bar", "lines", "none":
	default:
		return fmt.Errorf("--progress %q: want auto, bar, lines or none", f.progressMode)
	}
	if _, err := f.scheduleSpec(cmd); err != nil {
		return err
	}
	return nil
}

// scheduleSpec turns --schedule and its parameter flags into the form
// train.ParseSchedule reads ("step:10:0.5"). A --schedule that already holds
// parameters is passed through, and then the parameter flags must not be
// given as well.
func (f *trainFlags) scheduleSpec(cmd *cobra.Command) (string, error) {
	kind := strings.ToLower(strings.TrimSpace(f.schedule))
	changed := func(names ...string) string {
		for _, n := range names {
			if cmd.Flags().Changed(n) {
				return n
			}
		}
		return ""
	}
	params := []string{"warmup", "step-size", "gamma", "min-lr", "plateau-patience", "plateau-factor"}
	if strings.Contains(kind, ":") {
		if n := changed(params...); n != "" {
			return "", fmt.Errorf("--%s: --schedule %s already gives its parameters; use one or the other", n, f.schedule)
		}
		return kind, nil
	}
	own := map[string][]string{
		"constant":     nil,
		"step":         {"step-size", "gamma"},
		"cosine":       {"warmup", "min-lr"},
		"cosine-steps": {"warmup", "min-lr"},
		"plateau":      {"plateau-patience", "plateau-factor", "min-lr"},
	}
	mine, ok := own[kind]
	if !ok {
		return "", fmt.Errorf("--schedule %q: want constant, step, cosine, cosine-steps or plateau", f.schedule)
	}
	for _, p := range params {
		if cmd.Flags().Changed(p) && !contains(mine, p) {
			return "", fmt.Errorf("--%s does not apply to --schedule %s", p, kind)
		}
	}
	if f.stepSize < 1 {
		return "", fmt.Errorf("--step-size %d: want a positive number of epochs", f.stepSize)
	}
	if !(f.gamma > 0) || !(f.plateauFact > 0) || f.plateauFact >= 1 {
		return "", fmt.Errorf("--gamma %g / --plateau-factor %g: want factors > 0 (and < 1 for plateau)", f.gamma, f.plateauFact)
	}
	if f.minLR < 0 || f.plateauPat < 0 {
		return "", fmt.Errorf("--min-lr %g / --plateau-patience %d: want values ≥ 0", f.minLR, f.plateauPat)
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch kind {
	case "step":
		return fmt.Sprintf("step:%d:%s", f.stepSize, g(f.gamma)), nil
	case "cosine", "cosine-steps":
		return fmt.Sprintf("%s:%d:%s", kind, f.warmup, g(f.minLR)), nil
	case "plateau":
		return fmt.Sprintf("plateau:%d:%s:0:%s", f.plateauPat, g(f.plateauFact), g(f.minLR)), nil
	}
	return "constant", nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// initAlias maps the short names people type to the initialiser their
// papers describe: Glorot & Bengio's is the uniform form (PyTorch's
// xavier_uniform_), He et al.'s the normal one (kaiming_normal_). A gain
// suffix (":1.5") is kept.
func initAlias(s string) string {
	name, gain, hasGain := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	switch name {
	case "xavier", "glorot":
		name = "xavier_uniform"
	case "he", "kaiming":
		name = "he_normal"
	}
	if hasGain {
		return name + ":" + gain
	}
	return name
}

// withDropout inserts a dropout layer after every activation that is
// followed by another linear layer (the hidden activations), as --dropout
// promises. An existing dropout layer right after an activation is kept
// instead of doubling it. In an image spec only the flat part (after
// flatten) counts: the convolutions' feature maps get none.
func withDropout(s nn.Spec, p float32) nn.Spec {
	if p == 0 {
		return s
	}
	out := nn.Spec{In: s.In, Shape: s.Shape}
	flat := len(s.Shape) == 0
	for i, l := range s.Layers {
		out.Layers = append(out.Layers, l)
		if l.Kind == nn.FlattenLayer {
			flat = true
		}
		if l.Kind != nn.ActivationLayer || !flat {
			continue
		}
		hidden := false
		for _, later := range s.Layers[i+1:] {
			if later.Kind == nn.LinearLayer {
				hidden = true
				break
			}
		}
		if hidden && !(i+1 < len(s.Layers) && s.Layers[i+1].Kind == nn.DropoutLayer) {
			out.Layers = append(out.Layers, nn.LayerSpec{Kind: nn.DropoutLayer, P: p})
		}
	}
	return out
}

// splits are the datasets of one training run.
type splits struct {
	train, val, test *data.Dataset
	stats            *data.Stats
}

// loadSplits reads the data, holds out --val-split and standardises with
// the training part's statistics (--standardize).
func (f *trainFlags) loadSplits() (splits, error) {
	var s splits
	var err error
	if s.train, s.test, err = f.data.load(f.seed); err != nil {
		return s, err
	}
	if f.valSplit > 0 {
		s.train, s.val = data.Split(s.train, f.valSplit, f.seed)
		if s.val.Len() == 0 || s.train.Len() == 0 {
			return s, fmt.Errorf("--val-split %g leaves an empty training or validation set from %d samples", f.valSplit, s.train.Len()+s.val.Len())
		}
	}
	return s, f.standardize(&s)
}

// standardize applies --standardize (fitted on s.train) or keeps the
// dataset's published statistics (--normalize).
func (f *trainFlags) standardize(s *splits) error {
	if f.data.standardize {
		var others []*data.Dataset
		for _, d := range []*data.Dataset{s.test, s.val} {
			if d != nil && d.Len() > 0 {
				others = append(others, d)
			}
		}
		st, err := data.Standardize(s.train, others...)
		if err != nil {
			return fmt.Errorf("--standardize: %w", err)
		}
		s.stats = st
	} else if s.train.Stats != nil {
		s.stats = s.train.Stats // --normalize: the dataset's published statistics
	}
	return nil
}

// runOptions are what differs between `kiln train`, one run of a sweep and
// one fold of cross-validation.
type runOptions struct {
	out, errOut io.Writer
	metrics     io.Writer       // --metrics, or nil
	stop        <-chan struct{} // SIGINT/SIGTERM, or nil
	quiet       bool            // no progress at all (sweep, cv)
}

// fitted is a trained model with what was learnt on the way.
type fitted struct {
	model *nn.Sequential
	spec  nn.Spec
	loss  device.LossKind
	res   train.Result
	meta  map[string]string // the checkpoint metadata (without test figures)
}

// fit builds the model and optimiser the flags ask for and trains it on
// s.train, validating on s.val. The caller frees the model.
func (f *trainFlags) fit(cmd *cobra.Command, dev device.Device, s splits, o runOptions) (*fitted, error) {
	trainSet := s.train
	model, spec, err := f.buildModel(cmd, dev, trainSet)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			model.Free()
		}
	}()
	var loss device.LossKind
	if f.loss != "" {
		loss, _ = parseLoss("loss", f.loss)
	} else {
		loss = defaultLoss(spec, trainSet)
	}
	if err := checkModelFits(spec, trainSet, loss); err != nil {
		return nil, err
	}
	if err := checkLossOutput(spec, loss); err != nil {
		return nil, err
	}
	if loss == device.SoftmaxCrossEntropy && endsWithSoftmax(spec) {
		fmt.Fprintf(o.errOut, "kiln: --model %s ends in softmax, but --loss cross_entropy applies its own softmax to logits; drop the final softmax\n", spec)
	}
	if w := manyClassesWarning(trainSet, f.data.regression); w != "" && !o.quiet {
		fmt.Fprintln(o.errOut, "kiln: "+w)
	}

	opt, err := f.optimizerFor(cmd, model)
	if err != nil {
		return nil, err
	}
	defer opt.Free()

	batch := f.batch
	if batch == 0 || batch > trainSet.Len() {
		batch = trainSet.Len()
	}
	stepsPerEpoch := (trainSet.Len() + batch - 1) / batch
	schedSpec, _ := f.scheduleSpec(cmd)
	sched, err := train.ParseSchedule(schedSpec, float64(opt.LR()), f.epochs, stepsPerEpoch)
	if err != nil {
		return nil, fmt.Errorf("--schedule %s: %w", f.schedule, err)
	}

	bars := !o.quiet && (f.progressMode == "bar" || (f.progressMode == "auto" && isTerminal(o.out)))
	var cb train.Callback
	var prog *progress
	if !o.quiet && (f.progressMode != "none" || o.metrics != nil) {
		progOut := o.out
		if f.progressMode == "none" {
			progOut = io.Discard
		}
		prog = newProgress(progOut, bars, f.epochs, trainSet.Len(), o.metrics)
		cb = prog
	}
	lossEvery := 0
	if bars {
		// Reading the loss waits for the device; a bar needs it only a few
		// dozen times per epoch.
		lossEvery = max(1, stepsPerEpoch/50)
	}
	meta := checkpointMeta(f, trainSet, loss, s.stats)
	cfg := train.Config{
		Epochs:             f.epochs,
		BatchSize:          batch,
		Loss:               loss,
		Seed:               f.seed,
		Shuffle:            f.shuffle,
		Schedule:           sched,
		ClipNorm:           float32(f.clipNorm),
		Patience:           f.patience,
		TargetLoss:         f.targetLoss,
		MaxSteps:           f.steps,
		LossEvery:          lossEvery,
		EvalBatch:          f.evalBatch,
		RestoreBest:        f.patience > 0,
		Callback:           cb,
		Stop:               o.stop,
		CheckpointMetadata: meta,
	}
	if f.out != "" && !o.quiet {
		// --out is a resumable checkpoint: written at the end, on a signal
		// and every --save-every.
		cfg.CheckpointPath = f.out
		cfg.CheckpointEvery, cfg.CheckpointEverySteps, _ = parseSaveEvery(f.saveEvery)
		if cfg.CheckpointEvery == 0 && cfg.CheckpointEverySteps == 0 {
			cfg.CheckpointEvery = f.epochs + 1 // only when training ends
		}
	}
	trainer, err := train.NewTrainer(dev, model, opt, cfg)
	if err != nil {
		return nil, err
	}
	defer trainer.Free()
	if f.resume != "" {
		if err := trainer.LoadCheckpoint(f.resume); err != nil {
			return nil, fmt.Errorf("--resume %s: %w", f.resume, err)
		}
	}

	if !o.quiet {
		src := trainSet.Source
		if src == "" {
			src = trainSet.Name
		}
		// Three short lines rather than one of 150 columns: each fits in 80
		// for a usual model, data path and device.
		fmt.Fprintf(o.out, "training %s (%d parameters) on %s\n", spec, model.NumParams(), dev.Name())
		fmt.Fprintf(o.out, "data: %s from %s: %d train, %d val, %d test samples\n", trainSet.Name, src, trainSet.Len(), lenOf(s.val), lenOf(s.test))
		fmt.Fprintf(o.out, "loss %s, optimizer %s, lr %g, batch %d\n", loss, strings.ToLower(f.optimizer), opt.LR(), batch)
		if f.resume != "" {
			p := trainer.Position()
			fmt.Fprintf(o.out, "resuming %s at epoch %d, step %d\n", f.resume, p.Epoch+1, p.Step)
		}
	}
	res, err := trainer.Fit(trainSet, s.val)
	if err != nil {
		return nil, fmt.Errorf("training: %w", bceHint(err, spec, loss))
	}
	if prog != nil && prog.metricsErr != nil {
		return nil, fmt.Errorf("--metrics: %w", prog.metricsErr)
	}
	ok = true
	meta["kiln.step"] = strconv.Itoa(res.Steps)
	return &fitted{model: model, spec: spec, loss: loss, res: res, meta: meta}, nil
}

// notifyStop returns a channel closed on the first SIGINT or SIGTERM, and
// a function that stops listening. Tests replace it to inject a signal.
var notifyStop = func() (<-chan struct{}, func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			close(stop)
		case <-done:
		}
	}()
	return stop, func() { signal.Stop(sig); close(done) }
}

func runTrain(cmd *cobra.Command, f *trainFlags) error {
	if err := f.validate(cmd); err != nil {
		return err
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()

	// Open the output files first: a bad --out, --metrics or --plot path
	// should fail before minutes of training, not after.
	for _, p := range []struct{ flag, path string }{{"out", f.out}, {"plot", f.plot}} {
		if p.path != "" {
			if err := checkWritable(p.path); err != nil {
				return fmt.Errorf("--%s %s: %w", p.flag, p.path, err)
			}
		}
	}
	o := runOptions{out: out, errOut: errOut}
	if f.metrics != "" {
		mf, err := os.Create(f.metrics)
		if err != nil {
			return fmt.Errorf("--metrics %s: %w", f.metrics, err)
		}
		defer mf.Close()
		o.metrics = mf
	}
	if f.out != "" {
		stop, cancel := notifyStop()
		defer cancel()
		o.stop = stop
	}

	s, err := f.loadSplits()
	if err != nil {
		return err
	}
	dev, err := openDevice(f.device, f.tf32, errOut)
	if err != nil {
		return err
	}
	defer dev.Close()

	ft, err := f.fit(cmd, dev, s, o)
	if err != nil {
		return err
	}
	defer ft.model.Free()
	res := ft.res
	if res.StopReason == train.StopInterrupted {
		return fmt.Errorf("interrupted after %d steps (epoch %d); checkpoint written to %s: continue with the same flags and --resume %s",
			res.Steps, res.Epochs+1, f.out, f.out)
	}
	if res.StopReason != train.StopEpochs {
		fmt.Fprintf(out, "stopped after %d epochs (%d steps): %s\n", res.Epochs, res.Steps, stopText(res))
	}

	var test train.Metrics
	if s.test.Len() > 0 {
		if test, err = train.Evaluate(dev, ft.model, s.test, ft.loss, f.evalBatch); err != nil {
			return fmt.Errorf("testing: %w", err)
		}
		fmt.Fprintf(out, "test loss: %.4f\n", test.Loss)
		if test.Classes > 0 {
			fmt.Fprintf(out, "test accuracy: %.4f\n", test.Accuracy)
		}
	} else {
		fmt.Fprintln(out, "no test set (--test-split 0)")
	}

	if f.plot != "" {
		if err := plotHistory(f.plot, ft.spec.String()+" on "+s.train.Name, res.History); err != nil {
			return fmt.Errorf("--plot %s: %w", f.plot, err)
		}
		fmt.Fprintf(out, "plot: %s\n", f.plot)
	}
	if f.out != "" {
		meta := ft.meta
		if test.Classes > 0 && !math.IsNaN(test.Accuracy) {
			meta[metaTestAcc] = strconv.FormatFloat(test.Accuracy, 'f', 4, 64)
		}
		if err := train.SaveModel(f.out, train.SequentialModel(ft.model), meta); err != nil {
			return fmt.Errorf("--out %s: %w", f.out, err)
		}
		fmt.Fprintf(out, "saved: %s (and %s to resume)\n", f.out, train.StatePath(f.out))
	}
	return nil
}

// checkLossOutput says when a loss cannot read the model's outputs: bce
// takes probabilities, so the model must end in a sigmoid (or a softmax).
func checkLossOutput(spec nn.Spec, loss device.LossKind) error {
	if loss == device.BCE && !endsWith(spec, device.Sigmoid) && !endsWithSoftmax(spec) {
		return fmt.Errorf("--loss bce takes probabilities, but --model %s does not end in sigmoid: end the spec with -sigmoid, or use --loss bce_logits on the raw outputs (the stable form)", spec)
	}
	return nil
}

// bceHint adds to a diverged bce run the likely cause.
func bceHint(err error, spec nn.Spec, loss device.LossKind) error {
	if loss == device.BCE && !endsWith(spec, device.Sigmoid) {
		return fmt.Errorf("%w (--loss bce needs a final sigmoid; --model %s has none)", err, spec)
	}
	return err
}

// manyClassesWarning flags integer labels that look like a numeric target
// read as classes: many classes, few samples each.
func manyClassesWarning(ds *data.Dataset, regression bool) string {
	if regression || ds.Labels == nil || ds.Classes <= 50 || ds.Classes*2 <= ds.Len() {
		return ""
	}
	return fmt.Sprintf("dataset %q has %d classes for %d samples: if the target is a number to predict, add --regression (or give --classes N when the classes are real)",
		ds.Name, ds.Classes, ds.Len())
}

func lenOf(d *data.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

func stopText(res train.Result) string {
	switch res.StopReason {
	case train.StopEarly:
		return fmt.Sprintf("the validation loss stopped improving (best %.4f at epoch %d; those weights are kept)", res.BestValLoss, res.BestEpoch+1)
	case train.StopTargetLoss:
		return fmt.Sprintf("the training loss %.4f reached --target-loss", res.TrainLoss)
	case train.StopMaxSteps:
		return "--steps reached"
	}
	return res.StopReason
}

// buildModel makes the model: from --init's checkpoint (with --model, if
// given, checked against it) or fresh from --model with --init-scheme.
func (f *trainFlags) buildModel(cmd *cobra.Command, dev device.Device, ds *data.Dataset) (*nn.Sequential, nn.Spec, error) {
	from, flag := f.init, "init"
	if f.resume != "" {
		from, flag = f.resume, "resume"
	}
	if from != "" {
		if _, err := os.Stat(from); err != nil {
			return nil, nn.Spec{}, fmt.Errorf("--%s %s: %w", flag, from, err)
		}
		var m *nn.Sequential
		if f.model != "" {
			spec, err := nn.ParseSpec(f.model)
			if err != nil {
				return nil, nn.Spec{}, fmt.Errorf("--model %q: %w", f.model, err)
			}
			sd, err := nn.LoadSafetensors(from)
			if err != nil {
				return nil, nn.Spec{}, fmt.Errorf("--%s %s: %w", flag, from, err)
			}
			if m, err = nn.Build(dev, spec, nn.Init{}, f.seed); err != nil {
				return nil, nn.Spec{}, fmt.Errorf("--model %s: %w", spec, err)
			}
			if err := m.LoadState(sd); err != nil {
				m.Free()
				return nil, nn.Spec{}, fmt.Errorf("--%s %s does not fit --model %s: %w", flag, from, spec, err)
			}
		} else {
			var err error
			if m, _, err = nn.Load(dev, from); err != nil {
				return nil, nn.Spec{}, fmt.Errorf("--%s %s: %w (a checkpoint without kiln.spec metadata, e.g. from PyTorch, needs --model)", flag, from, err)
			}
		}
		if f.freeze != "" {
			var names []string
			for _, n := range strings.Split(f.freeze, ",") {
				if n = strings.TrimSpace(n); n != "" {
					names = append(names, n)
				}
			}
			if err := m.SetFrozen(true, names...); err != nil {
				m.Free()
				return nil, nn.Spec{}, fmt.Errorf("--freeze %s: %w", f.freeze, err)
			}
		}
		return m, m.Spec(), nil
	}
	specText := f.model
	if specText == "" {
		specText = defaultModel(ds)
	}
	spec, err := nn.ParseSpec(specText)
	if err != nil {
		return nil, nn.Spec{}, fmt.Errorf("--model %q: %w", specText, err)
	}
	spec = withDropout(spec, float32(f.dropout))
	init, _ := nn.ParseInit(initAlias(f.initScheme))
	m, err := nn.Build(dev, spec, init, f.seed)
	if err != nil {
		return nil, nn.Spec{}, fmt.Errorf("--model %s: %w", spec, err)
	}
	return m, spec, nil
}

// optimizerFor builds the optimiser the flags ask for, with PyTorch's
// defaults where a flag was not given.
func (f *trainFlags) optimizerFor(cmd *cobra.Command, m *nn.Sequential) (train.Optimizer, error) {
	lr := float32(f.lr)
	switch strings.ToLower(f.optimizer) {
	case "sgd":
		if !cmd.Flags().Changed("lr") {
			lr = 0.01
		}
		o, err := train.NewSGD(m, device.SGDConfig{LR: lr, Momentum: float32(f.momentum), WeightDecay: float32(f.decay), Nesterov: f.nesterov})
		if err != nil {
			return nil, fmt.Errorf("--optimizer sgd: %w", err)
		}
		return o, nil
	default: // adam, adamw: validate has ruled out the rest
		if !cmd.Flags().Changed("lr") {
			lr = 0.001
		}
		decoupled := strings.ToLower(f.optimizer) == "adamw"
		decay := float32(f.decay)
		if decoupled && !cmd.Flags().Changed("weight-decay") {
			decay = 0.01 // torch.optim.AdamW's default
		}
		o, err := train.NewAdam(m, device.AdamConfig{LR: lr, Beta1: float32(f.beta1), Beta2: float32(f.beta2), Eps: float32(f.eps), WeightDecay: decay, Decoupled: decoupled})
		if err != nil {
			return nil, fmt.Errorf("--optimizer %s: %w", f.optimizer, err)
		}
		return o, nil
	}
}

// checkpointMeta is what `kiln eval` and `kiln predict` need to use the
// model without the training flags.
func checkpointMeta(f *trainFlags, ds *data.Dataset, loss device.LossKind, stats *data.Stats) map[string]string {
	meta := map[string]string{
		metaLoss:    loss.String(),
		metaDataset: f.data.name,
		metaClasses: strconv.Itoa(ds.Classes),
		metaVersion: buildInfo().Version,
		metaSeed:    strconv.FormatUint(f.seed, 10),
	}
	if f.data.samples > 0 {
		meta[metaSamples] = strconv.Itoa(f.data.samples)
	}
	if f.data.noise > 0 {
		meta[metaNoise] = strconv.FormatFloat(f.data.noise, 'g', -1, 64)
	}
	if isCSVName(f.data.name) {
		if f.data.testFile != "" {
			meta[metaTestFile] = f.data.testFile
		} else {
			meta[metaTestSplit] = strconv.FormatFloat(f.data.testSplit, 'g', -1, 64)
		}
		if f.data.classes > 0 {
			meta[metaDataClass] = strconv.Itoa(f.data.classes)
		}
	}
	if ds.Labels == nil {
		meta[metaClasses] = "0"
	}
	if f.data.name != "" && !contains(data.Names, strings.ToLower(f.data.name)) {
		meta[metaLabel] = f.data.label
	}
	if len(ds.ClassNames) > 0 {
		b, _ := json.Marshal(ds.ClassNames)
		meta[metaClassNames] = string(b)
	}
	if stats != nil {
		b, _ := json.Marshal(stats)
		meta[metaStats] = string(b)
	}
	return meta
}

// checkWritable tells early whether a file can be created at path, without
// leaving one behind when it did not exist.
func checkWritable(path string) error {
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return errors.New("is a directory; want a file name")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(path)
}
