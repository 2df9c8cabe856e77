package cpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/devicetest"
)

// TestConformance runs the shared backend conformance suite on a fresh
// CPU device.
func TestConformance(t *testing.T) {
	d := newDev(t)
	devicetest.Run(t, d)
}

// Helpers shared by this package's tests.

func newDev(t testing.TB) *Device {
	t.Helper()
	d := New()
	t.Cleanup(func() {
		if !d.closed {
			_ = d.Close()
		}
	})
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func upload(t testing.TB, d *Device, x []float32) device.Buffer {
	t.Helper()
	b, err := d.Alloc(device.Float32, len(x))
	must(t, err)
	must(t, d.WriteF32(b, 0, x))
	return b
}

func download(t testing.TB, d *Device, b device.Buffer) []float32 {
	t.Helper()
	out := make([]float32, b.Len())
	must(t, d.ReadF32(out, b, 0))
	return out
}

func randVec(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// relErr is ‖got−want‖/‖want‖ in float64 (‖got‖ when want is zero).
func relErr(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		e := float64(got[i]) - w
		num += e * e
		den += w * w
	}
	if math.IsNaN(num) || math.IsInf(num, 0) {
		return math.Inf(1)
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// u is float32's unit roundoff.
const u = 1.0 / (1 << 24)

func TestRegistered(t *testing.T) {
	dev, err := device.Open("cpu")
	must(t, err)
	defer dev.Close()
	if _, ok := dev.(*Device); !ok {
		t.Fatalf("Open(\"cpu\") gave %T, want *cpu.Device", dev)
	}
	if dev.Name() != "cpu" {
		t.Errorf("Name() = %q, want cpu", dev.Name())
	}
	info := dev.Info()
	if info.Spec != "cpu" || info.Backend != "cpu" || info.Cores < 1 || info.Name == "" {
		t.Errorf("Info() = %+v: want spec and backend cpu, a processor name and ≥ 1 core", info)
	}
	if info.Memory <= 0 || info.FreeMemory <= 0 || info.FreeMemory > info.Memory {
		t.Errorf("Info() memory total %d free %d: want 0 < free ≤ total", info.Memory, info.FreeMemory)
	}
}

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := 1; n < 1<<20; n += 1 + n/7 {
		c := sizeClass(n)
		if c < n {
			t.Fatalf("sizeClass(%d) = %d < n", n, c)
		}
		if n > minClass && float64(c) > 1.25*float64(n) {
			t.Fatalf("sizeClass(%d) = %d wastes more than 25%%", n, c)
		}
		if c < prev {
			t.Fatalf("sizeClass not monotone: %d after %d at n=%d", c, prev, n)
		}
		if sizeClass(c) != c {
			t.Fatalf("sizeClass(%d) = %d is not a fixed point", c, sizeClass(c))
		}
		prev = c
	}
}

func TestMemoryErrors(t *testing.T) {
	d := newDev(t)
	other := newDev(t)
	b := upload(t, d, []float32{1, 2, 3, 4})
	v, err := d.View(b, 1, 2)
	must(t, err)
	if got := download(t, d, v); got[0] != 2 || got[1] != 3 {
		t.Errorf("View(1,2) reads %v, want [2 3]", got)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"free view", d.Free(v), device.ErrInvalid},
		{"foreign buffer", other.Fill(b, 4, 0), device.ErrDeviceMismatch},
		{"too short", d.Fill(b, 5, 0), device.ErrSize},
		{"bad n", d.Fill(b, 0, 0), device.ErrInvalid},
		{"nil", d.Fill(nil, 1, 0), device.ErrNilBuffer},
		{"view past end", func() error { _, err := d.View(b, 3, 2); return err }(), device.ErrSize},
		{"negative off", d.WriteF32(b, -1, []float32{1}), device.ErrInvalid},
		{"bfloat16", func() error { _, err := d.Alloc(device.BFloat16, 4); return err }(), device.ErrDType},
		{"int32 as float", func() error {
			ib, err := d.Alloc(device.Int32, 4)
			must(t, err)
			return d.Fill(ib, 4, 1)
		}(), device.ErrDType},
		{"gemm dims", d.Gemm(false, false, 0, 1, 1, 1, b, b, 0, b), device.ErrInvalid},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	must(t, d.Free(b))
	if err := d.Free(b); !errors.Is(err, device.ErrFreed) {
		t.Errorf("double free: got %v, want ErrFreed", err)
	}
	if !v.Freed() {
		t.Errorf("view not Freed() after its parent was freed")
	}
	if err := d.Fill(v, 2, 0); !errors.Is(err, device.ErrFreed) {
		t.Errorf("Fill on a view of a freed buffer: got %v, want ErrFreed", err)
	}
	c := upload(t, d, []float32{1})
	must(t, d.Close())
	if err := d.Fill(c, 1, 0); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Fill after Close: got %v, want ErrClosed", err)
	}
	if _, err := d.Alloc(device.Float32, 1); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Alloc after Close: got %v, want ErrClosed", err)
	}
}

