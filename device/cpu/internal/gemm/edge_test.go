package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestEdgeKernels runs every edge micro-kernel (each tile height, every
// column mask that a product makes: the first cols columns) against a
// float64 reference and checks that it touches nothing outside its
// rows×cols corner of C: the elements around it hold a sentinel that
// must come back bit for bit. The tolerance is check's bound,
// (kc+2)·u·(|alpha|·Σ|A·B| + |beta·C|).
func TestEdgeKernels(t *testing.T) {
	for _, kr := range kernels {
		if kr.edge == nil {
			continue
		}
		t.Run(kr.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(21, 22))
			if len(kr.edge) != kr.mr {
				t.Fatalf("%d edge kernels, want %d", len(kr.edge), kr.mr)
			}
			const ldc = 37 // wider than nr: the columns past nr are sentinels too
			sentinel := float32(math.Float32frombits(0x7fc00123))
			for _, kc := range []int{1, 3, 4, 5, 17} {
				a := make([]float32, kr.mr*kc+3) // sa = mr + 1 once below
				b := make([]float32, kr.nr*kc+5)
				for i := range a {
					a[i] = float32(r.Float64()*2 - 1)
				}
				for i := range b {
					b[i] = float32(r.Float64()*2 - 1)
				}
				for rc := 0; rc < 2*kr.mr*kr.nr; rc++ {
					// Every height and width with the full-width kernels,
					// then with the half-width ones over their columns.
					half := rc >= kr.mr*kr.nr
					rows, cols := rc%(kr.mr*kr.nr)/kr.nr+1, rc%kr.nr+1
					if half && kr.edgeHalf == nil {
						break
					}
					{
						ek, w := kr.edge, cols
						if half {
							if 2*cols > kr.nr {
								continue
							}
							ek = kr.edgeHalf
						}
						for _, ab := range [][3]float32{{1, 0, 0}, {-0.5, 0, 0}, {1.5, 2, 1}, {1, 1, 1}} {
							alpha, beta, loadC := ab[0], ab[1], int(ab[2])
							c := make([]float32, (kr.mr+1)*ldc)
							for i := range c {
								c[i] = sentinel
							}
							c0 := make([]float32, len(c))
							for i := 0; i < rows; i++ {
								for j := 0; j < w; j++ {
									v := float32(r.Float64()*2 - 1)
									if loadC == 0 {
										v = float32(math.NaN()) // must not be read
									}
									c[i*ldc+j] = v
								}
							}
							copy(c0, c)
							ek[rows-1](kc, &a[0], &b[0], &c[0], ldc, alpha, beta, loadC, kr.mr, kr.nr, 1<<w-1)
							if half { // the full-width kernel's bits
								c1 := append([]float32(nil), c0...)
								kr.edge[rows-1](kc, &a[0], &b[0], &c1[0], ldc, alpha, beta, loadC, kr.mr, kr.nr, 1<<w-1)
								for i := range c1 {
									if math.Float32bits(c1[i]) != math.Float32bits(c[i]) {
										t.Fatalf("kc %d, %d×%d: half-width kernel gives %v at %d, full-width %v", kc, rows, w, c[i], i, c1[i])
									}
								}
							}
							for i := 0; i <= kr.mr; i++ {
								for j := 0; j < ldc; j++ {
									got := c[i*ldc+j]
									if i >= rows || j >= w {
										if math.Float32bits(got) != math.Float32bits(c0[i*ldc+j]) {
											t.Fatalf("kc %d, %d×%d edge (%d): C[%d,%d] outside the tile changed to %g", kc, rows, w, cols, i, j, got)
										}
										continue
									}
									var s, sa float64
									for p := 0; p < kc; p++ {
										x := float64(a[p*kr.mr+i]) * float64(b[p*kr.nr+j])
										s += x
										sa += math.Abs(x)
									}
									want := float64(alpha) * s
									bound := math.Abs(float64(alpha)) * sa
									if loadC != 0 {
										want += float64(beta) * float64(c0[i*ldc+j])
										bound += math.Abs(float64(beta) * float64(c0[i*ldc+j]))
									}
									if d := math.Abs(float64(got) - want); !(d <= float64(kc+2)*u*bound) {
										t.Fatalf("kc %d, %d×%d edge (%d), alpha %g beta %g loadC %d: C[%d,%d] = %g, want %g", kc, rows, w, cols, alpha, beta, loadC, i, j, got, want)
									}
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestTransposeKernels checks every transposing copy (1…16 source rows,
// 12- and 16-lane stores, 1…3 blocks) element by element: a transpose is
// exact, so the comparison is bit for bit, and the destination outside
// the stored lanes and blocks must keep its sentinel.
func TestTransposeKernels(t *testing.T) {
	for _, kr := range kernels {
		if kr.trans == nil {
			continue
		}
		t.Run(kr.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(23, 24))
			sentinel := float32(-12345)
			for rows := 1; rows <= len(kr.trans); rows++ {
				for _, lanes := range []int{12, 16} {
					for blocks := 1; blocks <= 3; blocks++ {
						ls, ld := 16*blocks+3, lanes+5
						src := make([]float32, (rows-1)*ls+16*blocks)
						for i := range src {
							src[i] = float32(r.Float64()*2 - 1)
						}
						d := make([]float32, (16*blocks+1)*ld)
						for i := range d {
							d[i] = sentinel
						}
						kr.trans[rows-1](&d[0], ld, &src[0], ls, blocks, 1<<lanes-1)
						for p := 0; p <= 16*blocks; p++ {
							for i := 0; i < ld; i++ {
								want := sentinel
								if p < 16*blocks && i < lanes {
									want = 0
									if i < rows {
										want = src[i*ls+p]
									}
								}
								if got := d[p*ld+i]; math.Float32bits(got) != math.Float32bits(want) {
									t.Fatalf("%d rows, %d lanes, %d blocks: d[%d·ld+%d] = %g, want %g", rows, lanes, blocks, p, i, got, want)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestScatter checks scatter (the transposing pack, through the
// transposing kernels where the micro-kernel has them and Go for the
// remaining steps) for every row count up to the sliver width and step
// counts around the 16-step blocks, bit for bit.
func TestScatter(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, w := range []int{kr.mr, kr.nr} {
			for rows := 1; rows <= w; rows++ {
				for _, kc := range []int{1, 15, 16, 17, 33, 48} {
					ld := kc + 2
					src := make([]float32, 3+(rows-1)*ld+kc)
					for i := range src {
						src[i] = float32(r.Float64())
					}
					d := make([]float32, w*kc)
					for i := range d {
						d[i] = float32(math.NaN())
					}
					scatter(kr.trans, d, w, src, ld, 3, rows, kc)
					for p := 0; p < kc; p++ {
						for i := 0; i < w; i++ {
							want := float32(0)
							if i < rows {
								want = src[3+i*ld+p]
							}
							if got := d[p*w+i]; math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("w %d, rows %d, kc %d: d[%d·w+%d] = %g, want %g", w, rows, kc, p, i, got, want)
							}
						}
					}
				}
			}
		}
	})
}

// TestSgemmEdges runs whole products with every edge-tile height
// (m = 1 … mr+1 and the ones past two tiles) and every column remainder
// (n = nr … 2·nr−1), with depths below, at and past a 16-step transpose
// block, each transpose combination and beta 0 (C holds NaN, so it must
// not be read) and beta ≠ 0, against the float64 reference of check.
func TestSgemmEdges(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(27, 28))
		ms := []int{}
		for m := 1; m <= kr.mr+1; m++ {
			ms = append(ms, m)
		}
		ms = append(ms, 2*kr.mr+kr.mr/2, 32)
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for i, m := range ms {
				for n := kr.nr; n < 2*kr.nr; n++ {
					k := []int{5, 16, 37}[(i+n)%3]
					c := gemmCase{transA: tr[0], transB: tr[1], m: m, n: n, k: k, alpha: 1, pad: n % 2, nanC: true}
					if (m+n)%2 == 1 {
						c.alpha, c.beta, c.nanC = -0.5, 1.5, false
					}
					runCase(t, r, c)
				}
			}
		}
	})
}

// TestPackRows checks the row-by-row packing (with the micro-kernel's
// assembly copies where it has them) against the definition, bit for
// bit, for widths of whole slivers plus every remainder.
func TestPackRows(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(29, 30))
		for _, x := range []struct {
			w  int
			cp copyKernel
		}{{kr.mr, kr.copyA}, {kr.nr, kr.copyB}} {
			for _, n := range []int{1, x.w - 1, x.w, x.w + 1, 3*x.w - 1, 3 * x.w} {
				if n < 1 {
					continue
				}
				const kc, o = 5, 2
				ld := n + 3
				src := make([]float32, o+(kc-1)*ld+n)
				for i := range src {
					src[i] = float32(r.Float64())
				}
				sl := (n + x.w - 1) / x.w
				d := make([]float32, sl*x.w*kc)
				for i := range d {
					d[i] = float32(math.NaN())
				}
				packRows(x.cp, d, x.w, src, ld, o, n, kc)
				for p := 0; p < kc; p++ {
					for j := 0; j < sl*x.w; j++ {
						want := float32(0)
						if j < n {
							want = src[o+p*ld+j]
						}
						if got := d[(j/x.w)*x.w*kc+p*x.w+j%x.w]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("w %d, n %d: element (%d, %d) = %g, want %g", x.w, n, p, j, got, want)
						}
					}
				}
			}
		}
	})
}
