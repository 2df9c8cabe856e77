package nn

import (
	"fmt"
)

// Module is a building block of a model: anything that maps a tensor to a
// tensor through graph ops and may hold parameters, buffers and
// submodules, as PyTorch's nn.Module does. A new layer is written as
// forward ops only; the graph derives its backward pass.
//
// A module declares its parameters (OwnParams) and its submodules
// (Children) but does not allocate them: NewParamSet walks the tree, gives
// every parameter its full PyTorch state_dict name ("features.0.weight"),
// places all of them in one flat arena on the device and initialises them.
// Forward reads each parameter through Graph.Param, which honours
// Param.Frozen at that moment.
type Module interface {
	// Forward computes the module's output for input x on graph g.
	Forward(g *Graph, x *Tensor) (*Tensor, error)
	// Children lists the direct submodules in state_dict order, each with
	// its name segment ("0", "features", "attn"). The slice may be the
	// module's own: callers must not modify it.
	Children() []Child
	// OwnParams lists the parameters and buffers held directly by this
	// module (not by its children), in PyTorch's order: parameters in
	// registration order, then buffers. Their Local names ("weight",
	// "running_mean") are unique within the module and contain no dot.
	OwnParams() []*Param
	// SetTraining switches this module's own training behaviour (dropout
	// masks, batch statistics) on or off; the package function SetTraining
	// applies it to a whole tree.
	SetTraining(training bool)
}

// Child is a named direct submodule.
type Child struct {
	Name   string // the name segment in state_dict names, without dots
	Module Module
}

// Stateful is implemented by modules whose state_dict holds host-side
// values that are not device parameters or buffers, e.g. BatchNorm's int64
// num_batches_tracked. ParamSet.StateDict writes them after the module's
// own parameters and buffers; LoadStateDict validates the dtype and shape
// of each against the current ExtraState before calling SetExtraState, so
// SetExtraState sees only tensors of the layout it reported.
type Stateful interface {
	// ExtraState returns the module's extra state, Local names without
	// dots, in state_dict order. The tensors are copies the caller may
	// keep.
	ExtraState() []NamedHost
	// SetExtraState sets one entry by its Local name.
	SetExtraState(local string, t HostTensor) error
}

// NamedHost is one named entry of a module's extra state.
type NamedHost struct {
	Local  string
	Tensor HostTensor
}

// SetTraining switches every module of the tree rooted at m between
// training (true) and evaluation mode, like PyTorch's model.train() and
// model.eval().
func SetTraining(m Module, training bool) {
	_ = Walk(m, func(_ string, sub Module) error {
		sub.SetTraining(training)
		return nil
	})
}

// Walk calls fn for m and every module below it, parents before children
// (pre-order, children in state_dict order), with each module's name
// prefix: "" for m itself, "features", "features.0", … It stops at, and
// returns, the first error fn returns. A nil child is an error.
func Walk(m Module, fn func(prefix string, m Module) error) error {
	if m == nil {
		return fmt.Errorf("nn: Walk: nil module")
	}
	return walk("", m, fn, 0)
}

// maxDepth bounds the module tree's depth, so a cycle (a module that is its
// own descendant) is an error instead of endless recursion.
const maxDepth = 256

func walk(prefix string, m Module, fn func(string, Module) error, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nn: module tree deeper than %d at %q: is a module its own descendant?", maxDepth, prefix)
	}
	if err := fn(prefix, m); err != nil {
		return err
	}
	for _, c := range m.Children() {
		name := join(prefix, c.Name)
		if c.Module == nil {
			return fmt.Errorf("nn: module %q is nil", name)
		}
		if err := walk(name, c.Module, fn, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// NamedParams returns every parameter and buffer of the tree rooted at m in
// state_dict order, each once (a parameter shared by two modules, such as
// tied embeddings, is listed under its first name), and sets each one's
// Name to its full state_dict name. It returns nil when the tree is
// malformed (see NewParamSet, which reports why).
func NamedParams(m Module) []*Param {
	ps, _, err := collect(m)
	if err != nil {
		return nil
	}
	return ps
}

// statefulAt is a Stateful module with its name prefix.
type statefulAt struct {
	prefix string
	s      Stateful
}

// collect walks the tree, names every parameter, and checks the names:
// Local names non-empty without dots, child names likewise, no two entries
// with the same full name. It returns the parameters in state_dict order,
// the aliases (later names of shared parameters) and the Stateful modules.
func collect(m Module) ([]*Param, map[string]*Param, error) {
	var out []*Param
	seen := map[*Param]bool{}
	names := map[string]bool{}
	var alias map[string]*Param
	err := Walk(m, func(prefix string, sub Module) error {
		for _, c := range sub.Children() {
			if !validSegment(c.Name) {
				return fmt.Errorf("nn: module %q has a child named %q: expected a non-empty name without dots", prefix, c.Name)
			}
		}
		for _, p := range sub.OwnParams() {
			if p == nil {
				return fmt.Errorf("nn: module %q lists a nil parameter", prefix)
			}
			if !validSegment(p.Local) {
				return fmt.Errorf("nn: module %q has a parameter with local name %q: expected a non-empty name without dots", prefix, p.Local)
			}
			name := join(prefix, p.Local)
			if names[name] {
				return fmt.Errorf("nn: two parameters are named %q", name)
			}
			names[name] = true
			if seen[p] {
				if alias == nil {
					alias = map[string]*Param{}
				}
				alias[name] = p
				continue
			}
			seen[p] = true
			p.Name = name
			out = append(out, p)
		}
		if s, ok := sub.(Stateful); ok {
			for _, e := range s.ExtraState() {
				if !validSegment(e.Local) {
					return fmt.Errorf("nn: module %q has extra state named %q: expected a non-empty name without dots", prefix, e.Local)
				}
				name := join(prefix, e.Local)
				if names[name] {
					return fmt.Errorf("nn: two state_dict entries are named %q", name)
				}
				names[name] = true
			}
		}
		return nil
	})
	return out, alias, err
}

func validSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return false
		}
	}
	return true
}

// Param returns the tensor of parameter p for use in this step's ops,
// first making its requires-grad flag follow p.Frozen (and p.Buffer) as
// they are now, so that freezing takes effect at the next forward. Layers
// call it in Forward for each parameter they use. It is an error when p
// was not placed by NewParamSet, its set was freed, or it lives on another
// device.
func (g *Graph) Param(p *Param) (*Tensor, error) {
	if p == nil {
		return nil, fmt.Errorf("nn: Param: nil parameter")
	}
	if p.Tensor == nil {
		return nil, fmt.Errorf("nn: parameter %q (local %q) has no tensor: build its ParamSet with NewParamSet first", p.Name, p.Local)
	}
	if p.Tensor.val == nil {
		return nil, fmt.Errorf("nn: parameter %q: its ParamSet was freed", p.Name)
	}
	if p.Tensor.dev != g.dev {
		return nil, fmt.Errorf("nn: parameter %q lives on device %s, the graph on %s", p.Name, p.Tensor.dev.Name(), g.dev.Name())
	}
	p.syncFrozen()
	return p.Tensor, nil
}

// OptionalParam is Param for a parameter that may be absent (a Linear
// without bias): nil gives nil.
func (g *Graph) OptionalParam(p *Param) (*Tensor, error) {
	if p == nil {
		return nil, nil
	}
	return g.Param(p)
}
