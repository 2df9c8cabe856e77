package gpt

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pythonPath is Debian's interpreter with python3-torch (the python3 first
// on PATH may be another), or $KILN_TORCH_PYTHON when set.
func pythonPath() string {
	if p := os.Getenv("KILN_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// requireTorch skips without torch, except in CI (CI=true), where the
// parity test must run.
func requireTorch(t *testing.T) string {
	t.Helper()
	python := pythonPath()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s: install Debian's python3-torch", why)
		}
		t.Skip("skipping PyTorch parity: " + why)
	}
	if _, err := os.Stat(python); err != nil {
		skip(python + " not found")
	}
	if o, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		skip(python + " cannot import torch: " + strings.TrimSpace(string(o)))
	}
	return python
}

func readF32File(t *testing.T, path string) []float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, len(b)/4)
	for i := range v {
		v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return v
}

// TestTorchParity gives kiln and a GPT-2 written in plain torch (module
// tree and names as transformers' GPT2LMHeadModel) the same weights, both
// ways through safetensors files with Hugging Face names, and compares the
// logits to 1e-5 relative to the largest logit (closeNorm): both are
// float32 with different summation orders (gonum vs. ATen); each is about
// 2e-6 of the logit scale from a float64 evaluation at this width, and a
// logit near zero keeps the absolute rounding of the larger terms that
// cancelled in it, so an element-wise relative bound would test noise.
//
//	kiln → torch: kiln's StateDict (GPT2LMHeadModel names, lm_head.weight
//	              included) loads into torch with strict=True.
//	torch → kiln: torch's transformer.state_dict() in the Hub's form (no
//	              "transformer." prefix, attn.bias/masked_bias buffers)
//	              loads into kiln.
func TestTorchParity(t *testing.T) {
	python := requireTorch(t)
	dev := openCPU(t)
	cfg := Config{VocabSize: 50, Context: 16, Layers: 2, Heads: 4, Width: 32, Bias: true}
	m := newModel(t, dev, cfg, 21)
	roughen(t, m)
	dir := t.TempDir()
	cj, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveSafetensors(filepath.Join(dir, "kiln.safetensors"), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	b, tt := 2, 12
	idx := tokens(b*tt, cfg.VocabSize, 5)
	raw := make([]byte, 0, 4*len(idx))
	for _, v := range idx {
		raw = binary.LittleEndian.AppendUint32(raw, uint32(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "idx.bin"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join("testdata", "gpt2_torch.py"), filepath.Join(dir, "config.json"),
		filepath.Join(dir, "kiln.safetensors"), filepath.Join(dir, "idx.bin"), strconv.Itoa(b), strconv.Itoa(tt), dir)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, o)
	}
	// kiln → torch.
	got := logitsOf(t, m, idx, b, tt)
	closeNorm(t, "torch logits of kiln's weights", got, readF32File(t, filepath.Join(dir, "kiln_weights.logits")), 1e-5)
	// torch → kiln.
	k := newModel(t, dev, cfg, 1)
	rep, err := k.LoadFile(filepath.Join(dir, "torch.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ignored) != 2*cfg.Layers {
		t.Errorf("ignored %v, want the %d attention buffers", rep.Ignored, 2*cfg.Layers)
	}
	closeNorm(t, "kiln logits of torch's weights", logitsOf(t, k, idx, b, tt), readF32File(t, filepath.Join(dir, "torch.logits")), 1e-5)
}
