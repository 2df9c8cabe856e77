package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// u is the unit roundoff of float32.
const u = 1.0 / (1 << 24)

// useKernel runs the rest of the (sub)test with the named micro-kernel,
// selected the way users do it, through KILN_GEMM_KERNEL.
func useKernel(t testing.TB, name string) {
	t.Helper()
	t.Setenv(EnvKernel, name)
	if err := SetKernel(os.Getenv(EnvKernel)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = SetKernel("") })
}

// forEachKernel runs f once per micro-kernel this CPU supports (the
// portable one included).
func forEachKernel(t *testing.T, f func(t *testing.T, kr *kernel)) {
	for _, name := range Kernels() {
		t.Run(name, func(t *testing.T) {
			useKernel(t, name)
			f(t, active.Load())
		})
	}
}

// mat is a test matrix: rows×cols stored with leading dimension ld ≥ cols.
type mat struct {
	rows, cols, ld int
	d              []float32
}

func newMat(r *rand.Rand, rows, cols, pad int) mat {
	m := mat{rows: rows, cols: cols, ld: cols + pad}
	m.d = make([]float32, max(0, (rows-1)*m.ld+cols))
	for i := range m.d {
		m.d[i] = float32(r.Float64()*2 - 1)
	}
	// Padding between rows holds NaN: reading it would poison the result.
	for i := 0; i < rows; i++ {
		for j := cols; j < m.ld && i*m.ld+j < len(m.d); j++ {
			m.d[i*m.ld+j] = float32(math.NaN())
		}
	}
	return m
}

func (m mat) at(i, j int) float64 { return float64(m.d[i*m.ld+j]) }

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra leading-dimension elements
	nanC           bool
}

func (c gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,alpha=%g,beta=%g,pad=%d", c.transA, c.transB, c.m, c.n, c.k, c.alpha, c.beta, c.pad)
}

// operands builds A, B and C for the case.
func (c gemmCase) operands(r *rand.Rand) (a, b, cm mat) {
	if c.transA {
		a = newMat(r, c.k, c.m, c.pad)
	} else {
		a = newMat(r, c.m, c.k, c.pad)
	}
	if c.transB {
		b = newMat(r, c.n, c.k, c.pad+1)
	} else {
		b = newMat(r, c.k, c.n, c.pad+1)
	}
	cm = newMat(r, c.m, c.n, c.pad+2)
	if c.nanC {
		for i := range cm.d {
			cm.d[i] = float32(math.NaN())
		}
	}
	return a, b, cm
}

// check compares got (C after the product) with the float64 reference
// computed from a, b and c0 (C before). The tolerance is the classic
// forward error bound of a length-k dot product plus the alpha/beta
// update, (k+2)·u·(|alpha|·Σ_p|A_ip·B_pj| + |beta·C_ij|), with u = 2⁻²⁴:
// any float32 summation order meets it, while a wrong index, a lost or
// doubled k block, or a misplaced edge tile is off by O(|A||B|), far more.
func check(t testing.TB, c gemmCase, a, b, c0, got mat) {
	t.Helper()
	bad := 0
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			var s, sa float64
			for p := 0; p < c.k; p++ {
				var x, y float64
				if c.transA {
					x = a.at(p, i)
				} else {
					x = a.at(i, p)
				}
				if c.transB {
					y = b.at(j, p)
				} else {
					y = b.at(p, j)
				}
				s += x * y
				sa += math.Abs(x * y)
			}
			want := float64(c.alpha) * s
			bound := math.Abs(float64(c.alpha)) * sa // |alpha|: a negative one must not cancel |beta·C|
			if c.beta != 0 {
				want += float64(c.beta) * c0.at(i, j)
				bound += math.Abs(float64(c.beta) * c0.at(i, j))
			}
			tol := float64(c.k+2) * u * math.Abs(bound)
			g := got.at(i, j)
			if !(math.Abs(g-want) <= tol) {
				if bad < 5 {
					t.Errorf("%v: C[%d,%d] = %g, want %g (tol %.3g)", c, i, j, g, want, tol)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%v: %d of %d elements wrong", c, bad, c.m*c.n)
	}
	// The padding between rows of C must be untouched.
	for i := 0; i < c.m; i++ {
		for j := c.n; j < got.ld && i*got.ld+j < len(got.d); j++ {
			if g, w := got.d[i*got.ld+j], c0.d[i*c0.ld+j]; math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("%v: padding C[%d,%d] changed to %g", c, i, j, g)
			}
		}
	}
}

