package data

import (
	"fmt"

	"gorgonia.org/tensor"
)

// Dataset is a whole dataset held on the host as flat float32 rows, so that
// the training loop can copy a batch to any device with one transfer.
type Dataset struct {
	Name     string
	X        []float32 // Len() × Features, row-major
	Features int
	Shape    []int   // per-sample shape, e.g. [1, 28, 28] or [64]; its product is Features
	Labels   []int32 // class labels in [0, Classes) (classification); nil for regression
	Classes  int
	Y        []float32 // float targets, Len() × Outputs (regression, or binary 0/1); nil when unused
	Outputs  int

	// ClassNames maps a class index to the name it had in the source
	// (CSV string labels, in sorted order), so predictions can be reported
	// by name and a test file can be mapped the same way; nil when the
	// labels were integers already.
	ClassNames []string
	// Stats holds the standardisation that was applied to X (nil when
	// none), so a checkpoint can store it and apply it to new inputs.
	Stats *Stats
	// Source says where the data was read from, for logs and error
	// reports: the file read (for IDX sets the images file and the labels
	// file, separated by ", "), or "embedded" / "synthetic".
	Source string
}

// Len is the number of samples, derived from X so it cannot disagree with it.
func (d *Dataset) Len() int {
	if d == nil || d.Features <= 0 {
		return 0
	}
	return len(d.X) / d.Features
}

// Validate checks that the fields agree with each other (sizes, label
// range), so a hand-built or decoded Dataset fails early with a clear error
// instead of panicking in the training loop.
func (d *Dataset) Validate() error {
	if d == nil {
		return fmt.Errorf("data: nil dataset")
	}
	if d.Features <= 0 {
		return fmt.Errorf("data: dataset %q: Features = %d, want > 0", d.Name, d.Features)
	}
	if len(d.X)%d.Features != 0 {
		return fmt.Errorf("data: dataset %q: len(X) = %d is not a multiple of Features = %d", d.Name, len(d.X), d.Features)
	}
	if len(d.Shape) > 0 {
		p := 1
		for _, s := range d.Shape {
			p *= s
		}
		if p != d.Features {
			return fmt.Errorf("data: dataset %q: Shape %v has %d elements, want Features = %d", d.Name, d.Shape, p, d.Features)
		}
	}
	n := d.Len()
	if d.Labels != nil {
		if len(d.Labels) != n {
			return fmt.Errorf("data: dataset %q: %d labels for %d samples", d.Name, len(d.Labels), n)
		}
		if d.Classes <= 0 {
			return fmt.Errorf("data: dataset %q: has labels but Classes = %d", d.Name, d.Classes)
		}
		for i, l := range d.Labels {
			if l < 0 || int(l) >= d.Classes {
				return fmt.Errorf("data: dataset %q: sample %d: label %d out of range [0, %d)", d.Name, i, l, d.Classes)
			}
		}
	}
	if d.Y != nil {
		if d.Outputs <= 0 {
			return fmt.Errorf("data: dataset %q: has targets Y but Outputs = %d", d.Name, d.Outputs)
		}
		if len(d.Y) != n*d.Outputs {
			return fmt.Errorf("data: dataset %q: len(Y) = %d, want %d samples × %d outputs", d.Name, len(d.Y), n, d.Outputs)
		}
	}
	return nil
}

// Subset copies the samples at idx (in that order) into a new Dataset, so
// splits and folds own their memory and can be standardised independently.
// Indices out of range are skipped; use Validate-checked indices from Split,
// KFold or Permutation.
func (d *Dataset) Subset(idx []int) *Dataset {
	n := d.Len()
	s := &Dataset{
		Name:       d.Name,
		Features:   d.Features,
		Shape:      append([]int(nil), d.Shape...),
		Classes:    d.Classes,
		Outputs:    d.Outputs,
		ClassNames: append([]string(nil), d.ClassNames...),
		Stats:      d.Stats.clone(),
		Source:     d.Source,
	}
	keep := make([]int, 0, len(idx))
	for _, i := range idx {
		if i >= 0 && i < n {
			keep = append(keep, i)
		}
	}
	s.X = make([]float32, len(keep)*d.Features)
	for j, i := range keep {
		copy(s.X[j*d.Features:(j+1)*d.Features], d.X[i*d.Features:(i+1)*d.Features])
	}
	if d.Labels != nil {
		s.Labels = make([]int32, len(keep))
		for j, i := range keep {
			s.Labels[j] = d.Labels[i]
		}
	}
	if d.Y != nil && d.Outputs > 0 {
		s.Y = make([]float32, len(keep)*d.Outputs)
		for j, i := range keep {
			copy(s.Y[j*d.Outputs:(j+1)*d.Outputs], d.Y[i*d.Outputs:(i+1)*d.Outputs])
		}
	}
	return s
}

