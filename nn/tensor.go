package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
	"gorgonia.org/tensor"
)

// Tensor is a float32 array on a device.Device: a value buffer, a shape,
// and, when it takes part in differentiation, a gradient buffer of the same
// length. Shapes live here; the device sees flat buffers.
//
// A Tensor made by a Graph (Input, Variable, or an op's result) belongs to
// that graph and is valid until the graph's next Reset, which recycles its
// buffers and the Tensor itself. A Tensor made by FromDense owns its buffer
// and is released with Free.
type Tensor struct {
	dev   device.Device
	val   device.Buffer
	grad  device.Buffer
	dims  [4]int // backing store for shape when it has ≤ 4 axes (no allocation)
	shape []int
	n     int

	requiresGrad bool
	// accumulate: every gradient contribution adds to grad (parameters and
	// variables, whose grad starts at zero). Otherwise the first
	// contribution overwrites grad and gradSet records that it happened.
	accumulate bool
	gradSet    bool
	// gradOne: the gradient is known on the host to be exactly 1 (the seed
	// of Backward), so a fused loss gradient needs no rescaling.
	gradOne bool
	// owned: val was allocated for this tensor alone (FromDense); Free
	// returns it to the device.
	owned bool
}

// Shape returns the tensor's dimensions, outermost first. The slice must
// not be modified.
func (t *Tensor) Shape() []int { return t.shape }

// Len is the number of elements, the product of the shape.
func (t *Tensor) Len() int { return t.n }

// Device is the device that holds the tensor's buffers.
func (t *Tensor) Device() device.Device { return t.dev }

// Value is the buffer of the tensor's values (float32, Len elements).
func (t *Tensor) Value() device.Buffer { return t.val }

// Grad is the gradient buffer, filled by Graph.Backward. It is nil unless
// the tensor requires grad and received a gradient (or is a parameter or
// variable, whose gradient buffer always exists).
func (t *Tensor) Grad() device.Buffer { return t.grad }

// RequiresGrad reports whether Backward computes a gradient for this tensor.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// rows and cols view the tensor as a matrix: the last axis is the columns,
// all the others the rows (a vector is one column per element, so that a
// [N] prediction pairs with an [N] target in the losses).
func (t *Tensor) rowsCols() (rows, cols int) {
	switch len(t.shape) {
	case 0:
		return 1, 1
	case 1:
		return t.shape[0], 1
	}
	cols = t.shape[len(t.shape)-1]
	return t.n / cols, cols
}

// setShape copies shape into t without allocating when it has ≤ 4 axes and
// returns the element count, or an error for a non-positive dimension.
func (t *Tensor) setShape(shape []int) error {
	n := 1
	for i, d := range shape {
		if d < 1 {
			return fmt.Errorf("nn: shape %v: dimension %d is %d, expected ≥ 1", append([]int(nil), shape...), i, d)
		}
		n *= d
	}
	if len(shape) <= len(t.dims) {
		t.shape = t.dims[:len(shape)]
	} else {
		t.shape = make([]int, len(shape))
	}
	copy(t.shape, shape)
	t.n = n
	return nil
}

// String describes the tensor for error messages and debugging.
func (t *Tensor) String() string {
	return fmt.Sprintf("Tensor%v(grad=%v)", t.shape, t.requiresGrad)
}

// NewTensor wraps an existing float32 buffer (not copied, not owned) as a
// tensor of the given shape with no gradient. It is how a caller hands a
// device buffer it manages (a dataset batch) to code that expects a Tensor
// outside any graph.
func NewTensor(buf device.Buffer, shape ...int) (*Tensor, error) {
	if buf == nil {
		return nil, fmt.Errorf("nn: NewTensor: nil buffer")
	}
	t := &Tensor{dev: buf.Device(), val: buf}
	if err := t.setShape(shape); err != nil {
		return nil, err
	}
	if err := device.CheckF32(buf.Device(), "nn.NewTensor", "buf", buf, t.n); err != nil {
		return nil, err
	}
	return t, nil
}

// FromDense copies a host gorgonia.org/tensor Dense (float32, or float64
// rounded to float32) into a new device tensor that owns its buffer; Free
// releases it. Views and transposed Dense tensors are materialised first.
func FromDense(dev device.Device, d *tensor.Dense) (*Tensor, error) {
	if dev == nil {
		return nil, fmt.Errorf("nn: FromDense: nil device")
	}
	if d == nil {
		return nil, fmt.Errorf("nn: FromDense: nil Dense")
	}
	if d.RequiresIterator() || d.IsView() {
		m, ok := d.Materialize().(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("nn: FromDense: cannot materialise the view")
		}
		d = m
	}
	shape := []int(d.Shape())
	var vals []float32
	switch x := d.Data().(type) {
	case []float32:
		vals = x
	case []float64:
		vals = make([]float32, len(x))
		for i, v := range x {
			vals[i] = float32(v)
		}
	case float32:
		vals = []float32{x}
	case float64:
		vals = []float32{float32(x)}
	default:
		return nil, fmt.Errorf("nn: FromDense: dtype %v: expected float32 or float64", d.Dtype())
	}
	if len(shape) == 0 {
		shape = []int{1}
	}
	t := &Tensor{dev: dev, owned: true}
	if err := t.setShape(shape); err != nil {
		return nil, fmt.Errorf("nn: FromDense: %w", err)
	}
	if len(vals) < t.n {
		return nil, fmt.Errorf("nn: FromDense: shape %v needs %d values, Dense holds %d", shape, t.n, len(vals))
	}
	buf, err := dev.Alloc(device.Float32, t.n)
	if err != nil {
		return nil, fmt.Errorf("nn: FromDense: %w", err)
	}
	if err := dev.WriteF32(buf, 0, vals[:t.n]); err != nil {
		_ = dev.Free(buf)
		return nil, fmt.Errorf("nn: FromDense: %w", err)
	}
	t.val = buf
	return t, nil
}

// ToDense copies the tensor's values to a new host float32 Dense of the
// same shape (waiting for pending launches).
func (t *Tensor) ToDense() (*tensor.Dense, error) {
	vals, err := t.Values()
	if err != nil {
		return nil, err
	}
	shape := append([]int(nil), t.shape...)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(vals)), nil
}

// Values copies the tensor's values to a new host slice.
func (t *Tensor) Values() ([]float32, error) {
	vals := make([]float32, t.n)
	if err := t.dev.ReadF32(vals, t.val, 0); err != nil {
		return nil, fmt.Errorf("nn: reading %v: %w", t, err)
	}
	return vals, nil
}

// GradValues copies the tensor's gradient to a new host slice; it is an
// error when the tensor has no gradient buffer.
func (t *Tensor) GradValues() ([]float32, error) {
	if t.grad == nil {
		return nil, fmt.Errorf("nn: %v has no gradient (it does not require grad, or Backward did not reach it)", t)
	}
	vals := make([]float32, t.n)
	if err := t.dev.ReadF32(vals, t.grad, 0); err != nil {
		return nil, fmt.Errorf("nn: reading the gradient of %v: %w", t, err)
	}
	return vals, nil
}

// Free releases the buffer of a tensor made by FromDense. Tensors of a
// Graph are released by the graph, parameters by their model: for those
// Free is a no-op.
func (t *Tensor) Free() error {
	if !t.owned || t.val == nil {
		return nil
	}
	err := t.dev.Free(t.val)
	t.val = nil
	t.owned = false
	return err
}