func run(c gemmCase, a, b, cm mat) {
	Sgemm(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a.d, a.ld, b.d, b.ld, c.beta, cm.d, cm.ld)
}

func runCase(t *testing.T, r *rand.Rand, c gemmCase) {
	t.Helper()
	a, b, cm := c.operands(r)
	c0 := mat{rows: cm.rows, cols: cm.cols, ld: cm.ld, d: append([]float32(nil), cm.d...)}
	run(c, a, b, cm)
	check(t, c, a, b, c0, cm)
}

// sizes returns the lengths worth testing along a dimension tiled by r
// (and blocked by blk): 1, around one and several tiles, and across a
// block boundary.
func sizes(r, blk int) []int {
	s := []int{1, 2, r - 1, r, r + 1, 2*r + 1, 3*r - 1}
	if blk > 0 {
		s = append(s, blk+1)
	}
	var out []int
	for _, x := range s {
		if x >= 1 {
			out = append(out, x)
		}
	}
	return out
}

func TestSgemmShapes(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, m := range sizes(kr.mr, 0) {
				for _, n := range sizes(kr.nr, 0) {
					for _, k := range []int{1, 3, 17} {
						runCase(t, r, gemmCase{transA: tr[0], transB: tr[1], m: m, n: n, k: k, alpha: 1, beta: 0, pad: (m + n) % 3})
					}
				}
			}
			// Across a kc block (k), an mc block (m) and an nc block (n).
			for _, k := range sizes(kr.kc, 0)[4:] {
				runCase(t, r, gemmCase{transA: tr[0], transB: tr[1], m: kr.mr + 3, n: kr.nr + 5, k: k, alpha: 0.5, beta: -2, pad: 1})
			}
			runCase(t, r, gemmCase{transA: tr[0], transB: tr[1], m: kr.mc + 1, n: kr.nr + 1, k: kr.kc + 1, alpha: 1.5, beta: 0.25})
			runCase(t, r, gemmCase{transA: tr[0], transB: tr[1], m: kr.mr + 1, n: kr.nc + 1, k: 2*kr.kc + 3, alpha: -1, beta: 1, pad: 2})
		}
	})
}

// TestSgemmAlphaBeta covers the alpha and beta special cases: beta 0 must
// not read C (it holds NaN), alpha 0 must not read A or B (they hold NaN).
func TestSgemmAlphaBeta(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, ab := range [][2]float32{{1, 0}, {-0.75, 0}, {1, 1}, {2, -0.5}, {0.3, 1.7}} {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, s := range [][3]int{{2*kr.mr + 1, 2*kr.nr - 1, kr.kc + 5}, {kr.mr, kr.nr, 9}, {5, 3, 2}} {
					runCase(t, r, gemmCase{transA: tr[0], transB: tr[1], m: s[0], n: s[1], k: s[2],
						alpha: ab[0], beta: ab[1], pad: 3, nanC: ab[1] == 0})
				}
			}
		}
		// alpha 0: C = beta·C without reading A or B.
		for _, beta := range []float32{0, 1, -3} {
			c := gemmCase{m: 7, n: 9, k: 5, alpha: 0, beta: beta, nanC: beta == 0}
			a, b, cm := c.operands(r)
			for i := range a.d {
				a.d[i] = float32(math.NaN())
			}
			b.d[0] = float32(math.Inf(1))
			c0 := mat{rows: cm.rows, cols: cm.cols, ld: cm.ld, d: append([]float32(nil), cm.d...)}
			run(c, a, b, cm)
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					want := float32(0)
					if beta != 0 {
						want = beta * c0.d[i*c0.ld+j]
					}
					if g := cm.d[i*cm.ld+j]; g != want {
						t.Fatalf("alpha 0, beta %g: C[%d,%d] = %g, want %g", beta, i, j, g, want)
					}
				}
			}
		}
	})
}

