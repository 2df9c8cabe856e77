package lm

import (
	"strings"
	"testing"
)

// TestFreeze: the parameters Config.Freeze matches keep their exact bits
// through training while every other one moves; the matching is
// path.Match's, '*' spanning dots.
func TestFreeze(t *testing.T) {
	f := newFixture(t)
	m := f.model(t, 0, 3)
	cfg := smallConfig(t.TempDir())
	cfg.EvalEvery = 0
	cfg.Freeze = []string{"transformer.h.0.*", "transformer.wte.weight"}
	before := hostParams(t, m)
	tr := f.trainer(t, m, cfg)
	if _, err := tr.Run(nil); err != nil {
		t.Fatal(err)
	}
	after := hostParams(t, m)
	frozen := 0
	for name, b := range before {
		// lm_head.weight, in the state dict as Hugging Face writes it, is
		// tied to transformer.wte.weight: the same parameter.
		want := strings.HasPrefix(name, "transformer.h.0.") || name == "transformer.wte.weight" || name == "lm_head.weight"
		if p := m.Params.Lookup(name); p == nil || p.Frozen != want {
			t.Errorf("%s: Frozen %v, want %v", name, p != nil && p.Frozen, want)
		}
		if same := equalBits(b, after[name]); same != want {
			t.Errorf("%s: unchanged %v after 4 steps, want %v (frozen %v)", name, same, want, want)
		}
		if want {
			frozen++
		}
	}
	// Block 0 of a biased model has 12 tensors (ln_1, c_attn, c_proj,
	// ln_2, c_fc, mlp.c_proj, weight and bias each), plus wte and its
	// tied lm_head.
	if frozen != 14 {
		t.Errorf("%d frozen tensors, want 14", frozen)
	}
}

// TestFreezeErrors: a pattern matching no parameter is an error naming
// it (and only it); a malformed pattern is a Config error; a resume must
// freeze the same patterns.
func TestFreezeErrors(t *testing.T) {
	f := newFixture(t)
	m := f.model(t, 0, 1)
	cfg := smallConfig("")
	cfg.Freeze = []string{"transformer.h.1.*", "h.0.*", "transformer.nope"}
	_, err := NewTrainer(m, f.tok, f.train, f.val, cfg)
	if err == nil || !strings.Contains(err.Error(), `"h.0.*", "transformer.nope"`) || strings.Contains(err.Error(), `"transformer.h.1.*"`) {
		t.Errorf("unknown patterns: %v, want an error naming h.0.* and transformer.nope only", err)
	}
	for _, p := range m.Params.Params() {
		if p.Frozen {
			t.Errorf("%s frozen by a failed NewTrainer", p.Name)
		}
	}
	cfg.Freeze = []string{"transformer.h.[0"}
	if _, err := NewTrainer(m, f.tok, f.train, f.val, cfg); err == nil || !strings.Contains(err.Error(), "Config.Freeze") {
		t.Errorf("malformed pattern: %v", err)
	}

	dir := t.TempDir()
	run := smallConfig(dir)
	run.StopAfter, run.Freeze = 1, []string{"transformer.wpe.weight"}
	if _, err := f.trainer(t, f.model(t, 0, 1), run).Run(nil); err != nil {
		t.Fatal(err)
	}
	other := smallConfig(dir)
	if err := f.trainer(t, f.model(t, 0, 1), other).Resume(dir); err == nil || !strings.Contains(err.Error(), "transformer.wpe.weight") {
		t.Errorf("resume without the run's --freeze: %v", err)
	}
	if err := f.trainer(t, f.model(t, 0, 1), run).Resume(dir); err != nil {
		t.Errorf("resume with the same freeze: %v", err)
	}
}
