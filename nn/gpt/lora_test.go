package gpt

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

func newLoRA(t testing.TB, dev device.Device, cfg Config, lc LoRAConfig, seed uint64) *Model {
	t.Helper()
	m, err := NewLoRA(dev, cfg, lc, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Free() })
	return m
}

// TestLoRAInit: adapters named and shaped as PEFT's, B zero, A in
// U(±1/√in), the base initialised exactly as New's with the same seed and
// frozen, so the logits equal the base model's bit for bit (the adapter
// adds exact zeros).
func TestLoRAInit(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	base := newModel(t, dev, cfg, 6)
	m := newLoRA(t, dev, cfg, LoRAConfig{Rank: 4, Alpha: 8}, 6)
	bsd, _ := base.StateDict()
	lsd, _ := m.StateDict()
	var adapters []string
	for _, n := range lsd.Names {
		if isLoRA(n) {
			adapters = append(adapters, n)
			continue
		}
		if !slices.Equal(lsd.Tensors[n].Data, bsd.Tensors[n].Data) {
			t.Errorf("base parameter %s differs from New's with the same seed", n)
		}
		if p := m.Params.Lookup(n); !p.Frozen {
			t.Errorf("base parameter %s is not frozen", n)
		}
	}
	want := []string{}
	for l := 0; l < cfg.Layers; l++ {
		h := "transformer.h." + itoa(l) + ".attn.c_attn."
		want = append(want, h+"lora_A.weight", h+"lora_B.weight")
	}
	if !slices.Equal(adapters, want) {
		t.Fatalf("adapters %v, want %v", adapters, want)
	}
	C := cfg.Width
	a, b := lsd.Tensors[want[0]], lsd.Tensors[want[1]]
	if !slices.Equal(a.Shape, []int{4, C}) || !slices.Equal(b.Shape, []int{3 * C, 4}) {
		t.Fatalf("lora_A %v, lora_B %v; want [4 %d] and [%d 4]", a.Shape, b.Shape, C, 3*C)
	}
	bound := 1 / math.Sqrt(float64(C))
	nonzero := 0
	for _, v := range a.Data {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("lora_A value %v outside ±%v", v, bound)
		}
		if v != 0 {
			nonzero++
		}
	}
	if nonzero < len(a.Data)/2 {
		t.Fatalf("lora_A is mostly zero (%d of %d non-zero)", nonzero, len(a.Data))
	}
	for _, v := range b.Data {
		if v != 0 {
			t.Fatal("lora_B is not zero at init")
		}
	}
	idx := tokens(12, cfg.VocabSize, 1)
	if !slices.Equal(logitsOf(t, m, idx, 2, 6), logitsOf(t, base, idx, 2, 6)) {
		t.Fatal("LoRA model at init differs from the base")
	}
	if got := m.LoRA.Scale(); got != 2 {
		t.Fatalf("scale %v, want alpha/r = 2", got)
	}
}

