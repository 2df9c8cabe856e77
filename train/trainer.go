package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// Config says how the Trainer trains. The zero value of every optional
// field turns its feature off.
type Config struct {
	// Epochs is the number of passes over the training set (≥ 1). A
	// resumed run stops at the same total.
	Epochs int
	// BatchSize is the number of samples per optimiser step; 0 means the
	// whole training set (full-batch gradient descent).
	BatchSize int
	// Loss is the loss function (PyTorch's definitions).
	Loss device.LossKind
	// Seed drives the batch order (data.Permutation(n, Seed, epoch)) and
	// the dropout stream (seed Seed^DropoutSeedSalt of the device
	// generator, so masks do not repeat the draws of weight
	// initialisation with the same seed).
	Seed uint64
	// Shuffle draws a new batch order every epoch; false keeps file order.
	Shuffle bool
	// Schedule sets the learning rate; nil keeps the optimiser's rate.
	Schedule Schedule
	// ClipNorm clips the global gradient norm before every step
	// (torch.nn.utils.clip_grad_norm_); 0 is off.
	ClipNorm float32
	// Patience stops training when the validation loss has not improved
	// for this many epochs in a row (needs a validation set); 0 is off.
	Patience int
	// TargetLoss stops training at the end of the first epoch whose mean
	// training loss is below it; 0 is off.
	TargetLoss float64
	// MaxSteps stops training after this many optimiser steps in all
	// (`--steps N`), mid-epoch if need be; 0 is off.
	MaxSteps int
	// LossEvery reads the batch loss back from the device every LossEvery
	// steps and hands it to OnBatch; 0 reads it only at the end of each
	// epoch (each read waits for the device).
	LossEvery int
	// EvalBatch is the batch size of validation; 0 uses 1024 (or
	// BatchSize when larger).
	EvalBatch int
	// BestPath, when set, is where the model with the lowest validation
	// loss so far is saved (nn.SaveSafetensors) each time it improves.
	BestPath string
	// RestoreBest copies the best weights back into the model when Fit
	// returns (the best are always kept in memory when there is a
	// validation set).
	RestoreBest bool
	// CheckpointPath, when set, is where a resumable checkpoint (see
	// SaveCheckpoint) is written at the end of every epoch (or as
	// CheckpointEvery and CheckpointEverySteps say) and when training
	// stops, for any reason: the last epoch, a stop condition, Stop.
	CheckpointPath string
	// CheckpointEvery writes the checkpoint every this many epochs
	// instead of every epoch (0: every epoch, unless CheckpointEverySteps
	// is set, which then alone decides).
	CheckpointEvery int
	// CheckpointEverySteps writes the checkpoint also every this many
	// optimiser steps, mid-epoch if need be (0: off).
	CheckpointEverySteps int
	// CheckpointMetadata is added to the model file's metadata of every
	// checkpoint (what `kiln eval` needs: loss, dataset, statistics).
	CheckpointMetadata map[string]string
	// Stop, when closed (or sent a value), stops training at the next step
	// boundary: the checkpoint is written (when CheckpointPath is set) and
	// Fit returns with StopReason StopInterrupted. The command line closes
	// it on SIGINT and SIGTERM.
	Stop <-chan struct{}
	// Callback receives progress; nil reports nothing.
	Callback Callback
}

// DropoutSeedSalt is mixed into Config.Seed to seed the dropout stream.
const DropoutSeedSalt = 0x9E3779B97F4A7C15

// Callback receives the trainer's progress, for a progress bar, a log or a
// test recorder. Its methods run on the training goroutine: keep them
// short.
type Callback interface {
	// OnEpochStart is called before the first batch of an epoch (0-based)
	// with the learning rate it starts with.
	OnEpochStart(epoch int, lr float64)
	// OnBatch is called after every optimiser step.
	OnBatch(b BatchInfo)
	// OnEpochEnd is called with the finished epoch's figures.
	OnEpochEnd(m EpochMetrics)
}

