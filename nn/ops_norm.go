package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// checkVec checks that an optional per-channel tensor has shape [n].
func checkVec(name, arg string, t *Tensor, n int) error {
	if t != nil && (len(t.shape) != 1 || t.shape[0] != n) {
		return fmt.Errorf("nn: %s: %s has shape %v, expected [%d]", name, arg, t.shape, n)
	}
	return nil
}

func valOf(t *Tensor) device.Buffer {
	if t == nil {
		return nil
	}
	return t.val
}

func needsGrad(t *Tensor) bool { return t != nil && t.requiresGrad }

// BatchNorm is F.batch_norm over the channels (axis 1) of x, which is
// [N, C] (BatchNorm1d), [N, C, L] (BatchNorm1d) or [N, C, H, W]
// (BatchNorm2d): y = (x − μ_c)/sqrt(σ²_c + eps)·gamma[c] + beta[c].
// gamma and beta ([C]) may be nil (affine False).
//
// training: μ and σ² are the batch's (σ² biased), and runMean and runVar
// ([C], not graph tensors: buffers updated in place) when not nil move
// towards them with cfg.Momentum, PyTorch's update with the unbiased
// variance. Backward is BatchNormGrad through the batch statistics.
//
// Not training: runMean and runVar (required) are μ and σ²; the map is
// affine per channel, and its backward is dx = dy·gamma·invstd,
// dgamma = Σ dy·x̂, dbeta = Σ dy (running statistics frozen, as
// fine-tuning a network in eval mode does in PyTorch).
func (g *Graph) BatchNorm(x, gamma, beta, runMean, runVar *Tensor, training bool, cfg device.NormConfig) (*Tensor, error) {
	const name = "BatchNorm"
	if x == nil {
		return nil, fmt.Errorf("nn: %s: nil input", name)
	}
	if len(x.shape) < 2 || len(x.shape) > 4 {
		return nil, fmt.Errorf("nn: %s: input has shape %v, expected [N, C], [N, C, L] or [N, C, H, W]", name, x.shape)
	}
	outer, c := x.shape[0], x.shape[1]
	inner := x.n / (outer * c)
	if err := checkVec(name, "gamma", gamma, c); err != nil {
		return nil, err
	}
	if err := checkVec(name, "beta", beta, c); err != nil {
		return nil, err
	}
	if err := checkVec(name, "running mean", runMean, c); err != nil {
		return nil, err
	}
	if err := checkVec(name, "running var", runVar, c); err != nil {
		return nil, err
	}
	if (runMean == nil) != (runVar == nil) {
		return nil, fmt.Errorf("nn: %s: running mean and running var must both be given or both be nil", name)
	}
	if !training && runMean == nil {
		return nil, fmt.Errorf("nn: %s: evaluation mode needs the running mean and var", name)
	}
	if training && outer*inner < 2 {
		return nil, fmt.Errorf("nn: %s: input %v has %d value(s) per channel, expected more than 1 in training", name, x.shape, outer*inner)
	}
	grad := x.requiresGrad || needsGrad(gamma) || needsGrad(beta)
	y, err := g.newValue(x.shape, grad)
	if err != nil {
		return nil, wrap(name, err)
	}
	ext := opExt{z: beta, dims: [4]int{outer, c, inner}, train: training}
	var mean device.Buffer
	if training || y.requiresGrad {
		if mean, err = g.buffer(c); err != nil {
			return nil, wrap(name, err)
		}
		if ext.aux, err = g.buffer(c); err != nil {
			return nil, wrap(name, err)
		}
	}
	if !training && y.requiresGrad && needsGrad(gamma) {
		// x̂ for dgamma.
		if ext.aux2, err = g.buffer(x.n); err != nil {
			return nil, wrap(name, err)
		}
		if err := g.dev.BatchNorm(x.val, ext.aux2, nil, nil, nil, nil, runMean.val, runVar.val, outer, c, inner, false, cfg); err != nil {
			return nil, wrap(name, err)
		}
	}
	if err := g.dev.BatchNorm(x.val, y.val, valOf(gamma), valOf(beta), mean, ext.aux, valOf(runMean), valOf(runVar),
		outer, c, inner, training, cfg); err != nil {
		return nil, wrap(name, err)
	}
	if y.requiresGrad {
		g.record(op{kind: opBatchNorm, x: x, w: gamma, out: y, buf: mean, ext: ext})
	}
	return y, nil
}

