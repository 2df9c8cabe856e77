package train

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
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
//	model.state.safetensors  the optimiser's moment buffers, one F32
//	                         tensor per parameter and moment, named
//	                         "optimizer.<parameter>.<moment>"
//	                         ("optimizer.0.weight.exp_avg", PyTorch's
//	                         moment names) with the parameter's shape, so
//	                         that state is matched by name, and, in
//	                         __metadata__ under
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
	Kind       string         `json:"kind"`
	Step       int            `json:"step"`
	LR         float32        `json:"lr"`
	ParamSteps map[string]int `json:"param_steps,omitempty"`
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
		Optimizer: optimizerJSON{Kind: ost.Kind, Step: ost.Step, LR: ost.LR, ParamSteps: ost.ParamSteps},
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
	ps := t.model.Params
	for _, p := range ps.Params() {
		for _, name := range sortedKeys(ost.Buffers) {
			v := ost.Buffers[name]
			if len(v) != ps.NumParams() {
				return fmt.Errorf("train: checkpoint %s: optimizer buffer %q has %d values, the model %d", path, name, len(v), ps.NumParams())
			}
			key := "optimizer." + p.Name + "." + name
			sd.Names = append(sd.Names, key)
			sd.Tensors[key] = nn.HostTensor{Shape: slices.Clone(p.Shape), Data: v[p.Offset : p.Offset+p.Len() : p.Offset+p.Len()]}
		}
	}
	if err := nn.WriteSafetensors(statePath, sd); err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if err := publicMode(statePath); err != nil {
		return err
	}
	mmeta := map[string]string{}
	for k, v := range t.cfg.CheckpointMetadata {
		mmeta[k] = v
	}
	mmeta["kiln.step"] = step
	if err := SaveModel(path, t.model, mmeta); err != nil {
		return fmt.Errorf("train: checkpoint model %s: %w", path, err)
	}
	return nil
}