// BatchInfo describes one optimiser step.
type BatchInfo struct {
	Epoch   int     // 0-based epoch
	Batch   int     // 0-based batch within the epoch
	Batches int     // batches per epoch
	Step    int     // optimiser steps done in all, this one included
	Rows    int     // samples in this batch
	Samples int64   // samples processed in all, this batch included
	Loss    float64 // this batch's loss when read (Config.LossEvery), else NaN
}

// EpochMetrics is one finished epoch.
type EpochMetrics struct {
	Epoch     int      `json:"epoch"` // 0-based
	Step      int      `json:"step"`  // optimiser steps done in all
	LR        float64  `json:"lr"`    // learning rate at the epoch's start
	TrainLoss float64  `json:"train_loss"`
	Val       *Metrics `json:"val,omitempty"` // nil without a validation set
	Best      bool     `json:"best"`          // the validation loss improved on every earlier epoch
	Seconds   float64  `json:"seconds"`       // wall time of the epoch, validation included
	// SamplesPerSec is training samples per second of the epoch's training
	// part.
	SamplesPerSec float64 `json:"samples_per_sec"`
}

// Why training stopped.
const (
	StopEpochs     = "epochs"         // all epochs done
	StopEarly      = "early_stopping" // validation loss stopped improving
	StopTargetLoss = "target_loss"    // training loss fell below the target
	StopMaxSteps   = "max_steps"      // the step limit was reached
	// StopInterrupted: Config.Stop fired (SIGINT, SIGTERM).
	StopInterrupted = "interrupted"
)

// Result sums up a Fit.
type Result struct {
	Epochs      int            `json:"epochs"` // epochs completed in all (a resumed run counts earlier ones)
	Steps       int            `json:"steps"`  // optimiser steps in all
	Samples     int64          `json:"samples"`
	StopReason  string         `json:"stop_reason"`
	History     []EpochMetrics `json:"history"`         // epochs of this Fit
	BestEpoch   int            `json:"best_epoch"`      // epoch of the lowest validation loss, -1 when none
	BestValLoss float64        `json:"best_val_loss"`   // +Inf when none
	TrainLoss   float64        `json:"train_loss"`      // of the last complete epoch
	Final       *Metrics       `json:"final,omitempty"` // validation figures of the last epoch
}

// Position is where a training run stands: what a checkpoint must hold
// besides the weights and the optimiser for a resumed run to continue
// exactly.
type Position struct {
	Epoch        int       `json:"epoch"`          // epochs completed
	Batch        int       `json:"batch"`          // batches done in the current, unfinished epoch
	Step         int       `json:"step"`           // optimiser steps done
	Samples      int64     `json:"samples"`        // samples processed
	RNGSeed      uint64    `json:"rng_seed"`       // dropout stream seed
	RNGOffset    uint64    `json:"rng_offset"`     // next dropout stream position
	BestValLoss  jsonFloat `json:"best_val_loss"`  // +Inf before any validation
	BestEpoch    int       `json:"best_epoch"`     // -1 before any validation
	BadEpochs    int       `json:"bad_epochs"`     // epochs since the validation loss last improved
	EpochLossSum jsonFloat `json:"epoch_loss_sum"` // Σ rows·loss of the unfinished epoch's batches
	EpochSamples int       `json:"epoch_samples"`  // samples of the unfinished epoch so far
	TrainLoss    jsonFloat `json:"train_loss"`     // mean training loss of the last complete epoch
}

// Model is what the Trainer trains and EvaluateModel evaluates: any module
// tree with its parameter set, and the shapes that connect it to a
// data.Dataset.
type Model struct {
	// Module computes the predictions.
	Module nn.Module
	// Params is the module's parameter set (nn.NewParamSet).
	Params *nn.ParamSet
	// InputShape is the shape of one sample as the module takes it (the
	// batch adds a leading axis): nil means flat [Features], what a Linear
	// first layer takes; a CNN takes the dataset's per-sample shape, e.g.
	// [1, 28, 28]. Its product must equal the dataset's Features.
	InputShape []int
	// Outputs is the width of the module's output (its last axis): the
	// number of classes, or of regression targets.
	Outputs int
	// Spec, when not empty, is stored under nn.SpecKey in the checkpoints
	// the trainer writes, so that nn.Load can rebuild a Sequential.
	Spec string
}