// TestLoRATrainAndMerge: a few AdamW steps change only the adapters and
// lower the loss; the merged state dict, loaded into a plain model, gives
// the adapter model's logits to 1e-5 relative (the merged product is
// rounded once to float32, the unmerged path rounds x·Aᵀ and its product
// with Bᵀ separately); the adapter checkpoint round-trips.
func TestLoRATrainAndMerge(t *testing.T) {
	dev := openCPU(t)
	cfg := Tiny()
	lc := LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"c_attn", "c_proj"}}
	m := newLoRA(t, dev, cfg, lc, 3)
	roughen(t, m)
	if n := len(m.LoRAParams()); n != 2*3*cfg.Layers {
		t.Fatalf("%d adapter parameters, want %d (c_attn, attn.c_proj, mlp.c_proj per layer)", n, 2*3*cfg.Layers)
	}
	before, _ := m.StateDict()
	snapshot := map[string][]float32{}
	for n, v := range before.Tensors {
		snapshot[n] = slices.Clone(v.Data)
	}
	opt, err := train.NewAdamW(m, device.AdamConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	b, tt := 2, 8
	seq := tokens(b*(tt+1), cfg.VocabSize, 7)
	var idx, tg []int32
	for i := 0; i < b; i++ {
		idx = append(idx, seq[i*(tt+1):i*(tt+1)+tt]...)
		tg = append(tg, seq[i*(tt+1)+1:(i+1)*(tt+1)]...)
	}
	ib, tb := uploadI32(t, dev, idx), uploadI32(t, dev, tg)
	g := nn.NewGraph(dev)
	defer g.Free()
	nn.SetTraining(m, true)
	var losses []float32
	for step := 0; step < 5; step++ {
		g.Reset()
		if err := m.Params.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		_, loss, err := m.Loss(g, ib, tb, b, tt)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(loss); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		v, _ := loss.Values()
		losses = append(losses, v[0])
	}
	if !(losses[4] < losses[0]) {
		t.Fatalf("loss did not fall: %v", losses)
	}
	after, _ := m.StateDict()
	for n, v := range after.Tensors {
		same := slices.Equal(v.Data, snapshot[n])
		if isLoRA(n) == same {
			t.Errorf("%s: changed %v, want changed only for adapters", n, !same)
		}
	}

	idxE := tokens(10, cfg.VocabSize, 2)
	want := logitsOf(t, m, idxE, 1, 10)
	merged, err := m.MergedStateDict()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(merged.Names, hfNames(cfg.Layers)) {
		t.Fatalf("merged names %v", merged.Names)
	}
	plain := newModel(t, dev, cfg, 99)
	if _, err := plain.LoadStateDict(merged); err != nil {
		t.Fatal(err)
	}
	w64 := make([]float64, len(want))
	for i, v := range want {
		w64[i] = float64(v)
	}
	got := logitsOf(t, plain, idxE, 1, 10)
	closeRel(t, "merged logits", got, w64, 1e-5)
	if slices.Equal(got, logitsOf(t, newModel(t, dev, cfg, 3), idxE, 1, 10)) {
		t.Fatal("the merged model equals an untrained base: the adapters were lost")
	}

	// Adapter checkpoint: load base + adapters into a fresh LoRA model.
	asd, err := m.AdapterStateDict()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range asd.Names {
		if !isLoRA(n) {
			t.Fatalf("adapter checkpoint holds %s", n)
		}
	}
	if asd.Metadata["lora.rank"] != "2" || asd.Metadata["lora.targets"] != "c_attn,c_proj" {
		t.Fatalf("adapter metadata %v", asd.Metadata)
	}
	fresh := newLoRA(t, dev, cfg, lc, 50)
	baseOnly := &nn.StateDict{Tensors: map[string]nn.HostTensor{}}
	for n, v := range after.Tensors {
		if !isLoRA(n) {
			baseOnly.Names = append(baseOnly.Names, n)
			baseOnly.Tensors[n] = v
		}
	}
	rep, err := fresh.LoadStateDict(baseOnly)
	if err != nil || len(rep.MissingAdapters) != 2*3*cfg.Layers {
		t.Fatalf("loading the base into a LoRA model: %v, missing adapters %v", err, rep.MissingAdapters)
	}
	peft := &nn.StateDict{Tensors: map[string]nn.HostTensor{}}
	for n, v := range asd.Tensors {
		peft.Tensors["base_model.model."+n] = v // PEFT's adapter_model names
	}
	if err := fresh.LoadAdapters(peft); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logitsOf(t, fresh, idxE, 1, 10), want) {
		t.Fatal("base + adapter checkpoint does not reproduce the model")
	}
	if err := fresh.LoadAdapters(baseOnly); err == nil || !strings.Contains(err.Error(), "not an adapter") {
		t.Fatalf("LoadAdapters of a base checkpoint: %v", err)
	}
}

