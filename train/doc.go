// Package train runs training: optimisers, learning-rate schedules, the
// training loop with early stopping, metrics and checkpoints. It talks to
// the hardware only through device.Device (never a backend package), so
// the same loop runs on the CPU and on a GPU.
//
// Everything follows PyTorch's definitions so that figures compare number
// for number: SGD (weight decay, momentum with v = g on the first step,
// dampening, Nesterov), Adam and AdamW (bias correction, decoupled decay),
// torch.nn.utils.clip_grad_norm_, StepLR, LinearLR warm-up followed by
// CosineAnnealingLR, and ReduceLROnPlateau.
//
// Optimisers, clipping and the trainer take parameters (an nn.ParamSet,
// or a model owning one), never a concrete model type: NewAdam(ps, cfg,
// DecayGroups(ps, 0.1)...) is nanoGPT's AdamW with PyTorch param_groups,
// and NewModelTrainer trains any nn.Module with its ParamSet (Model).
//
// A training step copies the batch into buffers made once, runs forward,
// loss, backward, clipping and one fused optimiser launch per contiguous
// run of trainable parameters, and recycles the step's graph: in steady
// state it allocates no device memory. Batch losses are summed on the
// device and read once per epoch (Config.LossEvery reads more often).
//
// Checkpoints are a pair of safetensors files (see SaveCheckpoint): the
// model in PyTorch's state_dict layout, and a companion
// "<name>.state.safetensors" with the optimiser's moment buffers, one
// tensor per parameter named "optimizer.<parameter>.<moment>", and, as
// JSON in its metadata, the optimiser step, the trainer's Position
// (epoch, batch, step, dropout RNG seed and offset, best validation loss)
// and the schedule's state; a run resumed from it continues bit for bit.
package train