// checkPosition validates every field of a saved position, so that a
// corrupt or hand-edited state file gives an error naming the field
// instead of a crash (a negative batch would slice out of range) or a run
// that silently continues from nonsense.
func checkPosition(p Position) error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("position: field %s is %v, expected %s", field, v, want)
	}
	finite := func(v jsonFloat) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case p.Epoch < 0:
		return bad("epoch", p.Epoch, "≥ 0")
	case p.Batch < 0:
		return bad("batch", p.Batch, "≥ 0")
	case p.Step < 0:
		return bad("step", p.Step, "≥ 0")
	case p.Step < p.Batch:
		return bad("step", p.Step, fmt.Sprintf("≥ batch (%d)", p.Batch))
	case p.Samples < 0:
		return bad("samples", p.Samples, "≥ 0")
	case p.EpochSamples < 0 || int64(p.EpochSamples) > p.Samples:
		return bad("epoch_samples", p.EpochSamples, fmt.Sprintf("in [0, samples = %d]", p.Samples))
	case (p.Batch == 0) != (p.EpochSamples == 0):
		return bad("epoch_samples", p.EpochSamples, fmt.Sprintf("0 exactly when batch is 0 (batch is %d)", p.Batch))
	case p.Samples < int64(p.Step):
		return bad("samples", p.Samples, fmt.Sprintf("≥ step (%d): every step has a sample", p.Step))
	case p.BestEpoch < -1 || p.BestEpoch >= max(p.Epoch, 0) && p.BestEpoch != -1:
		return bad("best_epoch", p.BestEpoch, fmt.Sprintf("-1 or an epoch in [0, %d)", p.Epoch))
	case p.BadEpochs < 0 || p.BadEpochs > p.Epoch:
		return bad("bad_epochs", p.BadEpochs, fmt.Sprintf("in [0, epoch = %d]", p.Epoch))
	case p.BestEpoch == -1 && !math.IsInf(float64(p.BestValLoss), 1):
		return bad("best_val_loss", float64(p.BestValLoss), "+Inf while best_epoch is -1")
	case p.BestEpoch >= 0 && !(finite(p.BestValLoss) && p.BestValLoss >= 0):
		return bad("best_val_loss", float64(p.BestValLoss), "a finite loss ≥ 0")
	case !finite(p.EpochLossSum) || p.EpochLossSum < 0:
		return bad("epoch_loss_sum", float64(p.EpochLossSum), "a finite sum ≥ 0")
	case p.Epoch > 0 && !(finite(p.TrainLoss) && p.TrainLoss >= 0):
		return bad("train_loss", float64(p.TrainLoss), "a finite loss ≥ 0 after a complete epoch")
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
	if err := checkPosition(st.Position); err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if st.Optimizer.Step < 0 || st.Optimizer.Step > st.Position.Step {
		return fmt.Errorf("train: checkpoint state %s: field optimizer.step is %d, expected in [0, position.step = %d]", statePath, st.Optimizer.Step, st.Position.Step)
	}
	if !(st.Optimizer.LR >= 0) || math.IsInf(float64(st.Optimizer.LR), 0) {
		return fmt.Errorf("train: checkpoint state %s: field optimizer.lr is %g, expected a finite rate ≥ 0", statePath, st.Optimizer.LR)
	}
	for name, n := range st.Optimizer.ParamSteps {
		if n < 0 || n > st.Optimizer.Step {
			return fmt.Errorf("train: checkpoint state %s: field optimizer.param_steps[%q] is %d, expected in [0, optimizer.step = %d]", statePath, name, n, st.Optimizer.Step)
		}
	}
	if st.Loss != "" && st.Loss != t.cfg.Loss.String() {
		return fmt.Errorf("train: checkpoint state %s: field loss is %q, but this run trains with %s: resume with the same loss", statePath, st.Loss, t.cfg.Loss)
	}
	if st.BatchSize < 0 {
		return fmt.Errorf("train: checkpoint state %s: field batch_size is %d, expected ≥ 0", statePath, st.BatchSize)
	}
	if st.Schedule.T < 0 || st.Schedule.Bad < 0 || st.Schedule.Cooldown < 0 {
		return fmt.Errorf("train: checkpoint state %s: schedule: fields t %d, bad %d, cooldown %d, expected ≥ 0", statePath, st.Schedule.T, st.Schedule.Bad, st.Schedule.Cooldown)
	}
	if st.Position.Batch > 0 && t.trainD != nil && t.trainB != nil {
		if batches := (t.trainD.Len() + t.trainB.cap - 1) / t.trainB.cap; st.Position.Batch > batches {
			return fmt.Errorf("train: checkpoint state %s: field position.batch is %d, but an epoch has %d batches", statePath, st.Position.Batch, batches)
		}
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
	ost, err := optimizerState(t.model.Params, st.Optimizer, ssd)
	if err != nil {
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	for _, name := range sortedKeys(ost.Buffers) {
		for i, v := range ost.Buffers[name] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("train: checkpoint state %s: optimizer moment %q value %d is %g, expected a finite number", statePath, name, i, v)
			}
		}
	}
	// All or nothing: the optimiser and the schedule are restored to what
	// they were when a later part fails to load (the model's LoadStateDict
	// changes nothing when it fails).
	oldOpt, err := t.opt.State()
	if err != nil {
		return fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	oldSched := t.sched.State()
	rollback := func() {
		_ = t.opt.LoadState(oldOpt)
		_ = t.sched.LoadState(oldSched)
	}
	if err := t.opt.LoadState(ost); err != nil {
		rollback()
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if err := t.sched.LoadState(st.Schedule); err != nil {
		rollback()
		return fmt.Errorf("train: checkpoint state %s: %w", statePath, err)
	}
	if _, err := t.model.Params.LoadStateDict(sd, nn.LoadOptions{Strict: true}); err != nil {
		rollback()
		return fmt.Errorf("train: checkpoint model %s: %w", path, err)
	}
	t.pos = st.Position
	t.graph.SetRNG(st.Position.RNGSeed, st.Position.RNGOffset)
	return nil
}

// optimizerState assembles the optimiser tensors of a state file into an
// OptimizerState laid out like ps: per-parameter tensors
// "optimizer.<parameter>.<moment>" are matched by name (every parameter
// must be there for every moment, and nothing else); a file of the first
// format, with one flat "optimizer.<moment>" tensor per moment, is taken
// as it is.
func optimizerState(ps *nn.ParamSet, oj optimizerJSON, ssd *nn.StateDict) (OptimizerState, error) {
	ost := OptimizerState{Kind: oj.Kind, Step: oj.Step, LR: oj.LR, ParamSteps: oj.ParamSteps, Buffers: map[string][]float32{}}
	got := map[string]map[*nn.Param]bool{}
	var errs []string
	for _, name := range ssd.Names {
		v := ssd.Tensors[name]
		k, ok := strings.CutPrefix(name, "optimizer.")
		if !ok {
			return ost, fmt.Errorf("unexpected tensor %q, expected only optimizer.<parameter>.<moment> tensors", name)
		}
		if v.DType != nn.HostF32 {
			return ost, fmt.Errorf("tensor %q has dtype %s, expected F32", name, v.DType)
		}
		if !strings.Contains(k, ".") {
			if got[k] != nil {
				errs = append(errs, fmt.Sprintf("moment %q is given both flat and per parameter", k))
				continue
			}
			ost.Buffers[k] = v.Data // first format: one flat tensor per moment
			continue
		}
		if ps.Lookup(k[:strings.LastIndexByte(k, '.')]) == nil {
			errs = append(errs, fmt.Sprintf("%q names no parameter of the model", name))
			continue
		}
		i := strings.LastIndexByte(k, '.')
		p, moment := ps.Lookup(k[:i]), k[i+1:]
		if p.Buffer {
			errs = append(errs, fmt.Sprintf("%q is for buffer %q, which has no optimiser state", name, p.Name))
			continue
		}
		if len(v.Data) != p.Len() {
			errs = append(errs, fmt.Sprintf("%q has %d values, expected %d (shape %v)", name, len(v.Data), p.Len(), p.Shape))
			continue
		}
		flat := ost.Buffers[moment]
		if flat == nil {
			flat = make([]float32, ps.NumParams())
			ost.Buffers[moment] = flat
			got[moment] = map[*nn.Param]bool{}
		}
		if got[moment] == nil {
			errs = append(errs, fmt.Sprintf("moment %q is given both flat and per parameter", moment))
			continue
		}
		copy(flat[p.Offset:], v.Data)
		got[moment][p] = true
	}
	for _, moment := range sortedKeys(ost.Buffers) {
		seen := got[moment]
		if seen == nil {
			continue
		}
		for _, p := range ps.Params() {
			if !seen[p] {
				errs = append(errs, fmt.Sprintf("optimizer.%s.%s is missing", p.Name, moment))
			}
		}
	}
	if len(errs) > 0 {
		return ost, fmt.Errorf("optimizer state: %s", strings.Join(errs, "; "))
	}
	return ost, nil
}

func sortedKeys(m map[string][]float32) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
