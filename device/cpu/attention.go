package cpu

// Placeholder for the attention family of primitives: every method reports
// that it is not implemented yet. (Replaced by the real implementation.)

import "github.com/kilnml/kiln/device"

// GemmBatched: not implemented yet.
func (d *Device) GemmBatched(transA, transB bool, m, n, k int, alpha float32, a device.Buffer, strideA int, b device.Buffer, strideB int, beta float32, c device.Buffer, strideC int, batch int) error {
	return device.Errorf("GemmBatched", "", device.ErrUnavailable, "not implemented on the cpu backend yet")
}

// SoftmaxMasked: not implemented yet.
func (d *Device) SoftmaxMasked(x, y device.Buffer, rows, cols int, scale float32, causal bool, qLen int) error {
	return device.Errorf("SoftmaxMasked", "", device.ErrUnavailable, "not implemented on the cpu backend yet")
}

// SoftmaxMaskedGrad: not implemented yet.
func (d *Device) SoftmaxMaskedGrad(y, dy, dx device.Buffer, rows, cols int, scale float32) error {
	return device.Errorf("SoftmaxMaskedGrad", "", device.ErrUnavailable, "not implemented on the cpu backend yet")
}

// Permute4: not implemented yet.
func (d *Device) Permute4(x, y device.Buffer, dims [4]int, perm [4]int) error {
	return device.Errorf("Permute4", "", device.ErrUnavailable, "not implemented on the cpu backend yet")
}