// SequentialModel is the Model of a Sequential built from a spec: flat
// input of the spec's input width, the spec's output width.
func SequentialModel(m *nn.Sequential) Model {
	if m == nil {
		return Model{}
	}
	md := Model{Module: m, Params: m.ParamSet(), Outputs: m.Spec().Out()}
	if m.HasSpec() {
		md.InputShape = []int{m.Spec().In}
		if sh := m.Spec().Shape; len(sh) > 0 {
			md.InputShape = append([]int(nil), sh...)
		}
		md.Spec = m.Spec().String()
	}
	return md
}

// Trainer runs the training loop of one model with one optimiser. It owns
// the step's graph and buffers; Free releases them.
type Trainer struct {
	dev     device.Device
	model   Model
	inShape []int // [rows, InputShape...] of the step's input, reused
	opt     Optimizer
	cfg     Config
	sched   Schedule
	graph   *nn.Graph
	clip    *GradClipper
	acc     device.Buffer // one element: Σ rows·loss of the epoch so far
	pos     Position
	best    []float32 // best weights (flat), nil until a validation improves
	bestBuf []float32 // the buffers (running statistics) with the best weights
	order   []int     // file order when not shuffling

	trainB *batcher
	trainD *data.Dataset
	evals  map[*data.Dataset]*evaluator

	stopped bool // Config.Stop has fired
}

// NewTrainer prepares training of a Sequential model with opt under cfg.
// model's buffers must live on dev. It is NewModelTrainer with
// SequentialModel(model).
func NewTrainer(dev device.Device, model *nn.Sequential, opt Optimizer, cfg Config) (*Trainer, error) {
	if model == nil {
		return nil, fmt.Errorf("train: NewTrainer: model is nil")
	}
	return NewModelTrainer(dev, SequentialModel(model), opt, cfg)
}

