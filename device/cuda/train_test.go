//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// trainRun trains spec on dev for steps Adam steps over the given batches
// (cross-entropy) and returns each step's loss and the final flat weights.
// It also checks that the steps after the first reach cuMemAlloc (or make)
// no more.
func trainRun(t *testing.T, dev device.Device, spec string, xs [][]float32, ys [][]int32, batch, features int) ([]float32, []float32) {
	t.Helper()
	model, err := nn.Build(dev, nn.MustParseSpec(spec), nn.Init{}, 42)
	must(t, "nn.Build", err)
	defer model.Free()
	opt, err := train.NewAdam(model, train.DefaultAdam(1e-3))
	must(t, "train.NewAdam", err)
	g := nn.NewGraph(dev)
	defer g.Free()
	xb, err := dev.Alloc(device.Float32, batch*features)
	must(t, "Alloc", err)
	yb, err := dev.Alloc(device.Int32, batch)
	must(t, "Alloc", err)
	var losses []float32
	var sysAfterWarmup int64
	for step := range xs {
		if step == 2 {
			must(t, "Sync", dev.Sync())
			sysAfterWarmup = dev.Stats().SystemAllocs
		}
		must(t, "WriteF32", dev.WriteF32(xb, 0, xs[step]))
		must(t, "WriteI32", dev.WriteI32(yb, 0, ys[step]))
		must(t, "ZeroGrad", model.ZeroGrad())
		x, err := g.Input(xb, batch, features)
		must(t, "Input", err)
		pred, err := model.Forward(g, x)
		must(t, "Forward", err)
		loss, err := g.Loss(device.SoftmaxCrossEntropy, pred, yb)
		must(t, "Loss", err)
		must(t, "Backward", g.Backward(loss))
		must(t, "Adam step", opt.Step())
		var l [1]float32
		must(t, "ReadF32(loss)", dev.ReadF32(l[:], loss.Value(), 0))
		losses = append(losses, l[0])
		g.Reset()
	}
	if sys := dev.Stats().SystemAllocs; sys != sysAfterWarmup {
		t.Errorf("%s: SystemAllocs went %d → %d over steady training steps; want no new device allocations", dev.Name(), sysAfterWarmup, sys)
	}
	values, _ := model.Flat()
	w := make([]float32, values.Len())
	must(t, "ReadF32(weights)", dev.ReadF32(w, values, 0))
	must(t, "Free", dev.Free(xb))
	must(t, "Free", dev.Free(yb))
	return losses, w
}

// TestTrainingParity trains the same 784-256-relu-128-relu-10 network from
// the same seed on the same batches for 20 Adam steps on the CPU and on the
// GPU: every step's loss must agree within 1e-4 relative, and the final
// weights within 1e-4 (normwise relative).
func TestTrainingParity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	const (
		spec     = "784-256-relu-128-relu-10"
		batch    = 64
		features = 784
		steps    = 20
	)
	r := rand.New(rand.NewPCG(5, 6))
	var xs [][]float32
	var ys [][]int32
	for s := 0; s < steps; s++ {
		x := make([]float32, batch*features)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]int32, batch)
		for i := range y {
			y[i] = int32(r.IntN(10))
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	gl, gw := trainRun(t, gpu, spec, xs, ys, batch, features)
	cl, cw := trainRun(t, cpu, spec, xs, ys, batch, features)
	for s := range gl {
		rel := math.Abs(float64(gl[s])-float64(cl[s])) / math.Abs(float64(cl[s]))
		t.Logf("step %2d: loss gpu %.7f cpu %.7f (rel diff %.2g)", s+1, gl[s], cl[s], rel)
		if !(rel <= 1e-4) {
			t.Errorf("step %d: loss gpu %v, cpu %v: relative difference %.3g > 1e-4", s+1, gl[s], cl[s], rel)
		}
	}
	if e := relErr(gw, cw); !(e <= 1e-4) {
		d, at := maxAbsDiff(gw, cw)
		t.Errorf("final weights: normwise relative difference %.3g > 1e-4 (largest %.3g at %d)", e, d, at)
	} else {
		t.Logf("final weights (%d): normwise relative difference %.3g", len(gw), e)
	}
}

// stepFunc runs the forward pass of one training step on g and returns the
// scalar loss; step is the step's number (for its batch).
type stepFunc func(g *nn.Graph, step int) (*nn.Tensor, error)

