package nn

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
)

// Param is a tensor of a module's state with its PyTorch state_dict name: a
// learnable parameter (a weight, a bias) or, with Buffer set, a buffer of
// non-trainable state saved in checkpoints (BatchNorm's running_mean).
//
// A module declares its parameters with NewParam and NewBuffer; NewParamSet
// then places every parameter of a model in one flat value buffer and one
// flat gradient buffer on the device (and every buffer in a third flat
// buffer, without gradients), so that zeroing gradients is one fill and an
// optimiser step one fused launch per contiguous run of trainable
// parameters. Each Param's Tensor is a view into its arena at Offset.
type Param struct {
	// Name is the full state_dict name ("features.0.weight"), set by
	// NewParamSet (and NamedParams).
	Name string
	// Local is the name within its module ("weight").
	Local string
	// Shape is the tensor's shape, fixed when the module is built.
	Shape []int
	// Init is how NewParamSet fills the tensor.
	Init ParamInit
	// Tensor is nil until NewParamSet places the parameter; its value (and,
	// for a parameter, its gradient) is a view into the set's arena.
	*Tensor
	// Offset is the element offset in the set's flat value and gradient
	// buffers, or in its flat buffer arena when Buffer is set.
	Offset int
	// Frozen parameters get no gradient and no optimiser update. It is read
	// at every forward (Graph.Param) and every optimiser step, so setting
	// it after the optimiser was made takes effect at the next step.
	Frozen bool
	// Buffer marks non-trainable state: no gradient, never in an optimiser
	// or clipping, saved and loaded with the parameters.
	Buffer bool
}

// NewParam declares a learnable parameter of the given shape, named local
// within its module. It has no tensor until NewParamSet places it.
func NewParam(local string, init ParamInit, shape ...int) *Param {
	return &Param{Local: local, Init: init, Shape: slices.Clone(shape)}
}

// NewBuffer declares a buffer: state saved in the state_dict that no
// optimiser touches (BatchNorm's running_mean and running_var).
func NewBuffer(local string, init ParamInit, shape ...int) *Param {
	return &Param{Local: local, Init: init, Shape: slices.Clone(shape), Buffer: true}
}

// numel is the element count of Shape (1 for a scalar, shape []).
func (p *Param) numel() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// syncFrozen makes the tensor's requires-grad flag follow Frozen and
// Buffer, so that setting the fields directly works as SetFrozen does.
func (p *Param) syncFrozen() { p.Tensor.requiresGrad = !p.Frozen && !p.Buffer }

// InitDist is the distribution of a ParamInit.
type InitDist uint8

// The distributions a ParamInit can draw from.
const (
	// DistConst fills every element with A (the zero ParamInit is zeros).
	DistConst InitDist = iota
	// DistNormal draws N(A, B²): mean A, standard deviation B.
	DistNormal
	// DistUniform draws U(A, B).
	DistUniform
)

// ParamInit says how NewParamSet fills a parameter. The zero value is
// zeros. Random draws come from the device's counter-based generator with
// the set's seed, at the positions NewParamSet documents, so every backend
// produces identical weights.
type ParamInit struct {
	Dist InitDist
	A, B float32 // DistConst: A; DistNormal: mean A, std B; DistUniform: [A, B)
}

// ZerosInit fills with 0.
func ZerosInit() ParamInit { return ParamInit{} }

// OnesInit fills with 1 (norm weights, running_var).
func OnesInit() ParamInit { return ParamInit{A: 1} }

// ConstantInit fills with v.
func ConstantInit(v float32) ParamInit { return ParamInit{A: v} }

// NormalInit draws N(mean, std²) (torch.nn.init.normal_).
func NormalInit(mean, std float32) ParamInit { return ParamInit{Dist: DistNormal, A: mean, B: std} }

// UniformInit draws U(lo, hi) (torch.nn.init.uniform_).
func UniformInit(lo, hi float32) ParamInit { return ParamInit{Dist: DistUniform, A: lo, B: hi} }

// DefaultInit is PyTorch's default init of nn.Linear and nn.ConvNd
// weights and biases for the given fan_in (in_features, or in_channels ×
// kernel size): U(−1/√fan_in, 1/√fan_in), which kaiming_uniform_ with
// a = √5 gives for the weight. fan_in < 1 is treated as 1.
func DefaultInit(fanIn int) ParamInit {
	b := float32(1 / math.Sqrt(float64(max(fanIn, 1))))
	return UniformInit(-b, b)
}