// NewModelTrainer prepares training of any module with its parameter set
// (see Model) with opt under cfg. The parameters must live on dev.
func NewModelTrainer(dev device.Device, model Model, opt Optimizer, cfg Config) (*Trainer, error) {
	switch {
	case dev == nil:
		return nil, fmt.Errorf("train: NewTrainer: device is nil")
	case model.Module == nil || model.Params == nil:
		return nil, fmt.Errorf("train: NewTrainer: model is nil or has no parameter set (Model.Module, Model.Params)")
	case model.Outputs < 1:
		return nil, fmt.Errorf("train: NewTrainer: field Model.Outputs is %d, expected the output width ≥ 1", model.Outputs)
	case opt == nil:
		return nil, fmt.Errorf("train: NewTrainer: optimizer is nil")
	case cfg.Epochs < 1:
		return nil, fmt.Errorf("train: config: field Epochs is %d, expected ≥ 1", cfg.Epochs)
	case cfg.BatchSize < 0:
		return nil, fmt.Errorf("train: config: field BatchSize is %d, expected ≥ 1 (or 0 for the whole set)", cfg.BatchSize)
	case cfg.Loss.String() == "LossKind(?)":
		return nil, fmt.Errorf("train: config: field Loss is %d, expected one of mse, half_sse, bce, bce_logits, cross_entropy", cfg.Loss)
	case !(cfg.ClipNorm >= 0) || math.IsInf(float64(cfg.ClipNorm), 0):
		return nil, fmt.Errorf("train: config: field ClipNorm is %g, expected a finite value ≥ 0 (0 is off)", cfg.ClipNorm)
	case cfg.Patience < 0:
		return nil, fmt.Errorf("train: config: field Patience is %d, expected ≥ 0 (0 is off)", cfg.Patience)
	case !(cfg.TargetLoss >= 0):
		return nil, fmt.Errorf("train: config: field TargetLoss is %g, expected ≥ 0 (0 is off)", cfg.TargetLoss)
	case cfg.MaxSteps < 0:
		return nil, fmt.Errorf("train: config: field MaxSteps is %d, expected ≥ 0 (0 is off)", cfg.MaxSteps)
	case cfg.LossEvery < 0:
		return nil, fmt.Errorf("train: config: field LossEvery is %d, expected ≥ 0 (0 is once per epoch)", cfg.LossEvery)
	case cfg.EvalBatch < 0:
		return nil, fmt.Errorf("train: config: field EvalBatch is %d, expected ≥ 0 (0 is the default)", cfg.EvalBatch)
	case cfg.CheckpointEvery < 0 || cfg.CheckpointEverySteps < 0:
		return nil, fmt.Errorf("train: config: fields CheckpointEvery %d and CheckpointEverySteps %d, expected ≥ 0 (0 is off)", cfg.CheckpointEvery, cfg.CheckpointEverySteps)
	}
	if s, ok := cfg.Schedule.(*StepDecay); ok && s.StepSize < 1 {
		return nil, fmt.Errorf("train: config: schedule step: field StepSize is %d, expected ≥ 1", s.StepSize)
	}
	if s, ok := cfg.Schedule.(*Cosine); ok && s.Total <= s.Warmup {
		return nil, fmt.Errorf("train: config: schedule cosine: field Total is %d, expected more than Warmup (%d)", s.Total, s.Warmup)
	}
	values, _ := model.Params.Flat()
	if values == nil || values.Device() != dev {
		return nil, fmt.Errorf("train: NewTrainer: the model's parameters are not on device %s", dev.Name())
	}
	t := &Trainer{dev: dev, model: model, inShape: make([]int, 1+max(len(model.InputShape), 1)), opt: opt, cfg: cfg, sched: cfg.Schedule, graph: nn.NewGraph(dev),
		evals: map[*data.Dataset]*evaluator{}}
	if t.sched == nil {
		t.sched = &Constant{Base: float64(opt.LR())}
	}
	t.pos = Position{RNGSeed: cfg.Seed ^ DropoutSeedSalt, BestValLoss: jsonFloat(math.Inf(1)), BestEpoch: -1,
		TrainLoss: jsonFloat(math.NaN())}
	t.graph.SetRNG(t.pos.RNGSeed, 0)
	var err error
	if cfg.ClipNorm > 0 {
		if t.clip, err = NewGradClipper(model.Params, cfg.ClipNorm); err != nil {
			return nil, err
		}
	}
	if t.acc, err = dev.Alloc(device.Float32, 1); err != nil {
		t.Free()
		return nil, fmt.Errorf("train: NewTrainer: %w", err)
	}
	return t, nil
}

// Position is where the run stands now.
func (t *Trainer) Position() Position {
	p := t.pos
	p.RNGSeed, p.RNGOffset = t.graph.RNG()
	return p
}

// Optimizer is the trainer's optimiser.
func (t *Trainer) Optimizer() Optimizer { return t.opt }

// Schedule is the trainer's learning-rate schedule (a Constant when the
// config gave none).
func (t *Trainer) Schedule() Schedule { return t.sched }

// Best returns a copy of the flat weights with the lowest validation loss
// so far, nil when no validation has run.
func (t *Trainer) Best() []float32 {
	if t.best == nil {
		return nil
	}
	return append([]float32(nil), t.best...)
}

// Free releases the trainer's device buffers (not the model's nor the
// optimiser's).
func (t *Trainer) Free() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	keep(t.graph.Free())
	if t.clip != nil {
		keep(t.clip.Free())
	}
	if t.acc != nil && !t.acc.Freed() {
		keep(t.dev.Free(t.acc))
	}
	if t.trainB != nil {
		keep(t.trainB.free())
		t.trainB, t.trainD = nil, nil
	}
	for ds, e := range t.evals {
		e.free()
		delete(t.evals, ds)
	}
	return first
}

