package train

import (
	"fmt"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// Optimizer updates a model's trainable parameters from their gradients.
// Every implementation launches one fused device update per contiguous run
// of trainable parameters in the model's flat buffers, so a step costs a
// handful of launches however many layers the model has.
type Optimizer interface {
	// Step applies one update from the gradients currently in the model's
	// flat gradient buffer and advances the step counter.
	Step() error
	// SetLR sets the learning rate used from the next Step on; schedules
	// call it.
	SetLR(lr float32)
	// LR is the learning rate the next Step will use.
	LR() float32
	// Steps is the number of updates applied so far (PyTorch's state "step").
	Steps() int
	// State copies the optimiser's state to the host, for checkpoints.
	State() (OptimizerState, error)
	// LoadState restores a state taken by State from an optimiser of the
	// same kind over a model of the same layout.
	LoadState(OptimizerState) error
	// Free releases the device buffers the optimiser owns.
	Free() error
}

// OptimizerState is an optimiser's complete state on the host: enough to
// resume training so that the next update is bit for bit the one an
// uninterrupted run would make.
type OptimizerState struct {
	// Kind is "sgd", "adam" or "adamw".
	Kind string `json:"kind"`
	// Step is the number of updates applied so far.
	Step int `json:"step"`
	// LR is the current learning rate (of the default group; every group's
	// rate is its base rate scaled by LR / the optimiser's base rate).
	LR float32 `json:"lr"`
	// Buffers holds the per-parameter state ("momentum_buffer" for SGD,
	// "exp_avg" and "exp_avg_sq" for Adam, PyTorch's names), each laid out
	// exactly like the ParamSet's flat parameter buffer (Param.Offset).
	// Checkpoints store them per parameter name (see SaveCheckpoint).
	Buffers map[string][]float32 `json:"-"`
	// ParamSteps is the number of updates each parameter received, by
	// name, when it differs from Step (a parameter frozen for some steps:
	// like PyTorch, its bias correction counts only its own updates).
	// Parameters not listed received Step updates.
	ParamSteps map[string]int `json:"param_steps,omitempty"`
}

// ParamSource is what optimisers, clipping and the trainer take: a
// parameter set, or a model that owns one. *nn.ParamSet and *nn.Sequential
// (built by nn.Build) implement it.
type ParamSource interface {
	ParamSet() *nn.ParamSet
}

// ParamGroup is one of PyTorch's param_groups: parameters updated with
// their own learning rate and weight decay.
type ParamGroup struct {
	// Name identifies the group in errors ("decay", "no_decay", "head").
	Name string
	// Params are parameters of the optimiser's ParamSet (not buffers); a
	// parameter may be in one group at most. Parameters in no group form
	// the default group, which uses the optimiser's config.
	Params []*nn.Param
	// LR is the group's base learning rate; 0 means the optimiser's.
	LR float32
	// WeightDecay is the group's weight decay (L2 for SGD and Adam,
	// decoupled for AdamW); 0 is none — it does not inherit the
	// optimiser's.
	WeightDecay float32
}

// DecayGroups is nanoGPT's split of a model's parameters for AdamW:
// weight decay wd on every parameter with two or more dimensions
// (matrices, convolution kernels, embeddings), none on the others (biases,
// norm weights). The groups are named "decay" and "no_decay".
func DecayGroups(src ParamSource, wd float32) []ParamGroup {
	decay := ParamGroup{Name: "decay", WeightDecay: wd}
	none := ParamGroup{Name: "no_decay"}
	if src == nil || src.ParamSet() == nil {
		return []ParamGroup{decay, none}
	}
	for _, p := range src.ParamSet().Params() {
		if len(p.Shape) >= 2 {
			decay.Params = append(decay.Params, p)
		} else {
			none.Params = append(none.Params, p)
		}
	}
	return []ParamGroup{decay, none}
}

// run is a contiguous range of trainable elements in the flat buffers,
// of one group, whose parameters have all taken the same number of steps.
type run struct {
	off, n int
	group  int // index in base.groups
	first  int // index in base.params of its first parameter
}

// trainableRuns merges the trainable parameters into maximal contiguous
// ranges of their flat buffers, so that each range is one launch.
func trainableRuns(params []*nn.Param) []run {
	var runs []run
	for _, r := range layoutRuns(params, nil, nil, nil) {
		runs = append(runs, run{off: r.off, n: r.n})
	}
	return runs
}

// layoutRuns appends to dst the runs of params (in flat order): maximal
// ranges of adjacent trainable parameters with the same group and step
// count (group and steps may be nil: all equal).
func layoutRuns(params []*nn.Param, group, steps []int, dst []run) []run {
	dst = dst[:0]
	for i, p := range params {
		if p == nil || p.Frozen || p.Buffer || p.Tensor == nil || p.Len() == 0 {
			continue
		}
		g := 0
		if group != nil {
			g = group[i]
		}
		if k := len(dst) - 1; k >= 0 && dst[k].off+dst[k].n == p.Offset && dst[k].group == g &&
			(steps == nil || steps[dst[k].first] == steps[i]) {
			dst[k].n += p.Len()
			continue
		}
		dst = append(dst, run{off: p.Offset, n: p.Len(), group: g, first: i})
	}
	return dst
}

// groupState is one parameter group as the optimiser applies it.
type groupState struct {
	name   string
	baseLR float32 // the group's rate when the optimiser's rate is its base rate
	lr, wd float32 // current
}

// base is what every optimiser shares: the parameter set, its groups, the
// runs and views of its flat parameter and gradient buffers, and the
// moment buffers. The runs are recomputed when a parameter's Frozen
// changes (checked at every Step, without allocating).
type base struct {
	dev     device.Device
	ps      *nn.ParamSet
	total   int // elements in the flat parameter buffer
	params  []*nn.Param
	group   []int  // per parameter: its group
	steps   []int  // per parameter: updates received
	frozen  []bool // per parameter: Frozen when the runs were made
	groups  []groupState
	baseLR  float32 // the optimiser's rate at construction
	lr      float32 // the optimiser's current rate
	laidOut bool

	runs    []run
	p, g    []device.Buffer   // per-run views of the flat values and grads
	names   []string          // moment buffer names, in order
	moments []device.Buffer   // whole flat moment buffers, laid out like the params
	mv      [][]device.Buffer // per moment, per-run views
	step    int
}

func newBase(src ParamSource, lr float32, defaultWD float32, groups []ParamGroup, names ...string) (*base, error) {
	if src == nil {
		return nil, fmt.Errorf("train: optimizer: parameters are nil")
	}
	ps := src.ParamSet()
	if ps == nil {
		return nil, fmt.Errorf("train: optimizer: the model has no parameter set")
	}
	values, grads := ps.Flat()
	if values == nil || grads == nil {
		return nil, fmt.Errorf("train: optimizer: the model has no flat parameter or gradient buffer (no parameters, or freed)")
	}
	dev := values.Device()
	params := ps.Params()
	b := &base{dev: dev, ps: ps, total: values.Len(), params: params, names: names, baseLR: lr, lr: lr,
		group: make([]int, len(params)), steps: make([]int, len(params)), frozen: make([]bool, len(params))}
	b.groups = append(b.groups, groupState{name: "default", baseLR: lr, lr: lr, wd: defaultWD})
	index := make(map[*nn.Param]int, len(params))
	for i, p := range params {
		index[p] = i
	}
	for gi, g := range groups {
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("group %d", gi)
		}
		if !(g.LR >= 0) || !(g.WeightDecay >= 0) {
			return nil, fmt.Errorf("train: optimizer: param group %q: LR %g and WeightDecay %g, expected values ≥ 0", name, g.LR, g.WeightDecay)
		}
		gs := groupState{name: name, baseLR: g.LR, wd: g.WeightDecay}
		if gs.baseLR == 0 {
			gs.baseLR = lr
		}
		gs.lr = gs.baseLR
		b.groups = append(b.groups, gs)
		for _, p := range g.Params {
			i, ok := index[p]
			if !ok {
				what := "is not a parameter of the optimiser's ParamSet"
				if p != nil && p.Buffer {
					what = "is a buffer, which no optimiser updates"
				}
				pn := "<nil>"
				if p != nil {
					pn = p.Name
				}
				return nil, fmt.Errorf("train: optimizer: param group %q: %q %s", name, pn, what)
			}
			if b.group[i] != 0 {
				return nil, fmt.Errorf("train: optimizer: parameter %q is in param groups %q and %q, expected one at most",
					p.Name, b.groups[b.group[i]].name, name)
			}
			b.group[i] = gi + 1
		}
	}
	for _, name := range names {
		buf, err := dev.Alloc(device.Float32, b.total)
		if err != nil {
			b.Free()
			return nil, fmt.Errorf("train: optimizer: allocating %s (%d values): %w", name, b.total, err)
		}
		b.moments = append(b.moments, buf)
	}
	b.mv = make([][]device.Buffer, len(names))
	if err := b.layout(); err != nil {
		b.Free()
		return nil, err
	}
	return b, nil
}

