package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/nn/gpt"
)

// lmCorpus writes a small text file for the lm commands.
func lmCorpus(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	words := []string{"the whale ", "a ship ", "call me ", "ishmael ", "the sea "}
	for i := 0; b.Len() < 8000; i++ {
		b.WriteString(words[(i*7+i/3)%len(words)])
	}
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tinyLM are the flags of a model and run small enough for a test.
func tinyLM(t *testing.T, data string, extra ...string) []string {
	args := []string{"lm", "train", "--data", data, "--cache-dir", filepath.Join(t.TempDir(), "cache"), "--device", "cpu",
		"--layers", "1", "--heads", "2", "--width", "16", "--context", "16", "--batch", "4",
		"--eval-every", "2", "--eval-batches", "2", "--log-every", "1", "--dropout", "0.1"}
	return append(args, extra...)
}

func readTensors(t *testing.T, path string) *nn.StateDict {
	t.Helper()
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

func sameTensors(t *testing.T, what string, a, b *nn.StateDict) {
	t.Helper()
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%s: %d and %d tensors", what, len(a.Tensors), len(b.Tensors))
	}
	for n, ta := range a.Tensors {
		tb, ok := b.Tensors[n]
		if !ok || len(ta.Data) != len(tb.Data) {
			t.Fatalf("%s: tensor %s missing or resized", what, n)
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				t.Fatalf("%s: %s[%d] = %v vs %v", what, n, i, ta.Data[i], tb.Data[i])
			}
		}
	}
}

// TestLMTrainResumeGenerate: a tiny run through the CLI prints progress
// and validation lines and writes its files; 2 steps + --resume 2 more
// give bit for bit the weights and optimiser state of 4 steps in one go;
// generate is deterministic for a seed and streams the prompt first.
func TestLMTrainResumeGenerate(t *testing.T) {
	data := lmCorpus(t)
	a, b := t.TempDir(), t.TempDir()
	out := mustKiln(t, tinyLM(t, data, "--iters", "4", "--out", a, "--accum", "2")...)
	for _, want := range []string{"step 0: val loss", "step    4/4 | loss", "tok/s | MFU", "final val loss:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"model.safetensors", "model.state.safetensors", "metrics.jsonl", "loss.png"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Error(err)
		}
	}
	mustKiln(t, tinyLM(t, data, "--iters", "4", "--out", b, "--accum", "2", "--stop-after", "2")...)
	out = mustKiln(t, tinyLM(t, data, "--iters", "4", "--resume", b, "--accum", "2")...)
	if !strings.Contains(out, "resumed "+filepath.Join(b, "model.safetensors")+" at step 2") {
		t.Errorf("resume output:\n%s", out)
	}
	sameTensors(t, "model after 4 vs 2+2 steps", readTensors(t, filepath.Join(a, "model.safetensors")), readTensors(t, filepath.Join(b, "model.safetensors")))
	sameTensors(t, "optimizer after 4 vs 2+2 steps", readTensors(t, filepath.Join(a, "model.state.safetensors")), readTensors(t, filepath.Join(b, "model.state.safetensors")))

	gen := func(seed string) string {
		return mustKiln(t, "generate", "--checkpoint", a, "--prompt", "the ", "--max-tokens", "40", "--temperature", "1", "--seed", seed, "--device", "cpu")
	}
	g1, g2, g3 := gen("5"), gen("5"), gen("6")
	if g1 != g2 {
		t.Errorf("seed 5 twice gave\n%q\n%q", g1, g2)
	}
	if g1 == g3 {
		t.Errorf("seeds 5 and 6 gave the same 40 tokens %q", g1)
	}
	if !strings.HasPrefix(g1, "the ") || len([]rune(g1)) != len("the ")+40+1 {
		t.Errorf("generate wrote %q, want the prompt, 40 characters and a newline", g1)
	}
}

