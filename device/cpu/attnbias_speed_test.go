package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device/cpu/internal/simd"
)

// Tests and benchmarks of the fast SoftmaxMasked (expRow's float64
// exponentials, simd.Scale for the normalisation), SoftmaxMaskedGrad (dot64),
// AddBias (simd.Add per row) and BiasGrad (four rows per pass).

// newDevWorkers is a Device with n workers, for results that must not
// depend on the thread count.
func newDevWorkers(t testing.TB, n int) *Device {
	d := &Device{w: newWorkers(n)}
	d.pool.init()
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestSoftmaxMaskedFast checks SoftmaxMasked against a float64 reference
// on rows whose lengths leave every tail of the 8-wide kernel (valid mod 8
// = 0 … 7), with and without the causal mask and a KV cache, in place.
func TestSoftmaxMaskedFast(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(21, 22))
	type tc struct {
		rows, cols int
		scale      float32
		causal     bool
		qLen       int
	}
	var worst float64
	for _, c := range []tc{
		{5, 7, 1, false, 0}, {3, 64, 0.125, false, 0}, {4, 203, -0.7, false, 0},
		{64, 64, 0.125, true, 64}, // every valid length 1 … 64
		{30, 45, 0.3, true, 15},   // 15 queries after 30 cached keys
		{2, 100, 2, true, 1},      // decoding one token
	} {
		for _, inPlace := range []bool{false, true} {
			x := randVec(r, c.rows*c.cols, -8, 8)
			X := upload(t, d, x)
			Y := X
			if !inPlace {
				Y = upload(t, d, randVec(r, c.rows*c.cols, -1, 1))
			}
			must(t, d.SoftmaxMasked(X, Y, c.rows, c.cols, c.scale, c.causal, c.qLen))
			got := download(t, d, Y)
			sc := float64(c.scale)
			for i := 0; i < c.rows; i++ {
				valid := c.cols
				if c.causal {
					valid = i%c.qLen + c.cols - c.qLen + 1
				}
				row := x[i*c.cols : i*c.cols+valid]
				mx, zmax := math.Inf(-1), 0.0
				for _, v := range row {
					mx = math.Max(mx, sc*float64(v))
					zmax = math.Max(zmax, math.Abs(sc*float64(v)))
				}
				sum := 0.0
				for _, v := range row {
					sum += math.Exp(sc*float64(v) - mx)
				}
				for j := 0; j < c.cols; j++ {
					g := got[i*c.cols+j]
					if j >= valid {
						if g != 0 || math.Signbit(float64(g)) {
							t.Fatalf("%+v row %d col %d (masked): %v, want +0", c, i, j, g)
						}
						continue
					}
					z := math.Abs(sc * float64(x[i*c.cols+j]))
					want := math.Exp(sc*float64(x[i*c.cols+j])-mx) / sum
					// Bound: the float32 roundings of e_j, of 1/sum and of
					// their product, 3u (expRow's own 4e-11 is below u);
					// the exponent's argument off by the roundings of
					// scale·x_j, of the maximum and of their difference,
					// ≤ 2u(|z_j| + |z_max|) in e_j and ≤ 4u·|z_max| in
					// the sum.
					bound := 4*u + 2*u*(z+zmax) + 4*u*zmax
					e := math.Abs(float64(g)-want) / want
					worst = max(worst, e/u)
					if e > bound {
						t.Fatalf("%+v in place %v, y[%d,%d] = %v, want %v: rel err %.3g > %.3g",
							c, inPlace, i, j, g, want, e, bound)
					}
				}
			}
		}
	}
	t.Logf("largest relative error %.2f u", worst)
}