// String describes the init ("zeros", "const(1)", "normal(0,0.02)",
// "uniform(-0.1,0.1)").
func (in ParamInit) String() string {
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	switch in.Dist {
	case DistConst:
		if in.A == 0 {
			return "zeros"
		}
		return "const(" + f(in.A) + ")"
	case DistNormal:
		return "normal(" + f(in.A) + "," + f(in.B) + ")"
	case DistUniform:
		return "uniform(" + f(in.A) + "," + f(in.B) + ")"
	}
	return fmt.Sprintf("ParamInit(%d)", in.Dist)
}

func (in ParamInit) check() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch in.Dist {
	case DistConst:
		if !finite(in.A) {
			return fmt.Errorf("init %s: the constant is not finite", in)
		}
	case DistNormal:
		if !finite(in.A) || !finite(in.B) || in.B < 0 {
			return fmt.Errorf("init %s: expected a finite mean and a finite std ≥ 0", in)
		}
	case DistUniform:
		if !finite(in.A) || !finite(in.B) || in.A > in.B {
			return fmt.Errorf("init %s: expected finite bounds lo ≤ hi", in)
		}
	default:
		return fmt.Errorf("init: unknown distribution %d", in.Dist)
	}
	return nil
}

// apply fills n elements of x from the seed's stream starting at pos.
func (in ParamInit) apply(dev device.Device, x device.Buffer, n int, seed, pos uint64) error {
	switch in.Dist {
	case DistNormal:
		return dev.RandNormal(x, n, in.A, in.B, seed, pos)
	case DistUniform:
		return dev.RandUniform(x, n, in.A, in.B, seed, pos)
	}
	return dev.Fill(x, n, in.A)
}

// ParamSet is the parameter arena of one model: every parameter and buffer
// of a module tree, named, placed and initialised by NewParamSet.
// Trainable and frozen parameters are views into one flat value buffer and
// one flat gradient buffer (NumParams elements each, state_dict order);
// buffers are views into a third flat buffer without gradients. Optimisers,
// clipping, checkpoints and the trainer take a ParamSet, never a concrete
// model type.
type ParamSet struct {
	dev     device.Device
	root    Module
	params  []*Param // trainable and frozen, flat order = state_dict order
	buffers []*Param
	all     []*Param // params and buffers in state_dict order
	byName  map[string]*Param
	alias   map[string]*Param // later names of shared parameters
	values  device.Buffer
	grads   device.Buffer
	bufs    device.Buffer
	n, nb   int
	freed   bool
}

// NewParamSet lays out, allocates and initialises the parameters and
// buffers of the module tree rooted at root on dev: it sets each one's
// Name (full state_dict name), Offset and Tensor. A parameter shared by two
// modules (tied weights) is placed once, under its first name.
//
// Random positions: state_dict entry k (parameters and buffers alike, in
// state_dict order) draws its n_k values from the stream of seed at
// positions [pos_k, pos_k + n_k), pos_0 = 0 and pos_{k+1} = pos_k + n_k
// rounded up to a multiple of 4, whatever its distribution (a constant
// fill consumes its range too). So each tensor has its own range of the
// stream, and a model built by Build draws exactly what it always drew.
//
// When root is a *Sequential made by NewSequential, the set is also
// attached to it, so that its Flat, ZeroGrad, StateDict, … work.
func NewParamSet(dev device.Device, root Module, seed uint64) (*ParamSet, error) {
	if dev == nil {
		return nil, fmt.Errorf("nn: NewParamSet: nil device")
	}
	if root == nil {
		return nil, fmt.Errorf("nn: NewParamSet: nil module")
	}
	all, alias, err := collect(root)
	if err != nil {
		return nil, err
	}
	ps := &ParamSet{dev: dev, root: root, all: all, alias: alias, byName: map[string]*Param{}}
	for _, p := range all {
		if p.Tensor != nil && p.Tensor.val != nil {
			return nil, fmt.Errorf("nn: NewParamSet: parameter %q is already placed in another live ParamSet", p.Name)
		}
		for i, d := range p.Shape {
			if d < 1 {
				return nil, fmt.Errorf("nn: NewParamSet: parameter %q: shape %v: dimension %d is %d, expected ≥ 1", p.Name, p.Shape, i, d)
			}
		}
		if err := p.Init.check(); err != nil {
			return nil, fmt.Errorf("nn: NewParamSet: parameter %q: %w", p.Name, err)
		}
		ps.byName[p.Name] = p
		if p.Buffer {
			p.Offset = ps.nb
			ps.nb += p.numel()
			ps.buffers = append(ps.buffers, p)
		} else {
			p.Offset = ps.n
			ps.n += p.numel()
			ps.params = append(ps.params, p)
		}
	}
	fail := func(err error) (*ParamSet, error) {
		_ = ps.Free()
		return nil, fmt.Errorf("nn: NewParamSet: %w", err)
	}
	if ps.n > 0 {
		if ps.values, err = dev.Alloc(device.Float32, ps.n); err != nil {
			return fail(fmt.Errorf("parameters (%d values): %w", ps.n, err))
		}
		if ps.grads, err = dev.Alloc(device.Float32, ps.n); err != nil {
			return fail(fmt.Errorf("gradients (%d values): %w", ps.n, err))
		}
	}
	if ps.nb > 0 {
		if ps.bufs, err = dev.Alloc(device.Float32, ps.nb); err != nil {
			return fail(fmt.Errorf("buffers (%d values): %w", ps.nb, err))
		}
	}
	var pos uint64
	for _, p := range all {
		t := &Tensor{dev: dev}
		if err := t.setShape(p.Shape); err != nil {
			return fail(err)
		}
		if p.Buffer {
			if t.val, err = dev.View(ps.bufs, p.Offset, t.n); err != nil {
				return fail(err)
			}
		} else {
			if t.val, err = dev.View(ps.values, p.Offset, t.n); err != nil {
				return fail(err)
			}
			if t.grad, err = dev.View(ps.grads, p.Offset, t.n); err != nil {
				return fail(err)
			}
			t.accumulate = true
		}
		p.Tensor = t
		p.syncFrozen()
		if err := p.Init.apply(dev, t.val, t.n, seed, pos); err != nil {
			return fail(fmt.Errorf("initialising %s: %w", p.Name, err))
		}
		pos += uint64(t.n+3) &^ 3
	}
	if s, ok := root.(*Sequential); ok && s.ps == nil {
		s.ps = ps
	}
	return ps, nil
}

