package cpu

import (
	"fmt"
	"testing"

	"github.com/kilnml/kiln/device"
)

// BenchmarkGemmBatched runs the two batched products of causal
// self-attention for 48 heads·sequences of T = 256, D = 64: scores = q·kᵀ
// (48 × [256×64]·[64×256], NT) and out = att·v (48 × [256×256]·[256×64],
// NN), in GFLOP/s (2mnk flops per product), beside the same work as 48
// separate Gemm calls.
func BenchmarkGemmBatched(b *testing.B) {
	const batch, T, D = 48, 256, 64
	type shape struct {
		name    string
		tb      bool
		m, n, k int
	}
	for _, s := range []shape{{"qkT", true, T, T, D}, {"attV", false, T, D, T}} {
		m, n, k := s.m, s.n, s.k
		flops := 2 * float64(m) * float64(n) * float64(k) * batch
		setup := func(b *testing.B) (*Device, [3]*buffer) {
			d := newDev(b)
			A := benchBuf(b, d, batch*m*k, 0.5).(*buffer)
			B := benchBuf(b, d, batch*k*n, 0.25).(*buffer)
			C := benchBuf(b, d, batch*m*n, 0).(*buffer)
			return d, [3]*buffer{A, B, C}
		}
		b.Run(fmt.Sprintf("%s/%dx[%dx%d]x[%dx%d]", s.name, batch, m, k, k, n), func(b *testing.B) {
			d, bufs := setup(b)
			call := func() {
				if err := d.GemmBatched(false, s.tb, m, n, k, 1, bufs[0], m*k, bufs[1], k*n, 0, bufs[2], m*n, batch); err != nil {
					b.Fatal(err)
				}
			}
			call() // warm-up: pools and BLAS workers
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				call()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("%s/loop_of_Gemm", s.name), func(b *testing.B) {
			d, bufs := setup(b)
			var views [3]*buffer
			for r := range views {
				views[r] = &buffer{dev: d, dt: bufs[r].dt, root: bufs[r].root}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				for i := 0; i < batch; i++ {
					views[0].f = bufs[0].f[i*m*k : (i+1)*m*k]
					views[1].f = bufs[1].f[i*k*n : (i+1)*k*n]
					views[2].f = bufs[2].f[i*m*n : (i+1)*m*n]
					if err := d.Gemm(false, s.tb, m, n, k, 1, views[0], views[1], 0, views[2]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestAttentionNoAllocs checks that the attention primitives allocate
// nothing once warm (their argument blocks come from a pool). GemmBatched
// is measured on small products, which the backend's Gemm multiplies
// without allocating.
func TestAttentionNoAllocs(t *testing.T) {
	d := New()
	defer d.Close()
	alloc := func(n int) *buffer {
		x, err := d.Alloc(device.Float32, n)
		if err != nil {
			t.Fatal(err)
		}
		return x.(*buffer)
	}
	const rows, cols = 64, 300
	x, y, g := alloc(rows*cols), alloc(rows*cols), alloc(rows*cols)
	a, bb, c := alloc(200*64), alloc(200*64), alloc(200*64)
	calls := map[string]func() error{
		"GemmBatched": func() error { return d.GemmBatched(false, true, 8, 8, 8, 1, a, 64, bb, 64, 0, c, 64, 200) },
		"GemmBatched/alpha0": func() error {
			return d.GemmBatched(false, true, 8, 8, 8, 0, a, 64, bb, 64, 0.5, c, 64, 200)
		},
		"SoftmaxMasked":     func() error { return d.SoftmaxMasked(x, y, rows, cols, 0.125, true, 32) },
		"SoftmaxMaskedGrad": func() error { return d.SoftmaxMaskedGrad(y, g, x, rows, cols, 0.125) },
		"Permute4":          func() error { return d.Permute4(x, y, [4]int{4, 3, 25, 64}, [4]int{1, 2, 0, 3}) },
		"Permute4/strided":  func() error { return d.Permute4(x, y, [4]int{4, 3, 25, 64}, [4]int{3, 2, 0, 1}) },
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(20, func() { _ = call() }); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}