// modelDims is the model's input width (0: unchecked) and output width.
func modelDims(m Model) (in, out int, err error) {
	if m.Outputs < 1 {
		return 0, 0, fmt.Errorf("train: the model's output width is %d, expected ≥ 1", m.Outputs)
	}
	if m.InputShape != nil {
		in = 1
		for _, d := range m.InputShape {
			if d < 1 {
				return 0, 0, fmt.Errorf("train: the model's input shape %v has a dimension < 1", m.InputShape)
			}
			in *= d
		}
	}
	return in, m.Outputs, nil
}

// input wraps a loaded batch of rows samples as the module's input tensor:
// [rows, InputShape...], or [rows, features] when InputShape is nil. shape
// is scratch of length 1+max(len(InputShape), 1), reused every step.
func input(g *nn.Graph, m Model, b *batcher, rows int, shape []int) (*nn.Tensor, error) {
	shape[0] = rows
	if m.InputShape == nil {
		shape[1] = b.features
	} else {
		copy(shape[1:], m.InputShape)
	}
	return g.Input(b.x, shape...)
}

func (t *Trainer) batchSize(n int) int {
	if t.cfg.BatchSize == 0 || t.cfg.BatchSize > n {
		return n
	}
	return t.cfg.BatchSize
}

// prepare makes (once per dataset) the buffers of the training set.
func (t *Trainer) prepare(ds *data.Dataset) error {
	if t.trainD == ds && t.trainB != nil {
		return nil
	}
	if t.trainB != nil {
		_ = t.trainB.free()
		t.trainB = nil
	}
	in, out, err := modelDims(t.model)
	if err != nil {
		return err
	}
	if ds == nil {
		return fmt.Errorf("train: Fit: training set is nil")
	}
	if ds.Len() == 0 {
		return fmt.Errorf("train: Fit: training set %q has no samples", ds.Name)
	}
	b, err := newBatcher(t.dev, ds, t.cfg.Loss, in, out, t.batchSize(ds.Len()))
	if err != nil {
		return err
	}
	t.trainB, t.trainD = b, ds
	t.order = make([]int, ds.Len())
	for i := range t.order {
		t.order[i] = i
	}
	return nil
}

func (t *Trainer) evaluator(ds *data.Dataset) (*evaluator, error) {
	if e, ok := t.evals[ds]; ok {
		return e, nil
	}
	bs := t.cfg.EvalBatch
	if bs == 0 {
		bs = max(1024, t.cfg.BatchSize)
	}
	e, err := newEvaluator(t.dev, t.model, ds, t.cfg.Loss, bs)
	if err != nil {
		return nil, err
	}
	t.evals[ds] = e
	return e, nil
}

