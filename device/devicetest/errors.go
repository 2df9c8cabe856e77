package devicetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// fakeDevice stands for "another device": buffers of it must be refused
// with ErrDeviceMismatch. Only Name is implemented (device.CheckBuf puts it
// in the message); any other method panics through the nil embedded
// interface, which the suite reports as a failure.
type fakeDevice struct{ device.Device }

func (*fakeDevice) Name() string { return "fake:0" }

var otherDevice = &fakeDevice{}

// fakeBuffer is a live buffer of otherDevice.
type fakeBuffer struct {
	dt device.DType
	n  int
}

func (b *fakeBuffer) Device() device.Device { return otherDevice }
func (b *fakeBuffer) DType() device.DType   { return b.dt }
func (b *fakeBuffer) Len() int              { return b.n }
func (b *fakeBuffer) Freed() bool           { return false }

// arg describes one buffer argument of a primitive: its name, dtype and
// the elements the call needs. nilOK marks an argument the contract lets a
// backend ignore (so nil need not be an error).
type arg struct {
	name  string
	dt    device.DType
	n     int
	nilOK bool
}

// errCase is one primitive called with valid buffers except the one the
// test swaps for a bad one.
type errCase struct {
	op   string
	args []arg
	call func(b []device.Buffer) error
	// bad are calls with valid buffers and a bad scalar argument; each
	// must fail with ErrInvalid.
	bad map[string]func(b []device.Buffer) error
}

func f32(name string, n int) arg { return arg{name: name, dt: device.Float32, n: n} }
func i32(name string, n int) arg { return arg{name: name, dt: device.Int32, n: n} }

// expectErr checks that fn returns an error that wraps one of want, names
// op in its message, and does not panic.
func expectErr(t *testing.T, op string, fn func() error, want ...error) {
	t.Helper()
	err := protect(fn)
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		t.Errorf("%s %v; want an error", op, err)
		return
	case err == nil:
		t.Errorf("%s returned nil; want an error wrapping %v", op, want)
		return
	}
	ok := false
	for _, w := range want {
		ok = ok || errors.Is(err, w)
	}
	if !ok {
		t.Errorf("%s: got %q; want an error wrapping %v", op, err, want)
	}
	if msg := err.Error(); msg == "" || !strings.Contains(msg, op) {
		t.Errorf("%s: message %q does not name the operation", op, msg)
	}
}