// modelRun is what runModel returns: every step's loss, the final flat
// parameters and buffers (BatchNorm's running statistics).
type modelRun struct {
	losses, weights, buffers []float32
	params                   []paramSpan // where each parameter lies in weights
}

// paramSpan names one parameter's range of the flat weights.
type paramSpan struct {
	name     string
	off, len int
}

// runModel places the parameters of m on dev from seed (nn.NewParamSet:
// the same seed gives the same weights on every device), then runs steps
// Adam steps (lr 1e-3) of the forward pass that setup returns, reading each
// step's loss. From the third step on, the steps must reach cuMemAlloc (or
// make) no more: Stats().SystemAllocs after step 2 must equal the count
// at the end.
func runModel(t *testing.T, dev device.Device, m nn.Module, seed uint64, steps int,
	setup func(dev device.Device, ps *nn.ParamSet) (stepFunc, func())) modelRun {
	t.Helper()
	ps, err := nn.NewParamSet(dev, m, seed)
	must(t, "nn.NewParamSet", err)
	defer ps.Free()
	opt, err := train.NewAdam(ps, train.DefaultAdam(1e-3))
	must(t, "train.NewAdam", err)
	g := nn.NewGraph(dev)
	defer g.Free()
	step, done := setup(dev, ps)
	defer done()
	var res modelRun
	var sysAfterWarmup int64
	for s := 0; s < steps; s++ {
		if s == 2 {
			must(t, "Sync", dev.Sync())
			sysAfterWarmup = dev.Stats().SystemAllocs
		}
		must(t, "ZeroGrad", ps.ZeroGrad())
		loss, err := step(g, s)
		must(t, fmt.Sprintf("step %d: forward", s+1), err)
		must(t, "Backward", g.Backward(loss))
		must(t, "Adam step", opt.Step())
		var l [1]float32
		must(t, "ReadF32(loss)", dev.ReadF32(l[:], loss.Value(), 0))
		res.losses = append(res.losses, l[0])
		g.Reset()
	}
	must(t, "Sync", dev.Sync())
	if sys := dev.Stats().SystemAllocs; steps > 2 && sys != sysAfterWarmup {
		t.Errorf("%s: SystemAllocs went %d → %d over steady training steps 3–%d; want no new device allocations",
			dev.Name(), sysAfterWarmup, sys, steps)
	}
	values, _ := ps.Flat()
	res.weights = download(t, dev, values)
	for _, p := range ps.Params() {
		res.params = append(res.params, paramSpan{p.Name, p.Offset, p.Len()})
	}
	if b := ps.BufferFlat(); b != nil {
		res.buffers = download(t, dev, b)
	}
	return res
}

// compareRuns checks a GPU run against the CPU's: each step's loss within
// lossTol relative, the final weights and buffers within weightTol
// normwise relative.
func compareRuns(t *testing.T, gpu, cpu modelRun, lossTol, weightTol float64) {
	t.Helper()
	for s := range gpu.losses {
		rel := math.Abs(float64(gpu.losses[s])-float64(cpu.losses[s])) / math.Abs(float64(cpu.losses[s]))
		t.Logf("step %2d: loss gpu %.7f cpu %.7f (rel diff %.2g)", s+1, gpu.losses[s], cpu.losses[s], rel)
		if !(rel <= lossTol) {
			t.Errorf("step %d: loss gpu %v, cpu %v: relative difference %.3g > %g", s+1, gpu.losses[s], cpu.losses[s], rel, lossTol)
		}
	}
	for _, c := range []struct {
		what string
		g, c []float32
	}{{"weights", gpu.weights, cpu.weights}, {"buffers", gpu.buffers, cpu.buffers}} {
		if len(c.g) != len(c.c) {
			t.Errorf("final %s: %d values on the GPU, %d on the CPU", c.what, len(c.g), len(c.c))
			continue
		}
		if len(c.g) == 0 {
			continue
		}
		if e := relErr(c.g, c.c); !(e <= weightTol) {
			d, at := maxAbsDiff(c.g, c.c)
			t.Errorf("final %s: normwise relative difference %.3g > %g (largest %.3g at %d)", c.what, e, weightTol, d, at)
			if c.what == "weights" {
				for _, p := range gpu.params {
					if pe := relErr(c.g[p.off:p.off+p.len], c.c[p.off:p.off+p.len]); !(pe <= weightTol/10) {
						t.Logf("  %s (%d values): normwise relative difference %.3g", p.name, p.len, pe)
					}
				}
			}
		} else {
			t.Logf("final %s (%d): normwise relative difference %.3g", c.what, len(c.g), e)
		}
	}
}

