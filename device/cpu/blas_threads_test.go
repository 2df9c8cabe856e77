//go:build openblas

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
)

// TestBLASThreaded checks the openblas build's largest products, which
// run as one call on OpenBLAS's own threads (blasWhole), at 1 to 4
// threads and through blasGemm, for every transpose and both betas: every
// element within the float32 bound of a float64 reference (all of them,
// not a sample: a thread's block in the wrong place fails), the same bits
// when the call is repeated at the same thread count, and OpenBLAS back to
// one thread afterwards (the slabs' calls must not start its threads).
// Unless the user set a timeout, its thread server runs with the short
// one, and the variable is gone from the environment again. (The bits do
// depend on the thread count — OpenBLAS's split decides which elements
// its edge kernels compute — which the package documentation says.)
func TestBLASThreaded(t *testing.T) {
	if blasMode != blasPthreads {
		// A sequential OpenBLAS has no threads to give, and the OpenMP
		// one's thread count is per calling thread: the largest products
		// keep the slabs. CI links the pthreads one.
		if blasSleepy {
			t.Error("the thread timeout was changed for an OpenBLAS that has no pthreads server")
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI links an OpenBLAS without its pthreads server (%s): the threaded path is untested", blasThreading())
		}
		t.Skipf("%s: no threaded path", blasThreading())
	}
	userTimeout := os.Getenv("OPENBLAS_THREAD_TIMEOUT") != "" || os.Getenv("GOTO_THREAD_TIMEOUT") != ""
	if !userTimeout && !blasSleepy {
		t.Error("OpenBLAS's thread server was not restarted with the short thread timeout")
	}
	// The C environment, which OpenBLAS reads (Go's os.Getenv sees its own
	// copy, taken at start-up, which C's setenv never changes).
	if !userTimeout && blasEnvSet("OPENBLAS_THREAD_TIMEOUT") {
		t.Error("OPENBLAS_THREAD_TIMEOUT left in the C environment")
	}
	r := rand.New(rand.NewPCG(3, 4))
	fill := func(n int) []float32 { return uniformVec(r, n) }
	w := sharedWorkers()
	for _, c := range []struct{ m, n, k int }{
		{520, 400, 330}, // just above blasThreadMACs
		{96, 2100, 340}, // few rows (the weight gradients' shape)
		{2100, 70, 460}, // few columns
	} {
		if c.m*c.n*c.k < blasThreadMACs {
			t.Fatalf("%v is below blasThreadMACs", c)
		}
		a, b, c0 := fill(c.m*c.k), fill(c.k*c.n), fill(c.m*c.n)
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			ta, tb, lda, ldb := blas.NoTrans, blas.NoTrans, c.k, c.n
			if tr[0] {
				ta, lda = blas.Trans, c.m
			}
			if tr[1] {
				tb, ldb = blas.Trans, c.k
			}
			// op(A)·op(B) in float64 and Σ|a||b| of every element.
			ab, absAB := make([]float64, c.m*c.n), make([]float64, c.m*c.n)
			col, row := make([]float64, c.k), make([]float64, c.k)
			for j := 0; j < c.n; j++ {
				for p := range col {
					col[p] = float64(b[p*c.n+j])
					if tr[1] {
						col[p] = float64(b[j*c.k+p])
					}
				}
				for i := 0; i < c.m; i++ {
					for p := range row {
						row[p] = float64(a[i*c.k+p])
						if tr[0] {
							row[p] = float64(a[p*c.m+i])
						}
					}
					s, abs := 0.0, 0.0
					for p, x := range row {
						s += x * col[p]
						abs += math.Abs(x * col[p])
					}
					ab[i*c.n+j], absAB[i*c.n+j] = s, abs
				}
			}
			for _, beta := range []float32{0, 1} {
				name := fmt.Sprintf("%dx%dx%d_t%v%v_beta%v", c.m, c.n, c.k, tr[0], tr[1], beta)
				// The reference and the bound 2·k·2⁻²⁴·Σ|terms| (float32
				// accumulation) of every element.
				ref, bound := make([]float64, c.m*c.n), make([]float64, c.m*c.n)
				for e := range ref {
					bc := float64(beta) * float64(c0[e])
					ref[e], bound[e] = bc+ab[e], 2*float64(c.k+1)*0x1p-24*(math.Abs(bc)+absAB[e])+1e-30
				}
				check := func(how string, got []float32) {
					t.Helper()
					for e := range got {
						if d := math.Abs(float64(got[e]) - ref[e]); !(d <= bound[e]) {
							t.Fatalf("%s %s: C[%d, %d] = %v, float64 %v", name, how, e/c.n, e%c.n, got[e], ref[e])
						}
					}
					if n := blasThreadsNow(); n != 1 {
						t.Fatalf("%s %s: OpenBLAS left at %d threads", name, how, n)
					}
				}
				for threads := 1; threads <= 4; threads++ {
					var first []float32
					for rep := 0; rep < 2; rep++ {
						got := append([]float32(nil), c0...)
						q := &blasKern{ta: ta, tb: tb, m: c.m, n: c.n, k: c.k, alpha: 1, beta: beta, a: a, b: b, c: got,
							lda: lda, ldb: ldb, whole: true}
						blasWhole(q, w, threads)
						how := fmt.Sprintf("%d threads", threads)
						check(how, got)
						if rep == 0 {
							first = got
							continue
						}
						for e := range got {
							if math.Float32bits(got[e]) != math.Float32bits(first[e]) {
								t.Fatalf("%s %s: C[%d] = %v, then %v when repeated", name, how, e, first[e], got[e])
							}
						}
					}
				}
				got := append([]float32(nil), c0...)
				blasGemm(tr[0], tr[1], c.m, c.n, c.k, 1, a, b, beta, got)
				check("blasGemm", got)
			}
		}
	}
}

