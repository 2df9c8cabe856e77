package train

import (
	"fmt"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
)

// batcher copies mini-batches of one dataset to the device. Its host slices
// and device buffers are sized once for the largest batch and reused by
// every step, so loading a batch allocates nothing.
type batcher struct {
	dev      device.Device
	ds       *data.Dataset
	kind     device.LossKind
	features int
	outputs  int       // float target width; 0 for class-label targets
	targets  []float32 // float targets: ds.Y, or derived from the labels
	cap      int       // rows the buffers hold

	hx []float32
	hy []float32
	hl []int32
	x  device.Buffer // float32 cap×features
	y  device.Buffer // float32 cap×outputs, or int32 cap labels
}

// targetsFor checks that ds can be trained with loss kind into a model of
// out outputs, and returns the float targets when the loss needs them
// (ds.Y, or 0/1 and one-hot targets made from class labels).
func targetsFor(ds *data.Dataset, kind device.LossKind, out int) ([]float32, int, error) {
	name := ds.Name
	if kind == device.SoftmaxCrossEntropy {
		if ds.Labels == nil {
			return nil, 0, fmt.Errorf("train: dataset %q: loss %s needs class labels (field Labels), the dataset has none", name, kind)
		}
		if out != ds.Classes {
			return nil, 0, fmt.Errorf("train: dataset %q: loss %s: the model has %d outputs, expected %d (field Classes)", name, kind, out, ds.Classes)
		}
		return nil, 0, nil
	}
	switch {
	case ds.Y != nil && ds.Outputs == out:
		return ds.Y, out, nil
	case ds.Labels != nil && out == 1 && ds.Classes == 2:
		y := make([]float32, len(ds.Labels))
		for i, l := range ds.Labels {
			y[i] = float32(l)
		}
		return y, 1, nil
	case ds.Labels != nil && out == ds.Classes:
		y := make([]float32, len(ds.Labels)*out)
		for i, l := range ds.Labels {
			y[i*out+int(l)] = 1
		}
		return y, out, nil
	case ds.Y != nil:
		return nil, 0, fmt.Errorf("train: dataset %q: loss %s: the model has %d outputs, expected %d (field Outputs)", name, kind, out, ds.Outputs)
	}
	return nil, 0, fmt.Errorf("train: dataset %q: loss %s needs float targets (field Y) or class labels matching the model's %d outputs, the dataset has %d classes and no Y",
		name, kind, out, ds.Classes)
}

func newBatcher(dev device.Device, ds *data.Dataset, kind device.LossKind, modelIn, modelOut, batch int) (*batcher, error) {
	if ds == nil {
		return nil, fmt.Errorf("train: dataset is nil")
	}
	if err := ds.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("train: dataset %q has no samples", ds.Name)
	}
	if modelIn > 0 && ds.Features != modelIn {
		return nil, fmt.Errorf("train: dataset %q has %d features (field Features), the model expects %d inputs", ds.Name, ds.Features, modelIn)
	}
	if batch < 1 {
		return nil, fmt.Errorf("train: batch size is %d, expected ≥ 1", batch)
	}
	targets, outputs, err := targetsFor(ds, kind, modelOut)
	if err != nil {
		return nil, err
	}
	rows := min(batch, ds.Len())
	b := &batcher{dev: dev, ds: ds, kind: kind, features: ds.Features, outputs: outputs, targets: targets, cap: rows}
	b.hx = make([]float32, rows*ds.Features)
	if b.x, err = dev.Alloc(device.Float32, rows*ds.Features); err != nil {
		return nil, fmt.Errorf("train: batch buffer: %w", err)
	}
	if kind == device.SoftmaxCrossEntropy {
		b.hl = make([]int32, rows)
		b.y, err = dev.Alloc(device.Int32, rows)
	} else {
		b.hy = make([]float32, rows*outputs)
		b.y, err = dev.Alloc(device.Float32, rows*outputs)
	}
	if err != nil {
		_ = dev.Free(b.x)
		return nil, fmt.Errorf("train: batch buffer: %w", err)
	}
	return b, nil
}

// load gathers the samples idx (at most cap of them) and copies them to the
// device buffers.
func (b *batcher) load(idx []int) error {
	f, o, n := b.features, b.outputs, b.ds.Len()
	for j, i := range idx {
		if i < 0 || i >= n {
			return fmt.Errorf("train: dataset %q: sample index %d out of range [0, %d)", b.ds.Name, i, n)
		}
		copy(b.hx[j*f:(j+1)*f], b.ds.X[i*f:(i+1)*f])
		if b.hl != nil {
			b.hl[j] = b.ds.Labels[i]
		} else {
			copy(b.hy[j*o:(j+1)*o], b.targets[i*o:(i+1)*o])
		}
	}
	rows := len(idx)
	if err := b.dev.WriteF32(b.x, 0, b.hx[:rows*f]); err != nil {
		return fmt.Errorf("train: copying a batch to the device: %w", err)
	}
	var err error
	if b.hl != nil {
		err = b.dev.WriteI32(b.y, 0, b.hl[:rows])
	} else {
		err = b.dev.WriteF32(b.y, 0, b.hy[:rows*o])
	}
	if err != nil {
		return fmt.Errorf("train: copying a batch's targets to the device: %w", err)
	}
	return nil
}

func (b *batcher) free() error {
	var first error
	for _, buf := range []device.Buffer{b.x, b.y} {
		if buf != nil && !buf.Freed() {
			if err := b.dev.Free(buf); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
