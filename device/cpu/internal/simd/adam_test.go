package simd

import (
	"math"
	"testing"
)

// TestAdam compares the vector kernel with the same update in float64,
// for both weight-decay forms, over two steps.
func TestAdam(t *testing.T) {
	if !HasAdam {
		t.Skip("no AVX2/FMA kernel on this machine or build")
	}
	const n = 40
	for _, wd := range []bool{false, true} {
		p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		pr, mr, vr := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range p {
			p[i] = float32(math.Sin(float64(i))) // deterministic, mixed signs
			pr[i] = float64(p[i])
		}
		decay, l2 := float32(0.999), float32(0)
		if wd {
			decay, l2 = 1, 0.01
		}
		c := [8]float32{decay, l2, 0.9, 0.1, 0.999, 0.001, 0.01, 1e-8}
		for step := 0; step < 2; step++ {
			for i := range g {
				g[i] = float32(math.Cos(float64(i*(step+3)))) * 0.5
			}
			Adam(&p[0], &g[0], &m[0], &v[0], n, &c, wd)
			for i := range pr {
				pr[i] *= float64(c[0])
				gi := float64(g[i])
				if wd {
					gi += float64(c[1]) * pr[i]
				}
				mr[i] = float64(c[2])*mr[i] + float64(c[3])*gi
				vr[i] = float64(c[4])*vr[i] + float64(c[5])*gi*gi
				pr[i] -= float64(c[6]) * mr[i] / (math.Sqrt(vr[i]) + float64(c[7]))
			}
		}
		for i := range p {
			// Each step is a dozen float32 roundings on values of order 1
			// (p) and 0.01 (the update): 1e-6 absolute is about 16 ulps of
			// |p| ≤ 1, far below a wrong constant or sign (≥ 1e-3).
			if math.Abs(float64(p[i])-pr[i]) > 1e-6 || math.Abs(float64(m[i])-mr[i]) > 1e-6 ||
				math.Abs(float64(v[i])-vr[i]) > 1e-6*math.Max(vr[i], 1e-3) {
				t.Fatalf("wd=%v [%d]: p %v m %v v %v, want %v %v %v", wd, i, p[i], m[i], v[i], pr[i], mr[i], vr[i])
			}
		}
	}
}
