package nn

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
)

// Module is anything that maps a tensor to a tensor through graph ops and
// may own parameters: a layer or a whole model. A new layer is written as
// forward ops only; the graph derives its backward pass.
type Module interface {
	Forward(g *Graph, x *Tensor) (*Tensor, error)
	Params() []*Param
	// SetTraining switches training behaviour (dropout) on or off.
	SetTraining(training bool)
}

// Layer is one entry of a Sequential: a Module that can say which spec
// token it came from.
type Layer interface {
	Module
	Spec() LayerSpec
}

// Param is a learnable tensor with its PyTorch state_dict name
// ("0.weight"). A model keeps all its parameters in one flat device buffer
// and all its gradients in another; each Param's Value and Grad are views
// at Offset, so an optimiser updates every parameter in one fused launch
// and ZeroGrad is one Fill.
type Param struct {
	Name string
	*Tensor
	Offset int  // element offset in the model's flat buffers
	Frozen bool // true: Backward leaves its gradient alone and optimisers skip it
}

// syncFrozen makes the tensor's requires-grad flag follow Frozen, so that
// setting the field directly works as SetFrozen does.
func (p *Param) syncFrozen() { p.Tensor.requiresGrad = !p.Frozen }

// Linear is PyTorch's nn.Linear: y = x·Wᵀ + b with Weight [Out, In] and
// Bias [Out].
type Linear struct {
	In, Out      int
	Weight, Bias *Param
}

// Forward is g.Linear(x, Weight, Bias).
func (l *Linear) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	l.Weight.syncFrozen()
	l.Bias.syncFrozen()
	return g.Linear(x, l.Weight.Tensor, l.Bias.Tensor)
}

// Params returns the weight and the bias.
func (l *Linear) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// SetTraining does nothing: Linear behaves the same in both modes.
func (l *Linear) SetTraining(bool) {}

// Spec is the layer's spec token (its output width).
func (l *Linear) Spec() LayerSpec { return LayerSpec{Kind: LinearLayer, Units: l.Out} }

// Activation is an elementwise activation layer (PyTorch's nn.ReLU,
// nn.Tanh, …); Alpha is LeakyReLU's negative slope.
type Activation struct {
	Act   device.Activation
	Alpha float32
}

// Forward is g.Activate(Act, Alpha, x).
func (a *Activation) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	return g.Activate(a.Act, a.Alpha, x)
}

// Params is empty: activations have no parameters.
func (a *Activation) Params() []*Param { return nil }

// SetTraining does nothing.
func (a *Activation) SetTraining(bool) {}

// Spec is the layer's spec token.
func (a *Activation) Spec() LayerSpec {
	return LayerSpec{Kind: ActivationLayer, Act: a.Act, Alpha: a.Alpha}
}

// Softmax is a row-wise softmax over the last axis (nn.Softmax(dim=-1)).
type Softmax struct{}

// Forward is g.Softmax(x).
func (Softmax) Forward(g *Graph, x *Tensor) (*Tensor, error) { return g.Softmax(x) }

// Params is empty.
func (Softmax) Params() []*Param { return nil }

// SetTraining does nothing.
func (Softmax) SetTraining(bool) {}

// Spec is the layer's spec token.
func (Softmax) Spec() LayerSpec { return LayerSpec{Kind: SoftmaxLayer} }

// Dropout is nn.Dropout(P): in training mode it zeroes each input with
// probability P and scales the rest by 1/(1−P); in evaluation mode it is
// the identity.
type Dropout struct {
	P        float32
	Training bool
}

// Forward applies the mask in training mode and returns x unchanged in
// evaluation mode.
func (d *Dropout) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	if !d.Training {
		return x, nil
	}
	return g.Dropout(x, d.P)
}

// Params is empty.
func (d *Dropout) Params() []*Param { return nil }

// SetTraining turns the mask on (true) or off.
func (d *Dropout) SetTraining(training bool) { d.Training = training }

// Spec is the layer's spec token.
func (d *Dropout) Spec() LayerSpec { return LayerSpec{Kind: DropoutLayer, P: d.P} }

// Sequential is PyTorch's nn.Sequential: layers applied in order, each
// taking one state_dict index, with every parameter a view into one flat
// value buffer and every gradient a view into one flat gradient buffer.
// A new model starts in training mode, as PyTorch's does.
type Sequential struct {
	dev    device.Device
	spec   Spec
	layers []Layer
	params []*Param
	byName map[string]*Param
	values device.Buffer
	grads  device.Buffer
	n      int
}

