// Package nn is tensors on a device.Device with reverse-mode autodiff, and
// the layers, activations, losses, initialisers and model spec built on
// them.
package nn
