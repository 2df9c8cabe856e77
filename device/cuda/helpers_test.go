//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	_ "github.com/kilnml/kiln/device/cuda"
)

// This test binary only runs where a GPU answers: gorgonia.org/cu calls
// cuInit when the program starts and exits when it fails. When the driver
// loads but lists no GPU, every test fails with a clear message instead of
// skipping.

func TestMain(m *testing.M) {
	infos, err := device.List()
	for _, in := range infos {
		if in.Backend == "cuda" {
			fmt.Printf("kiln cuda tests on %s: %s, compute capability %s, %d SMs, %.1f GiB (%.1f GiB free), driver %s\n",
				in.Spec, in.Name, in.ComputeCapability, in.Cores, float64(in.Memory)/(1<<30), float64(in.FreeMemory)/(1<<30), in.Driver)
		}
	}
	if err != nil {
		fmt.Println("kiln cuda tests: listing devices:", err)
	}
	code := m.Run()
	if sharedDev != nil {
		if err := sharedDev.Close(); err != nil {
			fmt.Println("kiln cuda tests: closing the shared device:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	sharedOnce sync.Once
	sharedDev  device.Device
	sharedErr  error
)

// openCUDA returns cuda:0, opened once for the whole test binary (opening
// JIT-compiles the kernel modules), or fails the test; it never skips.
// Tests leave the device as they found it (TF32 off).
func openCUDA(tb testing.TB) device.Device {
	tb.Helper()
	sharedOnce.Do(func() {
		start := time.Now()
		sharedDev, sharedErr = device.Open("cuda:0")
		if sharedErr == nil {
			fmt.Printf("kiln cuda tests: opened %s in %.2f s (context, stream, JIT of the kernel modules)\n",
				sharedDev.Name(), time.Since(start).Seconds())
		}
	})
	if sharedErr != nil {
		tb.Fatalf("no CUDA GPU answered: device.Open(\"cuda:0\"): %v — this test binary must run on a machine with an NVIDIA GPU and its driver", sharedErr)
	}
	sharedDev.(device.TF32Setter).SetAllowTF32(false)
	return sharedDev
}

func openCPU(tb testing.TB) device.Device {
	tb.Helper()
	dev, err := device.Open("cpu")
	if err != nil {
		tb.Fatalf("device.Open(\"cpu\"): %v", err)
	}
	tb.Cleanup(func() { _ = dev.Close() })
	return dev
}

func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func upload(tb testing.TB, dev device.Device, x []float32) device.Buffer {
	tb.Helper()
	b, err := dev.Alloc(device.Float32, len(x))
	must(tb, "Alloc", err)
	must(tb, "WriteF32", dev.WriteF32(b, 0, x))
	return b
}

func uploadI32(tb testing.TB, dev device.Device, x []int32) device.Buffer {
	tb.Helper()
	b, err := dev.Alloc(device.Int32, len(x))
	must(tb, "Alloc", err)
	must(tb, "WriteI32", dev.WriteI32(b, 0, x))
	return b
}

func download(tb testing.TB, dev device.Device, b device.Buffer) []float32 {
	tb.Helper()
	x := make([]float32, b.Len())
	must(tb, "ReadF32", dev.ReadF32(x, b, 0))
	return x
}

func downloadI32(tb testing.TB, dev device.Device, b device.Buffer) []int32 {
	tb.Helper()
	x := make([]int32, b.Len())
	must(tb, "ReadI32", dev.ReadI32(x, b, 0))
	return x
}

func uniform(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// relErr is ‖got − want‖₂ / ‖want‖₂ (‖got‖₂ when want is zero); NaN or
// Inf anywhere, or a NaN/Inf mismatch, gives +Inf. Identical non-finite
// values at the same place count as equal.
func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) || math.IsInf(g, 0) || math.IsInf(w, 0) {
			if (math.IsNaN(g) && math.IsNaN(w)) || g == w {
				continue
			}
			return math.Inf(1)
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// maxAbsDiff returns the largest |got−want| and its index.
func maxAbsDiff(got, want []float32) (float64, int) {
	best, at := 0.0, -1
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > best || (math.IsNaN(d) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i])))) {
			best, at = d, i
		}
	}
	return best, at
}
