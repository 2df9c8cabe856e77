package train

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// recorder is a Callback that keeps everything it is told.
type recorder struct {
	starts  []int
	lrs     []float64
	batches []BatchInfo
	epochs  []EpochMetrics
	onEnd   func(EpochMetrics)
}

func (r *recorder) OnEpochStart(e int, lr float64) {
	r.starts = append(r.starts, e)
	r.lrs = append(r.lrs, lr)
}
func (r *recorder) OnBatch(b BatchInfo) { r.batches = append(r.batches, b) }
func (r *recorder) OnEpochEnd(m EpochMetrics) {
	r.epochs = append(r.epochs, m)
	if r.onEnd != nil {
		r.onEnd(m)
	}
}

// regressionSet is n samples of 3 features and 2 smooth targets.
func regressionSet(n int) *data.Dataset {
	d := &data.Dataset{Name: "reg", Features: 3, Shape: []int{3}, Outputs: 2}
	for i := 0; i < n; i++ {
		a, b, c := math.Sin(float64(i)), math.Cos(float64(2*i)), float64(i%4)/4-0.4
		d.X = append(d.X, float32(a), float32(b), float32(c))
		d.Y = append(d.Y, float32(0.5*a-b*c), float32(math.Tanh(a+b)))
	}
	return d
}

// mlp64 is the float64 reference of a 3-H-tanh-2 network with MSE loss:
// forward, backward by hand, flat layout as nn's (0.weight [H,3],
// 0.bias [H], 2.weight [2,H], 2.bias [2]).
type mlp64 struct {
	in, hid, out int
	p            []float64
}

func (r *mlp64) offsets() (w0, b0, w2, b2 int) {
	w0 = 0
	b0 = r.hid * r.in
	w2 = b0 + r.hid
	b2 = w2 + r.out*r.hid
	return
}

// grad returns d MSE/d p and the loss on the rows idx of ds.
func (r *mlp64) grad(ds *data.Dataset, idx []int) ([]float64, float64) {
	w0, b0, w2, b2 := r.offsets()
	g := make([]float64, len(r.p))
	rows := float64(len(idx))
	var loss float64
	for _, s := range idx {
		x := ds.X[s*r.in : (s+1)*r.in]
		h := make([]float64, r.hid)
		for j := range h {
			z := r.p[b0+j]
			for k := 0; k < r.in; k++ {
				z += r.p[w0+j*r.in+k] * float64(x[k])
			}
			h[j] = math.Tanh(z)
		}
		dh := make([]float64, r.hid)
		for o := 0; o < r.out; o++ {
			y := r.p[b2+o]
			for j := range h {
				y += r.p[w2+o*r.hid+j] * h[j]
			}
			diff := y - float64(ds.Y[s*r.out+o])
			loss += diff * diff / (rows * float64(r.out))
			dy := 2 * diff / (rows * float64(r.out))
			g[b2+o] += dy
			for j := range h {
				g[w2+o*r.hid+j] += dy * h[j]
				dh[j] += dy * r.p[w2+o*r.hid+j]
			}
		}
		for j := range h {
			dz := dh[j] * (1 - h[j]*h[j])
			g[b0+j] += dz
			for k := 0; k < r.in; k++ {
				g[w0+j*r.in+k] += dz * float64(x[k])
			}
		}
	}
	return g, loss
}