// TestSoftmaxMaskedThreads checks that SoftmaxMasked and SoftmaxMaskedGrad
// give the same bits on 1 and 3 workers (rows are independent; each row's
// sums run in a fixed order) and with the AVX2 kernels off (2 workers).
func TestSoftmaxMaskedThreads(t *testing.T) {
	const rows, cols = 768, 256
	r := rand.New(rand.NewPCG(23, 24))
	x := randVec(r, rows*cols, -6, 6)
	g := randVec(r, rows*cols, -1, 1)
	var ys, dxs [3][]float32
	defer func(v bool) { useAVX2EW = v }(useAVX2EW)
	for k, n := range []int{1, 3, 2} {
		useAVX2EW = k < 2 && simd.HasAVX2 // the last run: the portable loops
		d := newDevWorkers(t, n)
		X, G := upload(t, d, x), upload(t, d, g)
		must(t, d.SoftmaxMasked(X, X, rows, cols, 0.125, true, 256))
		must(t, d.SoftmaxMaskedGrad(X, G, G, rows, cols, 0.125))
		ys[k], dxs[k] = download(t, d, X), download(t, d, G)
	}
	for k := 1; k < 3; k++ {
		for i := range ys[0] {
			if math.Float32bits(ys[0][i]) != math.Float32bits(ys[k][i]) ||
				math.Float32bits(dxs[0][i]) != math.Float32bits(dxs[k][i]) {
				t.Fatalf("element %d: 1 worker gives y %v dx %v, run %d y %v dx %v",
					i, ys[0][i], dxs[0][i], k, ys[k][i], dxs[k][i])
			}
		}
	}
}

// TestSoftmaxMaskedGradFast checks SoftmaxMaskedGrad against float64 on
// rows of every length mod 4 (dot64's tail).
func TestSoftmaxMaskedGradFast(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(25, 26))
	for _, cols := range []int{1, 2, 3, 4, 5, 6, 7, 97} {
		const rows = 9
		y := randVec(r, rows*cols, 0, 1)
		dy := randVec(r, rows*cols, -1, 1)
		Y, DY := upload(t, d, y), upload(t, d, dy)
		DX := upload(t, d, make([]float32, rows*cols))
		must(t, d.SoftmaxMaskedGrad(Y, DY, DX, rows, cols, 0.3))
		got := download(t, d, DX)
		for i := 0; i < rows; i++ {
			dot := 0.0
			for j := 0; j < cols; j++ {
				dot += float64(y[i*cols+j]) * float64(dy[i*cols+j])
			}
			for j := 0; j < cols; j++ {
				k := i*cols + j
				want := float64(float32(0.3)) * float64(y[k]) * (float64(dy[k]) - dot)
				// Rounding dot to float32, the difference, the two
				// products: ≤ 4u of scale·y·(|dy| + |dot|) (the float64
				// dot's own error is ~1e-16 relative).
				bound := 4 * u * 0.3 * float64(y[k]) * (math.Abs(float64(dy[k])) + math.Abs(dot))
				if e := math.Abs(float64(got[k]) - want); e > bound {
					t.Fatalf("cols %d dx[%d,%d] = %v, want %v: err %.3g > %.3g", cols, i, j, got[k], want, e, bound)
				}
			}
		}
	}
}

// TestAddBiasFast checks AddBias to one rounding, bit for bit, on rows
// with vector body and tail (cols mod 8 ≠ 0) and on a call large enough
// to be split across the workers.
func TestAddBiasFast(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(27, 28))
	for _, dims := range [][2]int{{3, 8}, {4, 13}, {2, 7}, {400, 389}} {
		rows, cols := dims[0], dims[1]
		x := randVec(r, rows*cols, -1, 1)
		bias := randVec(r, cols, -1, 1)
		X := upload(t, d, x)
		must(t, d.AddBias(X, upload(t, d, bias), rows, cols))
		got := download(t, d, X)
		for i, g := range got {
			if want := x[i] + bias[i%cols]; g != want {
				t.Fatalf("%dx%d [%d]: %v, want %v", rows, cols, i, g, want)
			}
		}
	}
}

// TestBiasGradOrder checks that BiasGrad adds each column in row order in
// float64, bit for bit, on 1 and 3 workers: a column holding 2^60, 1,
// −2^60 in consecutive rows sums to the rest of the column in that order
// (the 1 is lost in 2^60) but to that plus 1 in most others, so a
// regrouped sum fails. The big values straddle a group of four rows and
// sit in the tail rows too.
func TestBiasGradOrder(t *testing.T) {
	const rows, cols = 403, 331 // 133K elements: split across workers
	r := rand.New(rand.NewPCG(29, 30))
	dy := randVec(r, rows*cols, -1, 1)
	for j := 0; j < cols; j += 3 {
		start := []int{3, 2, 400, 6}[j%4] // across groups, in the tail
		dy[start*cols+j] = 1 << 60
		dy[(start+1)*cols+j] = 1
		dy[(start+2)*cols+j] = -(1 << 60)
	}
	db0 := randVec(r, cols, -1, 1)
	for _, beta := range []float32{0, 0.5} {
		want := make([]float32, cols)
		for j := range want {
			s := 0.0
			for i := 0; i < rows; i++ {
				s += float64(dy[i*cols+j])
			}
			if beta != 0 {
				s = float64(beta)*float64(db0[j]) + s
			}
			want[j] = float32(s)
		}
		for _, n := range []int{1, 3} {
			d := newDevWorkers(t, n)
			DB := upload(t, d, db0)
			must(t, d.BiasGrad(DB, upload(t, d, dy), rows, cols, beta))
			for j, g := range download(t, d, DB) {
				if math.Float32bits(g) != math.Float32bits(want[j]) {
					t.Fatalf("beta %v, %d workers: db[%d] = %v, want %v", beta, n, j, g, want[j])
				}
			}
		}
	}
}

