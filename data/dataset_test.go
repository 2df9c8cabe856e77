package data

import (
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// tiny returns a 4-sample, 3-feature classification set with binary
// targets, whose values encode (sample, feature) so copies can be checked.
func tiny() *Dataset {
	d := &Dataset{
		Name: "tiny", Features: 3, Shape: []int{3}, Classes: 2,
		Labels: []int32{0, 1, 1, 0},
	}
	for i := 0; i < 4; i++ {
		for j := 0; j < 3; j++ {
			d.X = append(d.X, float32(10*i+j))
		}
	}
	if err := d.BinaryTargets(); err != nil {
		panic(err)
	}
	return d
}

func TestSubsetCopiesRowsInOrder(t *testing.T) {
	d := tiny()
	s := d.Subset([]int{2, 0})
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	if want := []float32{20, 21, 22, 0, 1, 2}; !slices.Equal(s.X, want) {
		t.Errorf("X = %v, want %v", s.X, want)
	}
	if want := []int32{1, 0}; !slices.Equal(s.Labels, want) {
		t.Errorf("Labels = %v, want %v", s.Labels, want)
	}
	if want := []float32{1, 0}; !slices.Equal(s.Y, want) {
		t.Errorf("Y = %v, want %v", s.Y, want)
	}
	s.X[0] = -1
	if d.X[6] != 20 {
		t.Error("Subset shares memory with its parent")
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestDenseShapes(t *testing.T) {
	d := tiny()
	x := d.Dense()
	if !slices.Equal([]int(x.Shape()), []int{4, 3}) || x.Dtype() != tensor.Float32 {
		t.Errorf("Dense: shape %v dtype %v, want (4, 3) float32", x.Shape(), x.Dtype())
	}
	if v, err := x.At(2, 1); err != nil || v.(float32) != 21 {
		t.Errorf("Dense At(2,1) = %v, %v; want 21", v, err)
	}
	l := d.LabelsDense()
	if !slices.Equal([]int(l.Shape()), []int{4}) || l.Dtype() != tensor.Int32 {
		t.Errorf("LabelsDense: shape %v dtype %v", l.Shape(), l.Dtype())
	}
	y := d.YDense()
	if !slices.Equal([]int(y.Shape()), []int{4, 1}) {
		t.Errorf("YDense shape %v, want (4, 1)", y.Shape())
	}
	img := &Dataset{Features: 4, Shape: []int{1, 2, 2}, X: make([]float32, 8)}
	if s := img.Dense().Shape(); !slices.Equal([]int(s), []int{2, 1, 2, 2}) {
		t.Errorf("image Dense shape %v, want (2, 1, 2, 2)", s)
	}
	var reg Dataset
	reg.Features = 1
	if reg.LabelsDense() != nil || reg.YDense() != nil {
		t.Error("LabelsDense/YDense of a set without them should be nil")
	}
}

func TestGatherNoAlloc(t *testing.T) {
	d := tiny()
	idx := []int{3, 1}
	x := make([]float32, 6)
	lab := make([]int32, 2)
	y := make([]float32, 2)
	if err := d.Gather(idx, x, lab, y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, []float32{30, 31, 32, 10, 11, 12}) || !slices.Equal(lab, []int32{0, 1}) || !slices.Equal(y, []float32{0, 1}) {
		t.Errorf("Gather: x %v labels %v y %v", x, lab, y)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Gather(idx, x, lab, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Gather allocates %v times per call, want 0", allocs)
	}
}

func TestGatherErrors(t *testing.T) {
	d := tiny()
	cases := []struct {
		name string
		idx  []int
		x    []float32
		lab  []int32
		want string
	}{
		{"short x", []int{0, 1}, make([]float32, 5), nil, "x has 5 values, want 6"},
		{"short labels", []int{0, 1}, make([]float32, 6), make([]int32, 1), "labels has 1 values, want 2"},
		{"bad index", []int{0, 4}, make([]float32, 6), nil, "index 4 (position 1) out of range [0, 4)"},
		{"negative", []int{-1}, make([]float32, 3), nil, "index -1"},
	}
	for _, c := range cases {
		err := d.Gather(c.idx, c.x, c.lab, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	reg := &Dataset{Name: "r", Features: 1, X: []float32{1}}
	if err := reg.Gather([]int{0}, make([]float32, 1), make([]int32, 1), nil); err == nil {
		t.Error("Gather of labels from a set without labels: no error")
	}
}

func TestValidate(t *testing.T) {
	bad := []struct {
		d    *Dataset
		want string
	}{
		{&Dataset{Features: 0}, "Features = 0"},
		{&Dataset{Features: 2, X: []float32{1, 2, 3}}, "not a multiple"},
		{&Dataset{Features: 2, Shape: []int{3}, X: []float32{1, 2}}, "Shape [3]"},
		{&Dataset{Features: 1, X: []float32{1, 2}, Labels: []int32{0}, Classes: 2}, "1 labels for 2 samples"},
		{&Dataset{Features: 1, X: []float32{1, 2}, Labels: []int32{0, 2}, Classes: 2}, "sample 1: label 2 out of range [0, 2)"},
		{&Dataset{Features: 1, X: []float32{1, 2}, Y: []float32{0}, Outputs: 1}, "len(Y) = 1"},
	}
	for _, c := range bad {
		err := c.d.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.d, err, c.want)
		}
	}
	if err := tiny().Validate(); err != nil {
		t.Errorf("Validate(tiny) = %v", err)
	}
}