// TestTrainerMatchesFloat64 trains a small MLP through the Trainer with
// every optimiser (clipping on or off, file order or shuffled batches with
// a partial last batch) and compares the weights and the epoch losses with
// the float64 reference trained on the same batches.
func TestTrainerMatchesFloat64(t *testing.T) {
	dev := openCPU(t)
	ds := regressionSet(10)
	const epochs, batch, seed = 3, 4, 11
	for _, c := range optCases {
		for _, variant := range []struct {
			name    string
			shuffle bool
			clip    float32
		}{{"fileorder", false, 0}, {"shuffled-clipped", true, 0.05}} {
			t.Run(c.name+"/"+variant.name, func(t *testing.T) {
				m := buildModel(t, dev, "3-5-tanh-2", 5)
				ref := &mlp64{in: 3, hid: 5, out: 2}
				for _, v := range flatValues(t, m) {
					ref.p = append(ref.p, float64(v))
				}
				o := newOpt(t, m, c)
				rec := &recorder{}
				tr, err := NewTrainer(dev, m, o, Config{Epochs: epochs, BatchSize: batch, Loss: device.MSE, Seed: seed,
					Shuffle: variant.shuffle, ClipNorm: variant.clip, Callback: rec, LossEvery: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Free()
				res, err := tr.Fit(ds, nil)
				if err != nil {
					t.Fatal(err)
				}
				ro := &refOpt{sgd: c.sgd, adam: c.adam}
				all := make([]bool, len(ref.p))
				for i := range all {
					all[i] = true
				}
				n := ds.Len()
				var refLosses []float64
				var batchLosses []float64
				for e := 0; e < epochs; e++ {
					order := make([]int, n)
					for i := range order {
						order[i] = i
					}
					if variant.shuffle {
						order = data.Permutation(n, seed, e)
					}
					var sum float64
					for s := 0; s < n; s += batch {
						idx := order[s:min(s+batch, n)]
						g, loss := ref.grad(ds, idx)
						batchLosses = append(batchLosses, loss)
						sum += loss * float64(len(idx))
						if variant.clip > 0 {
							var ss float64
							for _, v := range g {
								ss += v * v
							}
							if scale := float64(variant.clip) / (math.Sqrt(ss) + 1e-6); scale < 1 {
								for i := range g {
									g[i] *= scale
								}
							}
						}
						ro.step(ref.p, g, all)
					}
					refLosses = append(refLosses, sum/float64(n))
				}
				if res.Steps != epochs*3 || res.Epochs != epochs || res.StopReason != StopEpochs {
					t.Errorf("result steps %d epochs %d stop %q, want %d, %d, %q", res.Steps, res.Epochs, res.StopReason, epochs*3, epochs, StopEpochs)
				}
				// Tolerances: float32 training of O(1) values over 9 steps;
				// 2e-5 absolute is ~200 ulps, far below a one-batch
				// difference (order or update rule), which moves weights
				// by ~1e-3.
				got := flatValues(t, m)
				for i := range got {
					if d := math.Abs(float64(got[i]) - ref.p[i]); d > 2e-5 {
						t.Errorf("weight %d: %v, float64 reference %v (diff %.3g)", i, got[i], ref.p[i], d)
					}
				}
				for e, em := range res.History {
					if d := math.Abs(em.TrainLoss - refLosses[e]); d > 1e-5*math.Max(1, refLosses[e]) {
						t.Errorf("epoch %d loss %v, reference %v", e, em.TrainLoss, refLosses[e])
					}
				}
				if len(rec.batches) != len(batchLosses) {
					t.Fatalf("%d OnBatch calls, want %d", len(rec.batches), len(batchLosses))
				}
				for i, b := range rec.batches {
					if d := math.Abs(b.Loss - batchLosses[i]); d > 1e-5*math.Max(1, batchLosses[i]) {
						t.Errorf("batch %d loss %v, reference %v", i, b.Loss, batchLosses[i])
					}
				}
			})
		}
	}
}

// TestShuffleFalseIsFileOrder checks the batch order directly: with a
// one-sample batch and plain SGD on a bias-only view, the batch losses
// reveal which sample each step saw.
func TestShuffleFalseIsFileOrder(t *testing.T) {
	dev := openCPU(t)
	ds := regressionSet(6)
	for _, shuffle := range []bool{false, true} {
		m := buildModel(t, dev, "3-5-tanh-2", 5)
		ref := &mlp64{in: 3, hid: 5, out: 2}
		for _, v := range flatValues(t, m) {
			ref.p = append(ref.p, float64(v))
		}
		o, err := NewSGD(m, device.SGDConfig{LR: 0}) // weights stay put: losses depend on the sample only
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		tr, err := NewTrainer(dev, m, o, Config{Epochs: 2, BatchSize: 1, Loss: device.MSE, Seed: 3, Shuffle: shuffle, Callback: rec, LossEvery: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Fit(ds, nil); err != nil {
			t.Fatal(err)
		}
		tr.Free()
		for i, b := range rec.batches {
			sample := b.Batch
			if shuffle {
				sample = data.Permutation(6, 3, b.Epoch)[b.Batch]
			}
			_, want := ref.grad(ds, []int{sample})
			if math.Abs(b.Loss-want) > 1e-6 { // float32 loss of O(1) values
				t.Errorf("shuffle %v: step %d (epoch %d batch %d): loss %v, want sample %d's %v", shuffle, i, b.Epoch, b.Batch, b.Loss, sample, want)
			}
		}
	}
}

// towardsOne is a 1-feature set whose targets are all 1, and awayVal its
// validation twin with targets -1: training on the first makes the second
// worse every epoch.
func towardsOne(n int, target float32) *data.Dataset {
	d := &data.Dataset{Name: "ones", Features: 1, Shape: []int{1}, Outputs: 1}
	for i := 0; i < n; i++ {
		d.X = append(d.X, 1)
		d.Y = append(d.Y, target)
	}
	return d
}

func TestEarlyStopping(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "1-1", 2)
	o, err := NewSGD(m, device.SGDConfig{LR: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	bestPath := filepath.Join(t.TempDir(), "best.safetensors")
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 50, BatchSize: 4, Loss: device.MSE, Patience: 3, RestoreBest: true, Callback: rec, BestPath: bestPath})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	res, err := tr.Fit(towardsOne(8, 1), towardsOne(4, -1))
	if err != nil {
		t.Fatal(err)
	}
	// Epoch 0 is the best; epochs 1, 2, 3 do not improve: stop after 4.
	if res.StopReason != StopEarly || res.Epochs != 4 || res.BestEpoch != 0 || len(rec.epochs) != 4 {
		t.Fatalf("stop %q after %d epochs (%d reported), best epoch %d; want %q after 4, best 0",
			res.StopReason, res.Epochs, len(rec.epochs), res.BestEpoch, StopEarly)
	}
	for e, em := range rec.epochs {
		if em.Val == nil || em.Best != (e == 0) {
			t.Errorf("epoch %d: val %v best %v", e, em.Val, em.Best)
		}
	}
	// RestoreBest put epoch 0's weights back: evaluating gives its loss.
	met, err := Evaluate(dev, m, towardsOne(4, -1), device.MSE, 16)
	if err != nil {
		t.Fatal(err)
	}
	if met.Loss != res.BestValLoss {
		t.Errorf("after RestoreBest the validation loss is %v, want the best %v", met.Loss, res.BestValLoss)
	}
	sd, err := nn.LoadSafetensors(bestPath)
	if err != nil {
		t.Fatal(err)
	}
	best := tr.Best()
	if w := sd.Tensors["0.weight"].Data; len(w) != 1 || w[0] != best[0] || sd.Metadata["kiln.epoch"] != "0" {
		t.Errorf("best file holds weight %v (epoch %q), want the in-memory best %v from epoch 0", w, sd.Metadata["kiln.epoch"], best[0])
	}
	if _, err := tr.Fit(towardsOne(8, 1), nil); err == nil {
		t.Error("Fit with Patience and no validation set: no error")
	}
}

func TestTargetLossStop(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "1-1", 2)
	o, err := NewSGD(m, device.SGDConfig{LR: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	const target = 0.01
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 1000, BatchSize: 8, Loss: device.MSE, TargetLoss: target})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	res, err := tr.Fit(towardsOne(8, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := res.History
	if res.StopReason != StopTargetLoss || len(h) < 2 || h[len(h)-1].TrainLoss >= target || h[len(h)-2].TrainLoss < target {
		t.Fatalf("stop %q after %d epochs; want %q at the first epoch below %g (history %+v)", res.StopReason, len(h), StopTargetLoss, target, h)
	}
}

func TestMaxStepsStopsMidEpoch(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "3-4-relu-2", 2)
	o, err := NewAdam(m, DefaultAdam(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 10, BatchSize: 4, Loss: device.MSE, MaxSteps: 5, Callback: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	res, err := tr.Fit(regressionSet(10), nil) // 3 batches per epoch
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != StopMaxSteps || res.Steps != 5 || o.Steps() != 5 || len(rec.batches) != 5 || len(rec.epochs) != 1 || res.Epochs != 1 {
		t.Fatalf("stop %q steps %d (optimizer %d, %d OnBatch, %d OnEpochEnd), epochs %d; want %q, 5 steps, 1 epoch",
			res.StopReason, res.Steps, o.Steps(), len(rec.batches), len(rec.epochs), res.Epochs, StopMaxSteps)
	}
	if p := tr.Position(); p.Epoch != 1 || p.Batch != 2 || p.Samples != 18 {
		t.Errorf("position %+v, want epoch 1, batch 2, 18 samples", p)
	}
	for i, b := range rec.batches {
		if b.Step != i+1 || !math.IsNaN(b.Loss) {
			t.Errorf("batch %d: step %d loss %v; want step %d and NaN (LossEvery 0 reads only per epoch)", i, b.Step, b.Loss, i+1)
		}
	}
}

// TestSteadyStateNoDeviceAllocation: after the first epoch (which fills
// every pool: full and partial batch, validation, dropout masks), later
// epochs make no allocation that reaches the system.
func TestSteadyStateNoDeviceAllocation(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "3-16-relu-drop0.2-8-tanh-2", 2)
	o, err := NewAdam(m, DefaultAdamW(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	var sys []int64
	rec := &recorder{onEnd: func(EpochMetrics) { sys = append(sys, dev.Stats().SystemAllocs) }}
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 5, BatchSize: 8, Loss: device.MSE, Shuffle: true, ClipNorm: 1,
		Schedule: &Cosine{Base: 1e-3, Warmup: 1, Total: 5}, Callback: rec, LossEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	if _, err := tr.Fit(regressionSet(30), regressionSet(7)); err != nil {
		t.Fatal(err)
	}
	for e := 1; e < len(sys); e++ {
		if sys[e] != sys[0] {
			t.Errorf("SystemAllocs after epoch %d: %d, after epoch 0: %d; want no new allocation", e, sys[e], sys[0])
		}
	}
	if len(sys) != 5 {
		t.Fatalf("%d epochs recorded, want 5", len(sys))
	}
}

func TestConfigErrors(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "2-3-1", 1)
	o, err := NewSGD(m, device.SGDConfig{LR: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"Epochs":    {Epochs: 0, Loss: device.MSE},
		"BatchSize": {Epochs: 1, BatchSize: -1, Loss: device.MSE},
		"Loss":      {Epochs: 1},
		"ClipNorm":  {Epochs: 1, Loss: device.MSE, ClipNorm: -1},
		"MaxSteps":  {Epochs: 1, Loss: device.MSE, MaxSteps: -2},
		"StepSize":  {Epochs: 1, Loss: device.MSE, Schedule: &StepDecay{Base: 1}},
	} {
		if _, err := NewTrainer(dev, m, o, cfg); err == nil {
			t.Errorf("config with bad %s: no error", name)
		}
	}
	tr, err := NewTrainer(dev, m, o, Config{Epochs: 1, Loss: device.SoftmaxCrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	if _, err := tr.Fit(regressionSet(4), nil); err == nil {
		t.Error("cross-entropy on a set without labels: no error")
	}
	if _, err := tr.Fit(nil, nil); err == nil {
		t.Error("Fit(nil): no error")
	}
	tr2, err := NewTrainer(dev, m, o, Config{Epochs: 1, Loss: device.MSE})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Free()
	if _, err := tr2.Fit(regressionSet(4), nil); err == nil {
		t.Error("a 3-feature set into a 2-input model: no error")
	}
}