// Fit trains on trainSet, validating on valSet (nil for none) after every
// epoch, until Config.Epochs epochs are done in all or a stop condition
// holds. Called again after LoadCheckpoint, it continues from the saved
// position. On error the Result holds the epochs completed so far.
func (t *Trainer) Fit(trainSet, valSet *data.Dataset) (Result, error) {
	res := Result{BestEpoch: t.pos.BestEpoch, BestValLoss: float64(t.pos.BestValLoss), TrainLoss: float64(t.pos.TrainLoss)}
	fill := func() {
		res.Epochs, res.Steps, res.Samples = t.pos.Epoch, t.pos.Step, t.pos.Samples
		res.BestEpoch, res.BestValLoss = t.pos.BestEpoch, float64(t.pos.BestValLoss)
	}
	if t.cfg.Patience > 0 && valSet == nil {
		return res, fmt.Errorf("train: config: field Patience is %d, which needs a validation set; none was given", t.cfg.Patience)
	}
	if err := t.prepare(trainSet); err != nil {
		return res, err
	}
	var val *evaluator
	if valSet != nil {
		var err error
		if val, err = t.evaluator(valSet); err != nil {
			return res, fmt.Errorf("train: validation set: %w", err)
		}
	}
	b := t.trainB
	n := trainSet.Len()
	bs := b.cap
	batches := (n + bs - 1) / bs
	if t.pos.Batch > batches {
		return res, fmt.Errorf("train: resumed position: batch %d of an epoch of %d batches: the checkpoint was taken with another batch size or training set", t.pos.Batch, batches)
	}
	cb := t.cfg.Callback
	res.StopReason = StopEpochs

	for t.pos.Epoch < t.cfg.Epochs {
		if t.cfg.MaxSteps > 0 && t.pos.Step >= t.cfg.MaxSteps {
			res.StopReason = StopMaxSteps
			break
		}
		epoch := t.pos.Epoch
		if !t.sched.PerStep() {
			t.opt.SetLR(float32(t.sched.LR()))
		}
		startLR := float64(t.opt.LR())
		if t.sched.PerStep() {
			startLR = t.sched.LR()
		}
		if cb != nil {
			cb.OnEpochStart(epoch, startLR)
		}
		began := time.Now()
		nn.SetTraining(t.model.Module, true)
		order := t.order
		if t.cfg.Shuffle {
			order = data.Permutation(n, t.cfg.Seed, epoch)
		}
		if err := t.dev.Fill(t.acc, 1, float32(t.pos.EpochLossSum)); err != nil {
			fill()
			return res, fmt.Errorf("train: epoch %d: %w", epoch, err)
		}
		stopped := false
		for bi := t.pos.Batch; bi < batches; bi++ {
			if t.cfg.MaxSteps > 0 && t.pos.Step >= t.cfg.MaxSteps {
				stopped = true
				break
			}
			if t.stopRequested() {
				stopped, res.StopReason = true, StopInterrupted
				break
			}
			idx := order[bi*bs : min((bi+1)*bs, n)]
			loss, err := t.step(idx)
			if err != nil {
				fill()
				return res, fmt.Errorf("train: epoch %d, batch %d (step %d): %w", epoch, bi, t.pos.Step+1, err)
			}
			t.pos.Step++
			t.pos.Batch = bi + 1
			t.pos.Samples += int64(len(idx))
			t.pos.EpochSamples += len(idx)
			if cb != nil {
				cb.OnBatch(BatchInfo{Epoch: epoch, Batch: bi, Batches: batches, Step: t.pos.Step, Rows: len(idx),
					Samples: t.pos.Samples, Loss: loss})
			}
			if n := t.cfg.CheckpointEverySteps; n > 0 && t.pos.Step%n == 0 && bi+1 < batches {
				if err := t.saveAcc(); err != nil {
					fill()
					return res, err
				}
				if err := t.autosave(); err != nil {
					fill()
					return res, err
				}
			}
		}
		sum, err := t.readAcc()
		if err != nil {
			fill()
			return res, fmt.Errorf("train: epoch %d: %w", epoch, err)
		}
		t.pos.EpochLossSum = jsonFloat(sum)
		trainSecs := time.Since(began).Seconds()
		if stopped {
			if res.StopReason != StopInterrupted {
				res.StopReason = StopMaxSteps
			}
			if err := t.autosave(); err != nil {
				fill()
				return res, err
			}
			break
		}
		trainLoss := sum / float64(t.pos.EpochSamples)
		if math.IsNaN(trainLoss) || math.IsInf(trainLoss, 0) {
			fill()
			return res, fmt.Errorf("train: epoch %d: the training loss is %g: training diverged; lower the learning rate or clip gradients (ClipNorm)", epoch, trainLoss)
		}
		em := EpochMetrics{Epoch: epoch, Step: t.pos.Step, LR: startLR, TrainLoss: trainLoss}
		if trainSecs > 0 {
			em.SamplesPerSec = float64(t.pos.EpochSamples) / trainSecs
		}
		metric := trainLoss
		if val != nil {
			vm, err := val.run()
			if err != nil {
				fill()
				return res, fmt.Errorf("train: epoch %d: validation: %w", epoch, err)
			}
			em.Val = &vm
			metric = vm.Loss
			if vm.Loss < float64(t.pos.BestValLoss) {
				t.pos.BestValLoss, t.pos.BestEpoch, t.pos.BadEpochs = jsonFloat(vm.Loss), epoch, 0
				em.Best = true
				if err := t.keepBest(); err != nil {
					fill()
					return res, err
				}
			} else {
				t.pos.BadEpochs++
			}
			res.Final = &vm
		}
		if !t.sched.PerStep() {
			t.sched.Step(metric)
		}
		t.pos.Epoch++
		t.pos.Batch, t.pos.EpochSamples, t.pos.EpochLossSum = 0, 0, 0
		t.pos.TrainLoss = jsonFloat(trainLoss)
		res.TrainLoss = trainLoss
		em.Seconds = time.Since(began).Seconds()
		res.History = append(res.History, em)
		if cb != nil {
			cb.OnEpochEnd(em)
		}
		last := t.pos.Epoch >= t.cfg.Epochs
		switch {
		case t.cfg.TargetLoss > 0 && trainLoss < t.cfg.TargetLoss:
			res.StopReason, last = StopTargetLoss, true
		case t.cfg.Patience > 0 && t.pos.BadEpochs >= t.cfg.Patience:
			res.StopReason, last = StopEarly, true
		case t.cfg.MaxSteps > 0 && t.pos.Step >= t.cfg.MaxSteps:
			res.StopReason, last = StopMaxSteps, true
		case t.stopRequested():
			res.StopReason, last = StopInterrupted, true
		}
		if last || t.epochCheckpoint() {
			if err := t.autosave(); err != nil {
				fill()
				return res, err
			}
		}
		if last {
			break
		}
	}
	fill()
	if t.cfg.RestoreBest && t.best != nil {
		values, _ := t.model.Params.Flat()
		if err := t.dev.WriteF32(values, 0, t.best); err != nil {
			return res, fmt.Errorf("train: restoring the best weights: %w", err)
		}
		if bufs := t.model.Params.BufferFlat(); bufs != nil && t.bestBuf != nil {
			if err := t.dev.WriteF32(bufs, 0, t.bestBuf); err != nil {
				return res, fmt.Errorf("train: restoring the best buffers: %w", err)
			}
		}
	}
	return res, nil
}

