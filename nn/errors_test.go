package nn

import (
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// TestOpErrors: misuse gives errors that say what was expected.
func TestOpErrors(t *testing.T) {
	dev := openCPU(t)
	g := NewGraph(dev)
	defer g.Free()
	buf := upload(t, dev, make([]float32, 12))
	x, _ := g.Variable(buf, 3, 4)
	w, _ := g.Input(buf, 2, 3)
	b, _ := g.Input(buf, 3)
	v5, _ := g.Input(buf, 5)
	check := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, expected one containing %q", what, err, want)
		}
	}
	_, err := g.Linear(x, w, nil)
	check("Linear in mismatch", err, "expected last dimension 3")
	w2, _ := g.Input(buf, 2, 4)
	_, err = g.Linear(x, w2, b)
	check("Linear bias", err, "bias has shape [3], expected [2]")
	_, err = g.Linear(x, v5, nil)
	check("Linear weight rank", err, "expected [out, in]")
	_, err = g.Dropout(x, 1)
	check("Dropout p", err, "expected 0 ≤ p < 1")
	_, err = g.Add(x, v5)
	check("Add shapes", err, "expected equal shapes")
	_, err = g.Input(buf, 4, 4)
	check("Input too small", err, "expected at least 16 elements")
	_, err = g.Input(buf, 0, 4)
	check("Input zero dim", err, "expected ≥ 1")
	y, _ := g.Activate(device.Tanh, 0, x)
	check("Backward non-scalar", g.Backward(y), "expected a single element")
	in, _ := g.Input(buf, 12)
	l, _ := g.Loss(device.MSE, in, buf)
	check("Backward without grad", g.Backward(l), "does not depend on anything that requires grad")
	l2, _ := g.Loss(device.MSE, x, buf)
	if err := g.Backward(l2); err != nil {
		t.Fatal(err)
	}
	check("Backward twice", g.Backward(l2), "already called")
}