// TestBLASThreadedAlongside runs a product of the slab path (384×64×1000,
// eight row slabs; at k ≥ 500 OpenBLAS's threaded split changes about
// three quarters of its elements' bits) over and over while another
// goroutine runs products that raise OpenBLAS's process-wide thread count
// (blasWhole): every result must have the bits of the same product run
// alone. Without blasBig's read lock around the slab path, nearly every
// one of them ran on OpenBLAS's threads and differed.
//
// It runs with every OpenBLAS variant: with the OpenMP one the big
// products take the slabs too, and it checks that each slab's call runs
// on one thread although the Go runtime's threads start with libgomp's
// default of every core (blasMode).
func TestBLASThreadedAlongside(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fill := func(n int) []float32 { return uniformVec(r, n) }
	const m, n, k = 384, 64, 1000
	a, b := fill(m*k), fill(k*n)
	want := make([]float32, m*n)
	blasGemm(false, false, m, n, k, 1, a, b, 0, want)

	const bm, bn, bk = 520, 400, 330
	ba, bb := fill(bm*bk), fill(bk*bn)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		c := make([]float32, bm*bn)
		calls := 0
		for {
			select {
			case <-stop:
				done <- calls
				return
			default:
			}
			blasGemm(false, false, bm, bn, bk, 1, ba, bb, 0, c)
			calls++
		}
	}()
	got := make([]float32, m*n)
	bad, runs := 0, 0
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end) || runs < 50; runs++ {
		blasGemm(false, false, m, n, k, 1, a, b, 0, got)
		for e := range got {
			if math.Float32bits(got[e]) != math.Float32bits(want[e]) {
				bad++
				break
			}
		}
	}
	close(stop)
	big := <-done
	if bad > 0 {
		t.Fatalf("%d of %d slab-path products differed from the product run alone while %d big ones ran (%s)", bad, runs, big, blasThreading())
	}
	if big == 0 {
		t.Fatal("the big products never ran alongside")
	}
	t.Logf("%d slab-path products, %d big ones alongside (%s)", runs, big, blasThreading())
}
