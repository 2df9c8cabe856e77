//go:build cuda

package cuda_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/devicetest"
)

// TestConformance runs the shared conformance suite on cuda:0.
func TestConformance(t *testing.T) {
	dev := openCUDA(t)
	in := dev.Info()
	msg := fmt.Sprintf("conformance on %s: %s (compute capability %s, %d SMs, driver %s)",
		in.Spec, in.Name, in.ComputeCapability, in.Cores, in.Driver)
	fmt.Println(msg)
	t.Log(msg)
	devicetest.Run(t, dev)
}

// TestInfo checks what Devices and Info report.
func TestInfo(t *testing.T) {
	dev := openCUDA(t)
	in := dev.Info()
	if in.Backend != "cuda" || in.Spec != "cuda:0" || dev.Name() != "cuda:0" {
		t.Errorf("Info: backend %q spec %q name %q; want cuda, cuda:0, cuda:0", in.Backend, in.Spec, dev.Name())
	}
	if in.Name == "" || in.Memory <= 0 || in.FreeMemory <= 0 || in.FreeMemory > in.Memory || in.Cores < 1 ||
		in.ComputeCapability == "" || in.Driver == "" {
		t.Errorf("Info incomplete: %+v", in)
	}
	t.Logf("%+v", in)
	if _, ok := dev.(device.TF32Setter); !ok {
		t.Errorf("the cuda device does not implement device.TF32Setter")
	}
}

// TestClosed checks that a closed device refuses every call with ErrClosed
// and reports its buffers freed.
func TestClosed(t *testing.T) {
	dev, err := device.Open("cuda:0")
	if err != nil {
		t.Fatalf("no CUDA GPU answered: %v", err)
	}
	b := upload(t, dev, []float32{1, 2, 3})
	must(t, "Close", dev.Close())
	if !b.Freed() {
		t.Errorf("buffer of a closed device: Freed() = false")
	}
	for name, err := range map[string]error{
		"Sync":  dev.Sync(),
		"Close": dev.Close(),
		"Fill":  dev.Fill(b, 3, 1),
		"Alloc": func() error { _, err := dev.Alloc(device.Float32, 4); return err }(),
	} {
		if !errors.Is(err, device.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed", name, err)
		}
	}
}

// TestRNGMatchesCPU checks that the Philox kernels reproduce device/rng.go:
// uniform numbers and dropout masks bit for bit, normal numbers bit for bit
// except where the GPU's and Go's float64 log/sin/cos differ in the last
// bit right at a float32 rounding boundary (then by one float32 ulp).
func TestRNGMatchesCPU(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	type draw struct {
		n            int
		seed, offset uint64
	}
	draws := []draw{{1, 0, 0}, {7, 42, 3}, {1000, 1, 1}, {4099, 0xdeadbeefcafe, 2}, {1 << 20, 7, 1<<33 + 1}, {123457, math.MaxUint32 + 5, 6}}
	for _, dr := range draws {
		for _, kind := range []string{"normal", "uniform", "dropout"} {
			t.Run(fmt.Sprintf("%s/n%d/seed%d/off%d", kind, dr.n, dr.seed, dr.offset), func(t *testing.T) {
				var out [2][]float32
				for i, dev := range []device.Device{gpu, cpu} {
					b, err := dev.Alloc(device.Float32, dr.n)
					must(t, "Alloc", err)
					switch kind {
					case "normal":
						err = dev.RandNormal(b, dr.n, 0.5, 2, dr.seed, dr.offset)
					case "uniform":
						err = dev.RandUniform(b, dr.n, -3, 5, dr.seed, dr.offset)
					case "dropout":
						err = dev.DropoutMask(b, dr.n, 0.3, dr.seed, dr.offset)
					}
					must(t, kind, err)
					out[i] = download(t, dev, b)
					must(t, "Free", dev.Free(b))
				}
				mismatches := 0
				for i := range out[0] {
					g, c := out[0][i], out[1][i]
					if g == c {
						continue
					}
					mismatches++
					ulp := math.Abs(float64(math.Float32bits(g)) - float64(math.Float32bits(c)))
					if kind != "normal" || ulp > 1 || math.Signbit(float64(g)) != math.Signbit(float64(c)) {
						t.Fatalf("%s[%d] (position %d): gpu %v, cpu %v (reference %v)", kind, i, dr.offset+uint64(i), g, c,
							device.NormalScaled(dr.seed, dr.offset+uint64(i), 0.5, 2))
					}
				}
				if mismatches > 0 {
					t.Logf("%d of %d normal values differ by one float32 ulp (last-bit differences of float64 log/sin/cos)", mismatches, dr.n)
				}
				if kind == "normal" && mismatches > max(2, dr.n/10000) {
					t.Errorf("%d of %d normal values differ from the CPU: more than rare last-bit differences", mismatches, dr.n)
				}
			})
		}
	}
}

