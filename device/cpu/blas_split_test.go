package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device/cpu/internal/gemm"
)

// uniformVec returns n values uniform in [-1, 1).
func uniformVec(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// TestBLASGemmSlabs checks blasGemm (the openblas build's single products
// on the shared workers; in the default build blas32 is gonum's Go BLAS,
// so the slab arithmetic is tested in both) against a float64 reference:
// row slabs, column slabs, below the split threshold, every transpose,
// alpha and beta. A slab offset one row or column off would put whole
// slabs in the wrong place.
func TestBLASGemmSlabs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	fill := func(n int) []float32 { return uniformVec(r, n) }
	for _, c := range []struct{ m, n, k int }{
		{300, 70, 40}, // rows: 8 slabs of up to 38
		{40, 700, 30}, // columns
		{9, 10, 11},   // one call
	} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			name := fmt.Sprintf("%dx%dx%d_t%v%v", c.m, c.n, c.k, tr[0], tr[1])
			a, b := fill(c.m*c.k), fill(c.k*c.n)
			cc := fill(c.m * c.n)
			want := make([]float64, len(cc))
			const alpha, beta = 0.75, 0.5
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					s := 0.0
					for p := 0; p < c.k; p++ {
						av := a[i*c.k+p]
						if tr[0] {
							av = a[p*c.m+i]
						}
						bv := b[p*c.n+j]
						if tr[1] {
							bv = b[j*c.k+p]
						}
						s += float64(av) * float64(bv)
					}
					at := i*c.n + j
					want[at] = alpha*s + beta*float64(cc[at])
				}
			}
			blasGemm(tr[0], tr[1], c.m, c.n, c.k, alpha, a, b, beta, cc)
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

// TestGemmBatchedRoute checks that gemmBatchedF32 runs on kiln's GEMM in
// either build, bit for bit, for batches of 1 and 3 with and without a
// shared operand. In the openblas build, entries sent to OpenBLAS one by
// one differ from kiln's GEMM in the last bits of most elements (k = 300
// terms), which this catches; in the default build both sides are kiln's
// GEMM and it checks only that the route stays there.
func TestGemmBatchedRoute(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const m, n, k = 33, 70, 300
	for _, batch := range []int{1, 3} {
		for _, shared := range []bool{false, true} {
			sa := m * k
			if shared {
				sa = 0
			}
			a := uniformVec(r, m*k*batch)
			b := uniformVec(r, k*n*batch)
			got := make([]float32, m*n*batch)
			want := make([]float32, m*n*batch)
			gemmBatchedF32(false, true, m, n, k, 1, a, sa, b, k*n, 0, got, m*n, batch)
			gemm.SgemmBatched(false, true, m, n, k, 1, a, k, sa, b, k, k*n, 0, want, n, m*n, batch)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("batch %d (shared A %v): c[%d] = %v, kiln's GEMM %v", batch, shared, i, got[i], want[i])
				}
			}
		}
	}
}