func TestLoRAErrors(t *testing.T) {
	dev := openCPU(t)
	if _, err := NewLoRA(dev, Tiny(), LoRAConfig{Rank: 0}, 1); err == nil {
		t.Error("rank 0 accepted")
	}
	if _, err := NewLoRA(dev, Tiny(), LoRAConfig{Rank: 2, Targets: []string{"q_proj"}}, 1); err == nil || !strings.Contains(err.Error(), "q_proj") {
		t.Errorf("unknown target: %v", err)
	}
	m := newLoRA(t, dev, Tiny(), LoRAConfig{Rank: 2, Targets: []string{"h.1.mlp.c_fc"}}, 1)
	if ps := m.LoRAParams(); len(ps) != 2 || !strings.HasPrefix(ps[0].Name, "transformer.h.1.mlp.c_fc.lora_A") {
		t.Errorf("a full-path target: adapters %v", ps)
	}
	plain := newModel(t, dev, Tiny(), 1)
	if _, err := plain.AdapterStateDict(); err == nil {
		t.Error("AdapterStateDict of a model without adapters")
	}
	sd, _ := m.StateDict()
	if _, err := plain.LoadStateDict(sd); err == nil || !strings.Contains(err.Error(), "lora") {
		t.Errorf("an unmerged LoRA checkpoint loaded into a plain model: %v", err)
	}
}

// TestLoRAGradients checks the adapters' gradients against central
// differences of the float64 reference loss of the merged model
// (W' = W + scale·Aᵀ·Bᵀ computed in float64), with the tolerances of
// TestLossAndGradients, and that the frozen base gets no gradient.
func TestLoRAGradients(t *testing.T) {
	dev := openCPU(t)
	cfg := Config{VocabSize: 13, Context: 8, Layers: 2, Heads: 2, Width: 8, Bias: true}
	lc := LoRAConfig{Rank: 3, Alpha: 6, Targets: []string{"c_attn", "mlp.c_proj"}}
	m := newLoRA(t, dev, cfg, lc, 2)
	roughen(t, m) // B non-zero too
	b, tt := 2, 5
	idx := tokens(b*tt, cfg.VocabSize, 4)
	tg := tokens(b*tt, cfg.VocabSize, 6)
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
	hp := paramsOf(t, m)
	names, convs := m.conv1Ds()
	merged := func() hostParams {
		out := hostParams{}
		for k, v := range hp {
			out[k] = v
		}
		for i, c := range convs {
			if c.LoRA == nil {
				continue
			}
			w := slices.Clone(hp[names[i]+".weight"])
			a, bb := hp[names[i]+".lora_A.weight"], hp[names[i]+".lora_B.weight"]
			r := c.LoRA.Rank
			for ii := 0; ii < c.In; ii++ {
				for o := 0; o < c.Out; o++ {
					s := 0.0
					for k := 0; k < r; k++ {
						s += a[k*c.In+ii] * bb[o*r+k]
					}
					w[ii*c.Out+o] += float64(lc.Alpha) / float64(lc.Rank) * s
				}
			}
			out[names[i]+".weight"] = w
		}
		return out
	}
	lv, _ := loss.Values()
	if ref := refLoss(cfg, merged(), idx, tg, b, tt); math.Abs(float64(lv[0])-ref) > 1e-5*(1+math.Abs(ref)) {
		t.Fatalf("loss %v, reference of the merged model %v", lv[0], ref)
	}
	const h = 1e-5
	for _, p := range m.Params.Params() {
		grad, err := p.GradValues()
		if err != nil {
			t.Fatal(err)
		}
		if !isLoRA(p.Name) {
			for _, v := range grad {
				if v != 0 {
					t.Fatalf("frozen %s has a gradient", p.Name)
				}
			}
			continue
		}
		for _, j := range []int{0, p.Len() / 2, p.Len() - 1} {
			orig := hp[p.Name][j]
			hp[p.Name][j] = orig + h
			up := refLoss(cfg, merged(), idx, tg, b, tt)
			hp[p.Name][j] = orig - h
			dn := refLoss(cfg, merged(), idx, tg, b, tt)
			hp[p.Name][j] = orig
			num := (up - dn) / (2 * h)
			if math.Abs(float64(grad[j])-num) > 2e-5+1e-3*math.Abs(num) {
				t.Errorf("d loss/d %s[%d] = %v, finite difference %v", p.Name, j, grad[j], num)
			}
		}
	}
}
