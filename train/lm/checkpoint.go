package lm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/nn/gpt"
	"github.com/kilnml/kiln/train"
)

// Metadata keys of a checkpoint's model file (the model's shape is under
// gpt.ConfigKey, which gpt.Model.SaveSafetensors writes).
const (
	MetaTokenizer = "kiln.tokenizer" // the tokeniser (text.Tokenizer.MarshalJSON)
	MetaLoRA      = "kiln.lora"      // the adapters' configuration (LoRAJSON), LoRA models only
	MetaStep      = "kiln.step"      // the iteration the checkpoint was taken at
	metaState     = "kiln.lm_state"  // the state file's JSON (lmState)
)

// LoRAJSON is gpt.LoRAConfig as stored under MetaLoRA.
type LoRAJSON struct {
	Rank    int      `json:"rank"`
	Alpha   float32  `json:"alpha"`
	Targets []string `json:"targets"`
}

// ModelMetadata is the metadata a checkpoint's model file carries for m
// and tok (gpt.ConfigKey, MetaTokenizer, MetaLoRA).
func ModelMetadata(m *gpt.Model, tok text.Tokenizer) (map[string]string, error) {
	cj, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{gpt.ConfigKey: string(cj)}
	if tok != nil {
		tj, err := tok.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("lm: encoding the tokenizer: %w", err)
		}
		meta[MetaTokenizer] = string(tj)
	}
	if m.LoRA.Rank > 0 {
		lj, err := json.Marshal(LoRAJSON{Rank: m.LoRA.Rank, Alpha: m.LoRA.Alpha, Targets: m.LoRA.Targets})
		if err != nil {
			return nil, err
		}
		meta[MetaLoRA] = string(lj)
	}
	return meta, nil
}

// Checkpoint is what ReadCheckpoint found in a model file's metadata.
type Checkpoint struct {
	Path      string
	Config    gpt.Config
	LoRA      gpt.LoRAConfig // zero without adapters
	Tokenizer text.Tokenizer // nil when the file names none
	Step      int            // 0 when the file has no "kiln.step"
	State     *nn.StateDict  // the tensors
}

// ReadCheckpoint reads a safetensors model file. A kiln checkpoint gives
// its shape and tokeniser from the metadata; a file without gpt.ConfigKey (a
// Hugging Face GPT-2 file, with or without the "transformer." prefix) has
// its shape inferred by gpt.ConfigFromStateDict with heads attention
// heads (heads 0 means GPT-2's 64-wide heads: Width/64) and no tokeniser.
func ReadCheckpoint(path string, heads int) (*Checkpoint, error) {
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Path: path, State: sd}
	if _, ok := sd.Metadata[gpt.ConfigKey]; !ok && heads == 0 {
		if w, ok := width(sd); ok && w%64 == 0 {
			heads = w / 64
		}
	}
	if ck.Config, err = gpt.ConfigFromStateDict(sd, heads); err != nil {
		return nil, fmt.Errorf("lm: %s: %w", path, err)
	}
	if raw, ok := sd.Metadata[MetaTokenizer]; ok {
		if ck.Tokenizer, err = text.Load([]byte(raw)); err != nil {
			return nil, fmt.Errorf("lm: %s: metadata %s: %w", path, MetaTokenizer, err)
		}
		if ck.Tokenizer.VocabSize() > ck.Config.VocabSize {
			return nil, fmt.Errorf("lm: %s: the tokenizer has %d symbols, the model's vocabulary only %d", path, ck.Tokenizer.VocabSize(), ck.Config.VocabSize)
		}
	}
	if raw, ok := sd.Metadata[MetaLoRA]; ok {
		var lj LoRAJSON
		if err := json.Unmarshal([]byte(raw), &lj); err != nil {
			return nil, fmt.Errorf("lm: %s: metadata %s: %w", path, MetaLoRA, err)
		}
		ck.LoRA = gpt.LoRAConfig{Rank: lj.Rank, Alpha: lj.Alpha, Targets: lj.Targets}
	}
	if s, ok := sd.Metadata[MetaStep]; ok {
		if ck.Step, err = strconv.Atoi(s); err != nil || ck.Step < 0 {
			return nil, fmt.Errorf("lm: %s: metadata %s is %q, expected a step count", path, MetaStep, s)
		}
	}
	return ck, nil
}

// width is the embedding width of a GPT-2 state dict in either naming.
func width(sd *nn.StateDict) (int, bool) {
	for _, n := range []string{"transformer.wte.weight", "wte.weight", "lm_head.weight"} {
		if t, ok := sd.Tensors[n]; ok && len(t.Shape) == 2 {
			return t.Shape[1], true
		}
	}
	return 0, false
}

// Build makes the checkpoint's model on dev (with its adapters, when it
// has them) and loads its weights.
func (ck *Checkpoint) Build(dev device.Device) (*gpt.Model, error) {
	var m *gpt.Model
	var err error
	if ck.LoRA.Rank > 0 {
		m, err = gpt.NewLoRA(dev, ck.Config, ck.LoRA, 0)
	} else {
		m, err = gpt.New(dev, ck.Config, 0)
	}
	if err != nil {
		return nil, err
	}
	if _, err := m.LoadStateDict(ck.State); err != nil {
		_ = m.Free()
		return nil, err
	}
	return m, nil
}

