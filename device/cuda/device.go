//go:build cuda

package cuda

/*
#include <cuda.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/kernels"
)

// Device is one GPU opened through the CUDA driver API.
//
// Threading. A CUDA context is current per OS thread. This backend makes the
// device's (primary) context current at the start of every public method
// that talks to the driver, with the goroutine locked to its OS thread for
// the method's duration (enter/leave), rather than owning the context with
// one dedicated, locked goroutine that every call is sent to. Reasons: a
// Device is not safe for concurrent use anyway (device.Device's contract), so
// a worker goroutine would serialise nothing that is not already serial,
// yet every launch would pay two channel hand-offs between OS threads
// (wake-ups of several microseconds, comparable to the launch itself),
// while cuCtxSetCurrent is a thread-local store of a few tens of
// nanoseconds; and the calling goroutine may move between threads or be a
// different goroutine from call to call without anything to set up.
// BenchmarkLaunchOverhead measures the resulting cost per primitive.
//
// Stream. All work goes, asynchronously, to one non-blocking stream per
// Device: kernels, memsets, device copies and host copies. The host waits
// only in ReadF32/ReadI32 (for the data), Sync, Close, in Loss when int32
// labels must be checked on the host (see labels.go), and when the pinned
// staging buffer of a write is still in use by the previous write.
//
// Host writes. WriteF32/WriteI32 copy the Go slice into a pinned staging
// buffer (cuMemAllocHost, reused, grown as needed up to stagingMax and
// chunked beyond) and queue an asynchronous host-to-device copy from it;
// they return as soon as the data is captured in the staging buffer, so
// the caller may reuse its slice at once, and the copy overlaps with the
// host's next work (the data loader's next batch). A write first waits for
// the previous copy out of the staging buffer (an event) before
// overwriting it. A plain synchronous cuMemcpyHtoD from Go memory was not
// used: it runs on the legacy default stream, which does not order with a
// non-blocking stream.
type Device struct {
	index    int
	spec     string
	info     device.Info // static facts; FreeMemory is refreshed by Info
	cc       int         // compute capability ×10
	sms      int
	closed   bool
	tf32     bool
	syncEach bool // KILN_CUDA_SYNC=1: wait after every kernel (debugging)

	cudev   cu.Device
	ctx     cu.CUContext
	stream  cu.Stream
	cstream C.CUstream

	mods []module
	fns  [numKernels]C.CUfunction
	gemm map[string]C.CUfunction
	args argBlock

	pool pool
	ws   wsBlock // scratch for reductions, losses and split-K GEMM

	pin      unsafe.Pointer // pinned staging buffer
	pinSize  int
	pinEvent cu.Event
	pinBusy  bool // a copy out of (or into) pin may still be running
}

var (
	_ device.Device     = (*Device)(nil)
	_ device.TF32Setter = (*Device)(nil)
)

// open opens GPU index; on any failure it undoes what it did.
func open(index int) (_ *Device, err error) {
	if !streamLayoutOK() {
		return nil, fmt.Errorf("cuda: gorgonia.org/cu's Stream is not a bare CUstream; this build of kiln cannot launch kernels")
	}
	info, err := describe(index, false)
	if err != nil {
		return nil, err
	}
	var major, minor int
	if _, err := fmt.Sscanf(info.ComputeCapability, "%d.%d", &major, &minor); err != nil {
		return nil, fmt.Errorf("cuda: parsing compute capability %q of %s: %w", info.ComputeCapability, info.Spec, err)
	}
	d := &Device{index: index, spec: info.Spec, info: info, cc: major*10 + minor, sms: info.Cores,
		gemm: map[string]C.CUfunction{}, syncEach: os.Getenv("KILN_CUDA_SYNC") == "1"}
	if d.sms < 1 {
		d.sms = 1
	}
	d.pool.init()
	if d.cc < 70 {
		return nil, fmt.Errorf("cuda: %s (%s) has compute capability %s; kiln's kernels need 7.0 or newer: %w",
			d.spec, info.Name, info.ComputeCapability, device.ErrUnavailable)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if d.cudev, err = cu.GetDevice(index); err != nil {
		return nil, fmt.Errorf("cuda: getting device %d (cuDeviceGet): %w", index, err)
	}
	if d.ctx, err = d.cudev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: retaining the primary context of %s (cuDevicePrimaryCtxRetain): %w", d.spec, err)
	}
	defer func() {
		if err != nil {
			d.teardown()
		}
	}()
	if err = cu.SetCurrentContext(d.ctx); err != nil {
		return nil, fmt.Errorf("cuda: making the context of %s current (cuCtxSetCurrent): %w", d.spec, err)
	}
	if d.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		d.stream = cu.Stream{}
		return nil, fmt.Errorf("cuda: creating the stream of %s (cuStreamCreate): %w", d.spec, err)
	}
	d.cstream = cStream(&d.stream)
	d.pool.sync = func() error { return d.sync("Alloc") }
	if d.pinEvent, err = cu.MakeEvent(cu.DisableTiming); err != nil {
		d.pinEvent = cu.Event{}
		return nil, fmt.Errorf("cuda: creating the staging event of %s (cuEventCreate): %w", d.spec, err)
	}
	d.args = newArgBlock()
	if err = d.loadKernels(); err != nil {
		return nil, err
	}
	return d, nil
}

// loadKernels JIT-loads every kernel family and looks up its functions.
func (d *Device) loadKernels() error {
	byFamily := map[string]module{}
	load := func(family string) (module, error) {
		if m, ok := byFamily[family]; ok {
			return m, nil
		}
		ptx, err := kernels.PTX(family, d.cc)
		if err != nil {
			return module{}, fmt.Errorf("cuda: %w", err)
		}
		m, err := loadModule(family, ptx, d.cc)
		if err != nil {
			return module{}, err
		}
		d.mods = append(d.mods, m)
		byFamily[family] = m
		return m, nil
	}
	for k := kernelID(0); k < numKernels; k++ {
		def := kernelDefs[k]
		m, err := load(def.family)
		if err != nil {
			return err
		}
		if d.fns[k], err = m.function(def.name); err != nil {
			return err
		}
	}
	gm, err := load("gemm")
	if err != nil {
		return err
	}
	for _, name := range kernels.GemmKernelNames(d.cc) {
		f, err := gm.function(name)
		if err != nil {
			return err
		}
		d.gemm[name] = f
	}
	return nil
}

// teardown releases everything open created, ignoring nothing silently:
// it returns the first error.
func (d *Device) teardown() error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if d.cstream != nil {
		if err := d.stream.Synchronize(); err != nil {
			note(fmt.Errorf("cuda: synchronising %s before closing it: %w", d.spec, err))
		}
	}
	note(d.pool.releaseAll())
	d.ws = wsBlock{}
	if d.pin != nil {
		note(freePinned(d.pin))
		d.pin, d.pinSize, d.pinBusy = nil, 0, false
	}
	if d.pinEvent != (cu.Event{}) {
		if err := cu.DestroyEvent(&d.pinEvent); err != nil {
			note(fmt.Errorf("cuda: destroying the staging event of %s: %w", d.spec, err))
		}
		d.pinEvent = cu.Event{}
	}
	for _, m := range d.mods {
		note(m.unload())
	}
	d.mods = nil
	d.fns = [numKernels]C.CUfunction{}
	d.gemm = map[string]C.CUfunction{}
	if d.cstream != nil {
		if err := d.stream.Destroy(); err != nil {
			note(fmt.Errorf("cuda: destroying the stream of %s: %w", d.spec, err))
		}
		d.cstream = nil
	}
	d.args.free()
	if err := d.cudev.ReleasePrimaryCtx(); err != nil {
		note(fmt.Errorf("cuda: releasing the primary context of %s: %w", d.spec, err))
	}
	return errors.Join(errs...)
}

// enter locks the goroutine to its OS thread and makes the device's
// context current on it; every driver-facing method calls it and defers
// leave.
func (d *Device) enter() error {
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("cuda: making the context of %s current (cuCtxSetCurrent): %w", d.spec, err)
	}
	return nil
}

func (d *Device) leave() { runtime.UnlockOSThread() }

func (d *Device) errClosed(op string) error {
	return device.Errorf(op, "", device.ErrClosed, "the %s device was closed before this call", d.spec)
}

// Name returns the spec the device was opened with, "cuda:N".
func (d *Device) Name() string { return d.spec }

// Info describes the GPU; FreeMemory is read from the driver now.
func (d *Device) Info() device.Info {
	info := d.info
	if d.closed {
		return info
	}
	if d.enter() == nil {
		if free, _, err := cu.MemInfo(); err == nil {
			info.FreeMemory = free
		}
		d.leave()
	}
	return info
}

// Stats reports the caching allocator's counters.
func (d *Device) Stats() device.MemStats { return d.pool.stats }

// SetAllowTF32 lets Gemm use TensorFloat-32 tensor cores (compute
// capability 8.0 and newer) for large products. Off by default, as
// torch.backends.cuda.matmul.allow_tf32.
func (d *Device) SetAllowTF32(allow bool) { d.tf32 = allow }

// Sync waits until everything queued on the device's stream has finished,
// and reports an asynchronous kernel fault if one happened.
func (d *Device) Sync() error {
	if d.closed {
		return d.errClosed("Sync")
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.sync("Sync")
}

func (d *Device) sync(op string) error {
	if err := d.stream.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: waiting for the stream of %s (cuStreamSynchronize; a kernel launched earlier may have failed): %w",
			op, d.spec, err)
	}
	d.pinBusy = false
	return nil
}

// Close waits for the stream, frees all device memory (buffers in use and
// the cache), the staging buffer, modules and stream, and releases the
// primary context. Buffers of a closed device report Freed; every call
// returns ErrClosed.
func (d *Device) Close() error {
	if d.closed {
		return d.errClosed("Close")
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	d.closed = true
	err := d.teardown()
	d.pool.stats.InUse = 0
	d.pool.stats.Cached = 0
	return err
}
