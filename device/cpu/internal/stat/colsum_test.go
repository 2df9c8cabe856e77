package stat

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestColAdd4MatchesGeneric: the vector ColAdd4 gives the Go loop's bits
// for every length (each tail of the 8- and 4-column steps), with values
// of mixed magnitudes and signs (so that the order of the adds shows),
// infinities and NaNs, and writes no column past len(acc).
func TestColAdd4MatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	val := func() float32 {
		switch r.IntN(40) {
		case 0:
			return float32(math.Inf(1 - 2*r.IntN(2)))
		case 1:
			return float32(math.NaN())
		}
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(16)-8)))
	}
	for n := 0; n <= 70; n++ {
		rows := make([][]float32, 4)
		for i := range rows {
			rows[i] = make([]float32, n+3) // longer than acc: only n read
			for j := range rows[i] {
				rows[i][j] = val()
			}
		}
		acc0 := make([]float64, n+2)
		for j := range acc0 {
			acc0[j] = float64(val()) * (1 + r.Float64()*1e-7)
		}
		got := append([]float64(nil), acc0...)
		want := append([]float64(nil), acc0...)
		ColAdd4(got[:n], rows[0], rows[1], rows[2], rows[3])
		colAdd4Generic(want[:n], rows[0], rows[1], rows[2], rows[3])
		for j := range want {
			if math.Float64bits(got[j]) != math.Float64bits(want[j]) && !(math.IsNaN(got[j]) && math.IsNaN(want[j])) {
				t.Fatalf("n=%d, column %d: %v, expected %v", n, j, got[j], want[j])
			}
		}
		for j := n; j < len(got); j++ {
			if math.Float64bits(got[j]) != math.Float64bits(acc0[j]) {
				t.Fatalf("n=%d: column %d past the end changed", n, j)
			}
		}
	}
}
