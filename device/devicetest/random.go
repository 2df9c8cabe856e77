package devicetest

import (
	"fmt"
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

func (s *suite) testRandom(t *testing.T) {
	const seed = 0x5eed_cafe_f00d
	type pos struct {
		n   int
		off uint64
	}
	var cases []pos
	for _, n := range []int{1, 3, 1001} {
		// Odd offsets start inside a Philox block and, for the normal,
		// inside a Box-Muller pair; 2³²+2 crosses the counter's word.
		for _, off := range []uint64{0, 1, 3, 5, 1<<32 + 2} {
			cases = append(cases, pos{n, off})
		}
	}
	if !s.short {
		cases = append(cases, pos{bigN, 3})
	}
	for _, pc := range cases {
		n, off := pc.n, pc.off
		{
			t.Run(fmt.Sprintf("RandUniform/n=%d/offset=%d", n, off), func(t *testing.T) {
				const lo, hi = -3, 5
				b := s.upload(t, filled(n, nan))
				do(t, "RandUniform", func() error { return s.dev.RandUniform(b, n, lo, hi, seed, off) })
				got := s.read(t, b, n)
				c := newChecker(t, "x")
				for i := range got {
					// Exact: the uniform is exact in float32, (hi−lo)·u is
					// exact in float64 (24 × 24 bits), so lo + (hi−lo)·u
					// rounds once, the same with or without FMA.
					c.equal(i, got[i], device.UniformScaled(seed, off+uint64(i), lo, hi))
				}
				c.done()
			})
			t.Run(fmt.Sprintf("RandNormal/n=%d/offset=%d", n, off), func(t *testing.T) {
				const mean, std = 0.5, 2
				b := s.upload(t, filled(n, nan))
				do(t, "RandNormal", func() error { return s.dev.RandNormal(b, n, mean, std, seed, off) })
				got := s.read(t, b, n)
				c := newChecker(t, "x")
				exact := 0
				for i := range got {
					want := device.NormalScaled(seed, off+uint64(i), mean, std)
					// Box-Muller in float64, rounded once: another backend's
					// float64 log, sin or cos may differ in the last bit and
					// so, right at a float32 rounding boundary, flip the
					// result by one ulp (relative ≤ 2⁻²³ ≈ 1.2e-7). 3e-7
					// allows that, nothing more. Where mean + std·z cancels
					// to near 0, a last-bit difference in z (std·|z|·2⁻⁵² <
					// 1e-14 for |z| < 10) is absolute, hence the 1e-12.
					c.near(i, got[i], float64(want), 3e-7*math.Abs(float64(want))+1e-12)
					if got[i] == want {
						exact++
					}
				}
				c.done()
				// Such boundary cases are rare: nearly all must match
				// bit for bit.
				if miss := n - exact; miss > n/1000+1 {
					t.Errorf("%d of %d values differ from device.NormalScaled in the last bits; want at most %d", miss, n, n/1000+1)
				}
			})
			for _, p := range []float32{0, 0.1, 0.5} {
				t.Run(fmt.Sprintf("DropoutMask/p=%g/n=%d/offset=%d", p, n, off), func(t *testing.T) {
					b := s.upload(t, filled(n, nan))
					do(t, "DropoutMask", func() error { return s.dev.DropoutMask(b, n, p, seed, off) })
					got := s.read(t, b, n)
					c := newChecker(t, "mask")
					zeros := 0
					for i := range got {
						// Exact: the same uniform, compared with p, and
						// 1/(1−p) correctly rounded (IEEE division).
						c.equal(i, got[i], device.DropoutAt(seed, off+uint64(i), p))
						if got[i] == 0 {
							zeros++
						}
					}
					c.done()
					if n < 1000 {
						return
					}
					// The fraction dropped is binomial: standard deviation
					// sqrt(p(1−p)/n), 0.016 at n = 1001, 0.0005 at 2²⁰;
					// 5σ + 1/n is a check that cannot flake for a correct
					// stream yet catches a comparison the wrong way round.
					frac := float64(zeros) / float64(n)
					sd := math.Sqrt(float64(p) * (1 - float64(p)) / float64(n))
					if tol := 5*sd + 1/float64(n); math.Abs(frac-float64(p)) > tol {
						t.Errorf("fraction of zeros %.4f; want %g ± %.4f", frac, p, tol)
					}
				})
			}
		}
	}
	// A mask at a view writes only the view.
	t.Run("DropoutMask/view", func(t *testing.T) {
		p := s.upload(t, filled(9, nan))
		var v device.Buffer
		do(t, "View", func() error {
			var err error
			v, err = s.dev.View(p, 2, 5)
			return err
		})
		do(t, "DropoutMask", func() error { return s.dev.DropoutMask(v, 5, 0.5, seed, 7) })
		got := s.read(t, p, 9)
		for i, g := range got {
			inside := i >= 2 && i < 7
			if inside && g != device.DropoutAt(seed, 7+uint64(i-2), 0.5) || !inside && !math.IsNaN(float64(g)) {
				t.Errorf("parent = %v; want NaN outside [2, 7) and the mask at positions 7..11 inside", got)
				break
			}
		}
	})
}
