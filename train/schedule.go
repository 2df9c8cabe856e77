package train

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schedule sets the learning rate over training, as PyTorch's
// torch.optim.lr_scheduler classes do. A schedule is stateful: LR is the
// rate for the current period and Step advances one period (an epoch, or
// an optimiser step when PerStep says so). The trainer calls LR before the
// first batch of each period and Step after it.
type Schedule interface {
	// LR is the learning rate for the current period.
	LR() float64
	// Step ends the current period. metric is the period's validation loss
	// (the training loss when there is no validation set); only
	// reduce-on-plateau reads it.
	Step(metric float64)
	// PerStep reports whether a period is one optimiser step (true) or one
	// epoch (false).
	PerStep() bool
	// State is the schedule's position, for checkpoints.
	State() ScheduleState
	// LoadState restores a position taken by State.
	LoadState(ScheduleState) error
}

// ScheduleState is a schedule's position. Floats are stored as strings in
// JSON so that infinities survive and every value round-trips exactly.
type ScheduleState struct {
	Kind     string    `json:"kind"`
	T        int       `json:"t"`        // periods completed
	LR       jsonFloat `json:"lr"`       // current rate (plateau)
	Best     jsonFloat `json:"best"`     // best metric so far (plateau)
	Bad      int       `json:"bad"`      // epochs without improvement (plateau)
	Cooldown int       `json:"cooldown"` // cooldown epochs left (plateau)
}

// jsonFloat is a float64 that marshals as a string with every bit kept,
// infinities and NaN included (JSON numbers cannot carry them).
type jsonFloat float64

// MarshalJSON writes the shortest string that parses back to the same bits.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(strconv.FormatFloat(float64(f), 'g', -1, 64))), nil
}

// UnmarshalJSON reads what MarshalJSON wrote, or a plain JSON number.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if u, err := strconv.Unquote(s); err == nil {
		s = u
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("expected a number or a quoted number, got %s", b)
	}
	*f = jsonFloat(v)
	return nil
}

func checkKind(st ScheduleState, kind string) error {
	if st.Kind != kind {
		return fmt.Errorf("train: schedule state: field kind is %q, expected %q", st.Kind, kind)
	}
	if st.T < 0 {
		return fmt.Errorf("train: schedule state: field t is %d, expected a count ≥ 0", st.T)
	}
	return nil
}

// Constant keeps the learning rate fixed.
type Constant struct {
	Base float64
	t    int
}

// LR is the fixed rate.
func (s *Constant) LR() float64 { return s.Base }

// Step counts the period.
func (s *Constant) Step(float64) { s.t++ }

// PerStep is false: the rate does not change anyway.
func (s *Constant) PerStep() bool { return false }

// State is the period count.
func (s *Constant) State() ScheduleState { return ScheduleState{Kind: "constant", T: s.t} }

// LoadState restores the period count.
func (s *Constant) LoadState(st ScheduleState) error {
	if err := checkKind(st, "constant"); err != nil {
		return err
	}
	s.t = st.T
	return nil
}

// StepDecay is torch.optim.lr_scheduler.StepLR: the rate is
// Base·Gamma^⌊t/StepSize⌋ in epoch t (PyTorch's closed form).
type StepDecay struct {
	Base     float64
	StepSize int     // epochs between decays, ≥ 1
	Gamma    float64 // factor per decay (PyTorch's default 0.1)
	t        int
}

// LR is Base·Gamma^⌊t/StepSize⌋.
func (s *StepDecay) LR() float64 {
	return s.Base * math.Pow(s.Gamma, float64(s.t/s.StepSize))
}

// Step advances one epoch.
func (s *StepDecay) Step(float64) { s.t++ }

// PerStep is false: StepLR counts epochs.
func (s *StepDecay) PerStep() bool { return false }

// State is the epoch count.
func (s *StepDecay) State() ScheduleState { return ScheduleState{Kind: "step", T: s.t} }

// LoadState restores the epoch count.
func (s *StepDecay) LoadState(st ScheduleState) error {
	if err := checkKind(st, "step"); err != nil {
		return err
	}
	s.t = st.T
	return nil
}