// TestSgemmParallelDeterministic checks that splitting a product over
// goroutines (along m and along n, into more parts than cores) gives
// bit-for-bit the single-goroutine result, and that the result is right.
func TestSgemmParallelDeterministic(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, c := range []gemmCase{
			{m: 300, n: 90, k: 300, alpha: 1, beta: 0.5},              // split along m
			{transA: true, m: 70, n: 333, k: 290, alpha: -1, beta: 0}, // split along n
			{transB: true, m: 129, n: 127, k: 257, alpha: 2, beta: 1, pad: 1},
			{transB: true, m: 9, n: 12, k: 25000, alpha: 1, beta: 0, nanC: true}, // split along k: 8 chunks
			{transA: true, m: 33, n: 11, k: 9000, alpha: -0.5, beta: 2, pad: 2},  // 2 chunks of Cᵀ (swapCost), in place
			{transB: true, m: 32, n: 9, k: 17000, alpha: 1, beta: 0.5},           // chunks of Cᵀ
			{m: 45, n: 10, k: 9000, alpha: 2, beta: 0, pad: 1, nanC: true},       // the same, plain operands
		} {
			if c.k > 4096 && kChunks(active.Load(), c.m, c.n, c.k) < 2 {
				t.Fatalf("%v: not split along k (kChunks %d): the case tests nothing new", c, kChunks(active.Load(), c.m, c.n, c.k))
			}
			a, b, cm := c.operands(r)
			c0 := mat{rows: cm.rows, cols: cm.cols, ld: cm.ld, d: append([]float32(nil), cm.d...)}
			var results [][]float32
			for _, threads := range []int{1, 2, 3, 5} {
				old := nThreads
				nThreads = threads
				got := mat{rows: cm.rows, cols: cm.cols, ld: cm.ld, d: append([]float32(nil), c0.d...)}
				run(c, a, b, got)
				nThreads = old
				results = append(results, got.d)
				if threads == 3 {
					check(t, c, a, b, c0, got)
				}
			}
			for i := 1; i < len(results); i++ {
				for e := range results[0] {
					if math.Float32bits(results[i][e]) != math.Float32bits(results[0][e]) {
						t.Fatalf("%v: element %d differs between 1 and %d parts: %g vs %g", c, e, []int{1, 2, 3, 5}[i], results[0][e], results[i][e])
					}
				}
			}
		}
	})
}

