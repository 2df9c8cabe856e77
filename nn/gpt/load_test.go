package gpt

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/nn"
)

// hubForm rewrites a GPT2LMHeadModel state dict as the Hub's gpt2 files
// name it: GPT2Model's names without "transformer.", no lm_head, and the
// attention buffers attn.bias ([1, 1, T, T] lower triangle) and
// attn.masked_bias (the scalar −1e4) of older transformers.
func hubForm(sd *nn.StateDict, cfg Config) *nn.StateDict {
	out := &nn.StateDict{Tensors: map[string]nn.HostTensor{}, Metadata: map[string]string{}}
	for _, n := range sd.Names {
		if n == "lm_head.weight" {
			continue
		}
		k := strings.TrimPrefix(n, "transformer.")
		out.Names = append(out.Names, k)
		out.Tensors[k] = sd.Tensors[n]
		if strings.HasSuffix(k, ".ln_1.bias") {
			h := strings.TrimSuffix(k, "ln_1.bias")
			T := cfg.Context
			mask := make([]float32, T*T)
			for i := 0; i < T; i++ {
				for j := 0; j <= i; j++ {
					mask[i*T+j] = 1
				}
			}
			out.Names = append(out.Names, h+"attn.bias", h+"attn.masked_bias")
			out.Tensors[h+"attn.bias"] = nn.HostTensor{Shape: []int{1, 1, T, T}, Data: mask}
			out.Tensors[h+"attn.masked_bias"] = nn.HostTensor{Shape: []int{}, Data: []float32{-1e4}}
		}
	}
	return out
}

// TestLoadBothNamings loads model a's weights into model b (another seed)
// in the GPT2LMHeadModel form and in the Hub's form, through a
// safetensors file, and checks the logits are then identical.
func TestLoadBothNamings(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	a := newModel(t, dev, cfg, 1)
	idx := tokens(10, cfg.VocabSize, 3)
	want := logitsOf(t, a, idx, 1, 10)
	sd, err := a.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []struct {
		name string
		sd   *nn.StateDict
		ign  int
	}{{"GPT2LMHeadModel", sd, 0}, {"hub", hubForm(sd, cfg), 2 * cfg.Layers}} {
		b := newModel(t, dev, cfg, 2)
		if slices.Equal(logitsOf(t, b, idx, 1, 10), want) {
			t.Fatal("two seeds gave the same model")
		}
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if err := nn.WriteSafetensors(path, form.sd); err != nil {
			t.Fatal(err)
		}
		rep, err := b.LoadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", form.name, err)
		}
		if len(rep.Ignored) != form.ign {
			t.Errorf("%s: ignored %v, want %d buffers", form.name, rep.Ignored, form.ign)
		}
		if got := logitsOf(t, b, idx, 1, 10); !slices.Equal(got, want) {
			t.Errorf("%s: logits differ after loading", form.name)
		}
	}
	// Only lm_head.weight (no transformer.wte.weight): it is the embedding.
	only := &nn.StateDict{Tensors: map[string]nn.HostTensor{}}
	for _, n := range sd.Names {
		if n != "transformer.wte.weight" {
			only.Names = append(only.Names, n)
			only.Tensors[n] = sd.Tensors[n]
		}
	}
	b := newModel(t, dev, cfg, 3)
	if _, err := b.LoadStateDict(only); err != nil {
		t.Fatal(err)
	}
	if got := logitsOf(t, b, idx, 1, 10); !slices.Equal(got, want) {
		t.Error("loading the embedding from lm_head.weight: logits differ")
	}
	if c, err := ConfigFromStateDict(hubForm(sd, cfg), cfg.Heads); err != nil || c != cfg {
		t.Errorf("ConfigFromStateDict = %+v, %v; want %+v", c, err, cfg)
	}
	if _, err := ConfigFromStateDict(hubForm(sd, cfg), 0); err == nil {
		t.Error("ConfigFromStateDict without heads or metadata succeeded")
	}
	// LoadPretrained: the Hub form needs heads; kiln's own file carries its
	// Config (Bias false and 4 heads here, which shapes alone cannot tell).
	path := filepath.Join(t.TempDir(), "hub.safetensors")
	if err := nn.WriteSafetensors(path, hubForm(sd, cfg)); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPretrained(dev, path, cfg.Heads)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	if p.Config != cfg || !slices.Equal(logitsOf(t, p, idx, 1, 10), want) {
		t.Errorf("LoadPretrained: config %+v, or logits differ", p.Config)
	}
	nbCfg := Config{VocabSize: 12, Context: 8, Layers: 3, Heads: 4, Width: 8}
	nb := newModel(t, dev, nbCfg, 5)
	kpath := filepath.Join(t.TempDir(), "kiln.safetensors")
	if err := nb.SaveSafetensors(kpath, nil); err != nil {
		t.Fatal(err)
	}
	q, err := LoadPretrained(dev, kpath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Free()
	qi := tokens(8, 12, 1)
	if q.Config != nbCfg || !slices.Equal(logitsOf(t, q, qi, 1, 8), logitsOf(t, nb, qi, 1, 8)) {
		t.Errorf("LoadPretrained of kiln's file: config %+v, want %+v, or logits differ", q.Config, nbCfg)
	}
}

func TestLoadErrors(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	m := newModel(t, dev, cfg, 1)
	idx := tokens(6, cfg.VocabSize, 1)
	before := logitsOf(t, m, idx, 1, 6)
	good, _ := newModel(t, dev, cfg, 9).StateDict()
	edit := func(f func(sd *nn.StateDict)) *nn.StateDict {
		sd := &nn.StateDict{Names: slices.Clone(good.Names), Tensors: map[string]nn.HostTensor{}}
		for k, v := range good.Tensors {
			sd.Tensors[k] = v
		}
		f(sd)
		return sd
	}
	cases := map[string]struct {
		sd   *nn.StateDict
		want string
	}{
		"missing": {edit(func(sd *nn.StateDict) { delete(sd.Tensors, "transformer.h.1.mlp.c_fc.bias") }), "transformer.h.1.mlp.c_fc.bias"},
		"unexpected": {edit(func(sd *nn.StateDict) {
			sd.Tensors["transformer.h.0.attn.q_proj.weight"] = nn.HostTensor{Shape: []int{1}, Data: []float32{0}}
		}), "q_proj"},
		"shape": {edit(func(sd *nn.StateDict) {
			w := sd.Tensors["transformer.h.0.attn.c_attn.weight"]
			sd.Tensors["transformer.h.0.attn.c_attn.weight"] = nn.HostTensor{Shape: []int{48, 16}, Data: w.Data} // [out, in]: nn.Linear's layout
		}), "c_attn.weight"},
		"head shape": {edit(func(sd *nn.StateDict) {
			sd.Tensors["lm_head.weight"] = nn.HostTensor{Shape: []int{31, 16}, Data: make([]float32, 31*16)}
		}), "lm_head.weight"},
		"both forms": {edit(func(sd *nn.StateDict) { sd.Tensors["ln_f.bias"] = sd.Tensors["transformer.ln_f.bias"] }), "both"},
	}
	for name, c := range cases {
		_, err := m.LoadStateDict(c.sd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", name, err, c.want)
		}
	}
	if !slices.Equal(logitsOf(t, m, idx, 1, 6), before) {
		t.Error("a failed load changed the model")
	}
}
