package gpt

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// hfNames is transformers' GPT2LMHeadModel(config).state_dict().keys() for
// a 2-layer config (transformers 4.40, where the attention masks are not
// persistent), written out by hand from modeling_gpt2.py.
func hfNames(layers int) []string {
	n := []string{"transformer.wte.weight", "transformer.wpe.weight"}
	for l := 0; l < layers; l++ {
		h := "transformer.h." + itoa(l) + "."
		for _, s := range []string{"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
			"attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
			"mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"} {
			n = append(n, h+s)
		}
	}
	return append(n, "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight")
}

func TestNamesAndShapes(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	m := newModel(t, dev, cfg, 1)
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	if want := hfNames(cfg.Layers); !slices.Equal(sd.Names, want) {
		t.Fatalf("state_dict names\n%v\nwant\n%v", sd.Names, want)
	}
	C, V, T := cfg.Width, cfg.VocabSize, cfg.Context
	want := map[string][]int{
		"transformer.wte.weight": {V, C}, "transformer.wpe.weight": {T, C}, "lm_head.weight": {V, C},
		"transformer.h.1.attn.c_attn.weight": {C, 3 * C}, "transformer.h.1.attn.c_attn.bias": {3 * C},
		"transformer.h.0.attn.c_proj.weight": {C, C}, "transformer.h.0.mlp.c_fc.weight": {C, 4 * C},
		"transformer.h.0.mlp.c_proj.weight": {4 * C, C}, "transformer.ln_f.bias": {C},
	}
	for n, s := range want {
		if got := sd.Tensors[n].Shape; !slices.Equal(got, s) {
			t.Errorf("%s has shape %v, want %v", n, got, s)
		}
	}
	// The head is tied: one parameter, so the arena holds it once.
	if got, want := m.Params.NumParams(), cfg.NumParams(); got != want {
		t.Errorf("NumParams %d, Config.NumParams %d", got, want)
	}
	if m.Params.Lookup("lm_head.weight") != m.Params.Lookup("transformer.wte.weight") {
		t.Error("lm_head.weight is not the same parameter as transformer.wte.weight")
	}
	if got := GPT2().NumParams(); got != 124439808 {
		t.Errorf("GPT2().NumParams() = %d, want 124439808 (transformers' count for gpt2)", got)
	}
	// Without biases the state dict has no .bias entries.
	nb := newModel(t, dev, Config{VocabSize: 8, Context: 4, Layers: 1, Heads: 1, Width: 4}, 1)
	sdb, err := nb.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sdb.Names {
		if strings.HasSuffix(n, ".bias") {
			t.Errorf("Bias false, but %s is in the state dict", n)
		}
	}
	if nb.Params.NumParams() != nb.Config.NumParams() {
		t.Errorf("without bias: NumParams %d, Config.NumParams %d", nb.Params.NumParams(), nb.Config.NumParams())
	}
}

// TestInit checks GPT-2's initialisation: the sample standard deviation of
// each weight against its target (0.02, or 0.02/√(2·layers) for the
// residual projections), biases 0, LayerNorm weights 1.
func TestInit(t *testing.T) {
	dev := openCPU(t)
	cfg := Config{VocabSize: 64, Context: 32, Layers: 4, Heads: 2, Width: 32, Bias: true}
	m := newModel(t, dev, cfg, 7)
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	resid := 0.02 / math.Sqrt(2*4)
	for _, n := range sd.Names {
		v := sd.Tensors[n].Data
		mean, sq := 0.0, 0.0
		for _, x := range v {
			mean += float64(x)
		}
		mean /= float64(len(v))
		for _, x := range v {
			sq += (float64(x) - mean) * (float64(x) - mean)
		}
		std := math.Sqrt(sq / float64(len(v)))
		switch {
		case strings.HasSuffix(n, "c_proj.weight"):
			// ≥ 1024 draws: the sample std is within ~3/√(2n) ≈ 7% of the truth.
			if math.Abs(std-resid) > 0.1*resid {
				t.Errorf("%s: std %.5f, want %.5f", n, std, resid)
			}
		case strings.Contains(n, "ln_") && strings.HasSuffix(n, ".weight"):
			if mean != 1 || std != 0 {
				t.Errorf("%s: mean %v std %v, want ones", n, mean, std)
			}
		case strings.HasSuffix(n, ".bias"):
			if mean != 0 || std != 0 {
				t.Errorf("%s: mean %v std %v, want zeros", n, mean, std)
			}
		default:
			if math.Abs(std-0.02) > 0.1*0.02 {
				t.Errorf("%s: std %.5f, want 0.02", n, std)
			}
		}
	}
}

// TestForwardMatchesReference compares the logits with the float64
// reference. Tolerance 1e-5 relative (absolute below 1): the float32
// forward of this width rounds partial sums of ≤ 64 terms of O(1), about
// 1e-6 each.
func TestForwardMatchesReference(t *testing.T) {
	dev := openCPU(t)
	for _, cfg := range []Config{Tiny(), {VocabSize: 11, Context: 8, Layers: 1, Heads: 4, Width: 8}} {
		m := newModel(t, dev, cfg, 3)
		roughen(t, m)
		b, tt := 2, 5
		idx := tokens(b*tt, cfg.VocabSize, 9)
		got := logitsOf(t, m, idx, b, tt)
		closeRel(t, "logits", got, refLogits(cfg, paramsOf(t, m), idx, b, tt), 1e-5)
	}
}

