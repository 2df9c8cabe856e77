package stat

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowsVectorMatchesGeneric: the AVX-512 row kernels give the bits of
// the portable Go, for every length and with outputs aliasing inputs.
func TestRowsVectorMatchesGeneric(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 row kernels on this build or processor")
	}
	vec, gen := level{"avx512", useAVX2, true}, levels()[0]
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range lengths {
		x, dy := randRow(r, n, -1, 3), randRow(r, n, -1, 1)
		gm, bt := randRow(r, n, 0.5, 1.5), randRow(r, n, -0.5, 0.5)
		m := 0.7 + r.Float64()
		sums := func() [2]float64 {
			a, b := GradSumsRow(x, dy, gm, m)
			return [2]float64{a, b}
		}
		v, g := withLevel(vec, sums), withLevel(gen, sums)
		for i := range v {
			if math.Float64bits(v[i]) != math.Float64bits(g[i]) {
				t.Fatalf("n=%d, sum %d: vector %v, generic %v", n, i, v[i], g[i])
			}
		}
		for alias := 0; alias < 3; alias++ {
			outs := func() [2][]float32 {
				xa, dya := append([]float32(nil), x...), append([]float32(nil), dy...)
				y, dx := make([]float32, n), make([]float32, n)
				switch alias {
				case 1:
					y, dx = xa, xa
				case 2:
					dx = dya
				}
				AffineRow(xa, y, gm, bt, m, 1.3)
				ya := append([]float32(nil), y...)
				xa = append(xa[:0], x...)
				GradApplyRow(xa, dya, gm, dx, m, 0.9, 0.1, -0.3)
				return [2][]float32{ya, dx}
			}
			vo, go_ := withLevel(vec, outs), withLevel(gen, outs)
			for k := range vo {
				for i := range vo[k] {
					if math.Float32bits(vo[k][i]) != math.Float32bits(go_[k][i]) {
						t.Fatalf("n=%d alias %d, output %d [%d]: vector %v, generic %v", n, alias, k, i, vo[k][i], go_[k][i])
					}
				}
			}
		}
	}
}

// TestRowsNoWritePastEnd: AffineRow and GradApplyRow write len(x) values
// and not one more, at every length and kernel choice.
func TestRowsNoWritePastEnd(t *testing.T) {
	const guard = 24
	sentinel := float32(math.Inf(-1))
	for _, l := range levels() {
		for n := 0; n <= 70; n++ {
			x, dy := randRow(rand.New(rand.NewPCG(9, uint64(n))), n+guard, -1, 1), make([]float32, n+guard)
			gm := randRow(rand.New(rand.NewPCG(10, uint64(n))), n+guard, 0.5, 1.5)
			for pass := 0; pass < 2; pass++ {
				buf := make([]float32, n+guard)
				for i := range buf {
					buf[i] = sentinel
				}
				withLevel(l, func() int {
					if pass == 0 {
						AffineRow(x[:n], buf[:n], gm, dy, 0.1, 2)
					} else {
						GradApplyRow(x[:n], dy, gm, buf[:n:n], 0.1, 2, 0.3, 0.4)
					}
					return 0
				})
				for i := 0; i < n; i++ {
					if buf[i] == sentinel {
						t.Fatalf("%s pass %d n=%d: [%d] not written", l.name, pass, n, i)
					}
				}
				for i := n; i < len(buf); i++ {
					if buf[i] != sentinel {
						t.Fatalf("%s pass %d n=%d: [%d] written past the end: %v", l.name, pass, n, i, buf[i])
					}
				}
			}
		}
	}
}

