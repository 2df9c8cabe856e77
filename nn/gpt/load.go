package gpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

const (
	wteName    = "transformer.wte.weight"
	lmHeadName = "lm_head.weight"
)

// StateDict is the model's state_dict as transformers' GPT2LMHeadModel
// writes it: every parameter under its Hugging Face name in module order,
// ending with lm_head.weight (the same values as transformer.wte.weight,
// the tied head). Adapters, when present, appear under their PEFT names
// after their target's own parameters; MergedStateDict folds them in.
// The causal-mask buffers are not written (transformers ≥ 4.31 does not
// persist them either).
func (m *Model) StateDict() (*nn.StateDict, error) {
	sd, err := m.Params.StateDict()
	if err != nil {
		return nil, err
	}
	if _, ok := sd.Tensors[lmHeadName]; !ok {
		w := sd.Tensors[wteName]
		sd.Names = append(sd.Names, lmHeadName)
		sd.Tensors[lmHeadName] = nn.HostTensor{Shape: slices.Clone(w.Shape), Data: w.Data}
	}
	return sd, nil
}

// ConfigKey is the safetensors metadata entry holding the model's Config
// as JSON (SaveSafetensors writes it; ConfigFromStateDict reads it).
const ConfigKey = "kiln.gpt.config"

// SaveSafetensors writes StateDict to path (atomically), with metadata
// and the Config under ConfigKey.
func (m *Model) SaveSafetensors(path string, metadata map[string]string) error {
	sd, err := m.StateDict()
	if err != nil {
		return err
	}
	for k, v := range metadata {
		sd.Metadata[k] = v
	}
	cj, err := json.Marshal(m.Config)
	if err != nil {
		return err
	}
	sd.Metadata[ConfigKey] = string(cj)
	return nn.WriteSafetensors(path, sd)
}

// Pretrained builds the model a GPT-2 checkpoint describes
// (ConfigFromStateDict; heads is needed for files without ConfigKey, 12
// for the Hub's gpt2) and loads it (LoadStateDict), in evaluation mode as
// transformers' from_pretrained returns it.
func Pretrained(dev device.Device, sd *nn.StateDict, heads int) (*Model, error) {
	cfg, err := ConfigFromStateDict(sd, heads)
	if err != nil {
		return nil, err
	}
	m, err := New(dev, cfg, 0)
	if err != nil {
		return nil, err
	}
	if _, err := m.LoadStateDict(sd); err != nil {
		_ = m.Free()
		return nil, err
	}
	nn.SetTraining(m, false)
	return m, nil
}

// LoadPretrained is Pretrained of a safetensors file (F16, BF16 and F64
// tensors are converted to float32 by nn's reader).
func LoadPretrained(dev device.Device, path string, heads int) (*Model, error) {
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	return Pretrained(dev, sd, heads)
}

// hubPrefixes are the top-level names of GPT2Model: a file saved from
// GPT2Model (the Hub's gpt2 files) names its tensors without
// "transformer.".
var hubPrefixes = []string{"wte.", "wpe.", "h.", "ln_f."}

// isMaskBuffer reports whether a (normalised) name is one of
// GPT2Attention's non-parameter buffers, transformer.h.N.attn.bias (the
// causal mask) or transformer.h.N.attn.masked_bias.
func isMaskBuffer(name string) bool {
	if !strings.HasPrefix(name, "transformer.h.") {
		return false
	}
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias")
}

