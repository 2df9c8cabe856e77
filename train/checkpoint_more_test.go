package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/nn"
)

// editState rewrites the position JSON of a state file with edit.
func editState(t *testing.T, path string, edit func(st map[string]any)) {
	t.Helper()
	sp := StatePath(path)
	sd, err := nn.LoadSafetensors(sp)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(sd.Metadata["kiln.train_state"]), &st); err != nil {
		t.Fatal(err)
	}
	edit(st)
	b, _ := json.Marshal(st)
	sd.Metadata["kiln.train_state"] = string(b)
	if err := nn.WriteSafetensors(sp, sd); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStateIsAnError: every corrupt position field is a clear error
// naming it — a negative batch used to panic with a slice-bounds error in
// Fit — and a failed load changes nothing: the weights, the optimiser's
// state and a later Fit are those of a trainer that never loaded.
func TestCorruptStateIsAnError(t *testing.T) {
	dev := openCPU(t)
	trainSet, valSet := blobs(40, 0), blobs(12, 1)
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	cfg := resumeConfig(2, ck)
	cfg.MaxSteps = 7 // stop mid-epoch: batch 2 of 5
	first, _ := newResumeTrainer(t, dev, 1, cfg)
	if _, err := first.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(StatePath(ck))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		v     any
	}{
		{"batch", -3}, {"epoch", -1}, {"step", -2}, {"samples", -5}, {"epoch_samples", -1},
		{"best_epoch", 99}, {"bad_epochs", -1}, {"batch", 1000}, {"epoch_loss_sum", "NaN"},
		{"loss", "mse"}, {"optimizer.step", -4},
	} {
		t.Run(c.field, func(t *testing.T) {
			if err := os.WriteFile(StatePath(ck), good, 0o644); err != nil {
				t.Fatal(err)
			}
			editState(t, ck, func(st map[string]any) {
				if c.field == "loss" || c.field == "optimizer.step" {
					if c.field == "loss" {
						st["loss"] = c.v
					} else {
						st["optimizer"].(map[string]any)["step"] = c.v
					}
					return
				}
				st["position"].(map[string]any)[c.field] = c.v
			})
			tr, m := newResumeTrainer(t, dev, 2, resumeConfig(2, ""))
			before := flatValues(t, m)
			ost, _ := tr.Optimizer().State()
			err := tr.LoadCheckpoint(ck)
			if c.field == "batch" && c.v == 1000 && err == nil {
				// Only Fit knows the epoch's batches before a dataset is seen.
				_, err = tr.Fit(trainSet, valSet)
			} else if err == nil {
				t.Fatalf("%s = %v loaded without an error", c.field, c.v)
			}
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("%s = %v: error %v, want one naming the field", c.field, c.v, err)
			}
			if c.v == 1000 {
				return
			}
			sameBits(t, "weights after a failed load", before, flatValues(t, m))
			after, _ := tr.Optimizer().State()
			if after.Step != ost.Step {
				t.Fatalf("optimizer step %d after a failed load, want %d", after.Step, ost.Step)
			}
			if _, err := tr.Fit(trainSet, valSet); err != nil {
				t.Fatalf("Fit after a failed load: %v", err)
			}
		})
	}
}

// TestLoadIsAllOrNothing: a model file that does not fit fails the load
// after the optimiser state was read; the optimiser must be left as it was.
func TestLoadIsAllOrNothing(t *testing.T) {
	dev := openCPU(t)
	trainSet, valSet := blobs(40, 0), blobs(12, 1)
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	first, _ := newResumeTrainer(t, dev, 1, resumeConfig(1, ck))
	if _, err := first.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	sd, err := nn.LoadSafetensors(ck)
	if err != nil {
		t.Fatal(err)
	}
	w := sd.Tensors["0.weight"]
	w.Data[0] = w.Data[0] + 1
	delete(sd.Tensors, "0.bias")
	sd.Names = []string{"0.weight", "3.weight", "3.bias"}
	if err := nn.WriteSafetensors(ck, sd); err != nil {
		t.Fatal(err)
	}
	tr, m := newResumeTrainer(t, dev, 2, resumeConfig(2, ""))
	before := flatValues(t, m)
	ost, _ := tr.Optimizer().State()
	if err := tr.LoadCheckpoint(ck); err == nil {
		t.Fatal("a model file without 0.bias loaded")
	}
	sameBits(t, "weights", before, flatValues(t, m))
	after, _ := tr.Optimizer().State()
	if after.Step != ost.Step {
		t.Fatalf("optimizer step %d after a failed load, want %d (unchanged)", after.Step, ost.Step)
	}
	for name, v := range after.Buffers {
		sameBits(t, "optimizer "+name, ost.Buffers[name], v)
	}
}