// Cosine is linear warm-up followed by cosine annealing to Min: PyTorch's
// SequentialLR(LinearLR(start_factor=StartFactor, total_iters=Warmup),
// CosineAnnealingLR(T_max=Total-Warmup, eta_min=Min), milestones=[Warmup]),
// in closed form:
//
//	t < Warmup:  Base·(StartFactor + (1-StartFactor)·t/Warmup)
//	t ≥ Warmup:  Min + (Base-Min)·(1+cos(π·(t-Warmup)/(Total-Warmup)))/2
//
// with t held at Total once it gets there (PyTorch's cosine would climb
// again after T_max). Periods are epochs, or optimiser steps when Steps is
// set.
type Cosine struct {
	Base        float64
	Min         float64 // eta_min, the rate at the end
	Warmup      int     // warm-up periods; 0 for none
	Total       int     // periods in all, warm-up included; > Warmup
	StartFactor float64 // warm-up starts at Base·StartFactor; 0 means PyTorch's default 1/3
	Steps       bool    // periods are optimiser steps rather than epochs
	t           int
}

// LR is the closed form above.
func (s *Cosine) LR() float64 {
	t := s.t
	if t > s.Total {
		t = s.Total
	}
	if t < s.Warmup {
		f := s.StartFactor
		if f == 0 {
			f = 1.0 / 3
		}
		return s.Base * (f + (1-f)*float64(t)/float64(s.Warmup))
	}
	span := s.Total - s.Warmup
	if span <= 0 {
		return s.Base
	}
	return s.Min + (s.Base-s.Min)*(1+math.Cos(math.Pi*float64(t-s.Warmup)/float64(span)))/2
}

// Step advances one period.
func (s *Cosine) Step(float64) { s.t++ }

// PerStep reports whether periods are optimiser steps.
func (s *Cosine) PerStep() bool { return s.Steps }

// State is the period count.
func (s *Cosine) State() ScheduleState { return ScheduleState{Kind: "cosine", T: s.t} }

// LoadState restores the period count.
func (s *Cosine) LoadState(st ScheduleState) error {
	if err := checkKind(st, "cosine"); err != nil {
		return err
	}
	s.t = st.T
	return nil
}

// Plateau is torch.optim.lr_scheduler.ReduceLROnPlateau in mode "min" with
// threshold_mode "rel": after more than Patience epochs without the metric
// falling below best·(1-Threshold), the rate is multiplied by Factor (never
// below MinLR, and only when the change exceeds 1e-8), then Cooldown epochs
// pass before bad epochs count again. Build it with NewPlateau for
// PyTorch's defaults.
type Plateau struct {
	Factor    float64 // default 0.1
	Patience  int     // default 10
	Threshold float64 // default 1e-4, relative
	Cooldown  int     // default 0
	MinLR     float64 // default 0

	lr       float64
	best     float64
	bad      int
	cooldown int
	t        int
}

// NewPlateau is ReduceLROnPlateau with PyTorch's defaults (factor 0.1,
// patience 10, threshold 1e-4 rel, cooldown 0, min_lr 0) starting at base.
func NewPlateau(base float64) *Plateau {
	return &Plateau{Factor: 0.1, Patience: 10, Threshold: 1e-4, lr: base, best: math.Inf(1)}
}

// LR is the current rate.
func (s *Plateau) LR() float64 { return s.lr }

// Step records one epoch's metric and reduces the rate on a plateau,
// following ReduceLROnPlateau.step line by line.
func (s *Plateau) Step(metric float64) {
	s.t++
	if metric < s.best*(1-s.Threshold) {
		s.best = metric
		s.bad = 0
	} else {
		s.bad++
	}
	if s.cooldown > 0 {
		s.cooldown--
		s.bad = 0
	}
	if s.bad > s.Patience {
		newLR := math.Max(s.lr*s.Factor, s.MinLR)
		if s.lr-newLR > 1e-8 {
			s.lr = newLR
		}
		s.cooldown = s.Cooldown
		s.bad = 0
	}
}

// PerStep is false: the metric is an epoch's validation loss.
func (s *Plateau) PerStep() bool { return false }

// State is the whole plateau position.
func (s *Plateau) State() ScheduleState {
	return ScheduleState{Kind: "plateau", T: s.t, LR: jsonFloat(s.lr), Best: jsonFloat(s.best), Bad: s.bad, Cooldown: s.cooldown}
}

