package devicetest_test

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// Mutants of the attention family (see mutants_test.go).
func init() {
	mutants = append(mutants,
		mutant{"gemmbatched_ignores_strideB", "Attention/GemmBatched/7x13x5x3"},
		mutant{"gemmbatched_reads_gaps", "Attention/GemmBatched/padded"},
		mutant{"softmaxmasked_causal_off_by_one", "Attention/SoftmaxMasked/9x8"},
		mutant{"softmaxmasked_ignores_scale", "Attention/SoftmaxMasked/7x13"},
		mutant{"softmaxmaskedgrad_ignores_scale", "Attention/SoftmaxMaskedGrad/7x13"},
		mutant{"permute4_inverse", "Attention/Permute4/2x3x4x5"},
	)
}

func (d *mutantDev) GemmBatched(ta, tb bool, m, n, k int, alpha float32, a device.Buffer, strideA int, b device.Buffer, strideB int, beta float32, c device.Buffer, strideC int, batch int) error {
	switch d.name {
	case "gemmbatched_ignores_strideB":
		strideB = 0 // every entry multiplies by B_0
	case "gemmbatched_reads_gaps":
		// One product over the whole padded block: C_i's rows run into the
		// gap after it (as a kernel that took strideC for the row length).
		if strideC > m*n && batch > 1 {
			return d.Device.GemmBatched(ta, tb, m, n, k, alpha, a, strideA, b, strideB, beta, c, m*n, batch)
		}
	}
	return d.Device.GemmBatched(ta, tb, m, n, k, alpha, a, strideA, b, strideB, beta, c, strideC, batch)
}

func (d *mutantDev) SoftmaxMasked(x, y device.Buffer, rows, cols int, scale float32, causal bool, qLen int) error {
	switch d.name {
	case "softmaxmasked_ignores_scale":
		scale = 1
	case "softmaxmasked_causal_off_by_one":
		if !causal {
			break
		}
		// Row r keeps one key too many: columns 0 … q+1.
		h := make([]float32, rows*cols)
		if err := d.ReadF32(h, x, 0); err != nil {
			return err
		}
		for r := 0; r < rows; r++ {
			row := h[r*cols : (r+1)*cols]
			valid := min(cols, r%qLen+cols-qLen+2)
			mx := math.Inf(-1)
			for _, v := range row[:valid] {
				mx = math.Max(mx, float64(scale*v))
			}
			s := 0.0
			for _, v := range row[:valid] {
				s += math.Exp(float64(scale*v) - mx)
			}
			for j, v := range row {
				if j < valid {
					row[j] = float32(math.Exp(float64(scale*v)-mx) / s)
				} else {
					row[j] = 0
				}
			}
		}
		return d.WriteF32(y, 0, h)
	}
	return d.Device.SoftmaxMasked(x, y, rows, cols, scale, causal, qLen)
}

func (d *mutantDev) SoftmaxMaskedGrad(y, dy, dx device.Buffer, rows, cols int, scale float32) error {
	if d.name == "softmaxmaskedgrad_ignores_scale" {
		scale = 1
	}
	return d.Device.SoftmaxMaskedGrad(y, dy, dx, rows, cols, scale)
}

func (d *mutantDev) Permute4(x, y device.Buffer, dims [4]int, perm [4]int) error {
	if d.name == "permute4_inverse" {
		var inv [4]int
		for k, p := range perm {
			if p < 0 || p > 3 {
				return d.Device.Permute4(x, y, dims, perm) // let it report the error
			}
			inv[p] = k
		}
		perm = inv
	}
	return d.Device.Permute4(x, y, dims, perm)
}
