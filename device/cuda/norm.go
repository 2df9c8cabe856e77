//go:build cuda

package cuda

// Placeholder for the norm family of primitives: every method reports
// that it is not implemented yet. (Replaced by the real implementation.)

import "github.com/kilnml/kiln/device"

// BatchNorm: not implemented yet.
func (d *Device) BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar device.Buffer, outer, channels, inner int, training bool, cfg device.NormConfig) error {
	return device.Errorf("BatchNorm", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// BatchNormGrad: not implemented yet.
func (d *Device) BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta device.Buffer, outer, channels, inner int, accum float32) error {
	return device.Errorf("BatchNormGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// LayerNorm: not implemented yet.
func (d *Device) LayerNorm(x, y, gamma, beta, mean, rstd device.Buffer, rows, cols int, eps float32) error {
	return device.Errorf("LayerNorm", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// LayerNormGrad: not implemented yet.
func (d *Device) LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta device.Buffer, rows, cols int, accum float32) error {
	return device.Errorf("LayerNormGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}
