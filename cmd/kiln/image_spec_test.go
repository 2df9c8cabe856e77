package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// TestTrainImageSpec trains a CNN named by an image spec on the embedded
// 8×8 digits, then evaluates its checkpoint (rebuilt from the spec in its
// metadata, batch norm in evaluation mode) to the same test accuracy, and
// fine-tunes from it.
func TestTrainImageSpec(t *testing.T) {
	const spec = "1x8x8-conv16k3p1-bn-relu-maxpool2-flatten-10"
	ck := filepath.Join(t.TempDir(), "cnn.safetensors")
	out := mustKiln(t, "train", "--model", spec, "--epochs", "6", "--out", ck)
	acc := number(t, out, "test accuracy:")
	if acc < 0.9 {
		t.Errorf("test accuracy %.4f after 6 epochs, want ≥ 0.9\n%s", acc, out)
	}
	if !strings.Contains(out, spec) {
		t.Errorf("train output does not name the model %s:\n%s", spec, out)
	}
	evalOut := mustKiln(t, "eval", "--checkpoint", ck)
	if got := number(t, evalOut, "accuracy:"); got != acc {
		t.Errorf("eval accuracy %.4f, train reported %.4f for the same checkpoint", got, acc)
	}
	tune := mustKiln(t, "train", "--init", ck, "--epochs", "1", "--lr", "1e-4")
	if got := number(t, tune, "test accuracy:"); got < acc-0.05 {
		t.Errorf("fine-tuning 1 epoch at lr 1e-4 from a model at %.4f gave %.4f", acc, got)
	}
	_, errOut, code := kiln(t, "train", "--model", "1x8x8-conv16k3p1-relu-10", "--epochs", "1")
	if code == 0 || !strings.Contains(errOut, "a width needs a flat input; put flatten") {
		t.Errorf("a width after an image layer: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckModelFitsImageShape checks that an image spec whose shape
// disagrees with the dataset's images is refused with both shapes, even
// when the number of values agrees.
func TestCheckModelFitsImageShape(t *testing.T) {
	ds := &data.Dataset{Name: "mnist", Features: 784, Shape: []int{1, 28, 28}, Classes: 10, Labels: []int32{0}}
	for _, c := range []struct{ spec, want string }{
		{"28x1x28-flatten-10", "input shape is 28x1x28 but dataset \"mnist\" has images of 1x28x28"},
		{"1x28x28-flatten-10", ""},
		{"1x28x27-flatten-10", "the input width is 756"},
	} {
		err := checkModelFits(nn.MustParseSpec(c.spec), ds, device.SoftmaxCrossEntropy)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.spec, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, expected one containing %q", c.spec, err, c.want)
		}
	}
}
