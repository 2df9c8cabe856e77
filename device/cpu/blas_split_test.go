package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// uniformVec returns n values uniform in [-1, 1).
func uniformVec(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// TestBLASGemmSlabs checks blasGemm (the openblas build's products on the
// shared workers; in the default build blas32 is gonum's Go BLAS, so the
// slab arithmetic is tested in both) against a float64 reference: row
// slabs, column slabs, batches with and without a shared operand, below
// the split threshold, every transpose, alpha and beta. A slab offset one
// row or column off would put whole slabs in the wrong place.
func TestBLASGemmSlabs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	fill := func(n int) []float32 { return uniformVec(r, n) }
	for _, c := range []struct {
		m, n, k, batch   int
		sharedA, sharedB bool
	}{
		{300, 70, 40, 1, false, false}, // rows: 8 slabs of up to 38
		{40, 700, 30, 1, false, false}, // columns
		{9, 10, 11, 1, false, false},   // one call
		{50, 60, 70, 3, false, false},  // entries
		{50, 60, 70, 3, true, false},   // entries, A shared (stride 0)
		{50, 60, 70, 3, false, true},   // entries, B shared
	} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			name := fmt.Sprintf("%dx%dx%d_b%d_shared%v%v_t%v%v", c.m, c.n, c.k, c.batch, c.sharedA, c.sharedB, tr[0], tr[1])
			sa, sb, sc := c.m*c.k, c.k*c.n, c.m*c.n
			na, nb := c.m*c.k*c.batch, c.k*c.n*c.batch
			if c.sharedA {
				sa, na = 0, c.m*c.k
			}
			if c.sharedB {
				sb, nb = 0, c.k*c.n
			}
			a, b := fill(na), fill(nb)
			cc := fill(c.m * c.n * c.batch)
			want := make([]float64, len(cc))
			const alpha, beta = 0.75, 0.5
			for e := 0; e < c.batch; e++ {
				for i := 0; i < c.m; i++ {
					for j := 0; j < c.n; j++ {
						s := 0.0
						for p := 0; p < c.k; p++ {
							av := a[e*sa+i*c.k+p]
							if tr[0] {
								av = a[e*sa+p*c.m+i]
							}
							bv := b[e*sb+p*c.n+j]
							if tr[1] {
								bv = b[e*sb+j*c.k+p]
							}
							s += float64(av) * float64(bv)
						}
						at := e*sc + i*c.n + j
						want[at] = alpha*s + beta*float64(cc[at])
					}
				}
			}
			if c.batch == 1 {
				blasGemm(tr[0], tr[1], c.m, c.n, c.k, alpha, a, 0, b, 0, beta, cc, 0, 1)
			} else {
				blasGemm(tr[0], tr[1], c.m, c.n, c.k, alpha, a, sa, b, sb, beta, cc, sc, c.batch)
			}
			// float32 products of k ≤ 70 terms in [-1, 1]: the rounding
			// error is below k·2⁻²⁴·k ≈ 3e-4; a misplaced slab is off by O(1).
			for i, v := range cc {
				if d := math.Abs(float64(v) - want[i]); d > 3e-4 {
					t.Fatalf("%s: c[%d] = %v, want %v", name, i, v, want[i])
				}
			}
		}
	}
}
