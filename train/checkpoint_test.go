package train

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// blobs is a 4-feature, 3-class set of n samples.
func blobs(n int, phase float64) *data.Dataset {
	d := &data.Dataset{Name: "blobs", Features: 4, Shape: []int{4}, Classes: 3}
	for i := 0; i < n; i++ {
		c := i % 3
		for f := 0; f < 4; f++ {
			d.X = append(d.X, float32(float64(c)-1+0.8*math.Sin(float64(i*4+f)+phase)))
		}
		d.Labels = append(d.Labels, int32(c))
	}
	return d
}

const resumeSpec = "4-16-relu-drop0.3-3"

func resumeConfig(epochs int, path string) Config {
	return Config{Epochs: epochs, BatchSize: 8, Loss: device.SoftmaxCrossEntropy, Seed: 9, Shuffle: true, ClipNorm: 0.5,
		Schedule: func() Schedule { p := NewPlateau(0.01); p.Patience = 0; return p }(), CheckpointPath: path}
}

// newResumeTrainer builds model, Adam and trainer; initSeed differs between
// the original and the resumed run so that loading must overwrite it.
func newResumeTrainer(t *testing.T, dev device.Device, initSeed uint64, cfg Config) (*Trainer, *nn.Sequential) {
	t.Helper()
	m := buildModel(t, dev, resumeSpec, initSeed)
	o, err := NewAdam(m, DefaultAdam(0.01))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Free() })
	tr, err := NewTrainer(dev, m, o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Free() })
	return tr, m
}

func sameBits(t *testing.T, what string, a, b []float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d vs %d values", what, len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s: value %d is %v resumed, %v uninterrupted (want identical bits)", what, i, b[i], a[i])
		}
	}
}

// TestResumeIsBitIdentical: 4 epochs in one go against 2 epochs, a
// checkpoint, and 2 more epochs in a fresh model, optimiser and trainer —
// and against a run stopped mid-epoch by MaxSteps and resumed. Dropout
// (RNG position), Adam (moments), a plateau schedule, clipping and shuffling
// all have state that must survive.
func TestResumeIsBitIdentical(t *testing.T) {
	dev := openCPU(t)
	trainSet, valSet := blobs(40, 0), blobs(12, 1)
	dir := t.TempDir()

	whole, wm := newResumeTrainer(t, dev, 1, resumeConfig(4, ""))
	wres, err := whole.Fit(trainSet, valSet)
	if err != nil {
		t.Fatal(err)
	}
	want := flatValues(t, wm)

	// At an epoch boundary, through the automatic checkpoint.
	ckpt := filepath.Join(dir, "model.safetensors")
	first, _ := newResumeTrainer(t, dev, 1, resumeConfig(2, ckpt))
	if _, err := first.Fit(trainSet, valSet); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(StatePath(ckpt)); err != nil {
		t.Fatalf("no state file beside the checkpoint: %v", err)
	}
	second, sm := newResumeTrainer(t, dev, 2, resumeConfig(4, ""))
	if err := second.LoadCheckpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	sres, err := second.Fit(trainSet, valSet)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "weights after 2+2 epochs", want, flatValues(t, sm))
	if sres.Epochs != 4 || sres.Steps != wres.Steps || len(sres.History) != 2 {
		t.Errorf("resumed result: %d epochs, %d steps, %d epochs of history; want 4, %d, 2", sres.Epochs, sres.Steps, len(sres.History), wres.Steps)
	}
	for i, em := range sres.History {
		w := wres.History[i+2]
		if em.TrainLoss != w.TrainLoss || em.Val.Loss != w.Val.Loss || em.LR != w.LR {
			t.Errorf("resumed epoch %d: loss %v val %v lr %v; uninterrupted %v %v %v", em.Epoch, em.TrainLoss, em.Val.Loss, em.LR, w.TrainLoss, w.Val.Loss, w.LR)
		}
	}

	// Mid-epoch: stopped by MaxSteps at step 7 (epoch 1, batch 2 of 5).
	mid := filepath.Join(dir, "mid.safetensors")
	cfg := resumeConfig(4, mid)
	cfg.MaxSteps = 7
	third, _ := newResumeTrainer(t, dev, 1, cfg)
	if res, err := third.Fit(trainSet, valSet); err != nil || res.StopReason != StopMaxSteps {
		t.Fatalf("MaxSteps run: %v, %v", res.StopReason, err)
	}
	fourth, fm := newResumeTrainer(t, dev, 3, resumeConfig(4, ""))
	if err := fourth.LoadCheckpoint(mid); err != nil {
		t.Fatal(err)
	}
	if p := fourth.Position(); p.Step != 7 || p.Epoch != 1 || p.Batch != 2 {
		t.Fatalf("loaded position %+v, want step 7, epoch 1, batch 2", p)
	}
	fres, err := fourth.Fit(trainSet, valSet)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "weights after a mid-epoch resume", want, flatValues(t, fm))
	if fres.History[0].TrainLoss != wres.History[1].TrainLoss {
		t.Errorf("the epoch resumed mid-way has loss %v, uninterrupted %v", fres.History[0].TrainLoss, wres.History[1].TrainLoss)
	}
}

func TestCheckpointErrors(t *testing.T) {
	dev := openCPU(t)
	dir := t.TempDir()
	tr, m := newResumeTrainer(t, dev, 1, resumeConfig(1, ""))
	if err := tr.LoadCheckpoint(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.state.safetensors") {
		t.Errorf("loading a missing checkpoint: %v, want an error naming the state file", err)
	}
	path := filepath.Join(dir, "a.safetensors")
	if err := tr.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	// A model file from another step than its state file.
	if err := nn.SaveSafetensors(path, m, map[string]string{"kiln.step": "12"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "kiln.step") {
		t.Errorf("loading a mismatched pair: %v, want an error naming kiln.step", err)
	}
	// A model of another shape.
	if err := tr.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	other := buildModel(t, dev, "4-8-relu-3", 1)
	o, _ := NewAdam(other, DefaultAdam(0.01))
	defer o.Free()
	tr2, err := NewTrainer(dev, other, o, resumeConfig(1, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Free()
	if err := tr2.LoadCheckpoint(path); err == nil {
		t.Error("loading a checkpoint of another model: no error")
	}
	// An SGD trainer cannot take Adam state.
	s, _ := NewSGD(m, device.SGDConfig{LR: 0.1, Momentum: 0.9})
	defer s.Free()
	tr3, _ := NewTrainer(dev, m, s, resumeConfig(1, ""))
	defer tr3.Free()
	if err := tr3.LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("loading Adam state into SGD: %v, want an error naming the kind", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("temporary file %s left in the checkpoint folder", e.Name())
		}
	}
}

// TestCheckpointPlainSGD: an optimiser without buffers still round-trips
// (the state file then holds metadata only).
func TestCheckpointPlainSGD(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "2-3-1", 1)
	o, err := NewSGD(m, device.SGDConfig{LR: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 1, Loss: device.MSE})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	path := filepath.Join(t.TempDir(), "plain.safetensors")
	if err := tr.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	if err := tr.LoadCheckpoint(path); err != nil {
		t.Fatal(err)
	}
}