func (s *suite) errCases() []errCase {
	const m, n, k = 3, 4, 5
	const rows, cols = 3, 4
	const ln = 6
	d := s.dev
	sgd := device.SGDConfig{LR: 0.1, Momentum: 0.9}
	adam := device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	return []errCase{
		{op: "Gemm", args: []arg{f32("a", m*k), f32("b", k*n), f32("c", m*n)},
			call: func(b []device.Buffer) error { return d.Gemm(false, true, m, n, k, 1, b[0], b[1], 0, b[2]) },
			bad: map[string]func(b []device.Buffer) error{
				"m=0":  func(b []device.Buffer) error { return d.Gemm(false, false, 0, n, k, 1, b[0], b[1], 0, b[2]) },
				"n=-1": func(b []device.Buffer) error { return d.Gemm(false, false, m, -1, k, 1, b[0], b[1], 0, b[2]) },
				"k=0":  func(b []device.Buffer) error { return d.Gemm(true, false, m, n, 0, 1, b[0], b[1], 0, b[2]) },
			}},
		{op: "AddBias", args: []arg{f32("x", rows*cols), f32("bias", cols)},
			call: func(b []device.Buffer) error { return d.AddBias(b[0], b[1], rows, cols) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0":  func(b []device.Buffer) error { return d.AddBias(b[0], b[1], 0, cols) },
				"cols=-2": func(b []device.Buffer) error { return d.AddBias(b[0], b[1], rows, -2) },
			}},
		{op: "BiasGrad", args: []arg{f32("db", cols), f32("dy", rows*cols)},
			call: func(b []device.Buffer) error { return d.BiasGrad(b[0], b[1], rows, cols, 0) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=-1": func(b []device.Buffer) error { return d.BiasGrad(b[0], b[1], -1, cols, 0) },
				"cols=0":  func(b []device.Buffer) error { return d.BiasGrad(b[0], b[1], rows, 0, 1) },
			}},
		{op: "Activate", args: []arg{f32("x", ln), f32("y", ln)},
			call: func(b []device.Buffer) error { return d.Activate(device.Tanh, 0, b[0], b[1], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0":          func(b []device.Buffer) error { return d.Activate(device.Tanh, 0, b[0], b[1], 0) },
				"n=-5":         func(b []device.Buffer) error { return d.Activate(device.ReLU, 0, b[0], b[1], -5) },
				"activation=0": func(b []device.Buffer) error { return d.Activate(0, 0, b[0], b[1], ln) },
				"activation=99": func(b []device.Buffer) error {
					return d.Activate(99, 0, b[0], b[1], ln)
				},
			}},
		// ActivateGrad reads x or y "as the function needs", so a backend
		// may accept nil for the one it does not read; every other fault
		// is an error for all four.
		{op: "ActivateGrad", args: []arg{{name: "x", dt: device.Float32, n: ln, nilOK: true}, {name: "y", dt: device.Float32, n: ln, nilOK: true}, f32("dy", ln), f32("dx", ln)},
			call: func(b []device.Buffer) error { return d.ActivateGrad(device.GELU, 0, b[0], b[1], b[2], b[3], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0":          func(b []device.Buffer) error { return d.ActivateGrad(device.GELU, 0, b[0], b[1], b[2], b[3], 0) },
				"activation=0": func(b []device.Buffer) error { return d.ActivateGrad(0, 0, b[0], b[1], b[2], b[3], ln) },
			}},
		{op: "Softmax", args: []arg{f32("x", rows*cols), f32("y", rows*cols)},
			call: func(b []device.Buffer) error { return d.Softmax(b[0], b[1], rows, cols) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0": func(b []device.Buffer) error { return d.Softmax(b[0], b[1], 0, cols) },
				"cols=0": func(b []device.Buffer) error { return d.Softmax(b[0], b[1], rows, 0) },
			}},
		{op: "SoftmaxGrad", args: []arg{f32("y", rows*cols), f32("dy", rows*cols), f32("dx", rows*cols)},
			call: func(b []device.Buffer) error { return d.SoftmaxGrad(b[0], b[1], b[2], rows, cols) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=-3": func(b []device.Buffer) error { return d.SoftmaxGrad(b[0], b[1], b[2], -3, cols) },
			}},
		{op: "Add", args: []arg{f32("a", ln), f32("b", ln), f32("out", ln)},
			call: func(b []device.Buffer) error { return d.Add(b[0], b[1], b[2], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Add(b[0], b[1], b[2], 0) },
			}},
		{op: "Sub", args: []arg{f32("a", ln), f32("b", ln), f32("out", ln)},
			call: func(b []device.Buffer) error { return d.Sub(b[0], b[1], b[2], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=-1": func(b []device.Buffer) error { return d.Sub(b[0], b[1], b[2], -1) },
			}},
		{op: "Mul", args: []arg{f32("a", ln), f32("b", ln), f32("out", ln)},
			call: func(b []device.Buffer) error { return d.Mul(b[0], b[1], b[2], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Mul(b[0], b[1], b[2], 0) },
			}},
		{op: "Scale", args: []arg{f32("x", ln), f32("out", ln)},
			call: func(b []device.Buffer) error { return d.Scale(2, b[0], b[1], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Scale(2, b[0], b[1], 0) },
			}},
		{op: "Axpy", args: []arg{f32("x", ln), f32("y", ln)},
			call: func(b []device.Buffer) error { return d.Axpy(2, b[0], b[1], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=-4": func(b []device.Buffer) error { return d.Axpy(2, b[0], b[1], -4) },
			}},
		{op: "Fill", args: []arg{f32("x", ln)},
			call: func(b []device.Buffer) error { return d.Fill(b[0], ln, 1) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Fill(b[0], 0, 1) },
			}},
		{op: "Loss", args: []arg{f32("pred", rows*cols), f32("target", rows*cols), f32("loss", 1), {name: "grad", dt: device.Float32, n: rows * cols, nilOK: true}},
			call: func(b []device.Buffer) error { return d.Loss(device.MSE, b[0], b[1], rows, cols, b[2], b[3]) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0": func(b []device.Buffer) error { return d.Loss(device.MSE, b[0], b[1], 0, cols, b[2], b[3]) },
				"cols=-1": func(b []device.Buffer) error {
					return d.Loss(device.BCE, b[0], b[1], rows, -1, b[2], b[3])
				},
				"kind=0": func(b []device.Buffer) error { return d.Loss(0, b[0], b[1], rows, cols, b[2], b[3]) },
				"kind=77": func(b []device.Buffer) error {
					return d.Loss(77, b[0], b[1], rows, cols, b[2], nil)
				},
			}},
		{op: "Loss", args: []arg{f32("pred", rows*cols), i32("target", rows), f32("loss", 1), {name: "grad", dt: device.Float32, n: rows * cols, nilOK: true}},
			call: func(b []device.Buffer) error {
				return d.Loss(device.SoftmaxCrossEntropy, b[0], b[1], rows, cols, b[2], b[3])
			}},
		{op: "Sum", args: []arg{f32("x", ln), f32("out", 1)},
			call: func(b []device.Buffer) error { return d.Sum(b[0], ln, b[1], 0) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Sum(b[0], 0, b[1], 0) },
			}},
		{op: "SumSquares", args: []arg{f32("x", ln), f32("out", 1)},
			call: func(b []device.Buffer) error { return d.SumSquares(b[0], ln, b[1], 1) },
			bad: map[string]func(b []device.Buffer) error{
				"n=-1": func(b []device.Buffer) error { return d.SumSquares(b[0], -1, b[1], 0) },
			}},
		{op: "ClipByNorm", args: []arg{f32("x", ln), f32("sumSq", 1)},
			call: func(b []device.Buffer) error { return d.ClipByNorm(b[0], ln, b[1], 1) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.ClipByNorm(b[0], 0, b[1], 1) },
			}},
		{op: "ArgmaxRows", args: []arg{f32("x", rows*cols), i32("out", rows)},
			call: func(b []device.Buffer) error { return d.ArgmaxRows(b[0], rows, cols, b[1]) },
			bad: map[string]func(b []device.Buffer) error{
				"rows=0":  func(b []device.Buffer) error { return d.ArgmaxRows(b[0], 0, cols, b[1]) },
				"cols=-1": func(b []device.Buffer) error { return d.ArgmaxRows(b[0], rows, -1, b[1]) },
			}},
		{op: "SGDStep", args: []arg{f32("p", ln), f32("g", ln), f32("v", ln)},
			call: func(b []device.Buffer) error { return d.SGDStep(b[0], b[1], b[2], ln, sgd, 1) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0":    func(b []device.Buffer) error { return d.SGDStep(b[0], b[1], b[2], 0, sgd, 1) },
				"step=0": func(b []device.Buffer) error { return d.SGDStep(b[0], b[1], b[2], ln, sgd, 0) },
			}},
		{op: "AdamStep", args: []arg{f32("p", ln), f32("g", ln), f32("m", ln), f32("v", ln)},
			call: func(b []device.Buffer) error { return d.AdamStep(b[0], b[1], b[2], b[3], ln, adam, 1) },
			bad: map[string]func(b []device.Buffer) error{
				"n=-2":    func(b []device.Buffer) error { return d.AdamStep(b[0], b[1], b[2], b[3], -2, adam, 1) },
				"step=0":  func(b []device.Buffer) error { return d.AdamStep(b[0], b[1], b[2], b[3], ln, adam, 0) },
				"step=-1": func(b []device.Buffer) error { return d.AdamStep(b[0], b[1], b[2], b[3], ln, adam, -1) },
			}},
		{op: "RandNormal", args: []arg{f32("x", ln)},
			call: func(b []device.Buffer) error { return d.RandNormal(b[0], ln, 0, 1, 1, 0) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.RandNormal(b[0], 0, 0, 1, 1, 0) },
			}},
		{op: "RandUniform", args: []arg{f32("x", ln)},
			call: func(b []device.Buffer) error { return d.RandUniform(b[0], ln, 0, 1, 1, 0) },
			bad: map[string]func(b []device.Buffer) error{
				"n=-1": func(b []device.Buffer) error { return d.RandUniform(b[0], -1, 0, 1, 1, 0) },
			}},
		{op: "DropoutMask", args: []arg{f32("mask", ln)},
			call: func(b []device.Buffer) error { return d.DropoutMask(b[0], ln, 0.5, 1, 0) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0":    func(b []device.Buffer) error { return d.DropoutMask(b[0], 0, 0.5, 1, 0) },
				"p=1":    func(b []device.Buffer) error { return d.DropoutMask(b[0], ln, 1, 1, 0) },
				"p=-0.1": func(b []device.Buffer) error { return d.DropoutMask(b[0], ln, -0.1, 1, 0) },
			}},
		{op: "Copy", args: []arg{f32("dst", ln), f32("src", ln)},
			call: func(b []device.Buffer) error { return d.Copy(b[0], b[1], ln) },
			bad: map[string]func(b []device.Buffer) error{
				"n=0": func(b []device.Buffer) error { return d.Copy(b[0], b[1], 0) },
			}},
		{op: "WriteF32", args: []arg{f32("dst", ln)},
			call: func(b []device.Buffer) error { return d.WriteF32(b[0], 0, make([]float32, ln)) }},
		{op: "ReadF32", args: []arg{f32("src", ln)},
			call: func(b []device.Buffer) error { return d.ReadF32(make([]float32, ln), b[0], 0) }},
		{op: "WriteI32", args: []arg{i32("dst", ln)},
			call: func(b []device.Buffer) error { return d.WriteI32(b[0], 0, make([]int32, ln)) }},
		{op: "ReadI32", args: []arg{i32("src", ln)},
			call: func(b []device.Buffer) error { return d.ReadI32(make([]int32, ln), b[0], 0) }},
	}
}

