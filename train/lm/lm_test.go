package lm

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/nn/gpt"
)

// corpus is a small text with structure a tiny model learns in a few
// dozen steps.
func corpus() string {
	var b strings.Builder
	words := []string{"the whale ", "a ship ", "call me ", "ishmael ", "the sea "}
	for i := 0; b.Len() < 20000; i++ {
		b.WriteString(words[(i*7+i/3)%len(words)])
	}
	return b.String()
}

type fixture struct {
	dev        device.Device
	tok        text.Tokenizer
	train, val text.Span
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	s := corpus()
	tok, err := text.CharFromText(s)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := text.OpenText("lm-test", s, tok, text.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	tr, val, err := ts.Split(0.1)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dev: dev, tok: tok, train: tr, val: val}
}

func (f *fixture) model(t *testing.T, dropout float32, seed uint64) *gpt.Model {
	t.Helper()
	cfg := gpt.Config{VocabSize: f.tok.VocabSize(), Context: 16, Layers: 2, Heads: 2, Width: 16, Dropout: dropout, Bias: true}
	m, err := gpt.New(f.dev, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Free() })
	return m
}

func smallConfig(out string) Config {
	c := DefaultConfig()
	c.Batch, c.Accum, c.Iters, c.Warmup = 4, 2, 4, 1
	c.EvalEvery, c.EvalBatches, c.Out = 2, 2, out
	return c
}

func (f *fixture) trainer(t *testing.T, m *gpt.Model, cfg Config) *Trainer {
	t.Helper()
	tr, err := NewTrainer(m, f.tok, f.train, f.val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Free() })
	return tr
}

func hostParams(t *testing.T, m *gpt.Model) map[string][]float32 {
	t.Helper()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for n, v := range sd.Tensors {
		out[n] = v.Data
	}
	return out
}

