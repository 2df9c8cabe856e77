package train

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/nn"
)

// A checkpoint is two safetensors files side by side:
//
//	model.safetensors        the weights, written by nn.SaveSafetensors
//	                         (PyTorch state_dict names, spec in metadata),
//	                         loadable by PyTorch and by `kiln` alone;
//	model.state.safetensors  the optimiser's moment buffers as 1-D F32
//	                         tensors "optimizer.<name>" (PyTorch's state
//	                         names, laid out like the model's flat
//	                         parameters) and, in __metadata__ under
//	                         "kiln.train_state", JSON with the optimiser's
//	                         kind, step and rate, the trainer's Position and
//	                         the schedule's state.
//
// Both files are written atomically (temporary file, fsync, rename), the
// state file first; both carry the global step ("kiln.step"), and loading
// refuses a pair whose steps differ (a crash between the two renames).

// StateFormat is the version of the state file's JSON.
const StateFormat = 1

// trainState is the JSON in the state file's metadata.
type trainState struct {
	Format    int           `json:"format"`
	Optimizer optimizerJSON `json:"optimizer"`
	Position  Position      `json:"position"`
	Schedule  ScheduleState `json:"schedule"`
	BatchSize int           `json:"batch_size"`
	Shuffle   bool          `json:"shuffle"`
	Seed      uint64        `json:"seed"`
	Loss      string        `json:"loss"`
}

type optimizerJSON struct {
	Kind string  `json:"kind"`
	Step int     `json:"step"`
	LR   float32 `json:"lr"`
}

// StatePath is the companion file of a checkpoint at modelPath:
// "x.safetensors" → "x.state.safetensors" (any other name gets
// ".state.safetensors" appended).
func StatePath(modelPath string) string {
	return strings.TrimSuffix(modelPath, ".safetensors") + ".state.safetensors"
}

// SaveCheckpoint writes the model to path and the optimiser state and the
// training position to StatePath(path), so that LoadCheckpoint and Fit can
// resume the run exactly.
func (t *Trainer) SaveCheckpoint(path string) error {
	ost, err := t.opt.State()
	if err != nil {
		return fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	st := trainState{
		Format:    StateFormat,
		Optimizer: optimizerJSON{Kind: ost.Kind, Step: ost.Step, LR: ost.LR},
		Position:  t.Position(),
		Schedule:  t.sched.State(),
		BatchSize: t.cfg.BatchSize,
		Shuffle:   t.cfg.Shuffle,
		Seed:      t.cfg.Seed,
		Loss:      t.cfg.Loss.String(),
	}
	js, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("train: checkpoint %s: encoding the state: %w", path, err)
	}
	step := strconv.Itoa(st.Position.Step)
	meta := map[string]string{"kiln.train_state": string(js), "kiln.step": step}
	statePath := StatePath(path)
	sd := &nn.StateDict{Tensors: map[string]nn.HostTensor{}, Metadata: meta}
	for _, name := range sortedKeys(ost.Buffers) {
		v := ost.Buffers[name]
		sd.Names = append(sd.Names, "optimizer."+name)
		sd.Tensors["optimizer."+name] = nn.HostTensor{Shape: []int{len(v)}, Data: v}
	}
	if err := nn.WriteSafetensors(statePath, sd); err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if err := nn.SaveSafetensors(path, t.model, map[string]string{"kiln.step": step}); err != nil {
		return fmt.Errorf("train: checkpoint model %s: %w", path, err)
	}
	return nil
}

// LoadCheckpoint restores the model weights from path and the optimiser,
// schedule and position from StatePath(path) into t, whose model must have
// the same spec and whose optimiser must be of the same kind. The next Fit
// continues where the saved run stopped.
func (t *Trainer) LoadCheckpoint(path string) error {
	statePath := StatePath(path)
	ssd, err := nn.LoadSafetensors(statePath)
	if err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	meta := ssd.Metadata
	raw, ok := meta["kiln.train_state"]
	if !ok {
		return fmt.Errorf("train: checkpoint state %s: __metadata__ has no \"kiln.train_state\" entry: not a kiln state file", statePath)
	}
	var st trainState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return fmt.Errorf("train: checkpoint state %s: field kiln.train_state: %w", statePath, err)
	}
	if st.Format != StateFormat {
		return fmt.Errorf("train: checkpoint state %s: field format is %d, expected %d", statePath, st.Format, StateFormat)
	}
	if st.Position.Batch > 0 && (st.BatchSize != t.cfg.BatchSize || st.Shuffle != t.cfg.Shuffle || st.Seed != t.cfg.Seed) {
		return fmt.Errorf("train: checkpoint state %s: saved mid-epoch with batch size %d, shuffle %v, seed %d; expected the same config, got %d, %v, %d",
			statePath, st.BatchSize, st.Shuffle, st.Seed, t.cfg.BatchSize, t.cfg.Shuffle, t.cfg.Seed)
	}
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		return fmt.Errorf("train: checkpoint model %s: %w", path, err)
	}
	if got := sd.Metadata["kiln.step"]; got != meta["kiln.step"] {
		return fmt.Errorf("train: checkpoint %s: field kiln.step is %q but %s has %q: the pair was not written together",
			path, got, statePath, meta["kiln.step"])
	}
	ost := OptimizerState{Kind: st.Optimizer.Kind, Step: st.Optimizer.Step, LR: st.Optimizer.LR, Buffers: map[string][]float32{}}
	for name, v := range ssd.Tensors {
		k, ok := strings.CutPrefix(name, "optimizer.")
		if !ok {
			return fmt.Errorf("train: checkpoint state %s: unexpected tensor %q, expected only optimizer.<buffer> tensors", statePath, name)
		}
		ost.Buffers[k] = v.Data
	}
	if err := t.opt.LoadState(ost); err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if err := t.sched.LoadState(st.Schedule); err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if err := t.model.LoadState(sd); err != nil {
		return fmt.Errorf("train: checkpoint model %s: %w", path, err)
	}
	t.pos = st.Position
	t.graph.SetRNG(st.Position.RNGSeed, st.Position.RNGOffset)
	return nil
}

func sortedKeys(m map[string][]float32) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