// step runs one optimiser step on the samples idx and returns the batch
// loss when Config.LossEvery asks for it this step, else NaN.
func (t *Trainer) step(idx []int) (float64, error) {
	rows := len(idx)
	b := t.trainB
	if err := b.load(idx); err != nil {
		return 0, err
	}
	if t.sched.PerStep() {
		t.opt.SetLR(float32(t.sched.LR()))
	}
	defer t.graph.Reset()
	if err := t.model.Params.ZeroGrad(); err != nil {
		return 0, err
	}
	x, err := input(t.graph, t.model, b, rows, t.inShape)
	if err != nil {
		return 0, err
	}
	pred, err := t.model.Module.Forward(t.graph, x)
	if err != nil {
		return 0, fmt.Errorf("forward: %w", err)
	}
	loss, err := t.graph.Loss(t.cfg.Loss, pred, b.y)
	if err != nil {
		return 0, fmt.Errorf("loss: %w", err)
	}
	if err := t.graph.Backward(loss); err != nil {
		return 0, fmt.Errorf("backward: %w", err)
	}
	if err := t.dev.Axpy(float32(rows), loss.Value(), t.acc, 1); err != nil {
		return 0, err
	}
	if t.clip != nil {
		if err := t.clip.Clip(); err != nil {
			return 0, err
		}
	}
	if err := t.opt.Step(); err != nil {
		return 0, err
	}
	if t.sched.PerStep() {
		t.sched.Step(math.NaN())
	}
	v := math.NaN()
	if t.cfg.LossEvery > 0 && (t.pos.Step+1)%t.cfg.LossEvery == 0 {
		var l [1]float32
		if err := t.dev.ReadF32(l[:], loss.Value(), 0); err != nil {
			return 0, err
		}
		v = float64(l[0])
	}
	return v, nil
}

