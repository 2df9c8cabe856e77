package nn

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const python = "/usr/bin/python3"

// runTorch runs the interop script once (importing torch takes seconds)
// and skips the test when /usr/bin/python3 is missing or cannot import
// torch.
func runTorch(t *testing.T, args ...string) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipping PyTorch interop: %s not found", python)
	}
	o, err := exec.Command(python, args...).CombinedOutput()
	if err != nil && strings.Contains(string(o), "No module named 'torch'") {
		t.Skipf("skipping PyTorch interop: %s cannot import torch; install Debian's python3-torch", python)
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", python, strings.Join(args, " "), err, o)
	}
}

func writeF32(t *testing.T, path string, v []float32) {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// kilnLogits runs m in evaluation mode on x (rows × In).
func kilnLogits(t *testing.T, m *Sequential, x []float32, rows int) []float32 {
	dev := m.Device()
	g := NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	m.SetTraining(false)
	xt, err := g.Input(upload(t, dev, x), rows, m.Spec().In)
	if err != nil {
		t.Fatal(err)
	}
	y, err := m.Forward(g, xt)
	if err != nil {
		t.Fatal(err)
	}
	v, err := y.Values()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// agree compares logits: both sides compute in float32 with different
// summation orders (gonum vs. ATen), so they differ by a few ulps of the
// partial sums; 1e-5 absolute (relative above 1) is the brief's bound.
func agree(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d logits, expected %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		worst = math.Max(worst, d)
		if d > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s: logit %d: kiln %v, torch %v", what, i, got[i], want[i])
		}
	}
	t.Logf("%s: %d logits agree, max |diff| %.2g", what, len(got), worst)
}

// TestTorchInterop: a kiln checkpoint loads into torch.nn.Sequential and
// gives kiln's logits, and a torch-written state_dict loads into kiln and
// gives torch's logits. The spec uses every activation and a dropout
// (identity in evaluation mode on both sides).
func TestTorchInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch interop in -short mode (starting torch takes seconds)")
	}
	script, err := filepath.Abs("../bench/torch_interop.py")
	if err != nil {
		t.Fatal(err)
	}
	dev := openCPU(t)
	const spec = "6-16-relu-12-gelu-10-gelu_tanh-10-leakyrelu0.2-drop0.3-9-tanh-8-sigmoid-8-leakyrelu-7-identity-5-softmax"
	const rows = 9
	m := buildModel(t, dev, spec, Init{}, 21)
	r := rng(14)
	x := f32s(r.uniform(rows*6, -2, 2))
	dir := t.TempDir()
	ckpt, in, out := filepath.Join(dir, "kiln.safetensors"), filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32")
	writeF32(t, in, x)
	if err := SaveSafetensors(ckpt, m, nil); err != nil {
		t.Fatal(err)
	}
	// Forward of kiln's checkpoint in torch, then the other way: torch's
	// default init, written by torch, read by kiln.
	const spec2 = "6-16-relu-8-tanh-3"
	tckpt, tout := filepath.Join(dir, "torch.safetensors"), filepath.Join(dir, "ty.f32")
	runTorch(t, script, "forward", ckpt, in, "9", out, "+", "export", spec2, "5", tckpt, in, "9", tout)
	agree(t, "kiln checkpoint in torch", kilnLogits(t, m, x, rows), readF32(t, out))
	m2, sd, err := Load(dev, tckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Free()
	if sd.Metadata["producer"] == "" {
		t.Errorf("metadata of the torch file lost: %v", sd.Metadata)
	}
	agree(t, "torch checkpoint in kiln", kilnLogits(t, m2, x, rows), readF32(t, tout))
}

// TestTorchInteropImage is TestTorchInterop for image specs: a CNN built
// from a spec (convolutions with padding, stride and dilation, batch norm
// on images and after flatten, max and average pooling, global average
// pooling) loads into the torch.nn.Sequential the same spec names, with
// its state_dict names (BatchNorm's running statistics, moved by three
// training-mode batches, and its int64 num_batches_tracked included,
// strict), and gives kiln's logits in evaluation mode; and one torch
// builds with its own initialisation loads into kiln and gives torch's.
// Under CI=true a missing torch fails it.
func TestTorchInteropImage(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch interop in -short mode (starting torch takes seconds)")
	}
	requireTorch(t)
	script, err := filepath.Abs("../bench/torch_interop.py")
	if err != nil {
		t.Fatal(err)
	}
	dev := openCPU(t)
	const spec = "2x9x9-conv6k3p1-bn-relu-maxpool2-conv5k3s2p1-bn-silu-avgpool2s1p1-flatten-bn-drop0.2-7"
	const rows = 8
	m := buildModel(t, dev, spec, Init{}, 5)
	r := rng(3)
	for step := 0; step < 3; step++ { // training mode: the running statistics move
		g := NewGraph(dev)
		m.SetTraining(true)
		xt, err := g.Input(upload(t, dev, f32s(r.uniform(rows*162, -1, 3))), rows, 162)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Forward(g, xt); err != nil {
			t.Fatal(err)
		}
		g.Free()
	}
	x := f32s(r.uniform(rows*162, -2, 2))
	dir := t.TempDir()
	ckpt, in, out := filepath.Join(dir, "kiln.safetensors"), filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32")
	writeF32(t, in, x)
	if err := SaveSafetensors(ckpt, m, nil); err != nil {
		t.Fatal(err)
	}
	const spec2 = "2x9x9-conv4k3d2-bn-relu-gap-flatten-3"
	tckpt, tout := filepath.Join(dir, "torch.safetensors"), filepath.Join(dir, "ty.f32")
	runTorch(t, script, "forward", ckpt, in, "8", out, "+", "export", spec2, "5", tckpt, in, "8", tout)
	agree(t, "kiln CNN checkpoint in torch", kilnLogits(t, m, x, rows), readF32(t, out))
	m2, _, err := Load(dev, tckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Free()
	// torch's export is its fresh model: running variance 1, mean 0 (a
	// forward in training mode while building it would have moved them).
	rv, rm := m2.Param("1.running_var"), m2.Param("1.running_mean")
	vv, vm := make([]float32, rv.Len()), make([]float32, rm.Len())
	if err := dev.ReadF32(vv, rv.Value(), 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.ReadF32(vm, rm.Value(), 0); err != nil {
		t.Fatal(err)
	}
	for i := range vv {
		if vv[i] != 1 || vm[i] != 0 {
			t.Fatalf("torch's exported running statistics: var %v, mean %v, expected 1 and 0", vv, vm)
		}
	}
	agree(t, "torch CNN checkpoint in kiln", kilnLogits(t, m2, x, rows), readF32(t, tout))
}