// The small CNN of TestCNNTrainingParity and BenchmarkCNNTrainStep: two
// conv–batch-norm–activation stages (ReLU, then SiLU) with max pooling
// between them, adaptive average pooling to 2×2, flatten, a linear head.
// Input [N, 3, H, W] with H and W multiples of 2. The convolutions have no
// bias (bias=False, as in ResNet): batch norm cancels a bias exactly, so
// its gradient is rounding noise that Adam would scale up to ±lr a step,
// and such a bias (and the running mean it feeds) would differ between any
// two summation orders, not only between devices.
func newTestCNN(classes int) nn.Module {
	return nn.NewSequential(
		nn.NewConv2d(3, 16, 3, nn.WithPadding(1), nn.WithoutBias()),
		nn.NewBatchNorm2d(16),
		&nn.Activation{Act: device.ReLU},
		nn.NewMaxPool2d(2, 2, 0),
		nn.NewConv2d(16, 32, 3, nn.WithPadding(1), nn.WithoutBias()),
		nn.NewBatchNorm2d(32),
		&nn.Activation{Act: device.SiLU},
		nn.NewAdaptiveAvgPool2d(2, 2),
		nn.NewFlatten(),
		nn.NewLinear(32*2*2, classes, true),
	)
}

// cnnSetup returns the setup of runModel for newTestCNN: batches of
// normal inputs [batch, 3, hw, hw] and uniform labels, written into the
// same two buffers at every step (as a data loader does).
func cnnSetup(t testing.TB, xs [][]float32, ys [][]int32, batch, hw int) func(dev device.Device, ps *nn.ParamSet) (stepFunc, func()) {
	return func(dev device.Device, ps *nn.ParamSet) (stepFunc, func()) {
		xb, err := dev.Alloc(device.Float32, batch*3*hw*hw)
		must(t, "Alloc", err)
		yb, err := dev.Alloc(device.Int32, batch)
		must(t, "Alloc", err)
		root := ps.Root()
		step := func(g *nn.Graph, s int) (*nn.Tensor, error) {
			// One batch is written once and stays on the device (the
			// benchmarks); several are written in turn, as a loader does.
			if s == 0 || len(xs) > 1 {
				s %= len(xs)
				if err := dev.WriteF32(xb, 0, xs[s]); err != nil {
					return nil, err
				}
				if err := dev.WriteI32(yb, 0, ys[s]); err != nil {
					return nil, err
				}
			}
			x, err := g.Input(xb, batch, 3, hw, hw)
			if err != nil {
				return nil, err
			}
			pred, err := root.Forward(g, x)
			if err != nil {
				return nil, err
			}
			return g.Loss(device.SoftmaxCrossEntropy, pred, yb)
		}
		return step, func() { _ = dev.Free(xb); _ = dev.Free(yb) }
	}
}

// cnnData draws steps batches for cnnSetup.
func cnnData(r *rand.Rand, steps, batch, hw, classes int) ([][]float32, [][]int32) {
	var xs [][]float32
	var ys [][]int32
	for s := 0; s < steps; s++ {
		x := make([]float32, batch*3*hw*hw)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]int32, batch)
		for i := range y {
			y[i] = int32(r.IntN(classes))
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys
}

// trainParityLossTol and trainParityWeightTol bound the CPU/GPU difference
// of the model training tests (10 Adam steps, lr 1e-3). The primitives
// agree within 1e-5 (TestOps2Parity; most much closer), and Adam's update
// lr·m̂/(√v̂+ε) is about lr·sign(g) wherever |g| ≫ ε, so a small relative
// difference in a gradient moves a weight by far less than lr; batch norm
// and the softmaxes are smooth. Measured on the CPU: perturbing the
// initial weights by up to 1e-6 relative (more than the primitives' own
// differences after one step) moved the two models' losses by at most
// 1.1e-7 relative and their final weights and running statistics by at
// most 6e-7 normwise over the 10 steps (1e-5 gave 4e-7 and 6e-6), once the
// parameters whose gradient is mathematically zero (a convolution bias
// before batch norm, the attention's key bias) were removed from the
// models. So 1e-4 leaves a margin of a hundred, while a wrong gradient (a
// relative error of 1e-2 in one parameter's gradient moves it by up to lr
// a step) or a wrong forward pass still fails.
const (
	trainParityLossTol   = 1e-4
	trainParityWeightTol = 1e-4
)

