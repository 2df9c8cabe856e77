package nn

import (
	"fmt"
	"strconv"

	"github.com/kilnml/kiln/device"
)

// Layer is one entry of a Sequential built from a spec: a Module that can
// say which spec token it came from.
type Layer interface {
	Module
	Spec() LayerSpec
}

// Linear is PyTorch's nn.Linear: y = x·Wᵀ + b with Weight [Out, In] and
// Bias [Out] (nil without bias).
type Linear struct {
	In, Out      int
	Weight, Bias *Param
}

// NewLinear declares a Linear layer from in to out features, with a bias
// when bias is true, initialised as PyTorch initialises nn.Linear: weight
// and bias U(−1/√in, 1/√in). Its parameters are placed by NewParamSet.
func NewLinear(in, out int, bias bool) *Linear {
	return newLinear(in, out, bias, DefaultInit(in), DefaultInit(in))
}

func newLinear(in, out int, bias bool, w, b ParamInit) *Linear {
	l := &Linear{In: in, Out: out, Weight: NewParam("weight", w, out, in)}
	if bias {
		l.Bias = NewParam("bias", b, out)
	}
	return l
}

// Forward is g.Linear(x, Weight, Bias).
func (l *Linear) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	w, err := g.Param(l.Weight)
	if err != nil {
		return nil, err
	}
	b, err := g.OptionalParam(l.Bias)
	if err != nil {
		return nil, err
	}
	return g.Linear(x, w, b)
}

// Children is empty: Linear has no submodules.
func (l *Linear) Children() []Child { return nil }

// OwnParams returns the weight and the bias (when there is one).
func (l *Linear) OwnParams() []*Param {
	if l.Bias == nil {
		return []*Param{l.Weight}
	}
	return []*Param{l.Weight, l.Bias}
}

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

// Children is empty.
func (a *Activation) Children() []Child { return nil }

// OwnParams is empty: activations have no parameters.
func (a *Activation) OwnParams() []*Param { return nil }

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

// Children is empty.
func (Softmax) Children() []Child { return nil }

// OwnParams is empty.
func (Softmax) OwnParams() []*Param { return nil }

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

// Children is empty.
func (d *Dropout) Children() []Child { return nil }

// OwnParams is empty.
func (d *Dropout) OwnParams() []*Param { return nil }

// SetTraining turns the mask on (true) or off.
func (d *Dropout) SetTraining(training bool) { d.Training = training }

// Spec is the layer's spec token.
func (d *Dropout) Spec() LayerSpec { return LayerSpec{Kind: DropoutLayer, P: d.P} }

// Sequential is PyTorch's nn.Sequential: modules applied in order, child i
// named "i" in state_dict names ("0.weight", "2.bias").
//
// A Sequential made by Build (from a spec) owns its ParamSet: its Flat,
// ZeroGrad, StateDict, Free and friends act on it. One made by
// NewSequential is a plain module; NewParamSet with it as the root
// attaches the set to it, so those methods work there too.
// A new model starts in training mode, as PyTorch's does.
type Sequential struct {
	modules  []Module
	children []Child
	spec     Spec
	hasSpec  bool
	ps       *ParamSet
}

// NewSequential chains modules; module i gets the name segment "i".
func NewSequential(modules ...Module) *Sequential {
	s := &Sequential{}
	for _, m := range modules {
		s.Append(m)
	}
	return s
}

// Append adds a module at the end, named by its index. Call it before
// NewParamSet.
func (m *Sequential) Append(mod Module) {
	m.children = append(m.children, Child{Name: strconv.Itoa(len(m.modules)), Module: mod})
	m.modules = append(m.modules, mod)
}

