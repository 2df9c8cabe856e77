package act

import (
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkActivations times each fast activation (one goroutine, 64K
// elements: cache-resident, so the arithmetic is what is measured) beside
// the float64 loop device/cpu ran before (math.Tanh / math.Exp per
// element, rounded once), alternating the two in one run: compare the
// ns/elem of each pair (benchstat, or the ratio of medians of -count runs).
func BenchmarkActivations(b *testing.B) {
	const n = 1 << 16
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	g := make([]float32, n)
	for i := range x {
		x[i] = float32(3 * r.NormFloat64())
		g[i] = float32(r.NormFloat64())
	}
	y := make([]float32, n)
	sig64 := func(z float64) float64 {
		if z >= 0 {
			return 1 / (1 + math.Exp(-z))
		}
		e := math.Exp(z)
		return e / (1 + e)
	}
	cases := []struct {
		name       string
		old, fresh func()
	}{
		{"gelu_tanh", func() {
			for i, v := range x {
				z := float64(v)
				y[i] = float32(0.5 * z * (1 + math.Tanh(sqrt2OverPi*(z+geluC*z*z*z))))
			}
		}, func() { Forward(GELUTanh, x, y) }},
		{"gelu_tanh_grad", func() {
			for i, gv := range g {
				z := float64(x[i])
				t := math.Tanh(sqrt2OverPi * (z + geluC*z*z*z))
				d := 0.5*(1+t) + 0.5*z*(1-t*t)*sqrt2OverPi*(1+3*geluC*z*z)
				y[i] = float32(float64(gv) * d)
			}
		}, func() { GradX(GELUTanh, x, g, y) }},
		{"tanh", func() {
			for i, v := range x {
				y[i] = float32(math.Tanh(float64(v)))
			}
		}, func() { Forward(Tanh, x, y) }},
		{"sigmoid", func() {
			for i, v := range x {
				y[i] = float32(sig64(float64(v)))
			}
		}, func() { Forward(Sigmoid, x, y) }},
		{"silu", func() {
			for i, v := range x {
				z := float64(v)
				y[i] = float32(z * sig64(z))
			}
		}, func() { Forward(SiLU, x, y) }},
		{"silu_grad", func() {
			for i, gv := range g {
				z := float64(x[i])
				s := sig64(z)
				y[i] = float32(float64(gv) * s * (1 + z*(1-s)))
			}
		}, func() { GradX(SiLU, x, g, y) }},
		{"gelu", func() {
			for i, v := range x {
				z := float64(v)
				y[i] = float32(0.5 * z * (1 + math.Erf(z*0.70710678118654752440)))
			}
		}, func() { Forward(GELU, x, y) }},
		{"gelu_grad", func() {
			for i, gv := range g {
				z := float64(x[i])
				cdf := 0.5 * (1 + math.Erf(z*0.70710678118654752440))
				pdf := 0.39894228040143267794 * math.Exp(-0.5*z*z)
				y[i] = float32(float64(gv) * (cdf + z*pdf))
			}
		}, func() { GradX(GELU, x, g, y) }},
		{"elu", func() {
			for i, v := range x {
				if v > 0 {
					y[i] = v
					continue
				}
				y[i] = float32(1.0 * math.Expm1(float64(v)))
			}
		}, func() { ELU(x, y, 1) }},
		{"softmax_exp", func() {
			for i, v := range x {
				y[i] = float32(math.Exp(float64(float32(0.125*v) - 2)))
			}
		}, func() { ExpScaled(x, y, 0.125, 2) }},
	}
	for _, c := range cases {
		for _, v := range []struct {
			name string
			f    func()
		}{{"float64", c.old}, {"fast", c.fresh}} {
			b.Run(c.name+"/"+v.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					v.f()
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*n), "ns/elem")
			})
		}
	}
}
