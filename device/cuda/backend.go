//go:build cuda

package cuda

import (
	"fmt"
	"runtime"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
)

// BackendName is the spec prefix the CUDA backend registers under.
const BackendName = "cuda"

func init() { device.Register(backend{}) }

// backend lists and opens the GPUs the CUDA driver reports.
type backend struct{}

func (backend) Name() string { return BackendName }

// Devices lists every GPU with its name, compute capability, memory, SM
// count and the driver version. Free memory needs a context: the primary
// context is retained for the query and released again.
func (backend) Devices() ([]device.Info, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices (cuDeviceGetCount): %w", err)
	}
	infos := make([]device.Info, 0, n)
	for i := 0; i < n; i++ {
		info, err := describe(i, true)
		if err != nil {
			return infos, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// Open opens GPU number index: it retains the device's primary context
// (the one the CUDA runtime and other libraries share), creates the
// device's stream and loads the kernel modules.
func (backend) Open(index int) (device.Device, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices (cuDeviceGetCount): %w", err)
	}
	if index < 0 || index >= n {
		return nil, fmt.Errorf("cuda:%d: %w: the driver reports %d GPU(s)", index, device.ErrUnknownDevice, n)
	}
	return open(index)
}

// driverVersion renders cuDriverGetVersion's 13000 as "13.0".
func driverVersion() string {
	v := cu.Version()
	if v < 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)
}

// describe gathers the static facts about GPU i; withFree also queries its
// free memory through a temporarily retained primary context.
func describe(i int, withFree bool) (device.Info, error) {
	spec := fmt.Sprintf("%s:%d", BackendName, i)
	dev, err := cu.GetDevice(i)
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: getting device %d (cuDeviceGet): %w", i, err)
	}
	name, err := dev.Name()
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: reading the name of %s (cuDeviceGetName): %w", spec, err)
	}
	major, err := dev.Attribute(cu.ComputeCapabilityMajor)
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: reading the compute capability of %s: %w", spec, err)
	}
	minor, err := dev.Attribute(cu.ComputeCapabilityMinor)
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: reading the compute capability of %s: %w", spec, err)
	}
	sms, err := dev.Attribute(cu.MultiprocessorCount)
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: reading the SM count of %s: %w", spec, err)
	}
	total, err := dev.TotalMem()
	if err != nil {
		return device.Info{}, fmt.Errorf("cuda: reading the memory size of %s (cuDeviceTotalMem): %w", spec, err)
	}
	info := device.Info{
		Spec:              spec,
		Backend:           BackendName,
		Name:              name,
		Memory:            total,
		Cores:             sms,
		ComputeCapability: fmt.Sprintf("%d.%d", major, minor),
		Driver:            driverVersion(),
	}
	if withFree {
		free, err := freeMemory(dev)
		if err != nil {
			return info, fmt.Errorf("cuda: reading the free memory of %s: %w", spec, err)
		}
		info.FreeMemory = free
	}
	return info, nil
}

// freeMemory retains dev's primary context, asks cuMemGetInfo and releases
// the context again, on a locked OS thread.
func freeMemory(dev cu.Device) (int64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return 0, fmt.Errorf("retaining the primary context (cuDevicePrimaryCtxRetain): %w", err)
	}
	defer dev.ReleasePrimaryCtx()
	if err := cu.SetCurrentContext(ctx); err != nil {
		return 0, fmt.Errorf("making the primary context current (cuCtxSetCurrent): %w", err)
	}
	free, _, err := cu.MemInfo()
	if err != nil {
		return 0, fmt.Errorf("cuMemGetInfo: %w", err)
	}
	return free, nil
}