// normalise maps a state dict in either naming (GPT2LMHeadModel's, or
// GPT2Model's without "transformer.") to the model's names, dropping the
// attention buffers. It fails when both forms name the same tensor.
func normalise(sd *nn.StateDict) (*nn.StateDict, []string, error) {
	out := &nn.StateDict{Path: sd.Path, Tensors: map[string]nn.HostTensor{}, Metadata: sd.Metadata}
	var dropped []string
	names := sd.Names
	if len(names) != len(sd.Tensors) {
		names = names[:0:0]
		for n := range sd.Tensors {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	for _, n := range names {
		t, ok := sd.Tensors[n]
		if !ok {
			continue
		}
		key := n
		for _, p := range hubPrefixes {
			if strings.HasPrefix(n, p) {
				key = "transformer." + n
				break
			}
		}
		if isMaskBuffer(key) {
			dropped = append(dropped, n)
			continue
		}
		if _, dup := out.Tensors[key]; dup {
			return nil, nil, fmt.Errorf("gpt: loading %s: tensor %q appears both with and without the \"transformer.\" prefix", where(sd), key)
		}
		out.Names = append(out.Names, key)
		out.Tensors[key] = t
	}
	return out, dropped, nil
}

func where(sd *nn.StateDict) string {
	if sd.Path != "" {
		return sd.Path
	}
	return "state dict"
}

// LoadReport says what LoadStateDict skipped.
type LoadReport struct {
	// Ignored are the source's attention buffers (h.N.attn.bias,
	// h.N.attn.masked_bias), by their names in the source.
	Ignored []string
	// MissingAdapters are the adapter parameters the source lacked; they
	// keep their values (B = 0: the adapter adds nothing).
	MissingAdapters []string
	// TiedHeadIgnored is set when the source held lm_head.weight beside
	// transformer.wte.weight: the head is the token embedding, so only
	// the latter was read.
	TiedHeadIgnored bool
}

// LoadStateDict loads a GPT-2 checkpoint in float32 (nn's safetensors
// reader converts F16, BF16 and F64): Hugging Face names with or without
// the "transformer." prefix, so both GPT2LMHeadModel state_dicts and the
// Hub's gpt2 files load. The attention buffers h.N.attn.bias and
// h.N.attn.masked_bias are ignored. lm_head.weight, the tied head, must
// have wte's shape; it is ignored when transformer.wte.weight is present
// and used as the embedding when only it is. Every other parameter of the
// model must be present with its shape, except the adapters of a LoRA
// model (a base checkpoint has none); any other tensor is an error. On
// error nothing is changed.
func (m *Model) LoadStateDict(sd *nn.StateDict) (LoadReport, error) {
	var rep LoadReport
	if sd == nil {
		return rep, fmt.Errorf("gpt: LoadStateDict: nil state dict")
	}
	nsd, dropped, err := normalise(sd)
	if err != nil {
		return rep, err
	}
	rep.Ignored = dropped
	var errs []error
	wte := m.Transformer.WTE.Weight
	if h, ok := nsd.Tensors[lmHeadName]; ok {
		if !slices.Equal(h.Shape, wte.Shape) {
			errs = append(errs, fmt.Errorf("tensor %q (the tied head) has shape %v, expected %v as transformer.wte.weight", lmHeadName, h.Shape, wte.Shape))
		} else if _, ok := nsd.Tensors[wteName]; ok {
			delete(nsd.Tensors, lmHeadName)
			rep.TiedHeadIgnored = true
		}
	}
	for _, p := range m.Params.All() {
		if _, ok := nsd.Tensors[p.Name]; ok {
			continue
		}
		if p == wte {
			if _, ok := nsd.Tensors[lmHeadName]; ok {
				continue
			}
		}
		if isLoRA(p.Name) {
			rep.MissingAdapters = append(rep.MissingAdapters, p.Name)
			continue
		}
		errs = append(errs, fmt.Errorf("missing tensor %q (expected shape %v)", p.Name, p.Shape))
	}
	var unexpected []string
	for n := range nsd.Tensors {
		if m.Params.Lookup(n) == nil {
			unexpected = append(unexpected, n)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		errs = append(errs, fmt.Errorf("unexpected tensor(s) %q not in the model (a LoRA checkpoint loads into NewLoRA's model; merge it with MergedStateDict for New's)", unexpected))
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("gpt: loading %s: %w", where(sd), errors.Join(errs...))
	}
	// Names are checked; LoadStateDict checks shapes and dtypes, all or
	// nothing, and keeps the adapters' values when they are absent.
	if _, err := m.Params.LoadStateDict(nsd, nn.LoadOptions{Strict: len(rep.MissingAdapters) == 0}); err != nil {
		return rep, fmt.Errorf("gpt: %w", err)
	}
	return rep, nil
}

// LoadFile reads a safetensors checkpoint (see LoadStateDict).
func (m *Model) LoadFile(path string) (LoadReport, error) {
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		return LoadReport{}, err
	}
	return m.LoadStateDict(sd)
}

// ConfigFromStateDict returns the Config of a GPT-2 state dict: the one
// stored under ConfigKey when kiln wrote it; otherwise inferred in either
// naming, VocabSize and Width from wte, Context from wpe, Layers from the
// highest h.N, Bias from ln_f.bias, and Heads, which shapes do not tell,
// from the heads argument (12 for the Hub's gpt2). Dropout is 0.
func ConfigFromStateDict(sd *nn.StateDict, heads int) (Config, error) {
	if sd == nil {
		return Config{}, fmt.Errorf("gpt: ConfigFromStateDict: nil state dict")
	}
	if js, ok := sd.Metadata[ConfigKey]; ok {
		var c Config
		if err := json.Unmarshal([]byte(js), &c); err != nil {
			return Config{}, fmt.Errorf("gpt: %s: metadata %s: %w", where(sd), ConfigKey, err)
		}
		return c, c.Validate()
	}
	if heads < 1 {
		return Config{}, fmt.Errorf("gpt: %s has no %s metadata: pass the number of heads (12 for gpt2)", where(sd), ConfigKey)
	}
	nsd, _, err := normalise(sd)
	if err != nil {
		return Config{}, err
	}
	wte, ok1 := nsd.Tensors[wteName]
	if !ok1 {
		wte, ok1 = nsd.Tensors[lmHeadName]
	}
	wpe, ok2 := nsd.Tensors["transformer.wpe.weight"]
	if !ok1 || !ok2 || len(wte.Shape) != 2 || len(wpe.Shape) != 2 {
		return Config{}, fmt.Errorf("gpt: %s: expected 2-D transformer.wte.weight and transformer.wpe.weight", where(sd))
	}
	layers := 0
	for n := range nsd.Tensors {
		var i int
		if _, err := fmt.Sscanf(n, "transformer.h.%d.", &i); err == nil && i+1 > layers {
			layers = i + 1
		}
	}
	_, bias := nsd.Tensors["transformer.ln_f.bias"]
	cfg := Config{VocabSize: wte.Shape[0], Width: wte.Shape[1], Context: wpe.Shape[0], Layers: layers, Heads: heads, Bias: bias}
	return cfg, cfg.Validate()
}