// Device is the device holding the set's arenas.
func (ps *ParamSet) Device() device.Device { return ps.dev }

// Root is the module tree the set was built for.
func (ps *ParamSet) Root() Module { return ps.root }

// Params lists the trainable and frozen parameters (not buffers) in
// state_dict order, which is also their order in the flat buffers. The
// slice is the set's own: do not modify it.
func (ps *ParamSet) Params() []*Param { return ps.params }

// Buffers lists the buffers in state_dict order. The slice is the set's
// own: do not modify it.
func (ps *ParamSet) Buffers() []*Param { return ps.buffers }

// All lists parameters and buffers together in state_dict order. The slice
// is the set's own: do not modify it.
func (ps *ParamSet) All() []*Param { return ps.all }

// Lookup returns the parameter or buffer with the given full name (or a
// later name of a shared parameter), or nil.
func (ps *ParamSet) Lookup(name string) *Param {
	if p := ps.byName[name]; p != nil {
		return p
	}
	return ps.alias[name]
}

// NumParams is the number of parameter values (trainable and frozen): the
// length of each flat buffer of Flat.
func (ps *ParamSet) NumParams() int { return ps.n }

// NumBuffers is the number of buffer values (the length of BufferFlat).
func (ps *ParamSet) NumBuffers() int { return ps.nb }

// Flat returns the whole flat parameter and gradient buffers (NumParams
// elements each; Param.Offset locates each parameter). Both are nil for a
// set without parameters, or once freed.
func (ps *ParamSet) Flat() (values, grads device.Buffer) { return ps.values, ps.grads }

// BufferFlat returns the flat buffer arena (NumBuffers elements), nil when
// the model has no buffers.
func (ps *ParamSet) BufferFlat() device.Buffer { return ps.bufs }

// Freed reports whether Free was called.
func (ps *ParamSet) Freed() bool { return ps.freed }

// ZeroGrad sets every gradient to zero with one Fill over the flat
// gradient buffer. Call it before each step's Backward, which accumulates.
func (ps *ParamSet) ZeroGrad() error {
	if ps.freed {
		return fmt.Errorf("nn: ZeroGrad: the parameters were freed")
	}
	if ps.n == 0 {
		return nil
	}
	return ps.dev.Fill(ps.grads, ps.n, 0)
}

