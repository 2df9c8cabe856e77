package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kilnml/kiln/nn"
)

// TestFineTunePyTorchCheckpoint starts kiln from a state_dict that PyTorch
// wrote (torch.nn.Sequential with PyTorch's own initialisation, saved as
// safetensors by bench/torch_interop.py), freezes its first layer and
// trains the rest on the embedded digits: the frozen tensors must come out
// bit for bit as PyTorch wrote them, the others must move, and the tuned
// model must classify far above chance. It needs Debian's python3-torch, which .ci/run
// installs; elsewhere it is skipped with the reason.
func TestFineTunePyTorchCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the PyTorch round trip in -short mode (starting torch takes seconds)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Skipf("/usr/bin/python3 cannot import torch (%v): install python3-torch to run this test", err)
	}
	script, err := filepath.Abs("../../bench/torch_interop.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fromTorch := filepath.Join(dir, "torch.safetensors")
	tuned := filepath.Join(dir, "tuned.safetensors")
	const spec = "64-32-relu-10"
	if out, err := exec.Command("/usr/bin/python3", script, "export", spec, "3", fromTorch).CombinedOutput(); err != nil {
		t.Fatalf("torch export: %v\n%s", err, out)
	}
	// --model as a PyTorch user would give it: the architecture is not
	// something a plain state_dict records.
	out := mustKiln(t, "train", "--init", fromTorch, "--model", spec, "--freeze", "0.weight,0.bias",
		"--epochs", "5", "--lr", "0.01", "--progress", "none", "--out", tuned)
	// The frozen first layer is PyTorch's random initialisation, so only a
	// linear read-out of 32 random ReLU features learns: about 0.84 after
	// five epochs (chance is 0.10). 0.75 leaves room for other seeds'
	// draws while still failing if the loaded weights or the training were
	// wrong.
	if acc := number(t, out, "test accuracy:"); acc < 0.75 {
		t.Errorf("test accuracy after fine-tuning PyTorch's model = %.4f, want ≥ 0.75\n%s", acc, out)
	}
	before, err := nn.LoadSafetensors(fromTorch)
	if err != nil {
		t.Fatal(err)
	}
	after, err := nn.LoadSafetensors(tuned)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0.weight", "0.bias", "2.weight", "2.bias"} {
		a, b := before.Tensors[name], after.Tensors[name]
		if len(a.Data) == 0 || len(a.Data) != len(b.Data) {
			t.Fatalf("%s: %d values from torch, %d after fine-tuning", name, len(a.Data), len(b.Data))
		}
		same := slices.Equal(a.Data, b.Data)
		if frozen := name[0] == '0'; frozen && !same {
			t.Errorf("%s was frozen but changed", name)
		} else if !frozen && same {
			t.Errorf("%s was trainable but did not change", name)
		}
	}
}
