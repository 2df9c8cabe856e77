//go:build cuda

package cuda

// Placeholder for the conv family of primitives: every method reports
// that it is not implemented yet. (Replaced by the real implementation.)

import "github.com/kilnml/kiln/device"

// Im2Col: not implemented yet.
func (d *Device) Im2Col(x, cols device.Buffer, g device.Window2D) error {
	return device.Errorf("Im2Col", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// Col2Im: not implemented yet.
func (d *Device) Col2Im(cols, dx device.Buffer, g device.Window2D, beta float32) error {
	return device.Errorf("Col2Im", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// AddChannelBias: not implemented yet.
func (d *Device) AddChannelBias(x, bias device.Buffer, outer, channels, inner int) error {
	return device.Errorf("AddChannelBias", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// ChannelBiasGrad: not implemented yet.
func (d *Device) ChannelBiasGrad(db, dy device.Buffer, outer, channels, inner int, beta float32) error {
	return device.Errorf("ChannelBiasGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// MaxPool2D: not implemented yet.
func (d *Device) MaxPool2D(x, y, idx device.Buffer, g device.Window2D) error {
	return device.Errorf("MaxPool2D", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// MaxPool2DGrad: not implemented yet.
func (d *Device) MaxPool2DGrad(dy, idx, dx device.Buffer, g device.Window2D) error {
	return device.Errorf("MaxPool2DGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// AvgPool2D: not implemented yet.
func (d *Device) AvgPool2D(x, y device.Buffer, g device.Window2D) error {
	return device.Errorf("AvgPool2D", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// AvgPool2DGrad: not implemented yet.
func (d *Device) AvgPool2DGrad(dy, dx device.Buffer, g device.Window2D) error {
	return device.Errorf("AvgPool2DGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// AdaptiveAvgPool2D: not implemented yet.
func (d *Device) AdaptiveAvgPool2D(x, y device.Buffer, n, c, h, w, outH, outW int) error {
	return device.Errorf("AdaptiveAvgPool2D", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}

// AdaptiveAvgPool2DGrad: not implemented yet.
func (d *Device) AdaptiveAvgPool2DGrad(dy, dx device.Buffer, n, c, h, w, outH, outW int) error {
	return device.Errorf("AdaptiveAvgPool2DGrad", "", device.ErrUnavailable, "not implemented on the cuda backend yet")
}