// SetFrozen freezes (frozen true) or unfreezes the named parameters, for
// fine-tuning. A name is an exact parameter name or a prefix ending in "."
// ("features.") that selects every parameter under it. A name that selects
// nothing is an error listing the known names, and then nothing is
// changed. Buffers are never trained; selecting one changes nothing.
func (ps *ParamSet) SetFrozen(frozen bool, names ...string) error {
	var unknown []string
	var sel []*Param
	for _, n := range names {
		found := false
		if strings.HasSuffix(n, ".") {
			for _, p := range ps.all {
				if strings.HasPrefix(p.Name, n) {
					sel = append(sel, p)
					found = true
				}
			}
		} else if p := ps.Lookup(n); p != nil {
			sel = append(sel, p)
			found = true
		}
		if !found {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(ps.all))
		for _, p := range ps.all {
			known = append(known, p.Name)
		}
		return fmt.Errorf("nn: SetFrozen: unknown parameter(s) %s; the model has %s (a prefix must end in \".\")",
			strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	for _, p := range sel {
		if p.Buffer {
			continue
		}
		p.Frozen = frozen
		p.syncFrozen()
	}
	return nil
}

// Free returns the arenas to the device; the parameters' tensors become
// unusable (Graph.Param reports it) and may be placed again by a new
// NewParamSet. Freeing twice is harmless.
func (ps *ParamSet) Free() error {
	var errs []error
	for _, b := range []device.Buffer{ps.values, ps.grads, ps.bufs} {
		if b != nil {
			if err := ps.dev.Free(b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	ps.values, ps.grads, ps.bufs = nil, nil, nil
	for _, p := range ps.all {
		if p.Tensor != nil {
			p.Tensor.val, p.Tensor.grad = nil, nil
		}
	}
	ps.freed = true
	return errors.Join(errs...)
}

// StateDict copies every parameter, buffer and Stateful module's extra
// state to the host, with PyTorch names, in state_dict order (each module's
// parameters, then its buffers, then its extra state, then its children).
// Metadata is empty and ready for the caller's entries.
func (ps *ParamSet) StateDict() (*StateDict, error) {
	if ps.freed {
		return nil, fmt.Errorf("nn: StateDict: the parameters were freed")
	}
	flat := make([]float32, ps.n)
	if ps.n > 0 {
		if err := ps.dev.ReadF32(flat, ps.values, 0); err != nil {
			return nil, fmt.Errorf("nn: StateDict: %w", err)
		}
	}
	bflat := make([]float32, ps.nb)
	if ps.nb > 0 {
		if err := ps.dev.ReadF32(bflat, ps.bufs, 0); err != nil {
			return nil, fmt.Errorf("nn: StateDict: %w", err)
		}
	}
	sd := &StateDict{Tensors: map[string]HostTensor{}, Metadata: map[string]string{}}
	err := Walk(ps.root, func(prefix string, m Module) error {
		for _, p := range m.OwnParams() {
			name := join(prefix, p.Local)
			if ps.byName[name] != p {
				if ps.alias[name] == p {
					continue // a shared parameter, saved under its first name
				}
				return fmt.Errorf("nn: StateDict: parameter %q is not in the set: the module tree changed after NewParamSet", name)
			}
			src := flat
			if p.Buffer {
				src = bflat
			}
			n := p.numel()
			sd.Names = append(sd.Names, name)
			sd.Tensors[name] = HostTensor{Shape: slices.Clone(p.Shape), Data: src[p.Offset : p.Offset+n : p.Offset+n]}
		}
		if s, ok := m.(Stateful); ok {
			for _, e := range s.ExtraState() {
				name := join(prefix, e.Local)
				sd.Names = append(sd.Names, name)
				sd.Tensors[name] = e.Tensor
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sd, nil
}

// LoadOptions says how LoadStateDict matches names.
type LoadOptions struct {
	// Strict makes any missing or unexpected key an error listing them all
	// by name (PyTorch's strict=True). Without it, missing entries keep
	// their current values and unexpected ones are ignored; both are
	// reported in the LoadReport.
	Strict bool
}

// LoadReport lists the keys LoadStateDict did not match: entries of the
// model absent from the state dict (state_dict order) and entries of the
// state dict the model does not have (sorted).
type LoadReport struct {
	Missing, Unexpected []string
}

// extraAt is one extra-state entry of the model.
type extraAt struct {
	name, local string
	s           Stateful
	cur         HostTensor
}

// LoadStateDict copies a state dict into the set. It is all or nothing:
// every name, shape and dtype is validated first — a wrong shape is an
// error even without Strict, as in PyTorch — and only then is anything
// copied, so on any error nothing in the set changes. Errors name the file
// (StateDict.Path), the tensor and the expected shape. A shared parameter
// is loaded from its first name, or from a later one when only that is
// present.
func (ps *ParamSet) LoadStateDict(sd *StateDict, opt LoadOptions) (LoadReport, error) {
	var rep LoadReport
	if ps.freed {
		return rep, fmt.Errorf("nn: LoadStateDict: the parameters were freed")
	}
	if sd == nil {
		return rep, fmt.Errorf("nn: LoadStateDict: nil state dict")
	}
	where := sd.where()
	used := map[string]bool{}
	var errs []error
	src := make([]string, len(ps.all)) // key each parameter is loaded from, "" when missing
	for i, p := range ps.all {
		key := p.Name
		if _, ok := sd.Tensors[key]; !ok {
			key = ""
			for an, ap := range ps.alias {
				if ap == p {
					if _, ok := sd.Tensors[an]; ok && (key == "" || an < key) {
						key = an
					}
				}
			}
		}
		for an, ap := range ps.alias {
			if ap == p {
				used[an] = true // an alias of a known parameter is never unexpected
			}
		}
		used[p.Name] = true
		if key == "" {
			rep.Missing = append(rep.Missing, p.Name)
			continue
		}
		src[i] = key
		t := sd.Tensors[key]
		if t.DType != HostF32 {
			errs = append(errs, fmt.Errorf("tensor %q has dtype %s, expected F32 (or F16/BF16/F64, converted on load) with shape %v", key, t.DType, p.Shape))
			continue
		}
		if !slices.Equal(t.Shape, p.Shape) {
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, expected %v", key, t.Shape, p.Shape))
			continue
		}
		if len(t.Data) != p.numel() {
			errs = append(errs, fmt.Errorf("tensor %q has %d values, expected %d for shape %v", key, len(t.Data), p.numel(), p.Shape))
		}
	}
	var extras []extraAt
	_ = Walk(ps.root, func(prefix string, m Module) error {
		if s, ok := m.(Stateful); ok {
			for _, e := range s.ExtraState() {
				extras = append(extras, extraAt{join(prefix, e.Local), e.Local, s, e.Tensor})
			}
		}
		return nil
	})
	var loadExtras []extraAt
	for _, e := range extras {
		used[e.name] = true
		t, ok := sd.Tensors[e.name]
		if !ok {
			rep.Missing = append(rep.Missing, e.name)
			continue
		}
		if t.DType != e.cur.DType || !slices.Equal(t.Shape, e.cur.Shape) || t.count() != e.cur.count() {
			errs = append(errs, fmt.Errorf("tensor %q has dtype %s and shape %v, expected %s with shape %v", e.name, t.DType, t.Shape, e.cur.DType, e.cur.Shape))
			continue
		}
		e.cur = t
		loadExtras = append(loadExtras, e)
	}
	for n := range sd.Tensors {
		if !used[n] {
			rep.Unexpected = append(rep.Unexpected, n)
		}
	}
	sort.Strings(rep.Unexpected)
	if opt.Strict {
		for _, n := range rep.Missing {
			var shape []int
			if p := ps.byName[n]; p != nil {
				shape = p.Shape
			}
			for _, e := range extras {
				if e.name == n {
					shape = e.cur.Shape
				}
			}
			errs = append(errs, fmt.Errorf("missing tensor %q (expected shape %v)", n, shape))
		}
		if len(rep.Unexpected) > 0 {
			errs = append(errs, fmt.Errorf("unexpected tensor(s) [%s] not in the model", strings.Join(quoteEach(rep.Unexpected), " ")))
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("nn: loading %s: %w", where, errors.Join(errs...))
	}
	// Everything is valid: copy. Arenas are written whole, read first
	// when some entries keep their current values.
	write := func(arena device.Buffer, n int, buffer bool) error {
		if n == 0 {
			return nil
		}
		flat := make([]float32, n)
		complete := true
		for i, p := range ps.all {
			if p.Buffer == buffer && src[i] == "" {
				complete = false
			}
		}
		if !complete {
			if err := ps.dev.ReadF32(flat, arena, 0); err != nil {
				return err
			}
		}
		for i, p := range ps.all {
			if p.Buffer == buffer && src[i] != "" {
				copy(flat[p.Offset:p.Offset+p.numel()], sd.Tensors[src[i]].Data)
			}
		}
		return ps.dev.WriteF32(arena, 0, flat)
	}
	if err := write(ps.values, ps.n, false); err != nil {
		return rep, fmt.Errorf("nn: loading %s: %w", where, err)
	}
	if err := write(ps.bufs, ps.nb, true); err != nil {
		return rep, fmt.Errorf("nn: loading %s: %w", where, err)
	}
	for _, e := range loadExtras {
		if err := e.s.SetExtraState(e.local, e.cur); err != nil {
			return rep, fmt.Errorf("nn: loading %s: extra state %q: %w", where, e.name, err)
		}
	}
	return rep, nil
}

func quoteEach(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return q
}

// ParamSet returns ps itself, so that a *ParamSet can be passed wherever a
// model owning a set is accepted (train.ParamSource).
func (ps *ParamSet) ParamSet() *ParamSet { return ps }
