package gpt

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// LoRAConfig configures low-rank adapters (LoRA, Hu et al. 2021) in
// PEFT's convention. Each target Conv1D of input size in and output size
// out gains two parameters,
//
//	<target>.lora_A.weight  [Rank, in]   init U(±1/√in) (PEFT's kaiming_uniform(a=√5))
//	<target>.lora_B.weight  [out, Rank]  init 0, so the model starts equal to the base
//
// and computes y = x·W + b + (Alpha/Rank)·(x·Aᵀ)·Bᵀ. NewLoRA freezes every
// other parameter.
type LoRAConfig struct {
	Rank  int     // r ≥ 1
	Alpha float32 // the scale is Alpha/Rank; 0 means Alpha = Rank (scale 1)
	// Targets name the projections that get adapters, as PEFT's
	// target_modules: a module matches when its full name equals a target
	// or ends in "." + target ("c_attn" matches every
	// transformer.h.N.attn.c_attn, "c_proj" both attn.c_proj and
	// mlp.c_proj, "h.0.attn.c_attn" one). Empty means DefaultLoRATargets.
	Targets []string
}

// DefaultLoRATargets are the targets of a LoRAConfig without any: the
// fused attention projection, as in the LoRA paper's GPT-2 runs.
var DefaultLoRATargets = []string{"c_attn"}

// Scale is Alpha/Rank (1 when Alpha is 0).
func (c LoRAConfig) Scale() float32 {
	if c.Alpha == 0 {
		return 1
	}
	return c.Alpha / float32(c.Rank)
}

// LoRA is one adapter of a Conv1D: the parameters A (lora_A.weight,
// [Rank, In]) and B (lora_B.weight, [Out, Rank]) and the scale.
type LoRA struct {
	Rank  int
	Scale float32
	A, B  *nn.Param
	a, b  *weightModule
}

// delta is Scale·(x·Aᵀ)·Bᵀ for x [rows, In].
func (l *LoRA) delta(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := l.a.Forward(g, x) // [rows, r]
	if err != nil {
		return nil, err
	}
	if h, err = l.b.Forward(g, h); err != nil { // [rows, Out]
		return nil, err
	}
	return g.Scale(l.Scale, h)
}

// NewLoRA builds a model with adapters on lc.Targets: the base is
// initialised exactly as New(dev, cfg, seed) initialises it (the adapters
// draw from the stream after every base parameter), B is zero, so the
// model's output equals the base model's, and every base parameter is
// frozen. Load the pretrained weights with LoadStateDict (adapters may be
// absent from the file); train with any optimiser over m.Params (frozen
// parameters are skipped); save the adapters with AdapterStateDict and the
// merged model with MergedStateDict.
func NewLoRA(dev device.Device, cfg Config, lc LoRAConfig, seed uint64) (*Model, error) {
	if lc.Rank < 1 {
		return nil, fmt.Errorf("gpt: NewLoRA: rank %d, expected ≥ 1", lc.Rank)
	}
	if f := float64(lc.Alpha); math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("gpt: NewLoRA: alpha %v, expected a finite number", lc.Alpha)
	}
	if len(lc.Targets) == 0 {
		lc.Targets = DefaultLoRATargets
	}
	lc.Targets = slices.Clone(lc.Targets)
	return build(dev, cfg, lc, seed)
}

// conv1Ds lists every Conv1D of the model with its full module name.
func (m *Model) conv1Ds() ([]string, []*Conv1D) {
	var names []string
	var convs []*Conv1D
	_ = nn.Walk(m, func(prefix string, sub nn.Module) error {
		if c, ok := sub.(*Conv1D); ok {
			names = append(names, prefix)
			convs = append(convs, c)
		}
		return nil
	})
	return names, convs
}

func matchTarget(name, target string) bool {
	return name == target || strings.HasSuffix(name, "."+target)
}