// TestLMFineTune: --init continues a kiln checkpoint, and --lora-rank
// trains only adapters: the base weights in the new checkpoint equal the
// initial ones, the adapter file holds lora tensors only, and generate
// reads the LoRA checkpoint.
func TestLMFineTune(t *testing.T) {
	data := lmCorpus(t)
	base, ft, lora := t.TempDir(), t.TempDir(), t.TempDir()
	mustKiln(t, tinyLM(t, data, "--iters", "2", "--out", base)...)
	bf := filepath.Join(base, "model.safetensors")
	out := mustKiln(t, "lm", "train", "--data", data, "--init", bf, "--iters", "2", "--batch", "4", "--eval-every", "0", "--out", ft, "--device", "cpu", "--cache-dir", t.TempDir())
	if !strings.Contains(out, "initialised from "+bf) {
		t.Errorf("--init output:\n%s", out)
	}
	mustKiln(t, "lm", "train", "--data", data, "--init", bf, "--lora-rank", "2", "--lora-targets", "c_attn,c_proj", "--iters", "3", "--lr", "1e-2",
		"--batch", "4", "--eval-every", "0", "--out", lora, "--device", "cpu", "--cache-dir", t.TempDir())
	b, l := readTensors(t, bf), readTensors(t, filepath.Join(lora, "model.safetensors"))
	moved := false
	for n, tl := range l.Tensors {
		if strings.Contains(n, "lora_") {
			if strings.Contains(n, "lora_B") {
				for _, v := range tl.Data {
					moved = moved || v != 0
				}
			}
			continue
		}
		sameTensors(t, "frozen base "+n, &nn.StateDict{Tensors: map[string]nn.HostTensor{n: b.Tensors[n]}}, &nn.StateDict{Tensors: map[string]nn.HostTensor{n: tl}})
	}
	if !moved {
		t.Error("LoRA training left every lora_B at zero")
	}
	ad := readTensors(t, filepath.Join(lora, "adapter.safetensors"))
	// c_proj matches attn.c_proj and mlp.c_proj: 3 targets × (A, B).
	if len(ad.Tensors) != 6 {
		t.Errorf("adapter file has %d tensors, want 6 (A and B of attn.c_attn, attn.c_proj, mlp.c_proj)", len(ad.Tensors))
	}
	for n := range ad.Tensors {
		if !strings.Contains(n, ".lora_A.") && !strings.Contains(n, ".lora_B.") {
			t.Errorf("adapter file holds %s", n)
		}
	}
	mustKiln(t, "generate", "--checkpoint", lora, "--max-tokens", "5", "--device", "cpu")

	// A LoRA run resumes exactly too: 1 step, then --resume for 2 more.
	lora2 := t.TempDir()
	loraArgs := func(extra ...string) []string {
		return append([]string{"lm", "train", "--data", data, "--lora-rank", "2", "--lora-targets", "c_attn,c_proj", "--iters", "3", "--lr", "1e-2",
			"--batch", "4", "--eval-every", "0", "--device", "cpu", "--cache-dir", t.TempDir()}, extra...)
	}
	mustKiln(t, loraArgs("--init", bf, "--out", lora2, "--stop-after", "1")...)
	mustKiln(t, loraArgs("--resume", lora2)...)
	sameTensors(t, "LoRA model after 3 vs 1+2 steps", l, readTensors(t, filepath.Join(lora2, "model.safetensors")))
}