// TestCNNTrainingParity trains newTestCNN (conv, batch norm in training
// mode with running statistics, ReLU and SiLU, max, adaptive average
// pooling, flatten, linear; softmax cross-entropy) for 10 Adam steps from
// the same seed on the same batches on the CPU and on the GPU, and
// compares the losses, the final weights and the running statistics
// within trainParity*Tol; the GPU's steady steps must allocate nothing.
func TestCNNTrainingParity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	const batch, hw, classes, steps = 16, 16, 10, 10
	xs, ys := cnnData(rand.New(rand.NewPCG(21, 22)), steps, batch, hw, classes)
	gr := runModel(t, gpu, newTestCNN(classes), 7, steps, cnnSetup(t, xs, ys, batch, hw))
	cr := runModel(t, cpu, newTestCNN(classes), 7, steps, cnnSetup(t, xs, ys, batch, hw))
	compareRuns(t, gr, cr, trainParityLossTol, trainParityWeightTol)
}

// testLM is a one-block causal language model: token and position
// embeddings (nn.Embedding), a pre-norm block (LayerNorm, causal
// self-attention, residual; LayerNorm, a GELU-tanh MLP, residual), a final
// LayerNorm and a linear head over the vocabulary. Forward takes the token
// indices [B, T]; the position indices (0 … T−1 for every sequence) are
// set in pos before each step.
type testLM struct {
	wte, wpe      *nn.Embedding
	ln1, ln2, lnf *nn.LayerNorm
	attn          *nn.MultiHeadAttention
	fc, proj      *nn.Linear
	head          *nn.Linear
	pos           *nn.Tensor
	children      []nn.Child
}

func newTestLM(vocab, ctx, width, heads int) *testLM {
	m := &testLM{wte: nn.NewEmbedding(vocab, width), wpe: nn.NewEmbedding(ctx, width),
		ln1: nn.NewLayerNorm(width), ln2: nn.NewLayerNorm(width), lnf: nn.NewLayerNorm(width),
		attn: nn.NewCausalSelfAttention(width, heads),
		fc:   nn.NewLinear(width, 4*width, true), proj: nn.NewLinear(4*width, width, true),
		head: nn.NewLinear(width, vocab, false)}
	// c_attn without bias (nanoGPT's bias=False): the key bias adds q·b to
	// every score of a row, which the softmax cancels exactly, so its
	// gradient is rounding noise that Adam scales up to ±lr a step; it would
	// differ between any two summation orders.
	m.attn.Attn = nn.NewLinear(width, 3*width, false)
	m.children = []nn.Child{{Name: "wte", Module: m.wte}, {Name: "wpe", Module: m.wpe}, {Name: "ln_1", Module: m.ln1},
		{Name: "attn", Module: m.attn}, {Name: "ln_2", Module: m.ln2}, {Name: "c_fc", Module: m.fc},
		{Name: "c_proj", Module: m.proj}, {Name: "ln_f", Module: m.lnf}, {Name: "lm_head", Module: m.head}}
	return m
}

// Forward maps token indices [B, T] to logits [B, T, vocab].
func (m *testLM) Forward(g *nn.Graph, idx *nn.Tensor) (*nn.Tensor, error) {
	tok, err := m.wte.Forward(g, idx)
	if err != nil {
		return nil, err
	}
	pos, err := m.wpe.Forward(g, m.pos)
	if err != nil {
		return nil, err
	}
	x, err := g.Add(tok, pos)
	if err != nil {
		return nil, err
	}
	h, err := m.ln1.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = m.attn.Forward(g, h); err != nil {
		return nil, err
	}
	if x, err = g.Add(x, h); err != nil {
		return nil, err
	}
	if h, err = m.ln2.Forward(g, x); err != nil {
		return nil, err
	}
	if h, err = m.fc.Forward(g, h); err != nil {
		return nil, err
	}
	if h, err = g.Activate(device.GELUTanh, 0, h); err != nil {
		return nil, err
	}
	if h, err = m.proj.Forward(g, h); err != nil {
		return nil, err
	}
	if x, err = g.Add(x, h); err != nil {
		return nil, err
	}
	if x, err = m.lnf.Forward(g, x); err != nil {
		return nil, err
	}
	return m.head.Forward(g, x)
}