// TestSgemmBatched checks the strided-batched entry point, with A or B
// shared (stride 0, packed once) or not, split by batch entry and by
// tiles: every C_i must equal bit for bit the single product Sgemm gives,
// which TestSgemmShapes checks against float64.
func TestSgemmBatched(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(7, 8))
		type bc struct {
			c               gemmCase
			batch           int
			shareA, shareB  bool
			extraC, threads int
		}
		for _, x := range []bc{
			{gemmCase{m: 13, n: 35, k: 20, alpha: 1, beta: 0, nanC: true}, 5, true, false, 3, 2},
			{gemmCase{transA: true, m: 13, n: 35, k: 300, alpha: 0.5, beta: 1}, 4, false, true, 0, 3},
			{gemmCase{transB: true, m: 40, n: 20, k: 33, alpha: -1, beta: 2}, 6, false, false, 1, 2},
			{gemmCase{transA: true, transB: true, m: 200, n: 120, k: 270, alpha: 1, beta: 0}, 3, true, false, 0, 2}, // tile split, shared A
			{gemmCase{m: 64, n: 784, k: 288, alpha: 1, beta: 0}, 3, true, false, 0, 3},
			{gemmCase{m: 9, n: 9, k: 9, alpha: 1, beta: 0.5}, 4, true, true, 2, 2},
			// Entries computed as Cᵀ (swapEntry), shared or not, and split
			// along k (kChunks): each must still be the lone product's bits.
			{gemmCase{transB: true, m: 32, n: 9, k: 50, alpha: 1, beta: 0, nanC: true}, 7, false, false, 1, 2},
			{gemmCase{m: 30, n: 5, k: 40, alpha: -2, beta: 0.5}, 5, true, false, 0, 3},
			{gemmCase{transA: true, m: 31, n: 7, k: 20, alpha: 1, beta: 1}, 3, false, true, 2, 1},
			{gemmCase{transB: true, m: 9, n: 12, k: 25000, alpha: 1, beta: 0.5}, 2, true, false, 0, 2},
		} {
			if x.c.k > 4096 && kChunks(active.Load(), x.c.m, x.c.n, x.c.k) < 2 {
				t.Fatalf("%v: not split along k: the case tests nothing new", x.c)
			}
			c := x.c
			a1, b1, c1 := c.operands(r)
			sa, sb := len(a1.d)+1, len(b1.d)+2
			if x.shareA {
				sa = 0
			}
			if x.shareB {
				sb = 0
			}
			sc := len(c1.d) + x.extraC
			a := make([]float32, sa*(x.batch-1)+len(a1.d))
			b := make([]float32, sb*(x.batch-1)+len(b1.d))
			cc := make([]float32, sc*(x.batch-1)+len(c1.d))
			for i := range a {
				a[i] = float32(r.Float64()*2 - 1)
			}
			for i := range b {
				b[i] = float32(r.Float64()*2 - 1)
			}
			for i := range cc {
				cc[i] = float32(r.Float64()*2 - 1)
				if c.nanC {
					cc[i] = float32(math.NaN())
				}
			}
			orig := append([]float32(nil), cc...)
			want := append([]float32(nil), cc...)
			for i := 0; i < x.batch; i++ {
				Sgemm(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a[i*sa:], a1.ld, b[i*sb:], b1.ld, c.beta, want[i*sc:], c1.ld)
			}
			old := nThreads
			nThreads = x.threads
			SgemmBatched(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a, a1.ld, sa, b, b1.ld, sb, c.beta, cc, c1.ld, sc, x.batch)
			nThreads = old
			for e := range cc {
				if math.Float32bits(cc[e]) != math.Float32bits(want[e]) {
					t.Fatalf("%v batch %d shareA=%v shareB=%v: element %d = %g, want %g", c, x.batch, x.shareA, x.shareB, e, cc[e], want[e])
				}
			}
			// And the last entry against float64, so that an answer wrong
			// in both paths alike fails too.
			last := x.batch - 1
			am := mat{rows: a1.rows, cols: a1.cols, ld: a1.ld, d: a[last*sa:]}
			bm := mat{rows: b1.rows, cols: b1.cols, ld: b1.ld, d: b[last*sb:]}
			c0 := mat{rows: c1.rows, cols: c1.cols, ld: c1.ld, d: orig[last*sc : last*sc+len(c1.d)]}
			got := mat{rows: c1.rows, cols: c1.cols, ld: c1.ld, d: cc[last*sc : last*sc+len(c1.d)]}
			check(t, c, am, bm, c0, got)
		}
	})
}

// TestSgemmMatchesGonum compares with gonum's pure-Go blas32.Gemm. Both
// are float32 computations of the same sums in different orders; each is
// within (k+2)·u·Σ|A||B| of the exact value, so they differ by at most
// twice that.
func TestSgemmMatchesGonum(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kr *kernel) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			c := gemmCase{transA: tr[0], transB: tr[1], m: 67, n: 93, k: 311, alpha: 1.25, beta: -0.5}
			a, b, cm := c.operands(r)
			for i := range cm.d { // no NaN padding: gonum writes only inside
				if math.IsNaN(float64(cm.d[i])) {
					cm.d[i] = 0
				}
			}
			ref := append([]float32(nil), cm.d...)
			run(c, a, b, cm)
			ta, tb := blas.NoTrans, blas.NoTrans
			ga := blas32.General{Rows: c.m, Cols: c.k, Stride: a.ld, Data: a.d}
			gb := blas32.General{Rows: c.k, Cols: c.n, Stride: b.ld, Data: b.d}
			if c.transA {
				ta, ga = blas.Trans, blas32.General{Rows: c.k, Cols: c.m, Stride: a.ld, Data: a.d}
			}
			if c.transB {
				tb, gb = blas.Trans, blas32.General{Rows: c.n, Cols: c.k, Stride: b.ld, Data: b.d}
			}
			blas32.Implementation().Sgemm(ta, tb, c.m, c.n, c.k, c.alpha, ga.Data, ga.Stride, gb.Data, gb.Stride, c.beta, ref, cm.ld)
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					var sa float64
					for p := 0; p < c.k; p++ {
						var x, y float64
						if c.transA {
							x = a.at(p, i)
						} else {
							x = a.at(i, p)
						}
						if c.transB {
							y = b.at(j, p)
						} else {
							y = b.at(p, j)
						}
						sa += math.Abs(x * y)
					}
					tol := 2 * float64(c.k+2) * u * (1.25*sa + 0.5*math.Abs(float64(ref[i*cm.ld+j])) + 1e-30)
					if d := math.Abs(float64(cm.d[i*cm.ld+j]) - float64(ref[i*cm.ld+j])); !(d <= tol) {
						t.Fatalf("%v: C[%d,%d] = %g, gonum %g (tol %.3g)", c, i, j, cm.d[i*cm.ld+j], ref[i*cm.ld+j], tol)
					}
				}
			}
		}
	})
}