// TestLMInitHub: a Hub-style GPT-2 file (no "transformer." prefix, the
// attention mask buffers, no kiln metadata) initialises a run with the
// byte tokenizer and --heads.
func TestLMInitHub(t *testing.T) {
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := gpt.New(dev, gpt.Config{VocabSize: 256, Context: 16, Layers: 1, Heads: 2, Width: 16, Bias: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	hub := &nn.StateDict{Tensors: map[string]nn.HostTensor{}, Metadata: map[string]string{}}
	for _, n := range sd.Names {
		if n == "lm_head.weight" {
			continue
		}
		k := strings.TrimPrefix(n, "transformer.")
		hub.Names = append(hub.Names, k)
		hub.Tensors[k] = sd.Tensors[n]
	}
	mask := make([]float32, 16*16)
	hub.Names = append(hub.Names, "h.0.attn.bias")
	hub.Tensors["h.0.attn.bias"] = nn.HostTensor{Shape: []int{1, 1, 16, 16}, Data: mask}
	p := filepath.Join(t.TempDir(), "hub.safetensors")
	if err := nn.WriteSafetensors(p, hub); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	mustKiln(t, "lm", "train", "--data", lmCorpus(t), "--init", p, "--heads", "2", "--tokenizer", "byte", "--iters", "2", "--batch", "2",
		"--eval-every", "1", "--eval-batches", "1", "--out", out, "--device", "cpu", "--cache-dir", t.TempDir())
	g := mustKiln(t, "generate", "--checkpoint", out, "--prompt", "ab", "--max-tokens", "3", "--device", "cpu")
	if !strings.HasPrefix(g, "ab") {
		t.Errorf("generate: %q", g)
	}
}

// TestLMBadFlags: mistakes give one clear error, exit status 1.
func TestLMBadFlags(t *testing.T) {
	data := lmCorpus(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lm", "train", "--tokenizer", "words"}, `--tokenizer "words": want byte, char or gpt2`},
		{[]string{"lm", "train", "--iters", "0"}, "--iters 0: want a positive integer"},
		{[]string{"lm", "train", "--iters", "5", "--warmup", "5"}, "--warmup 5: want fewer warm-up steps than --iters 5"},
		{[]string{"lm", "train", "--lora-rank", "4"}, "give it with --init"},
		{[]string{"lm", "train", "--init", "x.safetensors", "--resume", "y"}, "--resume and --init exclude each other"},
		{[]string{"lm", "train", "--data", data, "--width", "30", "--heads", "4", "--cache-dir", t.TempDir()}, "Config.Width is 30"},
		{[]string{"lm", "train", "--data", filepath.Join(t.TempDir(), "none.txt")}, "none.txt"},
		{[]string{"lm", "train", "--val-frac", "1"}, "--val-frac 1"},
		{[]string{"lm", "train", "--resume", t.TempDir()}, "model.safetensors"},
		{[]string{"lm"}, "expected a subcommand"},
		{[]string{"generate"}, "--checkpoint: required"},
		{[]string{"generate", "--checkpoint", "x", "--temperature", "-1"}, "--temperature -1"},
		{[]string{"generate", "--checkpoint", filepath.Join(t.TempDir(), "missing.safetensors")}, "missing.safetensors"},
	} {
		_, errOut, code := kiln(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("kiln %s: exit %d, stderr %q, want exit 1 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

// TestLMMergeAndFreeze: `kiln lm merge` writes a LoRA run's merged full
// checkpoint — no lora_ tensors, the adapted weights changed from the
// base, loadable by gpt.New's model — and generate from it gives, for a
// seed, the tokens generate gives from the adapter run (the merged
// weights differ from base + adapters only by one float32 rounding per
// weight, far below what changes a sampled token here); --freeze keeps
// the tensors it names bit for bit and rejects a pattern matching none.
func TestLMMergeAndFreeze(t *testing.T) {
	data := lmCorpus(t)
	base, lora := t.TempDir(), t.TempDir()
	mustKiln(t, tinyLM(t, data, "--iters", "2", "--out", base)...)
	bf := filepath.Join(base, "model.safetensors")
	mustKiln(t, "lm", "train", "--data", data, "--init", bf, "--lora-rank", "2", "--lora-targets", "c_attn,c_proj", "--iters", "3", "--lr", "1e-2",
		"--batch", "4", "--eval-every", "0", "--out", lora, "--device", "cpu", "--cache-dir", t.TempDir())
	merged := filepath.Join(t.TempDir(), "merged.safetensors")
	if out := mustKiln(t, "lm", "merge", "--checkpoint", lora, "--out", merged); !strings.Contains(out, "into "+merged) {
		t.Errorf("merge output: %q", out)
	}
	msd, bsd := readTensors(t, merged), readTensors(t, bf)
	if len(msd.Tensors) != len(bsd.Tensors) {
		t.Errorf("merged file has %d tensors, the base %d", len(msd.Tensors), len(bsd.Tensors))
	}
	for n := range msd.Tensors {
		if strings.Contains(n, "lora_") {
			t.Errorf("merged file holds adapter tensor %s", n)
		}
	}
	w := "transformer.h.0.attn.c_attn.weight"
	if equalF32(msd.Tensors[w].Data, bsd.Tensors[w].Data) {
		t.Errorf("merged %s equals the base's: the adapters were not folded in", w)
	}
	cfg, err := gpt.ConfigFromStateDict(msd, 2)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := gpt.New(dev, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	if _, err := m.LoadStateDict(msd); err != nil {
		t.Errorf("the merged file does not load as a plain GPT-2: %v", err)
	}
	gen := func(ck string) string {
		return mustKiln(t, "generate", "--checkpoint", ck, "--prompt", "the ", "--max-tokens", "40", "--temperature", "1", "--seed", "9", "--device", "cpu")
	}
	if a, b := gen(lora), gen(merged); a != b {
		t.Errorf("generate from the adapter run and the merged file differ:\n%q\n%q", a, b)
	}
	if _, errOut, code := kiln(t, "lm", "merge", "--checkpoint", base, "--out", merged); code != 1 || !strings.Contains(errOut, "no LoRA adapters") {
		t.Errorf("merge of a run without adapters: exit %d, %q", code, errOut)
	}

	ft := t.TempDir()
	mustKiln(t, "lm", "train", "--data", data, "--init", bf, "--iters", "2", "--lr", "1e-2", "--batch", "4", "--eval-every", "0", "--out", ft,
		"--device", "cpu", "--cache-dir", t.TempDir(), "--freeze", "transformer.h.0.*,transformer.wpe.weight")
	fsd := readTensors(t, filepath.Join(ft, "model.safetensors"))
	for n, bt := range bsd.Tensors {
		frozen := strings.HasPrefix(n, "transformer.h.0.") || n == "transformer.wpe.weight"
		if same := equalF32(bt.Data, fsd.Tensors[n].Data); same != frozen {
			t.Errorf("--freeze: %s unchanged %v, want %v", n, same, frozen)
		}
	}
	_, errOut, code := kiln(t, "lm", "train", "--data", data, "--init", bf, "--iters", "2", "--batch", "4", "--eval-every", "0", "--out", t.TempDir(),
		"--device", "cpu", "--cache-dir", t.TempDir(), "--freeze", "transformer.h.0.*,h.9.*")
	if code != 1 || !strings.Contains(errOut, `"h.9.*"`) {
		t.Errorf("--freeze with an unknown pattern: exit %d, %q", code, errOut)
	}
}

// equalF32 says whether a and b hold the same bits.
func equalF32(a, b []float32) bool {
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
