//go:build cuda

package cuda

// Placeholder for the embedding family of primitives: every method reports
// that it is not implemented yet. (Replaced by the real implementation.)

import "github.com/kilnml/kiln/device"

// Gather: not implemented yet.
func (d *Device) Gather(table, idx, out device.Buffer, rows, cols, n int) error {
	return device.Errorf("Gather", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// ScatterAdd: not implemented yet.
func (d *Device) ScatterAdd(dtable, idx, dout device.Buffer, rows, cols, n int) error {
	return device.Errorf("ScatterAdd", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// CrossEntropy: not implemented yet.
func (d *Device) CrossEntropy(logits, labels device.Buffer, rows, cols int, ignoreIndex int32, loss, grad device.Buffer) error {
	return device.Errorf("CrossEntropy", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}