// LoadState restores a position taken by State.
func (s *Plateau) LoadState(st ScheduleState) error {
	if err := checkKind(st, "plateau"); err != nil {
		return err
	}
	s.t, s.lr, s.best, s.bad, s.cooldown = st.T, float64(st.LR), float64(st.Best), st.Bad, st.Cooldown
	return nil
}

// ParseSchedule builds a schedule from the command-line form:
//
//	constant
//	step:SIZE[:GAMMA]                  StepLR, gamma 0.1 by default
//	cosine[:WARMUP[:MIN]]              warm-up epochs (default 0), final rate (default 0)
//	cosine-steps[:WARMUP[:MIN]]        the same counted in optimiser steps
//	plateau[:PATIENCE[:FACTOR[:COOLDOWN[:MINLR]]]]  ReduceLROnPlateau, PyTorch's defaults
//
// base is the optimiser's learning rate, epochs the number of epochs and
// stepsPerEpoch the batches per epoch (both used by cosine's length).
func ParseSchedule(spec string, base float64, epochs, stepsPerEpoch int) (Schedule, error) {
	parts := strings.Split(strings.TrimSpace(strings.ToLower(spec)), ":")
	kind, args := parts[0], parts[1:]
	bad := func(format string, a ...any) error {
		return fmt.Errorf("train: schedule %q: "+format, append([]any{spec}, a...)...)
	}
	num := func(i int, name string, def float64) (float64, error) {
		if i >= len(args) || args[i] == "" {
			return def, nil
		}
		v, err := strconv.ParseFloat(args[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, bad("%s is %q, expected a finite number ≥ 0", name, args[i])
		}
		return v, nil
	}
	integer := func(i int, name string, def int) (int, error) {
		if i >= len(args) || args[i] == "" {
			return def, nil
		}
		v, err := strconv.Atoi(args[i])
		if err != nil || v < 0 {
			return 0, bad("%s is %q, expected an integer ≥ 0", name, args[i])
		}
		return v, nil
	}
	maxArgs := map[string]int{"": 0, "constant": 0, "step": 2, "cosine": 2, "cosine-steps": 2, "plateau": 4}
	n, known := maxArgs[kind]
	if !known {
		return nil, bad("unknown kind %q, expected constant, step:SIZE[:GAMMA], cosine[:WARMUP[:MIN]], cosine-steps[:WARMUP[:MIN]] or plateau[:PATIENCE[:FACTOR[:COOLDOWN[:MINLR]]]]", kind)
	}
	if len(args) > n {
		return nil, bad("%d arguments given, %s takes at most %d", len(args), kind, n)
	}
	switch kind {
	case "", "constant":
		return &Constant{Base: base}, nil
	case "step":
		size, err := integer(0, "step size", 0)
		if err != nil {
			return nil, err
		}
		if size < 1 {
			return nil, bad("step size missing or 0, expected step:SIZE with SIZE ≥ 1 epochs")
		}
		gamma, err := num(1, "gamma", 0.1)
		if err != nil {
			return nil, err
		}
		return &StepDecay{Base: base, StepSize: size, Gamma: gamma}, nil
	case "cosine", "cosine-steps":
		warm, err := integer(0, "warm-up", 0)
		if err != nil {
			return nil, err
		}
		min, err := num(1, "min", 0)
		if err != nil {
			return nil, err
		}
		total := epochs
		if kind == "cosine-steps" {
			total = epochs * stepsPerEpoch
		}
		if total <= warm {
			return nil, bad("warm-up is %d periods of %d in all, expected fewer warm-up periods than the run has", warm, total)
		}
		return &Cosine{Base: base, Min: min, Warmup: warm, Total: total, Steps: kind == "cosine-steps"}, nil
	default: // plateau
		s := NewPlateau(base)
		var err error
		if s.Patience, err = integer(0, "patience", 10); err != nil {
			return nil, err
		}
		if s.Factor, err = num(1, "factor", 0.1); err != nil {
			return nil, err
		}
		if s.Factor >= 1 {
			return nil, bad("factor is %g, expected a factor < 1", s.Factor)
		}
		if s.Cooldown, err = integer(2, "cooldown", 0); err != nil {
			return nil, err
		}
		if s.MinLR, err = num(3, "min lr", 0); err != nil {
			return nil, err
		}
		return s, nil
	}
}