// TestCheckpointEveryAndStop: CheckpointEvery 2 of 3 epochs writes at
// epoch 2 and at the end; a closed Stop channel ends Fit with
// StopInterrupted after writing a checkpoint that resumes; files are 0644.
func TestCheckpointEveryAndStop(t *testing.T) {
	dev := openCPU(t)
	trainSet, valSet := blobs(40, 0), blobs(12, 1)
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	cfg := resumeConfig(3, ck)
	cfg.CheckpointEvery = 2
	var steps []string
	cfg.Callback = &epochHook{fn: func(m EpochMetrics) {
		sd, err := nn.LoadSafetensors(ck)
		if err == nil {
			steps = append(steps, sd.Metadata["kiln.step"])
		} else {
			steps = append(steps, "none")
		}
	}}
	cfg.CheckpointMetadata = map[string]string{"kiln.dataset": "blobs"}
	tr, _ := newResumeTrainer(t, dev, 1, cfg)
	if _, err := tr.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	// Written after OnEpochEnd: epoch 1 sees none, epoch 2 none yet, epoch 3 the one of epoch 2 (10 steps).
	if strings.Join(steps, ",") != "none,none,10" {
		t.Fatalf("checkpoint steps seen at epoch ends: %v, want none,none,10", steps)
	}
	sd, err := nn.LoadSafetensors(ck)
	if err != nil || sd.Metadata["kiln.step"] != "15" || sd.Metadata["kiln.dataset"] != "blobs" {
		t.Fatalf("final checkpoint: %v %v, want step 15 and the extra metadata", err, sd.Metadata)
	}
	for _, p := range []string{ck, StatePath(ck)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("%s: mode %v (%v), want 0644", p, st.Mode().Perm(), err)
		}
	}

	stop := make(chan struct{})
	ck2 := filepath.Join(dir, "stop.safetensors")
	cfg2 := resumeConfig(3, ck2)
	cfg2.Stop = stop
	cfg2.Callback = &epochHook{batch: func(b BatchInfo) {
		if b.Step == 7 {
			close(stop)
		}
	}}
	tr2, _ := newResumeTrainer(t, dev, 1, cfg2)
	res, err := tr2.Fit(trainSet, valSet)
	if err != nil || res.StopReason != StopInterrupted || res.Steps != 7 {
		t.Fatalf("stopped Fit: %v, reason %q after %d steps; want interrupted after 7", err, res.StopReason, res.Steps)
	}
	// The interrupted run resumes to the same weights as an uninterrupted one.
	whole, wm := newResumeTrainer(t, dev, 1, resumeConfig(3, ""))
	if _, err := whole.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	again, am := newResumeTrainer(t, dev, 5, resumeConfig(3, ""))
	if err := again.LoadCheckpoint(ck2); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "weights", flatValues(t, wm), flatValues(t, am))
}

type epochHook struct {
	fn    func(EpochMetrics)
	batch func(BatchInfo)
}

func (h *epochHook) OnEpochStart(int, float64) {}
func (h *epochHook) OnBatch(b BatchInfo) {
	if h.batch != nil {
		h.batch(b)
	}
}
func (h *epochHook) OnEpochEnd(m EpochMetrics) {
	if h.fn != nil {
		h.fn(m)
	}
}
