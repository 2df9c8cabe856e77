package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// BatchNorm is PyTorch's nn.BatchNorm1d (Dim 1: inputs [N, C] or
// [N, C, L]) and nn.BatchNorm2d (Dim 2: [N, C, H, W]) with
// track_running_stats: parameters weight and bias ([C], nil when not
// Affine), buffers running_mean and running_var, and the extra state
// num_batches_tracked (int64), in PyTorch's state_dict order.
//
// In training mode (the default, as a new PyTorch module) Forward
// normalises with the batch statistics, moves the running statistics by
// Momentum and counts the batch in NumBatchesTracked; in evaluation mode
// it uses the running statistics.
type BatchNorm struct {
	Dim                     int // 1 or 2
	Features                int
	Eps, Momentum           float32
	Weight, Bias            *Param // nil when not affine
	RunningMean, RunningVar *Param
	NumBatchesTracked       int64
	Training                bool
}

func newBatchNorm(dim, features int) *BatchNorm {
	return &BatchNorm{Dim: dim, Features: features, Eps: 1e-5, Momentum: 0.1, Training: true,
		Weight:      NewParam("weight", OnesInit(), features),
		Bias:        NewParam("bias", ZerosInit(), features),
		RunningMean: NewBuffer("running_mean", ZerosInit(), features),
		RunningVar:  NewBuffer("running_var", OnesInit(), features)}
}

// NewBatchNorm1d is nn.BatchNorm1d(features): eps 1e-5, momentum 0.1,
// affine (weight 1, bias 0), running mean 0 and var 1.
func NewBatchNorm1d(features int) *BatchNorm { return newBatchNorm(1, features) }

// NewBatchNorm2d is nn.BatchNorm2d(features), with BatchNorm1d's defaults.
func NewBatchNorm2d(features int) *BatchNorm { return newBatchNorm(2, features) }

// Forward normalises x (see BatchNorm).
func (b *BatchNorm) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: BatchNorm%dd: nil input", b.Dim)
	}
	if b.Dim == 2 && len(x.shape) != 4 || b.Dim != 2 && len(x.shape) != 2 && len(x.shape) != 3 {
		want := "[N, C] or [N, C, L]"
		if b.Dim == 2 {
			want = "[N, C, H, W]"
		}
		return nil, fmt.Errorf("nn: BatchNorm%dd(%d): input has shape %v, expected %s", b.Dim, b.Features, x.shape, want)
	}
	if x.shape[1] != b.Features {
		return nil, fmt.Errorf("nn: BatchNorm%dd(%d): input has shape %v, expected %d channels (axis 1)", b.Dim, b.Features, x.shape, b.Features)
	}
	w, err := g.OptionalParam(b.Weight)
	if err != nil {
		return nil, err
	}
	bias, err := g.OptionalParam(b.Bias)
	if err != nil {
		return nil, err
	}
	rm, err := g.Param(b.RunningMean)
	if err != nil {
		return nil, err
	}
	rv, err := g.Param(b.RunningVar)
	if err != nil {
		return nil, err
	}
	y, err := g.BatchNorm(x, w, bias, rm, rv, b.Training, device.NormConfig{Eps: b.Eps, Momentum: b.Momentum})
	if err != nil {
		return nil, err
	}
	if b.Training {
		b.NumBatchesTracked++
	}
	return y, nil
}

// Children is empty.
func (b *BatchNorm) Children() []Child { return nil }

// OwnParams returns weight and bias (when affine), then the buffers
// running_mean and running_var.
func (b *BatchNorm) OwnParams() []*Param {
	ps := make([]*Param, 0, 4)
	if b.Weight != nil {
		ps = append(ps, b.Weight)
	}
	if b.Bias != nil {
		ps = append(ps, b.Bias)
	}
	return append(ps, b.RunningMean, b.RunningVar)
}

// SetTraining switches between batch statistics (true) and the running
// statistics (false).
func (b *BatchNorm) SetTraining(training bool) { b.Training = training }

const numBatchesTracked = "num_batches_tracked"

// ExtraState is num_batches_tracked, an int64 scalar.
func (b *BatchNorm) ExtraState() []NamedHost {
	return []NamedHost{{Local: numBatchesTracked,
		Tensor: HostTensor{Shape: []int{}, DType: HostI64, Int64: []int64{b.NumBatchesTracked}}}}
}

// SetExtraState sets num_batches_tracked from an int64 scalar.
func (b *BatchNorm) SetExtraState(local string, t HostTensor) error {
	if local != numBatchesTracked {
		return fmt.Errorf("nn: BatchNorm%dd: unknown extra state %q, expected %q", b.Dim, local, numBatchesTracked)
	}
	if t.DType != HostI64 || len(t.Int64) != 1 {
		return fmt.Errorf("nn: BatchNorm%dd: %s is %s with %d values, expected one int64", b.Dim, local, t.DType, t.count())
	}
	b.NumBatchesTracked = t.Int64[0]
	return nil
}

// LayerNorm is nn.LayerNorm(dim) over the last axis: weight (1) and bias
// (0), both [Dim], eps 1e-5. Bias may be set to nil before NewParamSet
// (bias=False).
type LayerNorm struct {
	Dim          int
	Eps          float32
	Weight, Bias *Param
}

// NewLayerNorm is nn.LayerNorm(dim).
func NewLayerNorm(dim int) *LayerNorm {
	return &LayerNorm{Dim: dim, Eps: 1e-5, Weight: NewParam("weight", OnesInit(), dim), Bias: NewParam("bias", ZerosInit(), dim)}
}

// Forward is g.LayerNorm(x, Weight, Bias, Eps).
func (l *LayerNorm) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	w, err := g.OptionalParam(l.Weight)
	if err != nil {
		return nil, err
	}
	b, err := g.OptionalParam(l.Bias)
	if err != nil {
		return nil, err
	}
	return g.LayerNorm(x, w, b, l.Eps)
}

// Children is empty.
func (l *LayerNorm) Children() []Child { return nil }

// OwnParams returns weight and bias (those not nil).
func (l *LayerNorm) OwnParams() []*Param {
	ps := make([]*Param, 0, 2)
	if l.Weight != nil {
		ps = append(ps, l.Weight)
	}
	if l.Bias != nil {
		ps = append(ps, l.Bias)
	}
	return ps
}

// SetTraining does nothing.
func (l *LayerNorm) SetTraining(bool) {}