// benchShapes are the GPT recipe's shapes (B·T = 8·256 rows): the
// attention scores of 6 heads (48·256 rows of 256, causal) and the
// Linear outputs of width 384 (c_proj), 1152 (c_attn) and 1536 (c_fc).
func BenchmarkSoftmaxMaskedFast(b *testing.B) {
	const rows, cols = 48 * 256, 256
	d := newDev(b)
	x := benchBuf(b, d, rows*cols, 0.5)
	y := benchBuf(b, d, rows*cols, 0)
	g := benchBuf(b, d, rows*cols, 0.25)
	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			must(b, f())
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				must(b, f())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(rows*cols), "ns/elem")
		})
	}
	run(fmt.Sprintf("fwd/causal/%dx%d", rows, cols), func() error { return d.SoftmaxMasked(x, y, rows, cols, 0.125, true, cols) })
	run(fmt.Sprintf("fwd/full/%dx%d", rows, cols), func() error { return d.SoftmaxMasked(x, y, rows, cols, 0.125, false, 0) })
	run(fmt.Sprintf("grad/%dx%d", rows, cols), func() error { return d.SoftmaxMaskedGrad(y, g, x, rows, cols, 0.125) })
}

func BenchmarkBiasFast(b *testing.B) {
	const rows = 8 * 256
	for _, cols := range []int{384, 1152, 1536} {
		d := newDev(b)
		x := benchBuf(b, d, rows*cols, 0.5)
		bias := benchBuf(b, d, cols, 0.25)
		run := func(name string, f func() error) {
			b.Run(fmt.Sprintf("%s/%dx%d", name, rows, cols), func(b *testing.B) {
				must(b, f())
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					must(b, f())
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows*cols), "ns/elem")
			})
		}
		run("AddBias", func() error { return d.AddBias(x, bias, rows, cols) })
		run("BiasGrad", func() error { return d.BiasGrad(bias, x, rows, cols, 0) })
	}
}

// TestExpRow checks SoftmaxMasked's exponentials against math.Exp on
// every 64th float32 of [−104, 0] (scale 1 and m = 0, so v is x) and at
// the edges. Bound 5e-11 relative on the float64 e (returned as the sum of
// a one-element row): the Taylor remainder 3.6e-11 and a few float64
// roundings; y must be float32(e).
func TestExpRow(t *testing.T) {
	worst := 0.0
	var y [1]float32
	for b := math.Float32bits(0); b <= math.Float32bits(-104)&^(1<<31); b += 64 {
		x := -math.Float32frombits(b)
		got, want := expRow([]float32{x}, y[:], 1, 0), math.Exp(float64(x))
		e := math.Abs(got-want) / want
		worst = max(worst, e)
		if e > 5e-11 || y[0] != float32(got) {
			t.Fatalf("exp(%v) = %v (y %v), want %v: rel err %.3g", x, got, y[0], want, e)
		}
	}
	t.Logf("largest relative error %.3g", worst)
	for _, c := range []struct{ x, m, want float32 }{
		{0, 0, 1}, {3, 3, 1}, {-104.5, 0, 0}, {-1e30, 0, 0},
		{float32(math.Inf(-1)), 0, 0}, {1, float32(math.Inf(1)), 0},
	} {
		if expRow([]float32{c.x}, y[:], 1, c.m); y[0] != c.want {
			t.Errorf("exp(%v − %v) = %v, want %v", c.x, c.m, y[0], c.want)
		}
	}
	if s := expRow([]float32{float32(math.NaN())}, y[:], 1, 0); !math.IsNaN(s) || y[0] == y[0] {
		t.Errorf("exp(NaN) = %v (sum %v), want NaN", y[0], s)
	}
}
