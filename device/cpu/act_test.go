package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
	fastact "github.com/kilnml/kiln/device/cpu/internal/act"
)

// TestActDeviceFast runs GELU, GELU-tanh, SiLU, tanh, sigmoid and ELU through the
// Device — serial (13 elements) and split across the workers (above the
// split threshold, odd length so a chunk ends off the 8-lane grid) — and
// requires the bits that internal/act gives on the whole slice (its own
// tests check it against float64 references and its AVX2 kernels against
// its scalar code): so the dispatch in kernels.go (Activate, ActivateGrad
// from x and from y) calls the right function on the right elements.
func TestActDeviceFast(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{13, 1<<17 + 5} {
		x := edgeVec(r, n)
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64())
		}
		bx, by, bg, bdx := upload(t, d, x), upload(t, d, g), upload(t, d, g), upload(t, d, g)
		for _, c := range []struct {
			act   device.Activation
			k     fastact.Kind // (unused for ELU)
			fromY bool         // ActivateGrad also from y
		}{
			{device.GELUTanh, fastact.GELUTanh, false},
			{device.SiLU, fastact.SiLU, false},
			{device.Tanh, fastact.Tanh, true},
			{device.Sigmoid, fastact.Sigmoid, true},
			{device.GELU, fastact.GELU, false},
			{device.ELU, 0, false},
		} {
			const alpha = 0.8 // ELU's
			must(t, d.Activate(c.act, alpha, bx, by, n))
			y := download(t, d, by)[:n]
			want := make([]float32, n)
			if c.act == device.ELU {
				fastact.ELU(x, want, alpha)
			} else {
				fastact.Forward(c.k, x, want)
			}
			actSame(t, c.act.String()+" y", y, want)
			must(t, d.ActivateGrad(c.act, alpha, bx, nil, bg, bdx, n))
			if c.act == device.ELU {
				fastact.ELUGrad(x, g, want, alpha)
			} else {
				fastact.GradX(c.k, x, g, want)
			}
			actSame(t, c.act.String()+" dx from x", download(t, d, bdx)[:n], want)
			if c.fromY {
				must(t, d.ActivateGrad(c.act, 0, nil, by, bg, bdx, n))
				fastact.GradY(c.k, y, g, want)
				actSame(t, c.act.String()+" dx from y", download(t, d, bdx)[:n], want)
			}
		}
	}
}

// actSame fails at the first element where got and want differ (two NaNs
// count as equal: their payloads are not specified).
func actSame(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}