func (t *Trainer) readAcc() (float64, error) {
	var s [1]float32
	if err := t.dev.ReadF32(s[:], t.acc, 0); err != nil {
		return 0, fmt.Errorf("reading the epoch loss: %w", err)
	}
	return float64(s[0]), nil
}

// keepBest copies the current weights to the host as the best so far and
// saves them to Config.BestPath when set.
func (t *Trainer) keepBest() error {
	values, _ := t.model.Params.Flat()
	if t.best == nil {
		t.best = make([]float32, values.Len())
	}
	if err := t.dev.ReadF32(t.best, values, 0); err != nil {
		return fmt.Errorf("train: keeping the best weights: %w", err)
	}
	if bufs := t.model.Params.BufferFlat(); bufs != nil {
		if t.bestBuf == nil {
			t.bestBuf = make([]float32, bufs.Len())
		}
		if err := t.dev.ReadF32(t.bestBuf, bufs, 0); err != nil {
			return fmt.Errorf("train: keeping the best buffers: %w", err)
		}
	}
	if t.cfg.BestPath != "" {
		meta := map[string]string{"kiln.epoch": fmt.Sprint(t.pos.BestEpoch), "kiln.val_loss": fmt.Sprint(float64(t.pos.BestValLoss))}
		if err := SaveModel(t.cfg.BestPath, t.model, meta); err != nil {
			return fmt.Errorf("train: saving the best model to %s: %w", t.cfg.BestPath, err)
		}
	}
	return nil
}

// SaveModel writes the model's state_dict (parameters, buffers, extra
// state; PyTorch names) to path as safetensors, atomically, with the
// model's spec under nn.SpecKey when it has one, beside metadata.
func SaveModel(path string, m Model, metadata map[string]string) error {
	if m.Params == nil {
		return fmt.Errorf("train: saving %s: the model has no parameter set", path)
	}
	sd, err := m.Params.StateDict()
	if err != nil {
		return err
	}
	for k, v := range metadata {
		sd.Metadata[k] = v
	}
	if m.Spec != "" {
		sd.Metadata[nn.SpecKey] = m.Spec
	}
	if err := nn.WriteSafetensors(path, sd); err != nil {
		return err
	}
	return publicMode(path)
}

// publicMode gives a written file the mode of any other output (0644):
// the atomic writer's temporary file is created private (0600).
func publicMode(path string) error {
	if err := os.Chmod(path, 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func (t *Trainer) autosave() error {
	if t.cfg.CheckpointPath == "" {
		return nil
	}
	return t.SaveCheckpoint(t.cfg.CheckpointPath)
}

// epochCheckpoint says whether the epoch just finished gets a checkpoint.
func (t *Trainer) epochCheckpoint() bool {
	switch {
	case t.cfg.CheckpointEvery > 0:
		return t.pos.Epoch%t.cfg.CheckpointEvery == 0
	case t.cfg.CheckpointEverySteps > 0:
		return false
	}
	return true
}

// stopRequested reports whether Config.Stop has fired.
func (t *Trainer) stopRequested() bool {
	if t.cfg.Stop == nil {
		return false
	}
	select {
	case <-t.cfg.Stop:
		t.stopped = true
	default:
	}
	return t.stopped
}

// saveAcc copies the device's running epoch loss into the position, so
// that a mid-epoch checkpoint holds it.
func (t *Trainer) saveAcc() error {
	sum, err := t.readAcc()
	if err != nil {
		return err
	}
	t.pos.EpochLossSum = jsonFloat(sum)
	return nil
}

// MarshalJSON writes the result with non-finite losses (no validation
// set, no complete epoch) as null, which JSON can carry.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	type out struct {
		plain
		BestValLoss *float64 `json:"best_val_loss"`
		TrainLoss   *float64 `json:"train_loss"`
	}
	finite := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(out{plain: plain(r), BestValLoss: finite(r.BestValLoss), TrainLoss: finite(r.TrainLoss)})
}