// testErrors calls every primitive with one bad buffer at a time (nil,
// freed, of another device, of the wrong dtype, one element too short) and
// with bad scalars, and checks the sentinel each error wraps.
func (s *suite) testErrors(t *testing.T) {
	for _, ec := range s.errCases() {
		name := ec.op
		if ec.op == "Loss" && ec.args[1].dt == device.Int32 {
			name = "Loss/cross_entropy"
		}
		t.Run(name, func(t *testing.T) {
			valid := func(t *testing.T) []device.Buffer {
				b := make([]device.Buffer, len(ec.args))
				for i, a := range ec.args {
					b[i] = s.alloc(t, a.dt, a.n)
				}
				return b
			}
			// The valid call must succeed, or the faults below prove nothing.
			t.Run("valid", func(t *testing.T) {
				b := valid(t)
				do(t, ec.op, func() error { return ec.call(b) })
			})
			for i, a := range ec.args {
				other := device.Int32
				if a.dt == device.Int32 {
					other = device.Float32
				}
				faults := []struct {
					name string
					want error
					make func(t *testing.T) device.Buffer
				}{
					{"nil", device.ErrNilBuffer, func(t *testing.T) device.Buffer { return nil }},
					{"freed", device.ErrFreed, func(t *testing.T) device.Buffer {
						x := s.alloc(t, a.dt, a.n)
						do(t, "Free", func() error { return s.dev.Free(x) })
						return x
					}},
					{"freed_view", device.ErrFreed, func(t *testing.T) device.Buffer {
						x := s.alloc(t, a.dt, a.n+2)
						var v device.Buffer
						do(t, "View", func() error {
							var err error
							v, err = s.dev.View(x, 1, a.n)
							return err
						})
						do(t, "Free", func() error { return s.dev.Free(x) })
						return v
					}},
					{"other_device", device.ErrDeviceMismatch, func(t *testing.T) device.Buffer {
						return &fakeBuffer{dt: a.dt, n: a.n}
					}},
					{"dtype_" + other.String(), device.ErrDType, func(t *testing.T) device.Buffer {
						return s.alloc(t, other, a.n)
					}},
					{"short", device.ErrSize, func(t *testing.T) device.Buffer {
						if a.n < 2 {
							t.Skip("a one-element argument cannot be one element short")
						}
						return s.alloc(t, a.dt, a.n-1)
					}},
				}
				for _, f := range faults {
					if f.name == "nil" && a.nilOK {
						continue
					}
					t.Run(a.name+"/"+f.name, func(t *testing.T) {
						b := valid(t)
						b[i] = f.make(t)
						expectErr(t, ec.op, func() error { return ec.call(b) }, f.want)
					})
				}
			}
			for _, what := range slices.Sorted(maps.Keys(ec.bad)) {
				call := ec.bad[what]
				t.Run(what, func(t *testing.T) {
					b := valid(t)
					expectErr(t, ec.op, func() error { return call(b) }, device.ErrInvalid)
				})
			}
		})
	}
	t.Run("Alloc", func(t *testing.T) {
		for _, n := range []int{0, -1} {
			expectErr(t, "Alloc", func() error {
				b, err := s.dev.Alloc(device.Float32, n)
				if err == nil && b != nil {
					_ = s.dev.Free(b)
				}
				return err
			}, device.ErrInvalid)
		}
		expectErr(t, "Alloc", func() error {
			b, err := s.dev.Alloc(device.BFloat16, 4)
			if err == nil && b != nil {
				_ = s.dev.Free(b)
			}
			return err
		}, device.ErrDType)
		expectErr(t, "Alloc", func() error {
			b, err := s.dev.Alloc(device.DType(200), 4)
			if err == nil && b != nil {
				_ = s.dev.Free(b)
			}
			return err
		}, device.ErrDType, device.ErrInvalid)
	})
	t.Run("Free", func(t *testing.T) {
		expectErr(t, "Free", func() error { return s.dev.Free(nil) }, device.ErrNilBuffer)
		b := s.alloc(t, device.Float32, 8)
		do(t, "Free", func() error { return s.dev.Free(b) })
		expectErr(t, "Free", func() error { return s.dev.Free(b) }, device.ErrFreed) // double free
		expectErr(t, "Free", func() error { return s.dev.Free(&fakeBuffer{dt: device.Float32, n: 8}) }, device.ErrDeviceMismatch)
		// Freeing a view is an error and leaves the parent alive.
		p := s.upload(t, []float32{1, 2, 3, 4})
		var v device.Buffer
		do(t, "View", func() error {
			var err error
			v, err = s.dev.View(p, 1, 2)
			return err
		})
		expectErr(t, "Free", func() error { return s.dev.Free(v) }, device.ErrInvalid)
		if p.Freed() || v.Freed() {
			t.Errorf("after a refused Free(view): parent freed %v, view freed %v; want both alive", p.Freed(), v.Freed())
		}
		if g := s.read(t, p, 4); g[3] != 4 {
			t.Errorf("parent reads %v after a refused Free(view)", g)
		}
	})
	t.Run("View", func(t *testing.T) {
		b := s.alloc(t, device.Float32, 10)
		for _, c := range []struct{ off, n int }{{8, 3}, {10, 1}, {0, 11}, {-1, 2}, {2, 0}, {2, -1}} {
			expectErr(t, "View", func() error {
				_, err := s.dev.View(b, c.off, c.n)
				return err
			}, device.ErrSize, device.ErrInvalid)
		}
		expectErr(t, "View", func() error { _, err := s.dev.View(nil, 0, 1); return err }, device.ErrNilBuffer)
		expectErr(t, "View", func() error {
			_, err := s.dev.View(&fakeBuffer{dt: device.Float32, n: 10}, 0, 1)
			return err
		}, device.ErrDeviceMismatch)
		do(t, "Free", func() error { return s.dev.Free(b) })
		expectErr(t, "View", func() error { _, err := s.dev.View(b, 0, 1); return err }, device.ErrFreed)
	})
	t.Run("Ranges", func(t *testing.T) {
		b := s.alloc(t, device.Float32, 10)
		bi := s.alloc(t, device.Int32, 10)
		for _, c := range []struct {
			op   string
			call func() error
		}{
			{"WriteF32", func() error { return s.dev.WriteF32(b, 8, make([]float32, 3)) }},
			{"WriteF32", func() error { return s.dev.WriteF32(b, -1, make([]float32, 2)) }},
			{"ReadF32", func() error { return s.dev.ReadF32(make([]float32, 11), b, 0) }},
			{"ReadF32", func() error { return s.dev.ReadF32(make([]float32, 1), b, 10) }},
			{"ReadF32", func() error { return s.dev.ReadF32(make([]float32, 1), b, -1) }},
			{"WriteI32", func() error { return s.dev.WriteI32(bi, 5, make([]int32, 6)) }},
			{"ReadI32", func() error { return s.dev.ReadI32(make([]int32, 4), bi, 7) }},
			{"Copy", func() error { return s.dev.Copy(b, s.alloc(t, device.Float32, 5), 6) }},
			{"Copy", func() error { return s.dev.Copy(b, bi, 4) }},
		} {
			expectErr(t, c.op, c.call, device.ErrSize, device.ErrInvalid, device.ErrDType)
		}
		// Nothing was written by the refused calls.
		for i, v := range s.read(t, b, 10) {
			if v != 0 {
				t.Errorf("buffer[%d] = %v after refused writes; want 0", i, v)
				break
			}
		}
	})
	t.Run("SGDStep/v=nil", func(t *testing.T) {
		p, g := s.alloc(t, device.Float32, 4), s.alloc(t, device.Float32, 4)
		expectErr(t, "SGDStep", func() error {
			return s.dev.SGDStep(p, g, nil, 4, device.SGDConfig{LR: 0.1, Momentum: 0.9}, 1)
		}, device.ErrNilBuffer)
	})
}
