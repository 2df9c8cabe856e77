package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPool2x2Row checks MaxPool2x2Row against the first-largest rule
// on rows of every length up to 40 outputs (each tail of the 16-wide
// steps), values with ties and signed zeros, and a NaN placed in every
// position of some rows: the kernel must write exactly the outputs of the
// steps before the NaN's, and nothing past them.
func TestMaxPool2x2Row(t *testing.T) {
	if !HasAVX512 {
		t.Skip("no AVX-512")
	}
	r := rand.New(rand.NewPCG(9, 10))
	val := func() float32 {
		switch r.IntN(10) {
		case 0:
			return 0
		case 1:
			return float32(math.Copysign(0, -1))
		case 2:
			return float32(math.Inf(1 - 2*r.IntN(2)))
		}
		return float32(r.IntN(9)-4) / 4 // many ties
	}
	for n := 1; n <= 40; n++ {
		for nanAt := -1; nanAt < 2*n; nanAt++ {
			if nanAt >= 0 && r.IntN(4) != 0 && n > 3 {
				continue // a sample of the NaN positions
			}
			const w = 100 // row stride in the plane
			x0, x1 := make([]float32, 2*n+5), make([]float32, 2*n+5)
			for i := range x0 {
				x0[i], x1[i] = val(), val()
			}
			nanWin := n
			if nanAt >= 0 {
				if r.IntN(2) == 0 {
					x0[nanAt] = float32(math.NaN())
				} else {
					x1[nanAt] = float32(math.NaN())
				}
				nanWin = nanAt / 2
			}
			y, idx := make([]float32, n+3), make([]int32, n+3)
			for i := range y {
				y[i], idx[i] = 42, -7
			}
			q0 := int32(r.IntN(1000))
			got := MaxPool2x2Row(x0, x1, y[:n], idx[:n], q0, w)
			want := nanWin / 16 * 16
			if nanWin == n {
				want = n
			}
			if got != want {
				t.Fatalf("n=%d NaN at %d: wrote %d outputs, expected %d", n, nanAt, got, want)
			}
			for c := 0; c < len(y); c++ {
				if c >= got {
					if y[c] != 42 || idx[c] != -7 {
						t.Fatalf("n=%d NaN at %d: output %d past the %d written changed", n, nanAt, c, got)
					}
					continue
				}
				taps := [4]float32{x0[2*c], x0[2*c+1], x1[2*c], x1[2*c+1]}
				offs := [4]int32{0, 1, w, w + 1}
				best, bi := taps[0], 0
				for k := 1; k < 4; k++ {
					if taps[k] > best {
						best, bi = taps[k], k
					}
				}
				wq := q0 + int32(2*c) + offs[bi]
				if math.Float32bits(y[c]) != math.Float32bits(best) || idx[c] != wq {
					t.Fatalf("n=%d output %d: %v at %d, expected %v at %d (taps %v)", n, c, y[c], idx[c], best, wq, taps)
				}
			}
		}
	}
}

// TestMaxPoolGrad2x2Row checks MaxPoolGrad2x2Row against the rule on rows
// of every length up to 40 windows, with indices at each of the four taps,
// at none (another window's, −1, out of the plane), signed zeros and NaNs
// in dy, and no write past the row.
func TestMaxPoolGrad2x2Row(t *testing.T) {
	if !HasAVX512 {
		t.Skip("no AVX-512")
	}
	r := rand.New(rand.NewPCG(11, 12))
	const w = 60
	for n := 1; n <= 40; n++ {
		for rep := 0; rep < 4; rep++ {
			dy, idx := make([]float32, n), make([]int32, n)
			q0 := int32(r.IntN(500))
			offs := [4]int32{0, 1, w, w + 1}
			for c := range dy {
				switch r.IntN(12) {
				case 0:
					dy[c] = float32(math.Copysign(0, -1))
				case 1:
					dy[c] = float32(math.NaN())
				default:
					dy[c] = float32(r.NormFloat64())
				}
				q := q0 + int32(2*c)
				switch k := r.IntN(7); {
				case k < 4:
					idx[c] = q + offs[k]
				case k == 4:
					idx[c] = -1
				case k == 5:
					idx[c] = q + 2 // the next window's
				default:
					idx[c] = math.MaxInt32 - int32(r.IntN(3))
				}
			}
			d0, d1 := make([]float32, 2*n+4), make([]float32, 2*n+4)
			for i := range d0 {
				d0[i], d1[i] = 42, 42
			}
			MaxPoolGrad2x2Row(dy, idx, d0[:2*n], d1[:2*n], q0, w)
			for c := range dy {
				q := idx[c] - (q0 + int32(2*c))
				var zero float32
				want := [4]float32{}
				for k, o := range offs {
					want[k] = zero
					if q == o {
						want[k] = dy[c] + zero
					}
				}
				got := [4]float32{d0[2*c], d0[2*c+1], d1[2*c], d1[2*c+1]}
				for k := range got {
					if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
						t.Fatalf("n=%d window %d tap %d: %v, expected %v (idx %d, q0 %d)", n, c, k, got[k], want[k], idx[c], q0)
					}
				}
			}
			for i := 2 * n; i < len(d0); i++ {
				if d0[i] != 42 || d1[i] != 42 {
					t.Fatalf("n=%d: element %d past the row written", n, i)
				}
			}
		}
	}
}
