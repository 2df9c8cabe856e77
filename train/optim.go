package train

import (
	"fmt"
	"sort"

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
	// LR is the current learning rate.
	LR float32 `json:"lr"`
	// Buffers holds the per-parameter state ("momentum_buffer" for SGD,
	// "exp_avg" and "exp_avg_sq" for Adam, PyTorch's names), each laid out
	// exactly like the model's flat parameter buffer. Entries for frozen
	// parameters are zero.
	Buffers map[string][]float32 `json:"-"`
}

// run is a contiguous range of trainable elements in the flat buffers.
type run struct{ off, n int }

// trainableRuns merges the trainable parameters of m into maximal
// contiguous ranges of its flat buffers, so that each range is one launch.
func trainableRuns(params []*nn.Param) []run {
	type span struct{ off, n int }
	var spans []span
	for _, p := range params {
		if p == nil || p.Frozen || p.Len() == 0 {
			continue
		}
		spans = append(spans, span{p.Offset, p.Len()})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	var runs []run
	for _, s := range spans {
		if k := len(runs) - 1; k >= 0 && runs[k].off+runs[k].n == s.off {
			runs[k].n += s.n
			continue
		}
		runs = append(runs, run{s.off, s.n})
	}
	return runs
}

// flatViews holds, for each run, views of one flat buffer; views are made
// once so that a step creates nothing.
func flatViews(dev device.Device, b device.Buffer, runs []run) ([]device.Buffer, error) {
	out := make([]device.Buffer, len(runs))
	for i, r := range runs {
		v, err := dev.View(b, r.off, r.n)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// base is what every optimiser shares: the runs and views of the model's
// flat parameter and gradient buffers, and the moment buffers.
type base struct {
	dev     device.Device
	total   int // elements in the flat parameter buffer
	runs    []run
	p, g    []device.Buffer   // per-run views of the flat values and grads
	names   []string          // moment buffer names, in order
	moments []device.Buffer   // whole flat moment buffers, laid out like the params
	mv      [][]device.Buffer // per moment, per-run views
	step    int
}

func newBase(m *nn.Sequential, names ...string) (*base, error) {
	if m == nil {
		return nil, fmt.Errorf("train: optimizer: model is nil")
	}
	values, grads := m.Flat()
	if values == nil || grads == nil {
		return nil, fmt.Errorf("train: optimizer: the model has no flat parameter or gradient buffer")
	}
	dev := values.Device()
	b := &base{dev: dev, total: values.Len(), runs: trainableRuns(m.Params()), names: names}
	var err error
	if b.p, err = flatViews(dev, values, b.runs); err != nil {
		return nil, fmt.Errorf("train: optimizer: %w", err)
	}
	if b.g, err = flatViews(dev, grads, b.runs); err != nil {
		return nil, fmt.Errorf("train: optimizer: %w", err)
	}
	for _, name := range names {
		buf, err := dev.Alloc(device.Float32, b.total)
		if err != nil {
			b.Free()
			return nil, fmt.Errorf("train: optimizer: allocating %s (%d values): %w", name, b.total, err)
		}
		b.moments = append(b.moments, buf)
		views, err := flatViews(dev, buf, b.runs)
		if err != nil {
			b.Free()
			return nil, fmt.Errorf("train: optimizer: %w", err)
		}
		b.mv = append(b.mv, views)
	}
	return b, nil
}

// Steps is the number of updates applied so far.
func (b *base) Steps() int { return b.step }

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

func (b *base) state(kind string, lr float32) (OptimizerState, error) {
	st := OptimizerState{Kind: kind, Step: b.step, LR: lr, Buffers: map[string][]float32{}}
	for i, name := range b.names {
		host := make([]float32, b.total)
		if err := b.dev.ReadF32(host, b.moments[i], 0); err != nil {
			return OptimizerState{}, fmt.Errorf("train: optimizer state: reading %s: %w", name, err)
		}
		st.Buffers[name] = host
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
	for i, name := range b.names {
		if err := b.dev.WriteF32(b.moments[i], 0, st.Buffers[name]); err != nil {
			return fmt.Errorf("train: optimizer state: writing %s: %w", name, err)
		}
	}
	b.step = st.Step
	return nil
}

// SGD is torch.optim.SGD: weight decay, momentum (v = μv + (1-dampening)g,
// with v = g on the first step), dampening and Nesterov.
type SGD struct {
	*base
	cfg device.SGDConfig
}

// NewSGD builds an SGD optimiser over m's trainable parameters. A momentum
// buffer is allocated only when cfg.Momentum is not 0.
func NewSGD(m *nn.Sequential, cfg device.SGDConfig) (*SGD, error) {
	if err := checkSGD(cfg); err != nil {
		return nil, err
	}
	var names []string
	if cfg.Momentum != 0 {
		names = []string{"momentum_buffer"}
	}
	b, err := newBase(m, names...)
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

// Step applies one SGD update, one launch per run of trainable parameters.
func (o *SGD) Step() error {
	o.step++
	for i := range o.runs {
		var v device.Buffer
		if o.mv != nil {
			v = o.mv[0][i]
		}
		if err := o.dev.SGDStep(o.p[i], o.g[i], v, o.runs[i].n, o.cfg, o.step); err != nil {
			o.step--
			return fmt.Errorf("train: SGD step %d: %w", o.step+1, err)
		}
	}
	return nil
}

// SetLR sets the learning rate of the next steps.
func (o *SGD) SetLR(lr float32) { o.cfg.LR = lr }

// LR is the learning rate of the next step.
func (o *SGD) LR() float32 { return o.cfg.LR }

// Config is the optimiser's current hyperparameters.
func (o *SGD) Config() device.SGDConfig { return o.cfg }

// State copies the step count and momentum buffer to the host.
func (o *SGD) State() (OptimizerState, error) { return o.state("sgd", o.cfg.LR) }

// LoadState restores a state taken by State.
func (o *SGD) LoadState(st OptimizerState) error {
	if err := o.loadState("sgd", st); err != nil {
		return err
	}
	o.cfg.LR = st.LR
	return nil
}

// Adam is torch.optim.Adam, or torch.optim.AdamW when the config's
// Decoupled is set: bias-corrected first and second moments.
type Adam struct {
	*base
	cfg device.AdamConfig
}

// NewAdam builds an Adam (or AdamW, cfg.Decoupled) optimiser over m's
// trainable parameters.
func NewAdam(m *nn.Sequential, cfg device.AdamConfig) (*Adam, error) {
	if err := checkAdam(cfg); err != nil {
		return nil, err
	}
	b, err := newBase(m, "exp_avg", "exp_avg_sq")
	if err != nil {
		return nil, err
	}
	return &Adam{base: b, cfg: cfg}, nil
}

// NewAdamW is NewAdam with decoupled weight decay (torch.optim.AdamW).
func NewAdamW(m *nn.Sequential, cfg device.AdamConfig) (*Adam, error) {
	cfg.Decoupled = true
	return NewAdam(m, cfg)
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

// Step applies one Adam update, one launch per run of trainable parameters.
func (o *Adam) Step() error {
	o.step++
	for i := range o.runs {
		if err := o.dev.AdamStep(o.p[i], o.g[i], o.mv[0][i], o.mv[1][i], o.runs[i].n, o.cfg, o.step); err != nil {
			o.step--
			return fmt.Errorf("train: %s step %d: %w", o.kind(), o.step+1, err)
		}
	}
	return nil
}

// SetLR sets the learning rate of the next steps.
func (o *Adam) SetLR(lr float32) { o.cfg.LR = lr }

// LR is the learning rate of the next step.
func (o *Adam) LR() float32 { return o.cfg.LR }

// Config is the optimiser's current hyperparameters.
func (o *Adam) Config() device.AdamConfig { return o.cfg }

// State copies the step count and both moment buffers to the host.
func (o *Adam) State() (OptimizerState, error) { return o.state(o.kind(), o.cfg.LR) }

// LoadState restores a state taken by State.
func (o *Adam) LoadState(st OptimizerState) error {
	if err := o.loadState(o.kind(), st); err != nil {
		return err
	}
	o.cfg.LR = st.LR
	return nil
}

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

// NewOptimizer builds the optimiser c names over m's trainable parameters.
func NewOptimizer(m *nn.Sequential, c OptimizerConfig) (Optimizer, error) {
	switch c.Name {
	case "sgd", "momentum", "nesterov":
		cfg := device.SGDConfig{LR: c.LR, Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay,
			Nesterov: c.Name == "nesterov"}
		if c.Name != "sgd" && cfg.Momentum == 0 {
			cfg.Momentum = 0.9
		}
		return NewSGD(m, cfg)
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
		return NewAdam(m, cfg)
	}
	return nil, fmt.Errorf("train: optimizer %q: unknown name, expected sgd, momentum, nesterov, adam or adamw", c.Name)
}