// attachLoRA gives every matching Conv1D an adapter (before NewParamSet).
func (m *Model) attachLoRA(lc LoRAConfig) error {
	names, convs := m.conv1Ds()
	used := make([]bool, len(lc.Targets))
	for i, c := range convs {
		hit := false
		for j, t := range lc.Targets {
			if matchTarget(names[i], t) {
				used[j], hit = true, true
			}
		}
		if !hit {
			continue
		}
		l := &LoRA{Rank: lc.Rank, Scale: lc.Scale(),
			A: nn.NewParam("weight", nn.DefaultInit(c.In), lc.Rank, c.In),
			B: nn.NewParam("weight", nn.ZerosInit(), c.Out, lc.Rank)}
		l.a, l.b = &weightModule{Weight: l.A}, &weightModule{Weight: l.B}
		c.LoRA = l
	}
	for j, t := range lc.Targets {
		if !used[j] {
			return fmt.Errorf("gpt: LoRA target %q matches no projection; the model has %s", t, strings.Join(names, ", "))
		}
	}
	m.LoRA = lc
	return nil
}

// isLoRA reports whether a full parameter name is an adapter's.
func isLoRA(name string) bool {
	return strings.Contains(name, ".lora_A.") || strings.Contains(name, ".lora_B.")
}

// initLoRAModel redraws every parameter so that the base gets the values
// New would give it (base parameters in state_dict order take the stream
// positions NewParamSet documents, as if the adapters were absent) and
// the adapters draw from the positions after them; then it freezes the
// base.
func (m *Model) initLoRAModel(seed uint64) error {
	var pos uint64
	var base, lora []*nn.Param
	for _, p := range m.Params.All() {
		if isLoRA(p.Name) {
			lora = append(lora, p)
		} else {
			base = append(base, p)
		}
	}
	for _, p := range append(base, lora...) {
		if err := applyInit(m.dev, p, seed, pos); err != nil {
			return fmt.Errorf("gpt: NewLoRA: initialising %s: %w", p.Name, err)
		}
		pos += uint64(p.Len()+3) &^ 3
		p.Frozen = !isLoRA(p.Name)
	}
	return nil
}

// applyInit fills p from its ParamInit at stream position pos, as
// NewParamSet does.
func applyInit(dev device.Device, p *nn.Param, seed, pos uint64) error {
	x, n := p.Value(), p.Len()
	switch p.Init.Dist {
	case nn.DistNormal:
		return dev.RandNormal(x, n, p.Init.A, p.Init.B, seed, pos)
	case nn.DistUniform:
		return dev.RandUniform(x, n, p.Init.A, p.Init.B, seed, pos)
	}
	return dev.Fill(x, n, p.Init.A)
}

// LoRAParams lists the adapter parameters in state_dict order (nil for a
// model without adapters).
func (m *Model) LoRAParams() []*nn.Param {
	var out []*nn.Param
	for _, p := range m.Params.Params() {
		if isLoRA(p.Name) {
			out = append(out, p)
		}
	}
	return out
}

// AdapterStateDict is the adapter checkpoint: only the lora_A and lora_B
// tensors, with their full names, and the configuration in the metadata
// ("lora.rank", "lora.alpha", "lora.targets").
func (m *Model) AdapterStateDict() (*nn.StateDict, error) {
	if m.LoRA.Rank == 0 {
		return nil, fmt.Errorf("gpt: AdapterStateDict: the model has no adapters (build it with NewLoRA)")
	}
	full, err := m.Params.StateDict()
	if err != nil {
		return nil, err
	}
	sd := &nn.StateDict{Tensors: map[string]nn.HostTensor{}, Metadata: map[string]string{
		"lora.rank":    fmt.Sprint(m.LoRA.Rank),
		"lora.alpha":   fmt.Sprint(m.LoRA.Alpha),
		"lora.targets": strings.Join(m.LoRA.Targets, ","),
	}}
	for _, n := range full.Names {
		if isLoRA(n) {
			sd.Names = append(sd.Names, n)
			sd.Tensors[n] = full.Tensors[n]
		}
	}
	return sd, nil
}