// Build allocates a model for spec s on dev and initialises its parameters
// with init from the device's generator with seed, so every backend
// produces identical weights for the same seed.
//
// Random positions: parameter k (in state_dict order) draws its n_k values
// from stream positions [pos_k, pos_k + n_k), with pos_0 = 0 and pos_{k+1}
// = pos_k + n_k rounded up to a multiple of 4 (NewParamSet's rule). Each
// tensor thus has its own range of the stream, independent of the
// distribution of the others.
func Build(dev device.Device, s Spec, init Init, seed uint64) (*Sequential, error) {
	if dev == nil {
		return nil, fmt.Errorf("nn: Build: nil device")
	}
	shapes, err := s.validate()
	if err != nil {
		return nil, fmt.Errorf("nn: Build: %w", err)
	}
	m := &Sequential{spec: Spec{In: s.In, Shape: append([]int(nil), s.Shape...), Layers: append([]LayerSpec(nil), s.Layers...)}, hasSpec: true}
	weighted := 0
	for i, ls := range s.Layers {
		in := shapes[i]
		switch ls.Kind {
		case LinearLayer:
			wd, err := init.weightDraw(in.c, ls.Units)
			if err != nil {
				return nil, fmt.Errorf("nn: Build %s: %w", s, err)
			}
			bd, err := init.biasDraw(in.c)
			if err != nil {
				return nil, fmt.Errorf("nn: Build %s: %w", s, err)
			}
			m.Append(newLinear(in.c, ls.Units, true, wd.paramInit(), bd.paramInit()))
			weighted++
		case ActivationLayer:
			m.Append(&Activation{Act: ls.Act, Alpha: ls.Alpha})
		case SoftmaxLayer:
			m.Append(Softmax{})
		case DropoutLayer:
			m.Append(&Dropout{P: ls.P, Training: true})
		case Conv2dLayer:
			// PyTorch's fans of a convolution: in·k·k and out·k·k.
			k2 := ls.Kernel * ls.Kernel
			wd, err := init.weightDraw(in.c*k2, ls.Units*k2)
			if err != nil {
				return nil, fmt.Errorf("nn: Build %s: %w", s, err)
			}
			bd, err := init.biasDraw(in.c * k2)
			if err != nil {
				return nil, fmt.Errorf("nn: Build %s: %w", s, err)
			}
			c := NewConv2d(in.c, ls.Units, ls.Kernel, WithStride(ls.Stride), WithPadding(ls.Padding), WithDilation(ls.Dilation))
			c.Weight.Init, c.Bias.Init = wd.paramInit(), bd.paramInit()
			m.Append(c)
			weighted++
		case BatchNormLayer:
			weighted++
			if in.image {
				m.Append(NewBatchNorm2d(in.c))
			} else {
				m.Append(NewBatchNorm1d(in.c))
			}
		case MaxPoolLayer:
			m.Append(NewMaxPool2d(ls.Kernel, ls.Stride, ls.Padding))
		case AvgPoolLayer:
			m.Append(NewAvgPool2d(ls.Kernel, ls.Stride, ls.Padding))
		case GlobalAvgPoolLayer:
			m.Append(NewAdaptiveAvgPool2d(1, 1))
		case FlattenLayer:
			m.Append(NewFlatten())
		}
	}
	if weighted == 0 {
		return nil, fmt.Errorf("nn: Build: model spec %s has no Linear, convolution or batch norm layer, so no parameters; expected at least one width after the input", s)
	}
	ps, err := NewParamSet(dev, m, seed)
	if err != nil {
		return nil, fmt.Errorf("nn: Build %s: %w", s, err)
	}
	m.ps = ps
	return m, nil
}

// paramInit is the ParamInit drawing what d draws.
func (d draw) paramInit() ParamInit {
	switch {
	case d.zero:
		return ZerosInit()
	case d.normal:
		return NormalInit(d.a, d.b)
	}
	return UniformInit(d.a, d.b)
}

// Forward applies the modules in order. A model built from an image spec
// (CxHxW first) views a flat input [N, C·H·W] as [N, C, H, W] first.
func (m *Sequential) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	if m.ps != nil && m.ps.freed {
		return nil, fmt.Errorf("nn: Forward: the model was freed")
	}
	var err error
	if sh := m.spec.Shape; len(sh) == 3 && x != nil && len(x.shape) == 2 {
		if x.shape[1] != m.spec.In {
			return nil, fmt.Errorf("nn: Forward: input has shape %v, expected [N, %d] or [N, %d, %d, %d] (model %s)", x.shape, m.spec.In, sh[0], sh[1], sh[2], m.spec)
		}
		if x, err = g.Reshape(x, x.shape[0], sh[0], sh[1], sh[2]); err != nil {
			return nil, err
		}
	}
	for i, l := range m.modules {
		if x, err = l.Forward(g, x); err != nil {
			if ly, ok := l.(Layer); ok {
				return nil, fmt.Errorf("layer %d (%s): %w", i, ly.Spec(), err)
			}
			if m.hasSpec && i < len(m.spec.Layers) {
				return nil, fmt.Errorf("layer %d (%s): %w", i, m.spec.Layers[i], err)
			}
			return nil, fmt.Errorf("module %d (%T): %w", i, l, err)
		}
	}
	return x, nil
}

