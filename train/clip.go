package train

import (
	"fmt"
	"math"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

// GradClipper is torch.nn.utils.clip_grad_norm_ over the trainable
// gradients of a parameter set: it scales them all by
// min(1, maxNorm/(‖g‖₂+1e-6)), ‖g‖₂ the norm of all of them together. The
// norm stays on the device (no host round trip per step); Norm reads it
// when a caller wants it. Frozen is read at every Clip: frozen parameters
// and buffers are neither counted nor scaled, as their gradients are not
// handed to clip_grad_norm_ in PyTorch fine-tuning.
type GradClipper struct {
	dev     device.Device
	ps      *nn.ParamSet
	maxNorm float32
	params  []*nn.Param
	frozen  []bool // Frozen when the runs were made
	laidOut bool
	runs    []run
	g       []device.Buffer // per-run views of the flat gradient buffer
	sumSq   device.Buffer   // one element: Σ g² of the last Clip
}

// NewGradClipper prepares clipping of the trainable gradients of src (a
// *nn.ParamSet or a model owning one) to maxNorm (> 0).
func NewGradClipper(src ParamSource, maxNorm float32) (*GradClipper, error) {
	if !(maxNorm > 0) || math.IsInf(float64(maxNorm), 0) {
		return nil, fmt.Errorf("train: gradient clipping: max norm is %g, expected a finite value > 0", maxNorm)
	}
	if src == nil || src.ParamSet() == nil {
		return nil, fmt.Errorf("train: gradient clipping: model is nil or has no parameter set")
	}
	ps := src.ParamSet()
	_, grads := ps.Flat()
	if grads == nil {
		return nil, fmt.Errorf("train: gradient clipping: the model has no flat gradient buffer")
	}
	dev := grads.Device()
	c := &GradClipper{dev: dev, ps: ps, maxNorm: maxNorm, params: ps.Params(), frozen: make([]bool, len(ps.Params()))}
	if err := c.layout(); err != nil {
		return nil, err
	}
	var err error
	if c.sumSq, err = dev.Alloc(device.Float32, 1); err != nil {
		return nil, fmt.Errorf("train: gradient clipping: %w", err)
	}
	return c, nil
}

// layout recomputes the runs when a parameter's Frozen changed.
func (c *GradClipper) layout() error {
	changed := !c.laidOut
	for i, p := range c.params {
		if p.Frozen != c.frozen[i] {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	for i, p := range c.params {
		c.frozen[i] = p.Frozen
	}
	c.runs = layoutRuns(c.params, nil, nil, c.runs)
	_, grads := c.ps.Flat()
	if grads == nil {
		return fmt.Errorf("train: gradient clipping: the parameters were freed")
	}
	var err error
	if c.g, err = flatViews(c.dev, grads, c.runs, c.g); err != nil {
		return fmt.Errorf("train: gradient clipping: %w", err)
	}
	c.laidOut = true
	return nil
}

// Clip scales the gradients in place: SumSquares over each run (beta 0 for
// the first, 1 after), then ClipByNorm over each run.
func (c *GradClipper) Clip() error {
	if err := c.layout(); err != nil {
		return err
	}
	if len(c.runs) == 0 {
		return c.dev.Fill(c.sumSq, 1, 0)
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
