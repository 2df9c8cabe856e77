// Package train runs training: optimisers, learning-rate schedules, the
// training loop with early stopping, metrics and checkpoints.
package train