// Dense returns X as a gorgonia.org/tensor Dense of shape [n, Shape...]
// (or [n, Features] when Shape is empty), the host type at kiln's API
// boundary. It shares X's memory: no copy is made.
func (d *Dataset) Dense() *tensor.Dense {
	shape := append([]int{d.Len()}, d.Shape...)
	if len(d.Shape) == 0 {
		shape = []int{d.Len(), d.Features}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d.X[:d.Len()*d.Features]))
}

// LabelsDense returns the class labels as an int32 Dense of shape [n],
// sharing memory with Labels; nil when the dataset has no labels.
func (d *Dataset) LabelsDense() *tensor.Dense {
	if d.Labels == nil {
		return nil
	}
	return tensor.New(tensor.WithShape(len(d.Labels)), tensor.WithBacking(d.Labels))
}

// YDense returns the float targets as a Dense of shape [n, Outputs],
// sharing memory with Y; nil when the dataset has no float targets.
func (d *Dataset) YDense() *tensor.Dense {
	if d.Y == nil || d.Outputs <= 0 {
		return nil
	}
	return tensor.New(tensor.WithShape(len(d.Y)/d.Outputs, d.Outputs), tensor.WithBacking(d.Y))
}

// Gather copies the samples at idx into caller-owned buffers for one batch:
// x receives len(idx)×Features values, labels len(idx) class labels, and y
// len(idx)×Outputs targets. Any of labels and y may be nil to skip them.
// It never allocates on success, so the training loop can reuse its buffers
// every step.
func (d *Dataset) Gather(idx []int, x []float32, labels []int32, y []float32) error {
	n, f := d.Len(), d.Features
	if len(x) < len(idx)*f {
		return fmt.Errorf("data: Gather %q: x has %d values, want %d (%d samples × %d features)", d.Name, len(x), len(idx)*f, len(idx), f)
	}
	if labels != nil {
		if d.Labels == nil {
			return fmt.Errorf("data: Gather %q: labels requested but the dataset has none", d.Name)
		}
		if len(labels) < len(idx) {
			return fmt.Errorf("data: Gather %q: labels has %d values, want %d", d.Name, len(labels), len(idx))
		}
	}
	if y != nil {
		if d.Y == nil {
			return fmt.Errorf("data: Gather %q: targets requested but the dataset has no Y", d.Name)
		}
		if len(y) < len(idx)*d.Outputs {
			return fmt.Errorf("data: Gather %q: y has %d values, want %d (%d samples × %d outputs)", d.Name, len(y), len(idx)*d.Outputs, len(idx), d.Outputs)
		}
	}
	for j, i := range idx {
		if i < 0 || i >= n {
			return fmt.Errorf("data: Gather %q: index %d (position %d) out of range [0, %d)", d.Name, i, j, n)
		}
		copy(x[j*f:(j+1)*f], d.X[i*f:(i+1)*f])
		if labels != nil {
			labels[j] = d.Labels[i]
		}
		if y != nil {
			o := d.Outputs
			copy(y[j*o:(j+1)*o], d.Y[i*o:(i+1)*o])
		}
	}
	return nil
}

// BinaryTargets fills Y with the labels as float 0/1 (Outputs 1) for a
// two-class dataset, so a 1-output sigmoid network trained with BCE can use
// it as well as a 2-output softmax network.
func (d *Dataset) BinaryTargets() error {
	if d.Labels == nil || d.Classes != 2 {
		return fmt.Errorf("data: dataset %q: BinaryTargets needs two-class labels, have %d classes", d.Name, d.Classes)
	}
	d.Y = make([]float32, len(d.Labels))
	for i, l := range d.Labels {
		d.Y[i] = float32(l)
	}
	d.Outputs = 1
	return nil
}
