package cpu

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
)

// BackendName is the spec prefix the CPU backend registers under.
const BackendName = "cpu"

func init() { device.Register(backend{}) }

// backend lists and opens the single CPU device.
type backend struct{}

func (backend) Name() string { return BackendName }

func (backend) Devices() ([]device.Info, error) { return []device.Info{hostInfo()}, nil }

func (backend) Open(index int) (device.Device, error) {
	if index != 0 {
		return nil, fmt.Errorf("cpu:%d: %w: the CPU backend has one device, index 0 (spec \"cpu\")", index, device.ErrUnknownDevice)
	}
	return New(), nil
}

// Device is the CPU implementation of device.Device. Memory is Go memory
// recycled through a size-class pool, GEMM goes through kiln's own SGEMM
// (internal/gemm; OpenBLAS under the openblas build tag), and elementwise kernels are
// split across a fixed set of worker goroutines when they are large enough
// to pay for it. Like every Device it is not safe for concurrent use.
type Device struct {
	closed bool
	pool   pool
	w      *workers
	k      kern               // argument block of the kernel being run (reused: no allocation per call)
	colAcc []float64          // scratch for BiasGrad column sums, grown on demand
	part   [maxChunks]float64 // per-chunk partial sums of reductions
}

// New opens a fresh CPU device with its own memory pool; its kernels run
// on the process's worker goroutines, which the GEMM shares
// (sharedWorkers). Programs normally call device.Open("cpu") instead; New
// is for this package's tests and benchmarks.
func New() *Device {
	d := &Device{w: sharedWorkers()}
	d.pool.init()
	return d
}

// Name returns "cpu", the spec the device is opened with.
func (d *Device) Name() string { return BackendName }

// Info describes the host processor and its memory.
func (d *Device) Info() device.Info { return hostInfo() }

// CacheBlockBytes is 2 MiB, the L2 cache of one core of the machines the
// backend was tuned on (device.CacheHinter): the CNN's second convolution
// ran 1.7–2.5× faster unfolded two images (1.8 MB of columns) at a time
// than as a whole batch of 64.
func (d *Device) CacheBlockBytes() int { return 2 << 20 }

// Stats reports the pool's counters.
func (d *Device) Stats() device.MemStats { return d.pool.stats }

// Sync returns at once: every CPU primitive has finished when it returns.
func (d *Device) Sync() error {
	if d.closed {
		return errClosed("Sync")
	}
	return nil
}

// Close drops the pool's memory and stops the device's workers unless
// they are the process's shared ones. Buffers of a closed
// device report Freed and every call returns ErrClosed.
func (d *Device) Close() error {
	if d.closed {
		return errClosed("Close")
	}
	d.closed = true
	d.pool.drop()
	d.pool.stats.InUse = 0
	d.w.stop()
	return nil
}

func errClosed(op string) error {
	return device.Errorf(op, "", device.ErrClosed, "the cpu device was closed before this call")
}

func hostInfo() device.Info {
	total, avail := memInfo()
	return device.Info{
		Spec:       BackendName,
		Backend:    BackendName,
		Name:       cpuModel(),
		Memory:     total,
		FreeMemory: avail,
		Cores:      runtime.NumCPU(),
	}
}

// cpuModel reads the processor model from /proc/cpuinfo; on systems
// without it, it falls back to GOARCH.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := sc.Text()
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				if v = strings.TrimSpace(v); v != "" {
					return v
				}
			}
		}
	}
	return runtime.GOARCH + " processor"
}

// memInfo returns MemTotal and MemAvailable from /proc/meminfo in bytes,
// or zeros when it cannot be read.
func memInfo() (total, avail int64) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		switch k {
		case "MemTotal":
			total = n
		case "MemAvailable":
			avail = n
		}
	}
	return total, avail
}
