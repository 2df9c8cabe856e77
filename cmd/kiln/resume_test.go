package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// weightsOf reads every tensor of a checkpoint, by name.
func weightsOf(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, v := range sd.Tensors {
		out[name] = v.Data
	}
	return out
}

func sameWeights(t *testing.T, what string, want, got map[string][]float32) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Fatalf("%s: %s has %d values, want %d", what, name, len(g), len(w))
		}
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(g[i]) {
				t.Fatalf("%s: %s[%d] = %v, want %v bit for bit", what, name, i, g[i], w[i])
			}
		}
	}
}

// resumeArgs trains with dropout (RNG state), Adam (moments), a plateau
// schedule, a validation split and shuffling: all state a resume must carry.
func resumeArgs(out string, epochs int, extra ...string) []string {
	return append([]string{"train", "--data", "moons", "--samples", "240", "--seed", "5", "--model", "2-16-tanh-drop0.2-16-tanh-2",
		"--val-split", "0.2", "--schedule", "plateau", "--plateau-patience", "0", "--batch-size", "16", "--progress", "lines",
		"--epochs", fmt.Sprint(epochs), "--out", out}, extra...)
}

// TestResumeFromCLI: 2 epochs with --save-every 1, then --resume to 4,
// equals 4 epochs in one go bit for bit; so does a run stopped mid-epoch
// by --steps and saved every 5 steps. Checkpoints are mode 0644.
func TestResumeFromCLI(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.safetensors")
	mustKiln(t, resumeArgs(whole, 4)...)

	half := filepath.Join(dir, "half.safetensors")
	mustKiln(t, resumeArgs(half, 4, "--save-every", "1", "--steps", "24")...) // 12 steps per epoch: stops after epoch 2
	for _, p := range []string{half, train.StatePath(half)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("%s: %v, mode %v; want a 0644 file", p, err, st.Mode().Perm())
		}
	}
	done := filepath.Join(dir, "done.safetensors")
	out := mustKiln(t, resumeArgs(done, 4, "--resume", half)...)
	if !strings.Contains(out, "resuming "+half+" at epoch 3, step 24") {
		t.Fatalf("resumed run does not say where it resumes:\n%s", out)
	}
	sameWeights(t, "2+2 epochs against 4", weightsOf(t, whole), weightsOf(t, done))

	mid := filepath.Join(dir, "mid.safetensors")
	mustKiln(t, resumeArgs(mid, 4, "--save-every", "5steps", "--steps", "17")...)
	sd, err := nn.LoadSafetensors(mid)
	if err != nil || sd.Metadata["kiln.step"] != "17" {
		t.Fatalf("mid-epoch checkpoint: %v, step %q; want 17", err, sd.Metadata["kiln.step"])
	}
	done2 := filepath.Join(dir, "done2.safetensors")
	mustKiln(t, resumeArgs(done2, 4, "--resume", mid)...)
	sameWeights(t, "17 steps + the rest against 4 epochs", weightsOf(t, whole), weightsOf(t, done2))

	if _, errOut, code := kiln(t, resumeArgs(filepath.Join(dir, "x.safetensors"), 4, "--resume", filepath.Join(dir, "none.safetensors"))...); code == 0 || !strings.Contains(errOut, "--resume") {
		t.Fatalf("--resume of a missing checkpoint: exit %d, %s", code, errOut)
	}
	if _, errOut, code := kiln(t, "train", "--save-every", "2"); code == 0 || !strings.Contains(errOut, "--out") {
		t.Fatalf("--save-every without --out: exit %d, %s", code, errOut)
	}
}

// TestInjectedSignalCheckpoints: a signal (injected through notifyStop)
// stops training with a checkpoint from which --resume reaches the weights
// of an uninterrupted run.
func TestInjectedSignalCheckpoints(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.safetensors")
	mustKiln(t, resumeArgs(whole, 3)...)

	saved := notifyStop
	t.Cleanup(func() { notifyStop = saved })
	notifyStop = func() (<-chan struct{}, func()) {
		c := make(chan struct{})
		close(c) // the signal arrives before the first step
		return c, func() {}
	}
	ck := filepath.Join(dir, "ck.safetensors")
	_, errOut, code := kiln(t, resumeArgs(ck, 3)...)
	if code == 0 || !strings.Contains(errOut, "interrupted") || !strings.Contains(errOut, "--resume "+ck) {
		t.Fatalf("interrupted run: exit %d, stderr %s; want an error saying how to resume", code, errOut)
	}
	notifyStop = saved
	done := filepath.Join(dir, "done.safetensors")
	mustKiln(t, resumeArgs(done, 3, "--resume", ck)...)
	sameWeights(t, "interrupted and resumed against whole", weightsOf(t, whole), weightsOf(t, done))
}

// TestHelperKilnProcess is not a test: TestSignalSubprocess runs the test
// binary with it to get a real kiln process to signal.
func TestHelperKilnProcess(t *testing.T) {
	args := os.Getenv("KILN_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process for TestSignalSubprocess")
	}
	os.Exit(run(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// TestSignalSubprocess sends SIGTERM to a training process after its first
// epoch: it must exit non-zero after writing a 0644 checkpoint pair that
// resumes.
func TestSignalSubprocess(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	args := resumeArgs(ck, 100000)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKilnProcess$")
	cmd.Env = append(os.Environ(), "KILN_HELPER_ARGS="+strings.Join(args, "\x1f"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sent := false
	for sc.Scan() {
		if !sent && strings.HasPrefix(strings.TrimSpace(sc.Text()), "epoch") {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the signalled process did not exit within 60 s")
	}
	if !sent {
		t.Fatalf("no epoch line before exit; stderr: %s", stderr.String())
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("signalled process: %v, stderr %q; want exit 1 saying it was interrupted", err, stderr.String())
	}
	for _, p := range []string{ck, train.StatePath(ck)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("%s after SIGTERM: %v; want a 0644 file", p, err)
		}
	}
	sd, err := nn.LoadSafetensors(ck)
	if err != nil || sd.Metadata["kiln.step"] == "" || sd.Metadata["kiln.step"] == "0" {
		t.Fatalf("checkpoint after SIGTERM: %v, step %q; want one taken after the first epoch", err, sd.Metadata["kiln.step"])
	}
}