// Build allocates a model for spec s on dev and initialises its parameters
// with init from the device's generator with seed, so every backend
// produces identical weights for the same seed.
//
// Random positions: parameter k (in state_dict order) draws its n_k values
// from stream positions [pos_k, pos_k + n_k), with pos_0 = 0 and pos_{k+1}
// = pos_k + n_k rounded up to a multiple of 4. Each tensor thus has its own
// range of the stream, independent of the distribution of the others.
func Build(dev device.Device, s Spec, init Init, seed uint64) (*Sequential, error) {
	if dev == nil {
		return nil, fmt.Errorf("nn: Build: nil device")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("nn: Build: %w", err)
	}
	m := &Sequential{dev: dev, spec: Spec{In: s.In, Layers: append([]LayerSpec(nil), s.Layers...)}, byName: map[string]*Param{}}
	width := s.In
	for i, ls := range s.Layers {
		switch ls.Kind {
		case LinearLayer:
			l := &Linear{In: width, Out: ls.Units}
			idx := strconv.Itoa(i)
			l.Weight = m.addParam(idx+".weight", ls.Units, width)
			l.Bias = m.addParam(idx+".bias", ls.Units)
			m.layers = append(m.layers, l)
			width = ls.Units
		case ActivationLayer:
			m.layers = append(m.layers, &Activation{Act: ls.Act, Alpha: ls.Alpha})
		case SoftmaxLayer:
			m.layers = append(m.layers, Softmax{})
		case DropoutLayer:
			m.layers = append(m.layers, &Dropout{P: ls.P, Training: true})
		}
	}
	if m.n == 0 {
		return nil, fmt.Errorf("nn: Build: model spec %s has no Linear layer, so no parameters; expected at least one width after the input", s)
	}
	var err error
	if m.values, err = dev.Alloc(device.Float32, m.n); err != nil {
		return nil, fmt.Errorf("nn: Build %s: parameters: %w", s, err)
	}
	if m.grads, err = dev.Alloc(device.Float32, m.n); err != nil {
		_ = dev.Free(m.values)
		return nil, fmt.Errorf("nn: Build %s: gradients: %w", s, err)
	}
	fail := func(err error) (*Sequential, error) {
		_ = m.Free()
		return nil, fmt.Errorf("nn: Build %s: %w", s, err)
	}
	for _, p := range m.params {
		if p.val, err = dev.View(m.values, p.Offset, p.n); err != nil {
			return fail(err)
		}
		if p.grad, err = dev.View(m.grads, p.Offset, p.n); err != nil {
			return fail(err)
		}
	}
	if err := m.initParams(init, seed); err != nil {
		return fail(err)
	}
	return m, nil
}

func (m *Sequential) addParam(name string, shape ...int) *Param {
	p := &Param{Name: name, Tensor: &Tensor{dev: m.dev, requiresGrad: true, accumulate: true}, Offset: m.n}
	_ = p.setShape(shape) // widths were validated
	m.n += p.n
	m.params = append(m.params, p)
	m.byName[name] = p
	return p
}

// initParams draws every parameter as Build documents.
func (m *Sequential) initParams(init Init, seed uint64) error {
	var pos uint64
	for _, l := range m.layers {
		lin, ok := l.(*Linear)
		if !ok {
			continue
		}
		wd, err := init.weightDraw(lin.In, lin.Out)
		if err != nil {
			return err
		}
		bd, err := init.biasDraw(lin.In)
		if err != nil {
			return err
		}
		for _, pd := range [2]struct {
			p *Param
			d draw
		}{{lin.Weight, wd}, {lin.Bias, bd}} {
			if err := pd.d.apply(m.dev, pd.p.val, pd.p.n, seed, pos); err != nil {
				return fmt.Errorf("initialising %s: %w", pd.p.Name, err)
			}
			pos += uint64(pd.p.n+3) &^ 3
		}
	}
	return nil
}

// Forward applies the layers in order.
func (m *Sequential) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	if m.values == nil {
		return nil, fmt.Errorf("nn: Forward: the model was freed")
	}
	var err error
	for i, l := range m.layers {
		if x, err = l.Forward(g, x); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Spec(), err)
		}
	}
	return x, nil
}

// Params lists the parameters in state_dict order (and flat-buffer order).
// The slice is the model's own: do not modify it.
func (m *Sequential) Params() []*Param { return m.params }

// Param returns the parameter with the given state_dict name, or nil.
func (m *Sequential) Param(name string) *Param { return m.byName[name] }

// Layers lists the layers, one per state_dict index.
func (m *Sequential) Layers() []Layer { return m.layers }

// SetTraining switches every layer (dropout) between training and
// evaluation mode, like PyTorch's model.train() / model.eval().
func (m *Sequential) SetTraining(training bool) {
	for _, l := range m.layers {
		l.SetTraining(training)
	}
}

// Spec is the architecture the model was built from.
func (m *Sequential) Spec() Spec { return m.spec }

// Device is the device holding the model's parameters.
func (m *Sequential) Device() device.Device { return m.dev }

// NumParams is the total number of parameters (the flat buffers' length).
func (m *Sequential) NumParams() int { return m.n }

// Flat returns the whole flat parameter and gradient buffers (NumParams
// elements each; Param.Offset locates each parameter).
func (m *Sequential) Flat() (values, grads device.Buffer) { return m.values, m.grads }

// ZeroGrad sets every gradient to zero with one Fill over the flat
// gradient buffer. Call it before each step's Backward, which accumulates.
func (m *Sequential) ZeroGrad() error {
	if m.grads == nil {
		return fmt.Errorf("nn: ZeroGrad: the model was freed")
	}
	return m.dev.Fill(m.grads, m.n, 0)
}

// SetFrozen freezes the named parameters (frozen true) or unfreezes them,
// for fine-tuning: a frozen parameter gets no gradient and optimisers skip
// it. Unknown names are an error listing the known ones, and then nothing
// is changed.
func (m *Sequential) SetFrozen(frozen bool, names ...string) error {
	var unknown []string
	for _, n := range names {
		if m.byName[n] == nil {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(m.params))
		for _, p := range m.params {
			known = append(known, p.Name)
		}
		sort.Strings(known)
		return fmt.Errorf("nn: SetFrozen: unknown parameter(s) %s; the model has %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	for _, n := range names {
		p := m.byName[n]
		p.Frozen = frozen
		p.syncFrozen()
	}
	return nil
}

// Free returns the flat buffers to the device; the model is unusable
// afterwards. Freeing twice is harmless.
func (m *Sequential) Free() error {
	var errs []error
	for _, b := range []device.Buffer{m.values, m.grads} {
		if b != nil {
			if err := m.dev.Free(b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	m.values, m.grads = nil, nil
	return errors.Join(errs...)
}