func TestOutOfMemory(t *testing.T) {
	d := newDev(t)
	for _, n := range []int{1 << 50, math.MaxInt} {
		_, err := d.Alloc(device.Float32, n)
		var oom *device.OutOfMemoryError
		if !errors.As(err, &oom) {
			t.Fatalf("Alloc(%d): got %v, want *OutOfMemoryError", n, err)
		}
		if oom.Requested < int64(4)<<30 || oom.Free <= 0 {
			t.Errorf("Alloc(%d): Requested %d, Free %d; want a huge request and a positive free figure", n, oom.Requested, oom.Free)
		}
	}
	if s := d.Stats(); s.InUse != 0 || s.SystemAllocs != 0 {
		t.Errorf("failed allocations changed stats: %+v", s)
	}
}

func TestPoolReuse(t *testing.T) {
	d := newDev(t)
	sizes := []int{1, 100, 4097, 1 << 20}
	step := func() {
		var bs []device.Buffer
		for _, n := range sizes {
			b, err := d.Alloc(device.Float32, n)
			must(t, err)
			f := b.(*buffer).f
			for i, v := range f {
				if v != 0 {
					t.Fatalf("reused buffer of %d not zeroed: [%d] = %v", n, i, v)
				}
			}
			must(t, d.Fill(b, n, 3))
			bs = append(bs, b)
		}
		ib, err := d.Alloc(device.Int32, 10)
		must(t, err)
		bs = append(bs, ib)
		for _, b := range bs {
			must(t, d.Free(b))
		}
	}
	step()
	s1 := d.Stats()
	step()
	step()
	s2 := d.Stats()
	if s2.SystemAllocs != s1.SystemAllocs {
		t.Errorf("SystemAllocs %d → %d over steady alloc/free rounds", s1.SystemAllocs, s2.SystemAllocs)
	}
	if s2.Allocs != s1.Allocs*3 || s2.InUse != 0 || s2.Cached == 0 || s2.Peak < s2.Cached {
		t.Errorf("stats after three rounds: %+v (after one: %+v)", s2, s1)
	}
}

// TestHugeDimensions checks that dimensions whose product overflows, or
// offsets past any buffer, give errors rather than panics.
func TestHugeDimensions(t *testing.T) {
	d := newDev(t)
	b := upload(t, d, []float32{1, 2, 3, 4})
	big := 1 << 62
	errs := map[string]error{
		"Gemm":        d.Gemm(false, false, big, 4, big, 1, b, b, 0, b),
		"AddBias":     d.AddBias(b, b, big, 8),
		"Softmax":     d.Softmax(b, b, 3, big),
		"Loss":        d.Loss(device.MSE, b, b, big, big, b, nil),
		"WriteF32":    d.WriteF32(b, big, []float32{1}),
		"ReadF32":     d.ReadF32(make([]float32, 2), b, math.MaxInt-1),
		"View":        func() error { _, err := d.View(b, math.MaxInt-1, 4); return err }(),
		"ArgmaxRows":  d.ArgmaxRows(b, big, big, b),
		"SoftmaxGrad": d.SoftmaxGrad(b, b, b, big, 2),
	}
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s with huge dimensions: no error", name)
		} else if !errors.Is(err, device.ErrSize) && !errors.Is(err, device.ErrInvalid) {
			t.Errorf("%s with huge dimensions: %v, want ErrSize or ErrInvalid", name, err)
		}
	}
}