// TestRowsAgainstFloat64: each row kernel against a plain float64
// evaluation. The sums have at most 4099 terms of magnitude ≤ 6, so any
// order is within n·2⁻⁵³·Σ|term| ≈ 5e-13 relative of the exact sum:
// 1e-12 relative tolerance, which a lost element, chain, tail or gamma
// (≥ 1e-4 relative here) exceeds. The elementwise outputs are one float32
// rounding of a float64 value (whose own error is a few 2⁻⁵³): within
// half a float32 ulp plus 1e-12.
func TestRowsAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	check := func(what string, n int, got, want, scale float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12*(scale+1e-300) {
			t.Fatalf("%s n=%d: got %v, want %v", what, n, got, want)
		}
	}
	for _, l := range levels() {
		restore := use(l)
		for _, n := range lengths {
			x, dy := randRow(r, n, -1, 3), randRow(r, n, -1, 1)
			gm, bt := randRow(r, n, 0.5, 1.5), randRow(r, n, -0.5, 0.5)
			m := 0.5 + r.Float64()
			var g, ga, gx, gxa float64
			for i := range x {
				gv := float64(dy[i]) * float64(gm[i])
				g += gv
				ga += math.Abs(gv)
				gx += gv * (float64(x[i]) - m)
				gxa += math.Abs(gv * (float64(x[i]) - m))
			}
			a, b := GradSumsRow(x, dy, gm, m)
			check(l.name+" GradSumsRow Σg", n, a, g, ga)
			check(l.name+" GradSumsRow Σg(x−m)", n, b, gx, gxa)
			y, dx := make([]float32, n), make([]float32, n)
			AffineRow(x, y, gm, bt, m, 1.3)
			GradApplyRow(x, dy, gm, dx, m, 0.9, 0.1, -0.3)
			for i := range x {
				wy := (float64(x[i])-m)*1.3*float64(gm[i]) + float64(bt[i])
				wd := 0.9*float64(dy[i])*float64(gm[i]) - (0.1 + (float64(x[i])-m)*-0.3)
				if math.Abs(float64(y[i])-wy) > math.Abs(wy)*0x1p-24+1e-12 {
					t.Fatalf("%s AffineRow n=%d [%d]: got %v, want %v", l.name, n, i, y[i], wy)
				}
				if math.Abs(float64(dx[i])-wd) > math.Abs(wd)*0x1p-24+1e-12 {
					t.Fatalf("%s GradApplyRow n=%d [%d]: got %v, want %v", l.name, n, i, dx[i], wd)
				}
			}
		}
		restore()
	}
}

// TestRowsNoAllocs: the row kernels allocate nothing.
func TestRowsNoAllocs(t *testing.T) {
	x, y, g := make([]float32, 100), make([]float32, 100), make([]float32, 100)
	var sink float64
	if a := testing.AllocsPerRun(10, func() {
		a, b := GradSumsRow(x, y, g, 1)
		sink += a + b
		AffineRow(x, y, g, g, 1, 2)
		GradApplyRow(x, x, g, y, 1, 2, 3, 4)
	}); a != 0 {
		t.Errorf("%v allocations per call, want 0", a)
	}
	_ = sink
}

// TestColSums: ColSums over three rows gives the bits of the portable Go
// at every kernel choice and length, writes len(x) sums and not one more,
// and is within 1e-12 relative of a float64 evaluation (three terms of
// magnitude ≤ 6 per sum: the products' roundings, a few 2⁻⁵³, and a lost
// row, tail or product, ≥ 1e-3 relative here, exceeds it).
func TestColSums(t *testing.T) {
	const guard = 12
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range lengths {
		xs := [3][]float32{randRow(r, n, -1, 3), randRow(r, n, -1, 3), randRow(r, n, -1, 3)}
		dys := [3][]float32{randRow(r, n, -1, 1), randRow(r, n, -1, 1), randRow(r, n, -1, 1)}
		ms, rss := [3]float64{0.7, 1.1, 0.9}, [3]float64{1.3, 0.8, 1.7}
		run := func() [2][]float64 {
			a, b := make([]float64, n+guard), make([]float64, n+guard)
			for i := range a {
				a[i], b[i] = 0.25, -0.5 // the sums start from a value, the guard is a sentinel
			}
			for k := range xs {
				ColSums(xs[k], dys[k], a, b, ms[k], rss[k])
			}
			return [2][]float64{a, b}
		}
		var ref [2][]float64
		for li, l := range levels() {
			got := withLevel(l, run)
			if li == 0 {
				ref = got
			}
			for s := range got {
				for i, v := range got[s] {
					if math.Float64bits(v) != math.Float64bits(ref[s][i]) {
						t.Fatalf("%s n=%d sum %d [%d]: %v, generic %v", l.name, n, s, i, v, ref[s][i])
					}
					if i >= n && v != [2]float64{0.25, -0.5}[s] {
						t.Fatalf("%s n=%d sum %d: [%d] written past the end: %v", l.name, n, s, i, v)
					}
				}
			}
		}
		for i := 0; i < n; i++ {
			wa, wb, sa, sb := 0.25, -0.5, 0.25, 0.5
			for k := range xs {
				g := float64(dys[k][i])
				p := g * (float64(xs[k][i]) - ms[k]) * rss[k]
				wa += g
				wb += p
				sa += math.Abs(g)
				sb += math.Abs(p)
			}
			if math.Abs(ref[0][i]-wa) > 1e-12*sa || math.Abs(ref[1][i]-wb) > 1e-12*sb {
				t.Fatalf("n=%d [%d]: got %v %v, want %v %v", n, i, ref[0][i], ref[1][i], wa, wb)
			}
		}
	}
	x, dy, a := make([]float32, 100), make([]float32, 100), make([]float64, 100)
	if al := testing.AllocsPerRun(10, func() { ColSums(x, dy, a, a, 1, 2) }); al != 0 {
		t.Errorf("ColSums: %v allocations per call, want 0", al)
	}
}