// layout recomputes the runs and their views when a parameter's Frozen
// changed since the last time (or on the first call). In a steady step it
// only compares flags and allocates nothing.
func (b *base) layout() error {
	changed := !b.laidOut
	for i, p := range b.params {
		if p.Frozen != b.frozen[i] {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	for i, p := range b.params {
		b.frozen[i] = p.Frozen
	}
	b.runs = layoutRuns(b.params, b.group, b.steps, b.runs)
	values, grads := b.ps.Flat()
	if values == nil {
		return fmt.Errorf("train: optimizer: the parameters were freed")
	}
	var err error
	if b.p, err = flatViews(b.dev, values, b.runs, b.p); err != nil {
		return fmt.Errorf("train: optimizer: %w", err)
	}
	if b.g, err = flatViews(b.dev, grads, b.runs, b.g); err != nil {
		return fmt.Errorf("train: optimizer: %w", err)
	}
	for k, m := range b.moments {
		if b.mv[k], err = flatViews(b.dev, m, b.runs, b.mv[k]); err != nil {
			return fmt.Errorf("train: optimizer: %w", err)
		}
	}
	b.laidOut = true
	return nil
}

// flatViews holds, for each run, a view of one flat buffer (reusing dst's
// storage); views are made when the layout changes so that a step creates
// nothing.
func flatViews(dev device.Device, b device.Buffer, runs []run, dst []device.Buffer) ([]device.Buffer, error) {
	dst = dst[:0]
	for _, r := range runs {
		v, err := dev.View(b, r.off, r.n)
		if err != nil {
			return nil, err
		}
		dst = append(dst, v)
	}
	return dst, nil
}

// advance counts one update for every trainable parameter.
func (b *base) advance() {
	b.step++
	for i, p := range b.params {
		if !b.frozen[i] && p.Len() > 0 {
			b.steps[i]++
		}
	}
}

// setLR sets the optimiser's rate and scales every group's with it.
func (b *base) setLR(lr float32) {
	b.lr = lr
	for i := range b.groups {
		g := &b.groups[i]
		if b.baseLR == 0 {
			g.lr = lr
			continue
		}
		// Exact for the default group: (lr·base)/base in float64 is lr.
		g.lr = float32(float64(g.baseLR) * float64(lr) / float64(b.baseLR))
	}
}

// Steps is the number of updates applied so far.
func (b *base) Steps() int { return b.step }

// LR is the learning rate of the next step (the default group's).
func (b *base) LR() float32 { return b.lr }

// SetLR sets the learning rate of the next steps; every group's rate is
// scaled in proportion (a group with base rate 2× the optimiser's keeps
// twice the scheduled rate).
func (b *base) SetLR(lr float32) { b.setLR(lr) }

// GroupLR is the current learning rate of the named group ("default" for
// the parameters in no group); ok is false for an unknown name.
func (b *base) GroupLR(name string) (lr float32, ok bool) {
	for _, g := range b.groups {
		if g.name == name {
			return g.lr, true
		}
	}
	return 0, false
}

// Free releases the moment buffers.
func (b *base) Free() error {
	var first error
	for _, m := range b.moments {
		if m != nil && !m.Freed() {
			if err := b.dev.Free(m); err != nil && first == nil {
				first = err
			}
		}
	}
	b.moments, b.mv = nil, nil
	return first
}

func (b *base) state(kind string) (OptimizerState, error) {
	st := OptimizerState{Kind: kind, Step: b.step, LR: b.lr, Buffers: map[string][]float32{}}
	for i, name := range b.names {
		host := make([]float32, b.total)
		if err := b.dev.ReadF32(host, b.moments[i], 0); err != nil {
			return OptimizerState{}, fmt.Errorf("train: optimizer state: reading %s: %w", name, err)
		}
		st.Buffers[name] = host
	}
	for i, p := range b.params {
		if b.steps[i] != b.step {
			if st.ParamSteps == nil {
				st.ParamSteps = map[string]int{}
			}
			st.ParamSteps[p.Name] = b.steps[i]
		}
	}
	return st, nil
}

func (b *base) loadState(kind string, st OptimizerState) error {
	if st.Kind != kind {
		return fmt.Errorf("train: optimizer state: field kind is %q, expected %q", st.Kind, kind)
	}
	if st.Step < 0 {
		return fmt.Errorf("train: optimizer state: field step is %d, expected a count ≥ 0", st.Step)
	}
	for _, name := range b.names {
		host, ok := st.Buffers[name]
		if !ok {
			return fmt.Errorf("train: optimizer state: buffer %q is missing, expected %d values", name, b.total)
		}
		if len(host) != b.total {
			return fmt.Errorf("train: optimizer state: buffer %q has %d values, expected %d (the model's flat parameter count)",
				name, len(host), b.total)
		}
	}
	for name, n := range st.ParamSteps {
		if b.ps.Lookup(name) == nil || b.ps.Lookup(name).Buffer {
			return fmt.Errorf("train: optimizer state: field param_steps names %q, which is not a parameter of the model", name)
		}
		if n < 0 || n > st.Step {
			return fmt.Errorf("train: optimizer state: param_steps[%q] is %d, expected 0 … %d", name, n, st.Step)
		}
	}
	for i, name := range b.names {
		if err := b.dev.WriteF32(b.moments[i], 0, st.Buffers[name]); err != nil {
			return fmt.Errorf("train: optimizer state: writing %s: %w", name, err)
		}
	}
	b.step = st.Step
	for i, p := range b.params {
		b.steps[i] = st.Step
		if n, ok := st.ParamSteps[p.Name]; ok {
			b.steps[i] = n
		}
	}
	b.laidOut = false // step counts changed: runs may split or merge
	b.setLR(st.LR)
	return b.layout()
}

// SGD is torch.optim.SGD: weight decay, momentum (v = μv + (1-dampening)g,
// with v = g on a parameter's first step), dampening and Nesterov, with
// param groups.
type SGD struct {
	*base
	cfg device.SGDConfig
}

// NewSGD builds an SGD optimiser over the trainable parameters of src (a
// *nn.ParamSet, or a model owning one), with optional param groups (see
// ParamGroup; parameters in none use cfg). A momentum buffer is allocated
// only when cfg.Momentum is not 0.
func NewSGD(src ParamSource, cfg device.SGDConfig, groups ...ParamGroup) (*SGD, error) {
	if err := checkSGD(cfg); err != nil {
		return nil, err
	}
	var names []string
	if cfg.Momentum != 0 {
		names = []string{"momentum_buffer"}
	}
	b, err := newBase(src, cfg.LR, cfg.WeightDecay, groups, names...)
	if err != nil {
		return nil, err
	}
	return &SGD{base: b, cfg: cfg}, nil
}

func checkSGD(cfg device.SGDConfig) error {
	switch {
	case !(cfg.LR >= 0):
		return fmt.Errorf("train: SGD: field LR is %g, expected a learning rate ≥ 0", cfg.LR)
	case !(cfg.Momentum >= 0):
		return fmt.Errorf("train: SGD: field Momentum is %g, expected a value ≥ 0", cfg.Momentum)
	case !(cfg.WeightDecay >= 0):
		return fmt.Errorf("train: SGD: field WeightDecay is %g, expected a value ≥ 0", cfg.WeightDecay)
	case cfg.Nesterov && (cfg.Momentum <= 0 || cfg.Dampening != 0):
		return fmt.Errorf("train: SGD: field Nesterov is true with Momentum %g and Dampening %g, expected Momentum > 0 and Dampening 0 (as torch.optim.SGD)",
			cfg.Momentum, cfg.Dampening)
	}
	return nil
}

// Step applies one SGD update: one launch per run of trainable parameters
// of one group, Frozen read now.
func (o *SGD) Step() error {
	if err := o.layout(); err != nil {
		return err
	}
	for i, r := range o.runs {
		var v device.Buffer
		if len(o.mv) > 0 {
			v = o.mv[0][i]
		}
		cfg := o.cfg
		cfg.LR, cfg.WeightDecay = o.groups[r.group].lr, o.groups[r.group].wd
		if err := o.dev.SGDStep(o.p[i], o.g[i], v, r.n, cfg, o.steps[r.first]+1); err != nil {
			return fmt.Errorf("train: SGD step %d: %w", o.step+1, err)
		}
	}
	o.advance()
	return nil
}

// Config is the optimiser's current hyperparameters (of the default
// group).
func (o *SGD) Config() device.SGDConfig {
	c := o.cfg
	c.LR = o.lr
	return c
}

// State copies the step counts and momentum buffer to the host.
func (o *SGD) State() (OptimizerState, error) { return o.state("sgd") }

// LoadState restores a state taken by State (the rate too).
func (o *SGD) LoadState(st OptimizerState) error { return o.loadState("sgd", st) }

// Adam is torch.optim.Adam, or torch.optim.AdamW when the config's
// Decoupled is set: bias-corrected first and second moments, with param
// groups.
type Adam struct {
	*base
	cfg device.AdamConfig
}

// NewAdam builds an Adam (or AdamW, cfg.Decoupled) optimiser over the
// trainable parameters of src, with optional param groups (see
// ParamGroup, DecayGroups).
func NewAdam(src ParamSource, cfg device.AdamConfig, groups ...ParamGroup) (*Adam, error) {
	if err := checkAdam(cfg); err != nil {
		return nil, err
	}
	b, err := newBase(src, cfg.LR, cfg.WeightDecay, groups, "exp_avg", "exp_avg_sq")
	if err != nil {
		return nil, err
	}
	return &Adam{base: b, cfg: cfg}, nil
}

// NewAdamW is NewAdam with decoupled weight decay (torch.optim.AdamW).
func NewAdamW(src ParamSource, cfg device.AdamConfig, groups ...ParamGroup) (*Adam, error) {
	cfg.Decoupled = true
	return NewAdam(src, cfg, groups...)
}

// DefaultAdam is torch.optim.Adam's defaults with the given learning rate.
func DefaultAdam(lr float32) device.AdamConfig {
	return device.AdamConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// DefaultAdamW is torch.optim.AdamW's defaults (weight decay 0.01) with
// the given learning rate.
func DefaultAdamW(lr float32) device.AdamConfig {
	return device.AdamConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Decoupled: true}
}

func checkAdam(cfg device.AdamConfig) error {
	switch {
	case !(cfg.LR >= 0):
		return fmt.Errorf("train: Adam: field LR is %g, expected a learning rate ≥ 0", cfg.LR)
	case !(cfg.Beta1 >= 0 && cfg.Beta1 < 1):
		return fmt.Errorf("train: Adam: field Beta1 is %g, expected 0 ≤ Beta1 < 1", cfg.Beta1)
	case !(cfg.Beta2 >= 0 && cfg.Beta2 < 1):
		return fmt.Errorf("train: Adam: field Beta2 is %g, expected 0 ≤ Beta2 < 1", cfg.Beta2)
	case !(cfg.Eps >= 0):
		return fmt.Errorf("train: Adam: field Eps is %g, expected a value ≥ 0", cfg.Eps)
	case !(cfg.WeightDecay >= 0):
		return fmt.Errorf("train: Adam: field WeightDecay is %g, expected a value ≥ 0", cfg.WeightDecay)
	}
	return nil
}

func (o *Adam) kind() string {
	if o.cfg.Decoupled {
		return "adamw"
	}
	return "adam"
}

// Step applies one Adam update: one launch per run of trainable
// parameters of one group, Frozen read now.
func (o *Adam) Step() error {
	if err := o.layout(); err != nil {
		return err
	}
	for i, r := range o.runs {
		cfg := o.cfg
		cfg.LR, cfg.WeightDecay = o.groups[r.group].lr, o.groups[r.group].wd
		if err := o.dev.AdamStep(o.p[i], o.g[i], o.mv[0][i], o.mv[1][i], r.n, cfg, o.steps[r.first]+1); err != nil {
			return fmt.Errorf("train: %s step %d: %w", o.kind(), o.step+1, err)
		}
	}
	o.advance()
	return nil
}

// Config is the optimiser's current hyperparameters (of the default
// group).
func (o *Adam) Config() device.AdamConfig {
	c := o.cfg
	c.LR = o.lr
	return c
}

// State copies the step counts and both moment buffers to the host.
func (o *Adam) State() (OptimizerState, error) { return o.state(o.kind()) }

// LoadState restores a state taken by State (the rate too).
func (o *Adam) LoadState(st OptimizerState) error { return o.loadState(o.kind(), st) }

// OptimizerConfig names an optimiser and its hyperparameters as a command
// line gives them, so that `kiln train --optimizer adam --lr 1e-3` needs no
// switch of its own.
type OptimizerConfig struct {
	// Name is "sgd", "momentum" (SGD, momentum 0.9 unless given),
	// "nesterov" (SGD with Nesterov momentum, 0.9 unless given), "adam" or
	// "adamw".
	Name                string
	LR                  float32
	Momentum, Dampening float32 // SGD
	WeightDecay         float32 // L2 for SGD and Adam, decoupled for AdamW; 0 is none
	Beta1, Beta2, Eps   float32 // Adam; 0 means PyTorch's 0.9, 0.999, 1e-8
}

// NewOptimizer builds the optimiser c names over the trainable parameters
// of src, with optional param groups.
func NewOptimizer(src ParamSource, c OptimizerConfig, groups ...ParamGroup) (Optimizer, error) {
	switch c.Name {
	case "sgd", "momentum", "nesterov":
		cfg := device.SGDConfig{LR: c.LR, Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay,
			Nesterov: c.Name == "nesterov"}
		if c.Name != "sgd" && cfg.Momentum == 0 {
			cfg.Momentum = 0.9
		}
		return NewSGD(src, cfg, groups...)
	case "adam", "adamw":
		cfg := device.AdamConfig{LR: c.LR, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay,
			Decoupled: c.Name == "adamw"}
		if cfg.Beta1 == 0 {
			cfg.Beta1 = 0.9
		}
		if cfg.Beta2 == 0 {
			cfg.Beta2 = 0.999
		}
		if cfg.Eps == 0 {
			cfg.Eps = 1e-8
		}
		return NewAdam(src, cfg, groups...)
	}
	return nil, fmt.Errorf("train: optimizer %q: unknown name, expected sgd, momentum, nesterov, adam or adamw", c.Name)
}