// TestSetKernel: unknown names are refused and leave the kernel as it was.
func TestSetKernel(t *testing.T) {
	before := Kernel()
	if err := SetKernel("avx9000"); err == nil {
		t.Fatal("SetKernel accepted an unknown kernel")
	}
	if Kernel() != before {
		t.Fatalf("kernel changed from %s to %s", before, Kernel())
	}
	if Kernels()[len(Kernels())-1] != "generic" {
		t.Fatalf("Kernels() = %v, want generic last", Kernels())
	}
}

// TestNoAllocs: a product in steady state allocates nothing, single and
// split over goroutines, batched with a shared operand too, with B given
// by a packer, and on the paths of small transposed entries (32×9) and
// of chunks along k.
func TestNoAllocs(t *testing.T) {
	kr := active.Load()
	if !swapEntry(kr, 32, 9) && kr.edge != nil || kChunks(kr, 9, 12, 25000) < 2 {
		t.Fatal("the 32×9 and 9×12×25000 cases no longer take the paths they are here for")
	}
	for _, s := range [][3]int{{20, 30, 40}, {256, 256, 256}, {32, 9, 50}, {9, 12, 25000}} {
		m, n, k := s[0], s[1], s[2]
		a, b, c := make([]float32, m*k*3), make([]float32, k*n), make([]float32, m*n*3)
		pk := &matPacker{b: b, k: k, n: n, ld: n}
		f := func() {
			Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
			SgemmBatched(false, false, m, n, k, 1, a, k, m*k, b, n, 0, 1, c, n, m*n, 3)
			SgemmBatchedPacked(false, m, n, k, 1, a, k, 0, pk, 0, c, n, m*n, 3)
			// Let the helpers run: the caller took every part itself, and
			// a helper still queued holds its reference to the job.
			runtime.Gosched()
		}
		// AllocsPerRun runs with GOMAXPROCS 1; two parts still go through
		// the pool. A helper that has not run yet keeps its job, so the
		// free list first grows to the depth of the pool's queue; the
		// Gosched above bounds that depth whatever the scheduler does
		// (without it, a loaded machine that starves the helper for the
		// whole measurement made a new job per call).
		old, procs := nThreads, runtime.GOMAXPROCS(1)
		nThreads = 2
		for range 200 {
			f()
		}
		got := testing.AllocsPerRun(20, f)
		nThreads = old
		runtime.GOMAXPROCS(procs)
		if got != 0 {
			t.Errorf("%v: %v allocations per call", s, got)
		}
	}
}

// TestSgemmConcurrent: callers on several goroutines at once (the
// backend's batched GEMM does this) share the worker pool and the free
// lists; each must still get exactly the result of a lone call.
func TestSgemmConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const callers = 4
	c := gemmCase{transB: true, m: 150, n: 140, k: 200, alpha: 1, beta: 0.5}
	var as, bs, cs, want [callers]mat
	for g := range callers {
		as[g], bs[g], cs[g] = c.operands(r)
		want[g] = mat{rows: cs[g].rows, cols: cs[g].cols, ld: cs[g].ld, d: append([]float32(nil), cs[g].d...)}
		run(c, as[g], bs[g], want[g])
	}
	done := make(chan int)
	for g := range callers {
		go func() {
			for range 5 {
				got := append([]float32(nil), cs[g].d...)
				run(c, as[g], bs[g], mat{rows: cs[g].rows, cols: cs[g].cols, ld: cs[g].ld, d: got})
				for e := range got {
					if math.Float32bits(got[e]) != math.Float32bits(want[g].d[e]) {
						t.Errorf("caller %d: element %d = %g, want %g", g, e, got[e], want[g].d[e])
						break
					}
				}
			}
			done <- g
		}()
	}
	for range callers {
		<-done
	}
}