// MergedStateDict is the model with every adapter folded into its base
// weight, W' = W + Scale·(B·A)ᵀ (W is [in, out], so W'[i][o] = W[i][o] +
// Scale·Σ_r A[r][i]·B[o][r], summed in float64 and rounded once), under
// Hugging Face names without any lora_ entry: a checkpoint New's model
// (and transformers' GPT2LMHeadModel) loads. The model itself is
// unchanged. For a model without adapters it is StateDict.
func (m *Model) MergedStateDict() (*nn.StateDict, error) {
	sd, err := m.StateDict()
	if err != nil {
		return nil, err
	}
	if m.LoRA.Rank == 0 {
		return sd, nil
	}
	names, convs := m.conv1Ds()
	for i, c := range convs {
		if c.LoRA == nil {
			continue
		}
		wn := names[i] + ".weight"
		w := sd.Tensors[wn]
		a := sd.Tensors[names[i]+".lora_A.weight"].Data
		b := sd.Tensors[names[i]+".lora_B.weight"].Data
		r, in, out := c.LoRA.Rank, c.In, c.Out
		merged := make([]float32, len(w.Data))
		scale := float64(c.LoRA.Scale)
		for ii := 0; ii < in; ii++ {
			for o := 0; o < out; o++ {
				s := 0.0
				for k := 0; k < r; k++ {
					s += float64(a[k*in+ii]) * float64(b[o*r+k])
				}
				merged[ii*out+o] = float32(float64(w.Data[ii*out+o]) + scale*s)
			}
		}
		sd.Tensors[wn] = nn.HostTensor{Shape: slices.Clone(w.Shape), Data: merged}
	}
	kept := sd.Names[:0]
	for _, n := range sd.Names {
		if isLoRA(n) {
			delete(sd.Tensors, n)
			continue
		}
		kept = append(kept, n)
	}
	sd.Names = kept
	return sd, nil
}

// peftPrefix starts every name in the adapter files PEFT writes
// (adapter_model.safetensors of a GPT2LMHeadModel).
const peftPrefix = "base_model.model."

// LoadAdapters loads an adapter checkpoint into a LoRA model:
// AdapterStateDict's tensors, or PEFT's adapter_model.safetensors (names
// prefixed "base_model.model.", which is removed). Every adapter of the
// model must be present with its shape, and nothing else; on error
// nothing changes. The base weights are loaded separately
// (LoadStateDict). The scale is the model's (LoRAConfig.Alpha/Rank), not
// the file's.
func (m *Model) LoadAdapters(sd *nn.StateDict) error {
	if m.LoRA.Rank == 0 {
		return fmt.Errorf("gpt: LoadAdapters: the model has no adapters (build it with NewLoRA)")
	}
	if sd == nil {
		return fmt.Errorf("gpt: LoadAdapters: nil state dict")
	}
	trimmed := &nn.StateDict{Path: sd.Path, Tensors: map[string]nn.HostTensor{}, Metadata: sd.Metadata}
	for n, t := range sd.Tensors {
		trimmed.Tensors[strings.TrimPrefix(n, peftPrefix)] = t
	}
	sd = trimmed
	var errs []error
	for n := range sd.Tensors {
		if !isLoRA(n) || m.Params.Lookup(n) == nil {
			errs = append(errs, fmt.Errorf("tensor %q is not an adapter of this model", n))
		}
	}
	for _, p := range m.LoRAParams() {
		if _, ok := sd.Tensors[p.Name]; !ok {
			errs = append(errs, fmt.Errorf("missing adapter %q (expected shape %v)", p.Name, p.Shape))
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return fmt.Errorf("gpt: loading adapters from %s: %w", where(sd), errors.Join(errs...))
	}
	if _, err := m.Params.LoadStateDict(sd, nn.LoadOptions{}); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	return nil
}