// Children lists the submodules in state_dict order.
func (m *testLM) Children() []nn.Child { return m.children }

// OwnParams is empty: every parameter belongs to a submodule.
func (m *testLM) OwnParams() []*nn.Param { return nil }

// SetTraining does nothing (no dropout, no batch norm).
func (m *testLM) SetTraining(bool) {}

// lmSetup returns the setup of runModel for a testLM m: each step writes
// its tokens [batch, ctx] and next-token labels (−100, ignored, at the
// last position of each sequence and wherever ys says) into the same
// buffers and takes F.cross_entropy(logits, labels, ignore_index=−100).
func lmSetup(t testing.TB, m *testLM, toks, ys [][]int32, batch, ctx int) func(dev device.Device, ps *nn.ParamSet) (stepFunc, func()) {
	return func(dev device.Device, ps *nn.ParamSet) (stepFunc, func()) {
		tb, err := dev.Alloc(device.Int32, batch*ctx)
		must(t, "Alloc", err)
		lb, err := dev.Alloc(device.Int32, batch*ctx)
		must(t, "Alloc", err)
		pb, err := dev.Alloc(device.Int32, batch*ctx)
		must(t, "Alloc", err)
		pos := make([]int32, batch*ctx)
		for i := range pos {
			pos[i] = int32(i % ctx)
		}
		must(t, "WriteI32", dev.WriteI32(pb, 0, pos))
		step := func(g *nn.Graph, s int) (*nn.Tensor, error) {
			if s == 0 || len(toks) > 1 { // as in cnnSetup
				s %= len(toks)
				if err := dev.WriteI32(tb, 0, toks[s]); err != nil {
					return nil, err
				}
				if err := dev.WriteI32(lb, 0, ys[s]); err != nil {
					return nil, err
				}
			}
			idx, err := g.InputIndices(tb, batch, ctx)
			if err != nil {
				return nil, err
			}
			if m.pos, err = g.InputIndices(pb, batch, ctx); err != nil {
				return nil, err
			}
			logits, err := m.Forward(g, idx)
			if err != nil {
				return nil, err
			}
			return g.CrossEntropy(logits, lb, -100)
		}
		return step, func() { _ = dev.Free(tb); _ = dev.Free(lb); _ = dev.Free(pb) }
	}
}

// lmData draws steps batches of tokens and their next-token labels, with
// −100 at each sequence's last position and at about 1 in 8 others.
func lmData(r *rand.Rand, steps, batch, ctx, vocab int) (toks, ys [][]int32) {
	for s := 0; s < steps; s++ {
		tk, y := make([]int32, batch*ctx), make([]int32, batch*ctx)
		for i := range tk {
			tk[i] = int32(r.IntN(vocab))
		}
		for i := range y {
			switch {
			case i%ctx == ctx-1 || r.IntN(8) == 0:
				y[i] = -100
			default:
				y[i] = tk[i+1]
			}
		}
		toks, ys = append(toks, tk), append(ys, y)
	}
	return toks, ys
}

// TestAttentionTrainingParity trains testLM (embeddings, LayerNorm, causal
// self-attention with four heads: batched GEMMs, the causal softmax and
// permutes; a GELU-tanh MLP; cross-entropy with ignore index −100) for 10
// Adam steps from the same seed on the same batches on the CPU and on the
// GPU and compares the losses and final weights within trainParity*Tol; the
// GPU's steady steps must allocate nothing.
func TestAttentionTrainingParity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	const batch, ctx, vocab, width, heads, steps = 4, 32, 97, 64, 4, 10
	toks, ys := lmData(rand.New(rand.NewPCG(23, 24)), steps, batch, ctx, vocab)
	gm, cm := newTestLM(vocab, ctx, width, heads), newTestLM(vocab, ctx, width, heads)
	gr := runModel(t, gpu, gm, 9, steps, lmSetup(t, gm, toks, ys, batch, ctx))
	cr := runModel(t, cpu, cm, 9, steps, lmSetup(t, cm, toks, ys, batch, ctx))
	compareRuns(t, gr, cr, trainParityLossTol, trainParityWeightTol)
}