// LoadModel reads a checkpoint written by a Trainer (or any GPT-2
// safetensors file with heads of 64) and builds its model on dev, in
// evaluation mode, with the tokeniser it was trained with (nil when the
// file names none).
func LoadModel(dev device.Device, path string) (*gpt.Model, text.Tokenizer, error) {
	ck, err := ReadCheckpoint(path, 0)
	if err != nil {
		return nil, nil, err
	}
	m, err := ck.Build(dev)
	if err != nil {
		return nil, nil, err
	}
	nn.SetTraining(m, false)
	return m, ck.Tokenizer, nil
}

// WriteMerged reads the LoRA checkpoint at path (a model file or a run
// folder), folds its adapters into the base weights
// (gpt.Model.MergedStateDict) on dev and writes the result to out: a plain
// GPT-2 state dict under Hugging Face names, without lora_ tensors, with
// the checkpoint's shape and tokeniser in its metadata, so that LoadModel,
// `kiln generate` and transformers' GPT2LMHeadModel load it as a model
// without adapters. A checkpoint without adapters is an error.
func WriteMerged(dev device.Device, path, out string) error {
	path = CheckpointPath(path)
	ck, err := ReadCheckpoint(path, 0)
	if err != nil {
		return err
	}
	if ck.LoRA.Rank == 0 {
		return fmt.Errorf("lm: merge: %s has no LoRA adapters (no %q metadata); it is already a full model", path, MetaLoRA)
	}
	m, err := ck.Build(dev)
	if err != nil {
		return err
	}
	defer m.Free()
	sd, err := m.MergedStateDict()
	if err != nil {
		return err
	}
	if sd.Metadata == nil {
		sd.Metadata = map[string]string{}
	}
	for _, k := range []string{gpt.ConfigKey, MetaTokenizer} {
		if v, ok := ck.State.Metadata[k]; ok {
			sd.Metadata[k] = v
		}
	}
	delete(sd.Metadata, MetaLoRA)
	if err := nn.WriteSafetensors(out, sd); err != nil {
		return fmt.Errorf("lm: merge: %w", err)
	}
	return nil
}

// lmState is the JSON of a state file.
type lmState struct {
	Format     int            `json:"format"`
	Iter       int            `json:"iter"`
	Tokens     int64          `json:"tokens"`
	OptKind    string         `json:"optimizer"`
	OptStep    int            `json:"optimizer_step"`
	LR         float32        `json:"lr"`
	ParamSteps map[string]int `json:"param_steps,omitempty"`
	Sampler    uint64         `json:"sampler_position"`
	RNGSeed    uint64         `json:"rng_seed"`
	RNGOffset  uint64         `json:"rng_offset"`
	Seed       uint64         `json:"seed"`
	Batch      int            `json:"batch"`
	Accum      int            `json:"accum"`
	Context    int            `json:"context"`
	Freeze     []string       `json:"freeze,omitempty"`
}

const stateFormat = 1

// saveCheckpoint writes the pair: the state file first, then the model.
func (t *Trainer) saveCheckpoint(path string) error {
	ost, err := t.opt.State()
	if err != nil {
		return fmt.Errorf("lm: checkpoint %s: %w", path, err)
	}
	seed, off := t.g.RNG()
	st := lmState{Format: stateFormat, Iter: t.iter, Tokens: t.tokens, OptKind: ost.Kind, OptStep: ost.Step, LR: ost.LR,
		ParamSteps: ost.ParamSteps, Sampler: t.sampler.Position(), RNGSeed: seed, RNGOffset: off,
		Seed: t.cfg.Seed, Batch: t.cfg.Batch, Accum: t.cfg.Accum, Context: t.ctx, Freeze: t.cfg.Freeze}
	js, err := json.Marshal(st)
	if err != nil {
		return err
	}
	step := strconv.Itoa(t.iter)
	sd := &nn.StateDict{Tensors: map[string]nn.HostTensor{}, Metadata: map[string]string{metaState: string(js), MetaStep: step}}
	moments := make([]string, 0, len(ost.Buffers))
	for k := range ost.Buffers {
		moments = append(moments, k)
	}
	slices.Sort(moments)
	for _, p := range t.ps.Params() {
		if p.Frozen {
			continue // never updated: its moments are zero
		}
		for _, mo := range moments {
			v := ost.Buffers[mo]
			key := "optimizer." + p.Name + "." + mo
			sd.Names = append(sd.Names, key)
			sd.Tensors[key] = nn.HostTensor{Shape: slices.Clone(p.Shape), Data: v[p.Offset : p.Offset+p.Len() : p.Offset+p.Len()]}
		}
	}
	if err := nn.WriteSafetensors(train.StatePath(path), sd); err != nil {
		return fmt.Errorf("lm: checkpoint state: %w", err)
	}
	meta, err := ModelMetadata(t.m, t.tok)
	if err != nil {
		return err
	}
	meta[MetaStep] = step
	if err := t.m.SaveSafetensors(path, meta); err != nil {
		return fmt.Errorf("lm: checkpoint model: %w", err)
	}
	return nil
}