// TestLossAndGradients checks the loss against the reference and every
// parameter's gradient, at a few components per tensor, against central
// differences of the float64 reference loss (step 1e-5: truncation
// ~1e-10, rounding ~1e-11). Tolerance 2e-5 + 1e-3 relative: kiln's
// gradient is float32 arithmetic over sums of a few hundred terms.
func TestLossAndGradients(t *testing.T) {
	dev := openCPU(t)
	cfg := Config{VocabSize: 13, Context: 8, Layers: 2, Heads: 2, Width: 8, Bias: true}
	m := newModel(t, dev, cfg, 5)
	roughen(t, m)
	b, tt := 2, 6
	idx := tokens(b*tt, cfg.VocabSize, 4)
	tg := tokens(b*tt, cfg.VocabSize, 5)
	tg[3], tg[8] = IgnoreIndex, IgnoreIndex
	g := nn.NewGraph(dev)
	defer g.Free()
	nn.SetTraining(m, false)
	if err := m.Params.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	_, loss, err := m.Loss(g, uploadI32(t, dev, idx), uploadI32(t, dev, tg), b, tt)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	lv, _ := loss.Values()
	hp := paramsOf(t, m)
	ref := refLoss(cfg, hp, idx, tg, b, tt)
	if math.Abs(float64(lv[0])-ref) > 1e-5*(1+math.Abs(ref)) {
		t.Fatalf("loss %v, reference %v", lv[0], ref)
	}
	const h = 1e-5
	for _, p := range m.Params.Params() {
		grad, err := p.GradValues()
		if err != nil {
			t.Fatal(err)
		}
		names := []string{p.Name}
		if p.Name == "transformer.wte.weight" {
			names = append(names, "lm_head.weight") // tied: perturb both uses
		}
		for _, j := range []int{0, p.Len() / 3, p.Len() - 1} {
			orig := hp[p.Name][j]
			set := func(v float64) {
				for _, n := range names {
					hp[n][j] = v
				}
			}
			set(orig + h)
			up := refLoss(cfg, hp, idx, tg, b, tt)
			set(orig - h)
			dn := refLoss(cfg, hp, idx, tg, b, tt)
			set(orig)
			num := (up - dn) / (2 * h)
			if math.Abs(float64(grad[j])-num) > 2e-5+1e-3*math.Abs(num) {
				t.Errorf("d loss/d %s[%d] = %v, finite difference %v", p.Name, j, grad[j], num)
			}
		}
	}
}

// TestDropout: in training mode with dropout the logits change with the
// graph's RNG offset; in evaluation mode they equal the reference.
func TestDropout(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	cfg.Dropout = 0.5
	m := newModel(t, dev, cfg, 2)
	idx := tokens(8, cfg.VocabSize, 1)
	run := func(train bool, offset uint64) []float32 {
		g := nn.NewGraph(dev)
		defer g.Free()
		g.SetGradEnabled(false)
		g.SetRNG(1, offset)
		nn.SetTraining(m, train)
		y, err := m.Logits(g, uploadI32(t, dev, idx), 1, 8)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := y.Values()
		return v
	}
	evalv := run(false, 0)
	closeRel(t, "eval logits", evalv, refLogits(cfg, paramsOf(t, m), idx, 1, 8), 1e-5)
	a, b := run(true, 0), run(true, 1000)
	if slices.Equal(a, evalv) || slices.Equal(a, b) {
		t.Fatal("dropout in training mode changed nothing")
	}
	if !slices.Equal(a, run(true, 0)) {
		t.Fatal("dropout is not reproducible for the same (seed, offset)")
	}
}

func TestErrors(t *testing.T) {
	dev := openCPU(t)
	for _, c := range []Config{{}, {VocabSize: 4, Context: 4, Layers: 1, Heads: 3, Width: 8},
		{VocabSize: 4, Context: 4, Layers: 1, Heads: 1, Width: 8, Dropout: 1}} {
		if _, err := New(dev, c, 0); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	if _, err := Preset("gpt3"); err == nil {
		t.Error("Preset(gpt3) succeeded")
	}
	if c, err := Preset("gpt2"); err != nil || c != GPT2() {
		t.Errorf("Preset(gpt2) = %+v, %v", c, err)
	}
	m := newModel(t, dev, Tiny(), 1)
	g := nn.NewGraph(dev)
	defer g.Free()
	long := tokens(17, 32, 1)
	if _, err := m.Logits(g, uploadI32(t, dev, long), 1, 17); err == nil || !strings.Contains(err.Error(), "context") {
		t.Errorf("a sequence longer than the context: %v", err)
	}
	bad := []int32{1, 2, 40}
	if _, err := m.Logits(g, uploadI32(t, dev, bad), 1, 3); err == nil {
		t.Error("a token id outside the vocabulary was accepted")
	}
	x, _ := g.Input(func() device.Buffer { b, _ := dev.Alloc(device.Float32, 4); return b }(), 4)
	if _, err := m.Forward(g, x); err == nil {
		t.Error("1-D input accepted")
	}
}

// roughen adds deterministic O(0.3) offsets to every parameter: larger
// weights than GPT-2's 0.02 make every path (the GELU's curvature, the
// attention's softmax) matter to the outputs.
func roughen(t testing.TB, m *Model) {
	t.Helper()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range sd.Names {
		if n == "lm_head.weight" {
			continue
		}
		v := sd.Tensors[n].Data
		for j := range v {
			v[j] += 0.3 * float32(math.Sin(float64(7*i+3*j)))
		}
	}
	if _, err := m.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
}
