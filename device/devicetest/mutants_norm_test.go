package devicetest_test

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// Mutants of the norm family: each breaks BatchNorm, BatchNormGrad,
// LayerNorm or LayerNormGrad the way a kernel could be broken, and names the
// subtest of the suite that must catch it.
func init() {
	mutants = append(mutants,
		mutant{"batchnorm_biased_running_var", "Norm/BatchNorm/^train_4x3x17$"},
		mutant{"batchnorm_eval_uses_batch_stats", "Norm/BatchNorm/^eval_4x3x17$"},
		mutant{"batchnormgrad_ignores_gamma", "Norm/BatchNormGrad/^accum0_4x3x17$"},
		mutant{"layernorm_eps_outside_sqrt", "Norm/LayerNorm/^affine_3x7$"},
		mutant{"layernormgrad_ignores_accum", "Norm/LayerNormGrad/^accum1_3x7$"},
		mutant{"layernorm_accepts_negative_eps", "Norm/Errors/LayerNorm/^eps=-1$"},
	)
}

func (d *mutantDev) readHost(b device.Buffer, n int) ([]float32, error) {
	h := make([]float32, n)
	return h, d.ReadF32(h, b, 0)
}

func (d *mutantDev) BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar device.Buffer, outer, channels, inner int,
	training bool, cfg device.NormConfig) error {
	switch {
	case d.name == "batchnorm_biased_running_var" && training && runVar != nil && invstd != nil:
		// The running variance takes the biased batch variance.
		old, err := d.readHost(runVar, channels)
		if err != nil {
			return err
		}
		if err := d.Device.BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar, outer, channels, inner, training, cfg); err != nil {
			return err
		}
		is, err := d.readHost(invstd, channels)
		if err != nil {
			return err
		}
		m := float64(cfg.Momentum)
		for c := range old {
			v := 1/(float64(is[c])*float64(is[c])) - float64(cfg.Eps)
			old[c] = float32((1-m)*float64(old[c]) + m*v)
		}
		return d.WriteF32(runVar, 0, old)
	case d.name == "batchnorm_eval_uses_batch_stats" && !training:
		// Evaluation normalises with the batch statistics.
		m, err := d.Alloc(device.Float32, channels)
		if err != nil {
			return err
		}
		defer d.Free(m)
		s, err := d.Alloc(device.Float32, channels)
		if err != nil {
			return err
		}
		defer d.Free(s)
		return d.Device.BatchNorm(x, y, gamma, beta, m, s, nil, nil, outer, channels, inner, true, cfg)
	}
	return d.Device.BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar, outer, channels, inner, training, cfg)
}

func (d *mutantDev) BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta device.Buffer, outer, channels, inner int, accum float32) error {
	if d.name == "batchnormgrad_ignores_gamma" {
		gamma = nil
	}
	return d.Device.BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta, outer, channels, inner, accum)
}

func (d *mutantDev) LayerNorm(x, y, gamma, beta, mean, rstd device.Buffer, rows, cols int, eps float32) error {
	switch d.name {
	case "layernorm_accepts_negative_eps":
		if eps < 0 {
			eps = 0
		}
	case "layernorm_eps_outside_sqrt":
		// rstd = 1/(sqrt(σ²) + eps), and y with it.
		if err := d.Device.LayerNorm(x, y, gamma, beta, mean, rstd, rows, cols, eps); err != nil {
			return err
		}
		xh, err := d.readHost(x, rows*cols)
		if err != nil {
			return err
		}
		mh, err := d.readHost(mean, rows)
		if err != nil {
			return err
		}
		rh, err := d.readHost(rstd, rows)
		if err != nil {
			return err
		}
		var gh, bh []float32
		if gamma != nil {
			if gh, err = d.readHost(gamma, cols); err != nil {
				return err
			}
		}
		if beta != nil {
			if bh, err = d.readHost(beta, cols); err != nil {
				return err
			}
		}
		for i := 0; i < rows; i++ {
			v := 1/(float64(rh[i])*float64(rh[i])) - float64(eps)
			rs := 1 / (math.Sqrt(math.Max(v, 0)) + float64(eps))
			rh[i] = float32(rs)
			for j := 0; j < cols; j++ {
				t := (float64(xh[i*cols+j]) - float64(mh[i])) * rs
				if gh != nil {
					t *= float64(gh[j])
				}
				if bh != nil {
					t += float64(bh[j])
				}
				xh[i*cols+j] = float32(t)
			}
		}
		if err := d.WriteF32(rstd, 0, rh); err != nil {
			return err
		}
		return d.WriteF32(y, 0, xh)
	}
	return d.Device.LayerNorm(x, y, gamma, beta, mean, rstd, rows, cols, eps)
}

func (d *mutantDev) LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta device.Buffer, rows, cols int, accum float32) error {
	if d.name == "layernormgrad_ignores_accum" {
		accum = 0
	}
	return d.Device.LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols, accum)
}
