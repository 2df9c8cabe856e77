package gemm

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// matPacker is a BPacker over stored matrices (entry e's B, k×n, at
// b[e·stride:], leading dimension ld), written element by element from
// the contract, which it also checks: the size of dst and the ranges.
type matPacker struct {
	b         []float32
	k, n, ld  int
	stride    int
	calls     atomic.Int64
	contractV atomic.Value // first violation, a string
}

func (m *matPacker) PackB(dst []float32, nr, entry, p0, kc, j0, nc int) {
	m.calls.Add(1)
	if want := (nc + nr - 1) / nr * nr * kc; len(dst) != want || p0 < 0 || p0+kc > m.k || j0 < 0 || j0+nc > m.n || kc < 1 || nc < 1 {
		m.contractV.CompareAndSwap(nil, "bad call")
		return
	}
	for j := 0; j < (nc+nr-1)/nr*nr; j++ {
		for p := 0; p < kc; p++ {
			v := float32(0)
			if j < nc {
				v = m.b[entry*m.stride+(p0+p)*m.ld+j0+j]
			}
			dst[(j/nr)*nr*kc+p*nr+j%nr] = v
		}
	}
}

// TestSgemmBatchedPacked checks the implicit-B entry point against
// SgemmBatched on the same B stored: the same bits for every entry (the
// shapes avoid the k-chunk and transposed-entry paths, as the contract
// says), on one goroutine and split by entry and by tiles, with A shared
// or not, plain or transposed, beta 0 over NaN and beta ≠ 0; and
// SgemmBatched itself is checked against float64 by the other tests.
func TestSgemmBatchedPacked(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(31, 32))
		for _, x := range []struct {
			transA      bool
			m, n, k     int
			batch       int
			shareA      bool
			alpha, beta float32
			threads     int
		}{
			{false, 32, 784, 9, 5, true, 1, 0, 2},     // a first convolution, by entry
			{false, 32, 200, 288, 1, true, 1, 0.5, 3}, // one image, by tiles
			{false, 13, 70, 300, 4, false, -1, 0, 2},  // across a kc block
			{true, 70, 333, 40, 2, true, 2, 1, 5},     // transposed A
			{false, 64, 196, 576, 3, true, 1, 0, 1},   // one goroutine
			{false, kr.mr + 1, kr.nr + 3, 17, 6, true, 0.5, 2, 2},
		} {
			if kChunks(kr, x.m, x.n, x.k) > 1 || swapEntry(kr, x.m, x.n) {
				t.Fatalf("%+v takes a path the packed form does not: the comparison would not hold", x)
			}
			lda := x.k
			if x.transA {
				lda = x.m
			}
			strideA := x.m * x.k
			entriesA := x.batch
			if x.shareA {
				strideA, entriesA = 0, 1
			}
			a := make([]float32, x.m*x.k*entriesA)
			b := make([]float32, x.k*x.n*x.batch)
			c := make([]float32, x.m*x.n*x.batch)
			for i := range a {
				a[i] = float32(r.Float64()*2 - 1)
			}
			for i := range b {
				b[i] = float32(r.Float64()*2 - 1)
			}
			for i := range c {
				c[i] = float32(r.Float64()*2 - 1)
				if x.beta == 0 {
					c[i] = float32(math.NaN())
				}
			}
			want := append([]float32(nil), c...)
			old := nThreads
			nThreads = x.threads
			SgemmBatched(x.transA, false, x.m, x.n, x.k, x.alpha, a, lda, strideA, b, x.n, x.k*x.n, x.beta, want, x.n, x.m*x.n, x.batch)
			pk := &matPacker{b: b, k: x.k, n: x.n, ld: x.n, stride: x.k * x.n}
			SgemmBatchedPacked(x.transA, x.m, x.n, x.k, x.alpha, a, lda, strideA, pk, x.beta, c, x.n, x.m*x.n, x.batch)
			nThreads = old
			if v := pk.contractV.Load(); v != nil {
				t.Fatalf("%+v: PackB called outside its contract: %v", x, v)
			}
			if pk.calls.Load() == 0 {
				t.Fatalf("%+v: PackB never called", x)
			}
			for e := range c {
				if math.Float32bits(c[e]) != math.Float32bits(want[e]) {
					t.Fatalf("%+v: element %d = %g, want %g (SgemmBatched on the stored B)", x, e, c[e], want[e])
				}
			}
		}
		// alpha 0: C = beta·C, and B is not packed.
		pk := &matPacker{}
		c := []float32{1, 2, 3, 4}
		SgemmBatchedPacked(false, 2, 2, 3, 0, make([]float32, 6), 3, 0, pk, 2, c, 2, 4, 1)
		if pk.calls.Load() != 0 || c[0] != 2 || c[3] != 8 {
			t.Fatalf("alpha 0: %d PackB calls, C = %v", pk.calls.Load(), c)
		}
	})
}