// Resume restores a checkpoint written by a Trainer of the same model
// shape, batch, accumulation and seed: the weights, AdamW's moments and
// step counts, the sampler's position, the dropout RNG and the iteration,
// so that the next steps are bit for bit those the saved run would have
// taken. path is the model file or the folder holding model.safetensors.
func (t *Trainer) Resume(path string) error {
	path = CheckpointPath(path)
	statePath := train.StatePath(path)
	ssd, err := nn.LoadSafetensors(statePath)
	if err != nil {
		return fmt.Errorf("lm: resume: %w", err)
	}
	raw, ok := ssd.Metadata[metaState]
	if !ok {
		return fmt.Errorf("lm: resume: %s has no %q metadata: not a kiln lm state file", statePath, metaState)
	}
	var st lmState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return fmt.Errorf("lm: resume: %s: %w", statePath, err)
	}
	if st.Format != stateFormat {
		return fmt.Errorf("lm: resume: %s: format %d, expected %d", statePath, st.Format, stateFormat)
	}
	if st.Batch != t.cfg.Batch || st.Accum != t.cfg.Accum || st.Context != t.ctx || st.Seed != t.cfg.Seed {
		return fmt.Errorf("lm: resume: %s was saved with batch %d, accum %d, context %d, seed %d; this run has %d, %d, %d, %d (an exact resume needs the same)",
			statePath, st.Batch, st.Accum, st.Context, st.Seed, t.cfg.Batch, t.cfg.Accum, t.ctx, t.cfg.Seed)
	}
	if strings.Join(st.Freeze, ",") != strings.Join(t.cfg.Freeze, ",") {
		return fmt.Errorf("lm: resume: %s froze %q; this run freezes %q (an exact resume needs the same patterns)",
			statePath, strings.Join(st.Freeze, ","), strings.Join(t.cfg.Freeze, ","))
	}
	if st.Iter > t.cfg.Iters {
		return fmt.Errorf("lm: resume: %s is at iteration %d, past this run's %d iterations", statePath, st.Iter, t.cfg.Iters)
	}
	ck, err := ReadCheckpoint(path, t.m.Config.Heads)
	if err != nil {
		return fmt.Errorf("lm: resume: %w", err)
	}
	if ck.Step != st.Iter {
		return fmt.Errorf("lm: resume: %s is at step %d but %s at %d: the pair was not written together", path, ck.Step, statePath, st.Iter)
	}
	if ck.Config != t.m.Config {
		return fmt.Errorf("lm: resume: %s holds a model of shape %+v, this run's is %+v", path, ck.Config, t.m.Config)
	}
	// The moments, flat like the parameters; frozen parameters' stay 0.
	ost := train.OptimizerState{Kind: st.OptKind, Step: st.OptStep, LR: st.LR, ParamSteps: st.ParamSteps, Buffers: map[string][]float32{}}
	for _, name := range ssd.Names {
		k, ok := strings.CutPrefix(name, "optimizer.")
		i := strings.LastIndexByte(k, '.')
		if !ok || i < 0 {
			return fmt.Errorf("lm: resume: %s: unexpected tensor %q", statePath, name)
		}
		p, mo := t.ps.Lookup(k[:i]), k[i+1:]
		v := ssd.Tensors[name]
		if p == nil || p.Buffer || len(v.Data) != p.Len() {
			return fmt.Errorf("lm: resume: %s: tensor %q does not match a parameter of the model", statePath, name)
		}
		flat := ost.Buffers[mo]
		if flat == nil {
			flat = make([]float32, t.ps.NumParams())
			ost.Buffers[mo] = flat
		}
		copy(flat[p.Offset:], v.Data)
	}
	if _, err := t.m.LoadStateDict(ck.State); err != nil {
		return fmt.Errorf("lm: resume: %w", err)
	}
	if err := t.opt.LoadState(ost); err != nil {
		return fmt.Errorf("lm: resume: %s: %w", statePath, err)
	}
	t.iter, t.tokens = st.Iter, st.Tokens
	t.sampler.Seek(st.Sampler)
	t.g.SetRNG(st.RNGSeed, st.RNGOffset)
	return nil
}

// CheckpointPath is the model file of a checkpoint given as a file or as
// the folder a run wrote (folder/model.safetensors).
func CheckpointPath(p string) string {
	if strings.HasSuffix(p, ".safetensors") {
		return p
	}
	return strings.TrimSuffix(p, "/") + "/" + ModelFile
}

// File names inside Config.Out.
const (
	ModelFile   = "model.safetensors"
	AdapterFile = "adapter.safetensors"
	MetricsFile = "metrics.jsonl"
	PlotFile    = "loss.png"
)