// normGrad runs a norm's backward primitive f (which sets dx and
// accumulates dgamma and dbeta with one accum factor) for the tensors
// that need it: x's gradient is added through scratch when it is not x's
// first, and gamma and beta are done in two calls when one overwrites
// and the other accumulates.
func (g *Graph) normGrad(x, gamma, beta *Tensor, f func(dx, dgamma, dbeta device.Buffer, accum float32) error) error {
	var dx, dxAdd, dgamma, dbeta device.Buffer
	var gb, bb float32
	var err error
	if x.requiresGrad {
		dst, b, err := g.gradDst(x)
		if err != nil {
			return err
		}
		dx = dst
		if b != 0 {
			dxAdd = dst
			if dx, err = g.buffer(x.n); err != nil {
				return err
			}
		}
	}
	if needsGrad(gamma) {
		if dgamma, gb, err = g.gradDst(gamma); err != nil {
			return err
		}
	}
	if needsGrad(beta) {
		if dbeta, bb, err = g.gradDst(beta); err != nil {
			return err
		}
	}
	switch {
	case dgamma != nil && dbeta != nil && gb != bb:
		if err := f(dx, dgamma, nil, gb); err != nil {
			return err
		}
		if err := f(nil, nil, dbeta, bb); err != nil {
			return err
		}
	case dgamma != nil:
		if err := f(dx, dgamma, dbeta, gb); err != nil {
			return err
		}
	default:
		if dx == nil && dbeta == nil {
			return nil
		}
		if err := f(dx, nil, dbeta, bb); err != nil {
			return err
		}
	}
	if dxAdd != nil {
		return g.dev.Add(dxAdd, dx, dxAdd, x.n)
	}
	return nil
}

func (o *op) batchNormBackward(g *Graph) error {
	dev, dy := g.dev, o.out.grad
	outer, c, inner := o.ext.dims[0], o.ext.dims[1], o.ext.dims[2]
	x, gamma, beta := o.x, o.w, o.ext.z
	if o.ext.train {
		return g.normGrad(x, gamma, beta, func(dx, dgamma, dbeta device.Buffer, accum float32) error {
			return dev.BatchNormGrad(x.val, dy, valOf(gamma), o.buf, o.ext.aux, dx, dgamma, dbeta, outer, c, inner, accum)
		})
	}
	// Evaluation: an affine map per channel.
	if needsGrad(beta) {
		dst, b, err := g.gradDst(beta)
		if err != nil {
			return err
		}
		if err := dev.ChannelBiasGrad(dst, dy, outer, c, inner, b); err != nil {
			return err
		}
	}
	if needsGrad(gamma) {
		xh := o.ext.aux2 // x̂, overwritten by dy·x̂
		if err := dev.Mul(dy, xh, xh, x.n); err != nil {
			return err
		}
		dst, b, err := g.gradDst(gamma)
		if err != nil {
			return err
		}
		if err := dev.ChannelBiasGrad(dst, xh, outer, c, inner, b); err != nil {
			return err
		}
	}
	if !x.requiresGrad {
		return nil
	}
	s := o.ext.aux // invstd, times gamma
	if gamma != nil {
		if err := dev.Mul(s, gamma.val, s, c); err != nil {
			return err
		}
	}
	full, err := g.buffer(x.n)
	if err != nil {
		return err
	}
	if err := dev.Fill(full, x.n, 0); err != nil {
		return err
	}
	if err := dev.AddChannelBias(full, s, outer, c, inner); err != nil {
		return err
	}
	return g.contribute(x, func(dst device.Buffer) error { return dev.Mul(dy, full, dst, x.n) })
}

// LayerNorm is nn.LayerNorm over the last axis of x (cols values):
// y = (x − μ)/sqrt(σ² + eps)·gamma + beta per row, σ² biased; gamma and
// beta ([cols]) may be nil. Backward: LayerNormGrad from the saved row
// means and rstd.
func (g *Graph) LayerNorm(x, gamma, beta *Tensor, eps float32) (*Tensor, error) {
	const name = "LayerNorm"
	if x == nil {
		return nil, fmt.Errorf("nn: %s: nil input", name)
	}
	if len(x.shape) == 0 {
		return nil, fmt.Errorf("nn: %s: input has no axes", name)
	}
	cols := x.shape[len(x.shape)-1]
	rows := x.n / cols
	if err := checkVec(name, "gamma", gamma, cols); err != nil {
		return nil, err
	}
	if err := checkVec(name, "beta", beta, cols); err != nil {
		return nil, err
	}
	if !(eps > 0) {
		return nil, fmt.Errorf("nn: %s: eps %v, expected > 0", name, eps)
	}
	y, err := g.newValue(x.shape, x.requiresGrad || needsGrad(gamma) || needsGrad(beta))
	if err != nil {
		return nil, wrap(name, err)
	}
	mean, err := g.buffer(rows)
	if err != nil {
		return nil, wrap(name, err)
	}
	rstd, err := g.buffer(rows)
	if err != nil {
		return nil, wrap(name, err)
	}
	if err := g.dev.LayerNorm(x.val, y.val, valOf(gamma), valOf(beta), mean, rstd, rows, cols, eps); err != nil {
		return nil, wrap(name, err)
	}
	if y.requiresGrad {
		g.record(op{kind: opLayerNorm, x: x, w: gamma, out: y, buf: mean, rows: rows, cols: cols,
			ext: opExt{z: beta, aux: rstd}})
	}
	return y, nil
}

func (o *op) layerNormBackward(g *Graph) error {
	dev, dy := g.dev, o.out.grad
	return g.normGrad(o.x, o.w, o.ext.z, func(dx, dgamma, dbeta device.Buffer, accum float32) error {
		return dev.LayerNormGrad(o.x.val, dy, valOf(o.w), o.buf, o.ext.aux, dx, dgamma, dbeta, o.rows, o.cols, accum)
	})
}