// Children lists the modules, named "0", "1", …
func (m *Sequential) Children() []Child { return m.children }

// OwnParams is empty: a Sequential's parameters belong to its modules.
func (m *Sequential) OwnParams() []*Param { return nil }

// SetTraining switches every module below the Sequential (dropout) between
// training and evaluation mode, like PyTorch's model.train() /
// model.eval(). (It applies to the whole subtree, as it always has, so
// calling it on a Sequential alone is enough.)
func (m *Sequential) SetTraining(training bool) {
	for _, c := range m.children {
		SetTraining(c.Module, training)
	}
}

// Modules lists the modules in order. The slice is the model's own.
func (m *Sequential) Modules() []Module { return m.modules }

// Layers lists the modules that are Layers (Linear, activations, Softmax,
// Dropout: all the modules of an MLP made by Build), each with its
// LayerSpec. The image modules (Conv2d, BatchNorm, the pools, Flatten) are
// not Layers; Spec().Layers has a LayerSpec for every module of a model
// made by Build, at its state_dict index.
func (m *Sequential) Layers() []Layer {
	out := make([]Layer, 0, len(m.modules))
	for _, mod := range m.modules {
		if l, ok := mod.(Layer); ok {
			out = append(out, l)
		}
	}
	return out
}

// ParamSet is the model's parameter arena: the one Build made, or the one
// NewParamSet attached; nil before that.
func (m *Sequential) ParamSet() *ParamSet {
	if m == nil {
		return nil
	}
	return m.ps
}

// set returns the ParamSet or an error saying there is none.
func (m *Sequential) set(op string) (*ParamSet, error) {
	if m.ps == nil {
		return nil, fmt.Errorf("nn: %s: the Sequential has no ParamSet yet (build it with Build, or call NewParamSet with it as the root)", op)
	}
	return m.ps, nil
}

// Params lists the parameters in state_dict order (and flat-buffer order).
// The slice is the model's own: do not modify it.
func (m *Sequential) Params() []*Param {
	if m.ps == nil {
		return NamedParams(m)
	}
	return m.ps.Params()
}

// Param returns the parameter with the given state_dict name, or nil.
func (m *Sequential) Param(name string) *Param {
	if m.ps == nil {
		return nil
	}
	return m.ps.Lookup(name)
}

// Spec is the architecture the model was built from (the zero Spec for a
// Sequential made by NewSequential).
func (m *Sequential) Spec() Spec { return m.spec }

// HasSpec reports whether the model was built from a spec (Build, Load).
func (m *Sequential) HasSpec() bool { return m.hasSpec }

// Device is the device holding the model's parameters (nil before a
// ParamSet is attached).
func (m *Sequential) Device() device.Device {
	if m.ps == nil {
		return nil
	}
	return m.ps.dev
}

// NumParams is the total number of parameters (the flat buffers' length).
func (m *Sequential) NumParams() int {
	if m.ps == nil {
		return 0
	}
	return m.ps.n
}

// Flat returns the whole flat parameter and gradient buffers (NumParams
// elements each; Param.Offset locates each parameter).
func (m *Sequential) Flat() (values, grads device.Buffer) {
	if m.ps == nil {
		return nil, nil
	}
	return m.ps.Flat()
}

// ZeroGrad sets every gradient to zero with one Fill over the flat
// gradient buffer. Call it before each step's Backward, which accumulates.
func (m *Sequential) ZeroGrad() error {
	ps, err := m.set("ZeroGrad")
	if err != nil {
		return err
	}
	if ps.freed {
		return fmt.Errorf("nn: ZeroGrad: the model was freed")
	}
	return ps.ZeroGrad()
}

// SetFrozen freezes the named parameters (frozen true) or unfreezes them,
// for fine-tuning: see ParamSet.SetFrozen. Setting Param.Frozen directly
// works too.
func (m *Sequential) SetFrozen(frozen bool, names ...string) error {
	ps, err := m.set("SetFrozen")
	if err != nil {
		return err
	}
	return ps.SetFrozen(frozen, names...)
}

// Free returns the model's ParamSet to the device; the model is unusable
// afterwards. Freeing twice is harmless.
func (m *Sequential) Free() error {
	if m.ps == nil {
		return nil
	}
	return m.ps.Free()
}