// TestTF32Gemm measures the error of the fp32 and TF32 GEMMs against a
// float64 product. Tolerances: fp32 normwise relative error ≤ 1e-5 (for
// k = 1024 the float32 rounding bound is a few 1e-6); TF32 ≤ 5e-3 (inputs
// rounded to 10-bit mantissas: unit roundoff 2⁻¹¹ ≈ 4.9e-4 per operand, so
// about 1e-3 per product, partly averaging out over the sum).
func TestTF32Gemm(t *testing.T) {
	dev := openCUDA(t)
	setter := dev.(device.TF32Setter)
	const m, n, k = 1024, 1024, 1024
	r := rand.New(rand.NewPCG(1, 2))
	a, b := uniform(r, m*k, -1, 1), uniform(r, k*n, -1, 1)
	want := make([]float32, m*n)
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			row := make([]float64, n)
			for i := w; i < m; i += workers {
				clear(row)
				for l := 0; l < k; l++ {
					av := float64(a[i*k+l])
					for j, bv := range b[l*n : l*n+n] {
						row[j] += av * float64(bv)
					}
				}
				for j := range row {
					want[i*n+j] = float32(row[j])
				}
			}
		}(w)
	}
	wg.Wait()
	ab, bb := upload(t, dev, a), upload(t, dev, b)
	cb, err := dev.Alloc(device.Float32, m*n)
	must(t, "Alloc", err)
	errs := map[bool]float64{}
	for _, tf32 := range []bool{false, true} {
		setter.SetAllowTF32(tf32)
		must(t, "Gemm", dev.Gemm(false, false, m, n, k, 1, ab, bb, 0, cb))
		got := download(t, dev, cb)
		errs[tf32] = relErr(got, want)
		msg := fmt.Sprintf("GEMM %dx%dx%d tf32=%v: normwise relative error vs float64 %.3g", m, n, k, tf32, errs[tf32])
		fmt.Println(msg)
		t.Log(msg)
	}
	setter.SetAllowTF32(false)
	if errs[false] > 1e-5 {
		t.Errorf("fp32 GEMM relative error %.3g > 1e-5", errs[false])
	}
	if errs[true] > 5e-3 {
		t.Errorf("TF32 GEMM relative error %.3g > 5e-3", errs[true])
	}
	var major, minor int
	fmt.Sscanf(dev.Info().ComputeCapability, "%d.%d", &major, &minor)
	if major >= 8 && errs[true] < 2*errs[false] {
		t.Errorf("TF32 allowed on compute capability %d.%d but the error (%.3g) is that of fp32 (%.3g): tensor cores not used?",
			major, minor, errs[true], errs[false])
	}
}

// TestLabelCheck: cross-entropy refuses labels outside [0, cols), whether
// the host knows them (written by WriteI32) or not (copied on the device).
func TestLabelCheck(t *testing.T) {
	dev := openCUDA(t)
	pred := upload(t, dev, make([]float32, 4*3))
	loss, err := dev.Alloc(device.Float32, 1)
	must(t, "Alloc", err)
	good := uploadI32(t, dev, []int32{0, 2, 1, 2})
	bad := uploadI32(t, dev, []int32{0, 3, 1, 2})
	neg := uploadI32(t, dev, []int32{0, 1, -1, 2})
	must(t, "Loss(good labels)", dev.Loss(device.SoftmaxCrossEntropy, pred, good, 4, 3, loss, nil))
	if l := download(t, dev, loss)[0]; math.Abs(float64(l)-math.Log(3)) > 1e-6 {
		t.Errorf("cross-entropy of zero logits over 3 classes = %v, want ln 3", l)
	}
	for name, lab := range map[string]device.Buffer{"3 of 3": bad, "-1": neg} {
		err := dev.Loss(device.SoftmaxCrossEntropy, pred, lab, 4, 3, loss, nil)
		if !errors.Is(err, device.ErrInvalid) {
			t.Errorf("Loss with label %s: %v; want ErrInvalid", name, err)
		}
	}
	// Labels the host has not seen: copied on the device.
	cp, err := dev.Alloc(device.Int32, 4)
	must(t, "Alloc", err)
	must(t, "Copy", dev.Copy(cp, bad, 4))
	if err := dev.Loss(device.SoftmaxCrossEntropy, pred, cp, 4, 3, loss, nil); !errors.Is(err, device.ErrInvalid) {
		t.Errorf("Loss with copied bad labels: %v; want ErrInvalid", err)
	}
	must(t, "Copy", dev.Copy(cp, good, 4))
	must(t, "Loss(copied good labels)", dev.Loss(device.SoftmaxCrossEntropy, pred, cp, 4, 3, loss, nil))
	// Labels from ArgmaxRows are in range by construction.
	must(t, "ArgmaxRows", dev.ArgmaxRows(pred, 4, 3, cp))
	must(t, "Loss(argmax labels)", dev.Loss(device.SoftmaxCrossEntropy, pred, cp, 4, 3, loss, nil))
}

// TestOverlappingCopy: Copy between overlapping views behaves as memmove.
func TestOverlappingCopy(t *testing.T) {
	dev := openCUDA(t)
	x := make([]float32, 100)
	for i := range x {
		x[i] = float32(i)
	}
	b := upload(t, dev, x)
	lo, err := dev.View(b, 0, 90)
	must(t, "View", err)
	hi, err := dev.View(b, 10, 90)
	must(t, "View", err)
	must(t, "Copy", dev.Copy(hi, lo, 90))
	got := download(t, dev, b)
	for i := 10; i < 100; i++ {
		if got[i] != float32(i-10) {
			t.Fatalf("after Copy(b[10:], b[:90]): b[%d] = %v, want %d", i, got[i], i-10)
		}
	}
}

// TestLargeWrite: writes and reads above the staging buffer's size go
// through it in chunks; back-to-back writes must not overwrite data still
// being copied.
func TestLargeWrite(t *testing.T) {
	dev := openCUDA(t)
	const n = 20 << 20 // 80 MB, above the 32 MB staging cap
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i % 1000003)
	}
	b := upload(t, dev, x)
	y := make([]float32, 1000)
	c := upload(t, dev, y)
	for i := range y { // the next write reuses the staging buffer at once
		y[i] = -1
	}
	must(t, "WriteF32", dev.WriteF32(c, 0, y))
	got := download(t, dev, b)
	for i := range got {
		if got[i] != x[i] {
			t.Fatalf("large write: [%d] = %v, want %v", i, got[i], x[i])
		}
	}
	if g := download(t, dev, c); g[999] != -1 {
		t.Fatalf("second write lost: %v", g[999])
	}
}
