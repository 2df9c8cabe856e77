package nn

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// TestDenseRoundTrip builds gorgonia.org/tensor Dense tensors, which also
// catches the go4.org/unsafe/assume-no-moving-gc regression of DESIGN.md
// (its init panics on Go 1.26 at the old version).
func TestDenseRoundTrip(t *testing.T) {
	dev := openCPU(t)
	d := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	x, err := FromDense(dev, d)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	if !slices.Equal(x.Shape(), []int{2, 3}) || x.Len() != 6 || x.RequiresGrad() || x.Grad() != nil {
		t.Fatalf("FromDense: shape %v len %d grad %v", x.Shape(), x.Len(), x.RequiresGrad())
	}
	back, err := x.ToDense()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal([]int(back.Shape()), []int{2, 3}) || !slices.Equal(back.Data().([]float32), []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("ToDense: %v %v", back.Shape(), back.Data())
	}

	// float64 is rounded to float32; a transposed view is materialised.
	d64 := tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float64{1, 2, 3, 4.5}))
	if err := d64.T(); err != nil {
		t.Fatal(err)
	}
	y, err := FromDense(dev, d64)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	vals, _ := y.Values()
	if !slices.Equal(vals, []float32{1, 3, 2, 4.5}) {
		t.Errorf("transposed float64 Dense gave %v, expected [1 3 2 4.5]", vals)
	}

	if _, err := FromDense(dev, tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{1, 2}))); err == nil || !strings.Contains(err.Error(), "expected float32 or float64") {
		t.Errorf("int Dense: %v", err)
	}
	if _, err := FromDense(dev, nil); err == nil {
		t.Error("nil Dense accepted")
	}
}

// TestNoBackendImports enforces the architecture's rule: package nn talks
// to device.Device only and never links a backend.
func TestNoBackendImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kilnml/kiln/nn").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/kilnml/kiln/device/") {
			t.Errorf("nn depends on %s; it must use package device only", dep)
		}
	}
}
