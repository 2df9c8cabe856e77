package train

import (
	"fmt"
	"math"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// GradClipper is torch.nn.utils.clip_grad_norm_ over a model's trainable
// gradients: it scales them all by min(1, maxNorm/(‖g‖₂+1e-6)), ‖g‖₂ the
// norm of all of them together. The norm stays on the device (no host round
// trip per step); Norm reads it when a caller wants it.
type GradClipper struct {
	dev     device.Device
	maxNorm float32
	runs    []run
	g       []device.Buffer // per-run views of the flat gradient buffer
	sumSq   device.Buffer   // one element: Σ g² of the last Clip
}

// NewGradClipper prepares clipping of m's trainable gradients to maxNorm
// (> 0). Frozen parameters are neither counted nor scaled, as their
// gradients are not handed to clip_grad_norm_ in PyTorch fine-tuning.
func NewGradClipper(m *nn.Sequential, maxNorm float32) (*GradClipper, error) {
	if !(maxNorm > 0) || math.IsInf(float64(maxNorm), 0) {
		return nil, fmt.Errorf("train: gradient clipping: max norm is %g, expected a finite value > 0", maxNorm)
	}
	if m == nil {
		return nil, fmt.Errorf("train: gradient clipping: model is nil")
	}
	_, grads := m.Flat()
	if grads == nil {
		return nil, fmt.Errorf("train: gradient clipping: the model has no flat gradient buffer")
	}
	dev := grads.Device()
	c := &GradClipper{dev: dev, maxNorm: maxNorm, runs: trainableRuns(m.Params())}
	var err error
	if c.g, err = flatViews(dev, grads, c.runs); err != nil {
		return nil, fmt.Errorf("train: gradient clipping: %w", err)
	}
	if c.sumSq, err = dev.Alloc(device.Float32, 1); err != nil {
		return nil, fmt.Errorf("train: gradient clipping: %w", err)
	}
	return c, nil
}

// Clip scales the gradients in place: SumSquares over each run (beta 0 for
// the first, 1 after), then ClipByNorm over each run.
func (c *GradClipper) Clip() error {
	if len(c.runs) == 0 {
		return nil
	}
	for i, r := range c.runs {
		beta := float32(1)
		if i == 0 {
			beta = 0
		}
		if err := c.dev.SumSquares(c.g[i], r.n, c.sumSq, beta); err != nil {
			return fmt.Errorf("train: gradient clipping: %w", err)
		}
	}
	for i, r := range c.runs {
		if err := c.dev.ClipByNorm(c.g[i], r.n, c.sumSq, c.maxNorm); err != nil {
			return fmt.Errorf("train: gradient clipping: %w", err)
		}
	}
	return nil
}

// Norm reads the total gradient norm measured by the last Clip (before
// scaling), the value clip_grad_norm_ returns. It waits for the device.
func (c *GradClipper) Norm() (float64, error) {
	var s [1]float32
	if err := c.dev.ReadF32(s[:], c.sumSq, 0); err != nil {
		return 0, fmt.Errorf("train: gradient clipping: reading the norm: %w", err)
	}
	return math.Sqrt(float64(s[0])), nil
}

// Free releases the clipper's scalar buffer.
func (c *GradClipper) Free() error {
	if c.sumSq == nil || c.sumSq.Freed() {
		return nil
	}
	return c.dev.Free(c.sumSq)
}