// TestResumeExact: 4 steps in one run and 2 + 2 with a checkpoint and a
// fresh process-like restart (new model from another seed, new trainer)
// end with bit-identical weights, AdamW moments and step losses — with
// dropout (the RNG is resumed) and gradient accumulation on.
func TestResumeExact(t *testing.T) {
	f := newFixture(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	mA := f.model(t, 0.1, 7)
	a := f.trainer(t, mA, smallConfig(dirA))
	if _, err := a.Run(nil); err != nil {
		t.Fatal(err)
	}

	cfg := smallConfig(dirB)
	cfg.StopAfter = 2
	b1 := f.trainer(t, f.model(t, 0.1, 7), cfg)
	if _, err := b1.Run(nil); err != nil {
		t.Fatal(err)
	}
	if b1.Iter() != 2 {
		t.Fatalf("StopAfter 2 stopped at step %d", b1.Iter())
	}
	mB := f.model(t, 0.1, 99) // other weights: Resume must overwrite them
	b2 := f.trainer(t, mB, smallConfig(dirB))
	if err := b2.Resume(dirB); err != nil {
		t.Fatal(err)
	}
	if b2.Iter() != 2 {
		t.Fatalf("resumed at step %d, want 2", b2.Iter())
	}
	if _, err := b2.Run(nil); err != nil {
		t.Fatal(err)
	}
	pa, pb := hostParams(t, mA), hostParams(t, mB)
	for n, va := range pa {
		vb := pb[n]
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				t.Fatalf("%s[%d]: 4 steps %v, 2+2 steps %v", n, i, va[i], vb[i])
			}
		}
	}
	sa, err := a.opt.State()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b2.opt.State()
	if err != nil {
		t.Fatal(err)
	}
	if sa.Step != 4 || sb.Step != 4 {
		t.Errorf("optimizer steps %d and %d, want 4", sa.Step, sb.Step)
	}
	for k, va := range sa.Buffers {
		if !equalBits(va, sb.Buffers[k]) {
			t.Errorf("AdamW %s differs after 4 and 2+2 steps", k)
		}
	}
	stA, evA, err := ReadMetrics(filepath.Join(dirA, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	stB, evB, err := ReadMetrics(filepath.Join(dirB, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(stA) != 4 || len(stB) != 4 || len(evA) != len(evB) {
		t.Fatalf("metrics: %d and %d steps, %d and %d evaluations", len(stA), len(stB), len(evA), len(evB))
	}
	for i := range stA {
		if *stA[i].Loss != *stB[i].Loss || stA[i].LR != stB[i].LR {
			t.Errorf("step %d: loss %v lr %v (one run) vs %v %v (resumed)", stA[i].Iter, *stA[i].Loss, stA[i].LR, *stB[i].Loss, stB[i].LR)
		}
	}
	for i := range evA {
		if *evA[i].ValLoss != *evB[i].ValLoss {
			t.Errorf("val loss at %d: %v vs %v", evA[i].Iter, *evA[i].ValLoss, *evB[i].ValLoss)
		}
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestResumeMismatch: a checkpoint resumes only into the same run shape.
func TestResumeMismatch(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cfg := smallConfig(dir)
	cfg.StopAfter = 1
	if _, err := f.trainer(t, f.model(t, 0, 1), cfg).Run(nil); err != nil {
		t.Fatal(err)
	}
	other := smallConfig(dir)
	other.Batch = 3
	err := f.trainer(t, f.model(t, 0, 1), other).Resume(dir)
	if err == nil || !strings.Contains(err.Error(), "batch 4") {
		t.Errorf("resume with another batch: %v, want an error naming batch 4", err)
	}
	if err := f.trainer(t, f.model(t, 0, 1), smallConfig(dir)).Resume(t.TempDir()); err == nil {
		t.Error("resume from an empty folder: no error")
	}
}

// TestSteadyStateAllocs: after warm-up, steps and evaluations ask the
// device for no buffer.
func TestSteadyStateAllocs(t *testing.T) {
	f := newFixture(t)
	cfg := smallConfig("")
	cfg.Iters = 20
	tr := f.trainer(t, f.model(t, 0.1, 1), cfg)
	for i := 0; i < 2; i++ {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Eval(); err != nil {
			t.Fatal(err)
		}
	}
	before := f.dev.Stats()
	for i := 0; i < 3; i++ {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Eval(); err != nil {
		t.Fatal(err)
	}
	after := f.dev.Stats()
	if after.Allocs != before.Allocs || after.SystemAllocs != before.SystemAllocs {
		t.Errorf("3 steps and an evaluation made %d Alloc calls (%d system allocations)", after.Allocs-before.Allocs, after.SystemAllocs-before.SystemAllocs)
	}
}

// TestAccumulation: Accum micro-batches of Batch windows give the loss
// and gradient norm of one batch of Batch·Accum windows (the sampler
// draws the same windows in the same order). Tolerance 1e-5 relative:
// the same float32 sums in another grouping (the mean over 8 rows vs two
// means over 4, averaged).
func TestAccumulation(t *testing.T) {
	f := newFixture(t)
	run := func(batch, accum int) StepInfo {
		cfg := smallConfig("")
		cfg.Batch, cfg.Accum = batch, accum
		tr := f.trainer(t, f.model(t, 0, 3), cfg)
		s, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	one, acc := run(8, 1), run(4, 2)
	if d := math.Abs(one.Loss-acc.Loss) / one.Loss; d > 1e-5 {
		t.Errorf("loss: batch 8 %v, 2 × 4 %v", one.Loss, acc.Loss)
	}
	if d := math.Abs(one.GradNorm-acc.GradNorm) / one.GradNorm; d > 1e-5 {
		t.Errorf("gradient norm: batch 8 %v, 2 × 4 %v", one.GradNorm, acc.GradNorm)
	}
}

// TestSchedule: the rate of step i is nanoGPT's get_lr(i): LR·(i+1)/(W+1)
// during warm-up, then MinLR + (LR−MinLR)·(1+cos(π·(i−W)/(Iters−W)))/2,
// computed here in float64 (1e-12: the same formula, other rounding).
func TestSchedule(t *testing.T) {
	f := newFixture(t)
	cfg := smallConfig("")
	cfg.Iters, cfg.Warmup, cfg.LR, cfg.MinLR, cfg.EvalEvery = 10, 3, 1e-3, 1e-4, 0
	tr := f.trainer(t, f.model(t, 0, 1), cfg)
	for i := 0; i < cfg.Iters; i++ {
		s, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		want := cfg.LR * float64(i+1) / float64(cfg.Warmup+1)
		if i >= cfg.Warmup {
			want = cfg.MinLR + (cfg.LR-cfg.MinLR)*(1+math.Cos(math.Pi*float64(i-cfg.Warmup)/float64(cfg.Iters-cfg.Warmup)))/2
		}
		if math.Abs(s.LR-want) > 1e-12 {
			t.Errorf("step %d: lr %v, want %v", i, s.LR, want)
		}
	}
	if _, err := tr.Step(); err == nil {
		t.Error("a step past Iters: no error")
	}
}

// TestTrainingLearns: Run prints the progress and validation lines, the
// validation loss falls well below its start (ln V for a fresh model),
// and the checkpoint it writes loads with LoadModel into the same model:
// same shape, tokeniser and logits.
func TestTrainingLearns(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cfg := smallConfig(dir)
	cfg.Batch, cfg.Accum, cfg.Iters, cfg.Warmup, cfg.LR, cfg.EvalEvery, cfg.EvalBatches = 8, 1, 60, 5, 1e-2, 30, 4
	m := f.model(t, 0, 1)
	tr := f.trainer(t, m, cfg)
	first, err := tr.Eval()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	last, err := tr.Run(&out)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh model predicts nearly uniformly (loss ≈ ln V); the corpus is
	// five words in a fixed cycle, so 60 steps take it far lower.
	if !(last < first-1) {
		t.Errorf("val loss %v → %v, expected a fall of more than 1 nat\n%s", first, last, out.String())
	}
	for _, want := range []string{"step   60/60 | loss", "tok/s | MFU", "step 30: val loss", "step 60: val loss"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	png, err := os.ReadFile(filepath.Join(dir, PlotFile))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("loss plot: %v", err)
	}
	m2, tok2, err := LoadModel(f.dev, filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Free()
	if m2.Config != m.Config {
		t.Errorf("loaded config %+v, want %+v", m2.Config, m.Config)
	}
	j1, _ := f.tok.MarshalJSON()
	j2, _ := tok2.MarshalJSON()
	if !bytes.Equal(j1, j2) {
		t.Errorf("loaded tokenizer %s, want %s", j2, j1)
	}
	nn.SetTraining(m, false)
	p := []int32{1, 2, 3, 4}
	g1, err := m.Generate(p, 10, gpt.Sampler{Temperature: 1, Seed: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := m2.Generate(p, 10, gpt.Sampler{Temperature: 1, Seed: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(int32Bytes(g1)) != string(int32Bytes(g2)) {
		t.Errorf("generated %v from the trained model, %v from its checkpoint", g1, g2)
	}
}

func int32Bytes(v []int32) []byte {
	var b []byte
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return b
}

// TestConfigErrors: a bad field is reported by name.
func TestConfigErrors(t *testing.T) {
	f := newFixture(t)
	m := f.model(t, 0, 1)
	for field, mut := range map[string]func(*Config){
		"Batch":       func(c *Config) { c.Batch = 0 },
		"Accum":       func(c *Config) { c.Accum = -1 },
		"Warmup":      func(c *Config) { c.Warmup = c.Iters },
		"LR":          func(c *Config) { c.LR = math.NaN() },
		"MinLR":       func(c *Config) { c.MinLR = 2 * c.LR },
		"Beta2":       func(c *Config) { c.Beta2 = 1 },
		"EvalBatches": func(c *Config) { c.EvalBatches = 0 },
	} {
		cfg := smallConfig("")
		mut(&cfg)
		if _, err := NewTrainer(m, f.tok, f.train, f.val, cfg); err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("bad %s: error %v", field, err)
		}
	}
	if _, err := NewTrainer(m, text.NewGPT2(), f.train, f.val, smallConfig("")); err == nil {
		t.Error("a tokenizer larger than the vocabulary: no error")
	}
}

// TestReadMetricsLastWins: a resumed run re-logs iterations after its
// checkpoint; the last record of each counts.
func TestReadMetricsLastWins(t *testing.T) {
	p := filepath.Join(t.TempDir(), MetricsFile)
	lines := `{"iter":1,"loss":3,"tokens":8}
{"iter":2,"loss":2.5,"tokens":16}
{"iter":2,"eval":true,"val_loss":2.7,"tokens":16}
{"iter":2,"loss":2.25,"tokens":16}
`
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	st, ev, err := ReadMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || *st[1].Loss != 2.25 || len(ev) != 1 || *ev[0].ValLoss != 2.7 {
		t.Errorf("steps %+v, evals %+v", st, ev)
	}
	if err := PlotMetrics(p, filepath.Join(filepath.Dir(p), "x.png")); err != nil {
		t.Error(err)
	}
}

// TestFLOPsPerToken: llm.c's count for GPT-2 small at context 1024:
// 6·124,439,808 + 12·12·768·1024 FLOPs per token, computed independently
// from the shape here.
func TestFLOPsPerToken(t *testing.T) {
	c := gpt.GPT2()
	C, L, V, T := 768.0, 12.0, 50257.0, 1024.0
	n := V*C + T*C + 2*C + L*(12*C*C+13*C) // embeddings, ln_f, blocks (weights and biases)
	want := 6*n + 12*L*C*T
	if got := FLOPsPerToken(c); math.Abs(got-want) > 1 {
		t.Errorf("FLOPsPerToken(gpt2) = %v, want %v", got, want)
	}
}

// TestRunWithoutOut checks that Run works without an output folder (no
// metrics file, no checkpoints): a nil *os.File must not reach the metrics
// writer as a non-nil io.Writer.
func TestRunWithoutOut(t *testing.T) {
	f := newFixture(t)
	cfg := smallConfig("")
	m := f.model(t, 0, 1)
	tr := f.trainer(t, m, cfg)
	if _, err := tr.Run(nil); err != nil {
		t.Fatalf("Run without Out: %v", err)
	}
	if tr.Iter() != cfg.Iters {
		t.Fatalf("ran %d steps, want %d", tr.Iter(), cfg.Iters)
	}
}
