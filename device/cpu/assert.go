package cpu

import "github.com/kilnml/kiln/device"

var _ device.Device = (*Device)(nil)
