package train

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// lrs runs a schedule for n periods, feeding metrics[t] to Step.
func lrs(s Schedule, n int, metrics []float64) []float64 {
	out := make([]float64, n)
	for t := range out {
		out[t] = s.LR()
		m := 0.0
		if metrics != nil {
			m = metrics[t]
		}
		s.Step(m)
	}
	return out
}

// closeSeq compares two sequences to a relative 1e-12: both sides are
// float64, the closed forms and PyTorch's recursive forms differ only by
// rounding.
func closeSeq(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12*math.Max(1, math.Abs(want[i])) {
			t.Errorf("%s: period %d: lr %.17g, want %.17g", name, i, got[i], want[i])
		}
	}
}

func TestStepDecayMatchesStepLR(t *testing.T) {
	// PyTorch's StepLR.get_lr is recursive: lr is multiplied by gamma when
	// last_epoch is a multiple of step_size.
	const base, gamma, size = 0.1, 0.5, 3
	want := make([]float64, 10)
	lr := base
	for e := range want {
		if e > 0 && e%size == 0 {
			lr *= gamma
		}
		want[e] = lr
	}
	closeSeq(t, "step", lrs(&StepDecay{Base: base, StepSize: size, Gamma: gamma}, 10, nil), want)
	// Recorded from torch 1.13: StepLR(SGD(lr=0.1), 3, 0.5), 10 epochs.
	closeSeq(t, "step vs torch", want, []float64{0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125})
}

func TestCosineMatchesSequentialLR(t *testing.T) {
	// SequentialLR(LinearLR(start_factor=1/3, total_iters=3),
	// CosineAnnealingLR(T_max=7, eta_min=0.001), milestones=[3]) with
	// PyTorch's recursive get_lr of each.
	const base, min, warm, total = 0.1, 0.001, 3, 10
	sf := 1.0 / 3
	want := make([]float64, total)
	lr := base * sf
	for e := 0; e < warm; e++ { // LinearLR
		if e > 0 {
			lr *= 1 + (1-sf)/(float64(warm)*sf+float64(e-1)*(1-sf))
		}
		want[e] = lr
	}
	lr = base
	T := float64(total - warm)
	for k := 0; warm+k < total; k++ { // CosineAnnealingLR, restarted at the milestone
		if k > 0 {
			lr = min + (lr-min)*(1+math.Cos(math.Pi*float64(k)/T))/(1+math.Cos(math.Pi*float64(k-1)/T))
		}
		want[warm+k] = lr
	}
	got := lrs(&Cosine{Base: base, Min: min, Warmup: warm, Total: total}, total, nil)
	closeSeq(t, "cosine", got, want)
	// Recorded from torch 1.13 with the schedulers above, 10 epochs.
	closeSeq(t, "cosine vs torch", got, []float64{0.03333333333333333, 0.05555555555555556, 0.07777777777777778, 0.1,
		0.09509795896116975, 0.08136274519200731, 0.061514786230837566, 0.03948521376916245,
		0.019637254807992697, 0.005902041038830259})
	// Held at Min after Total rather than climbing again.
	s := &Cosine{Base: base, Min: min, Warmup: warm, Total: total}
	for range total + 5 {
		s.Step(0)
	}
	if s.LR() != min {
		t.Errorf("cosine after Total: lr %g, want the minimum %g", s.LR(), min)
	}
}

func TestPlateauMatchesReduceLROnPlateau(t *testing.T) {
	metrics := []float64{1, 0.9, 0.9, 0.9, 0.9, 0.89995, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}
	s := NewPlateau(0.1)
	s.Factor, s.Patience, s.Cooldown, s.MinLR = 0.5, 2, 1, 0.02
	// Recorded from torch 1.13: ReduceLROnPlateau(SGD(lr=0.1), factor=0.5,
	// patience=2, cooldown=1, min_lr=0.02), stepped with metrics. 0.89995 is
	// not an improvement on 0.9 under the relative threshold 1e-4.
	want := []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025}
	got := lrs(s, len(metrics), metrics)
	closeSeq(t, "plateau", got, want)
	// Floor: one more plateau would go to 0.0125 but min_lr holds it at 0.02.
	for range 10 {
		s.Step(0.5)
	}
	if s.LR() != 0.02 {
		t.Errorf("plateau floor: lr %g, want min_lr 0.02", s.LR())
	}
	// Defaults are PyTorch's.
	d := NewPlateau(1)
	if d.Factor != 0.1 || d.Patience != 10 || d.Threshold != 1e-4 || d.Cooldown != 0 || d.MinLR != 0 {
		t.Errorf("NewPlateau defaults %+v, want factor 0.1 patience 10 threshold 1e-4 cooldown 0 min_lr 0", d)
	}
}

func TestScheduleStateRoundTrip(t *testing.T) {
	metrics := []float64{3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1}
	for _, mk := range []func() Schedule{
		func() Schedule { return &Constant{Base: 0.1} },
		func() Schedule { return &StepDecay{Base: 0.1, StepSize: 2, Gamma: 0.3} },
		func() Schedule { return &Cosine{Base: 0.1, Min: 0.01, Warmup: 2, Total: 12} },
		func() Schedule { p := NewPlateau(0.1); p.Patience = 1; return p },
	} {
		whole := lrs(mk(), len(metrics), metrics)
		a := mk()
		first := lrs(a, 5, metrics[:5])
		js, err := json.Marshal(a.State())
		if err != nil {
			t.Fatal(err)
		}
		var st ScheduleState
		if err := json.Unmarshal(js, &st); err != nil {
			t.Fatal(err)
		}
		b := mk()
		if err := b.LoadState(st); err != nil {
			t.Fatal(err)
		}
		rest := lrs(b, len(metrics)-5, metrics[5:])
		got := append(first, rest...)
		for i := range whole {
			if got[i] != whole[i] { // resumed exactly: bit for bit
				t.Errorf("%s resumed: period %d lr %v, want %v", st.Kind, i, got[i], whole[i])
			}
		}
	}
	if err := (&Cosine{}).LoadState(ScheduleState{Kind: "step"}); err == nil || !strings.Contains(err.Error(), `"cosine"`) {
		t.Errorf("loading a step state into a cosine schedule: error %v, want one naming the expected kind", err)
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule("step:5:0.5", 0.1, 20, 10)
	if d, ok := s.(*StepDecay); err != nil || !ok || d.StepSize != 5 || d.Gamma != 0.5 {
		t.Errorf("step:5:0.5 gave %#v, %v", s, err)
	}
	s, err = ParseSchedule("cosine-steps:100:1e-5", 0.1, 20, 10)
	if c, ok := s.(*Cosine); err != nil || !ok || c.Warmup != 100 || c.Min != 1e-5 || c.Total != 200 || !c.PerStep() {
		t.Errorf("cosine-steps:100:1e-5 gave %#v, %v", s, err)
	}
	s, err = ParseSchedule("plateau:3", 0.1, 20, 10)
	if p, ok := s.(*Plateau); err != nil || !ok || p.Patience != 3 || p.Factor != 0.1 || p.LR() != 0.1 {
		t.Errorf("plateau:3 gave %#v, %v", s, err)
	}
	for _, bad := range []string{"wobble", "step", "step:x", "cosine:30", "plateau:1:2", "step:1:2:3"} {
		if _, err := ParseSchedule(bad, 0.1, 20, 10); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseSchedule(%q): error %v, want one quoting the spec", bad, err)
		}
	}
}
