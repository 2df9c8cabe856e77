package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnml/kiln/device/cpu/internal/gemm"
)

// maxChunks bounds how many pieces one kernel call is split into.
const maxChunks = 64

// kernel is a piece of work that can be split into index ranges. run is
// called once per chunk with the chunk number and its range [lo, hi).
type kernel interface {
	run(chunk, lo, hi int)
}

// helperSpin is how long an idle helper keeps polling for the next call
// before it parks, and callerSpin how long a caller polls for the chunks
// its helpers are still running before it blocks. On the VMs kiln is
// measured on, waking a parked goroutine whose core has gone idle takes
// about 60 µs (the vCPU halts), as long as a typical chunk. The caller
// only ever waits for chunks already under way, which end soon, so it
// polls rather than park and pay that wake-up. The helpers are the only
// ones a process has (the GEMM runs its parts on them too, see
// sharedWorkers), so one that polls holds its core from nothing else of
// kiln's: it polls for as long as the gaps between the calls of a
// training step last (the host work of a layer, a small op that runs
// serially: tens to hundreds of µs), so that it is never parked when the
// next call comes — with a 10 µs window it parked before most of the
// CNN's calls, and each wake-up cost the call most of its second core.
// Past the windows nothing spins.
//
// Past the first pureSpin of a window a poller gives its core away
// between polls (yield): on a quiet machine that returns at once, and
// on one loaded with other work the poller takes little from it (kiln's
// own threads included: a polling helper that kept its core would halve
// the caller's share of it; and with fewer Ps than workers, as under
// testing.AllocsPerRun, a polling helper would hold the caller's P).
const (
	helperSpin = 2 * time.Millisecond
	callerSpin = 250 * time.Microsecond
	pureSpin   = 20 * time.Microsecond
)

// workers is a fixed set of goroutines that run chunks of kernels. The
// calling goroutine takes chunks too, so a device on an n-core machine
// keeps n-1 helpers. The chunks of a call are taken in turn by whoever
// is free (an atomic pair of counters): the caller never waits for a
// helper that has not started yet (on a loaded machine it may not run for
// milliseconds), it runs the untaken chunks itself. The caller takes them
// from the front and the first helper from the back, so that on two
// cores each takes one contiguous run of chunks, and consecutive calls
// split alike (an Im2Col's planes and the GEMM's images after it) give
// each core the part of the data it has just written into its cache.
// Which goroutine runs a chunk never changes what the chunk computes: the
// chunks and their ranges are fixed by the call's size alone.
//
// A call is published by writing its fields and then bumping gen to an
// odd value; the caller closes it (gen even) once every chunk is done and
// waits until no helper is inside it (active) before it writes the next
// one. A helper enters a call by counting itself in active and checking
// that gen has not moved, so it never reads the fields of a call being
// written. No heap allocation per call.
type workers struct {
	n      int           // parallelism including the caller
	spin   time.Duration // the first helper's polling window (helperSpin)
	shared bool          // the process's (sharedWorkers): stop does nothing

	// One call at a time: a call that finds the workers busy (another
	// device's call, or a GEMM's on another goroutine) runs serially on
	// its caller instead of waiting, which gives the same results.
	mu sync.Mutex

	// The current call (written only while no helper is inside).
	k        kernel
	n0, c    int // items and chunks
	per      int // items per chunk
	gen      atomic.Uint64
	ends     atomic.Uint64 // untaken chunks [front, back): front in the low 32 bits, back in the high
	done     atomic.Int32  // chunks finished
	active   atomic.Int32  // helpers inside the current call
	waiting  atomic.Int32  // 1: the caller is blocked on fin
	fin      chan struct{}
	sleeping []atomic.Int32 // 1: helper i is blocked on wake[i]
	wake     []chan struct{}
	quit     atomic.Bool
	quiet    atomic.Bool // idle helpers park at once (hush)
	once     sync.Once
	gp       gemmParts // the GEMM parts of the current call (Run)
}

// sharedWorkers is the process's set of helpers, GOMAXPROCS−1 of them
// (read when the first device opens), used by every Device that New
// opens and by the GEMM (gemm.SetPool): one set of helpers for every
// kernel, so that those polling after one call are there for the next
// whatever its kind.
var sharedWorkers = sync.OnceValue(func() *workers {
	w := newWorkers(runtime.GOMAXPROCS(0))
	w.shared = true
	gemm.SetPool(w)
	return w
})

// gemmParts runs GEMM parts [lo, hi) as the chunk of a call.
type gemmParts struct{ p gemm.Parts }

func (g *gemmParts) run(_, lo, hi int) {
	for t := lo; t < hi; t++ {
		g.p.Part(t)
	}
}

// Run runs the parts of a product split by the GEMM (gemm.Pool): each
// part is a chunk of one item.
func (w *workers) Run(p gemm.Parts, parts int) {
	if parts <= 1 || !w.mu.TryLock() {
		for t := 0; t < parts; t++ {
			p.Part(t)
		}
		return
	}
	w.gp.p = p
	w.call(&w.gp, parts, parts, 1)
	w.gp.p = nil
	w.mu.Unlock()
}

func newWorkers(n int) *workers { return newWorkersSpin(n, helperSpin) }

// newWorkersSpin is newWorkers with another polling window than
// helperSpin (tests).
func newWorkersSpin(n int, spin time.Duration) *workers {
	if n > maxChunks {
		n = maxChunks
	}
	if n < 1 {
		n = 1
	}
	w := &workers{n: n, spin: spin, fin: make(chan struct{}, 1)}
	w.sleeping = make([]atomic.Int32, n)
	w.wake = make([]chan struct{}, n)
	for i := 1; i < n; i++ {
		w.wake[i] = make(chan struct{}, 1)
		go w.loop(i)
	}
	return w
}

// loop is helper i: it waits for a call it has not seen (polling for
// helperSpin, then parked), takes chunks until none is left, and waits
// again.
func (w *workers) loop(i int) {
	// gen's value before any call, not gen.Load(): a helper that starts
	// after the first call opened must join it, not take it as seen.
	var seen uint64
	for {
		g := w.gen.Load()
		if g == seen || g&1 == 0 {
			if !w.await(i, seen) {
				return
			}
			continue
		}
		seen = g
		w.active.Add(1)
		if w.gen.Load() == g {
			w.take(i == 1)
		}
		w.active.Add(-1)
	}
}

// await waits until gen moves past seen (to an open call) or the workers
// stop; false when they stop.
func (w *workers) await(i int, seen uint64) bool {
	open := func() bool { g := w.gen.Load(); return g != seen && g&1 == 1 }
	// Helper i polls for helperSpin/i: the first helper the whole window,
	// later ones less, so that after one isolated call a many-core host
	// burns about helperSpin·ln(n) of CPU, not helperSpin·(n−1) (a 2-core
	// machine's single helper keeps the whole window).
	window := w.spin / time.Duration(i)
	t0 := time.Now()
	for spins := 0; ; spins++ {
		if w.quit.Load() {
			return false
		}
		if open() {
			return true
		}
		if w.quiet.Load() {
			break
		}
		if spins&63 == 63 {
			if e := time.Since(t0); e > window {
				break
			} else if e > pureSpin {
				yield()
			}
		}
	}
	w.sleeping[i].Store(1)
	if open() || w.quit.Load() {
		if w.sleeping[i].Swap(0) == 0 {
			<-w.wake[i] // the caller took the flag and sends
		}
		return !w.quit.Load()
	}
	<-w.wake[i]
	return !w.quit.Load()
}

// hush(true) makes idle helpers park at once instead of polling, until
// hush(false): for the time another pool of threads (OpenBLAS's own, for
// the openblas build's largest products, blas_split.go) runs on these
// cores, so that no polling helper takes a share of them. The next call
// wakes the parked helpers as usual.
func (w *workers) hush(on bool) { w.quiet.Store(on) }

// take runs untaken chunks of the current call until none is left, the
// first untaken each time, or the last when fromBack.
func (w *workers) take(fromBack bool) {
	for {
		t := w.claim(fromBack)
		if t < 0 {
			return
		}
		lo := t * w.per
		w.k.run(t, lo, min(lo+w.per, w.n0))
		if int(w.done.Add(1)) == w.c && w.waiting.Swap(0) == 1 {
			w.fin <- struct{}{}
		}
	}
}

// claim takes the first untaken chunk (the last when fromBack) and
// returns it, or −1 when none is left.
func (w *workers) claim(fromBack bool) int {
	for {
		e := w.ends.Load()
		front, back := uint32(e), uint32(e>>32)
		if front >= back {
			return -1
		}
		if fromBack {
			if w.ends.CompareAndSwap(e, e-1<<32) {
				return int(back - 1)
			}
		} else if w.ends.CompareAndSwap(e, e+1) {
			return int(front)
		}
	}
}

func (w *workers) stop() {
	if w.shared {
		return
	}
	w.once.Do(func() {
		w.quit.Store(true)
		for i := 1; i < w.n; i++ {
			if w.sleeping[i].Swap(0) == 1 {
				w.wake[i] <- struct{}{}
			}
		}
	})
}

// chunks returns how many chunks a job of n items with the given grain
// (the fewest items worth a goroutine hand-off) is split into.
func (w *workers) chunks(n, grain int) int {
	c := n / grain
	if c > w.n {
		c = w.n
	}
	if c < 1 {
		c = 1
	}
	return c
}

// reduceChunks is chunks for reductions: the chunks' partial sums are
// added in chunk order, so their number must depend on the size alone,
// never on how many workers there are (chunks caps it at w.n, which would
// make a sum's bits depend on GOMAXPROCS). The workers take the chunks
// from a shared counter, so more chunks than workers cost only a few
// atomic claims.
func reduceChunks(n, grain int) int {
	return max(1, min(n/grain, maxChunks))
}

// parallel runs k over [0, n) in c chunks (as returned by chunks); chunk
// boundaries are multiples of align (a power of two) so that chunks do not
// share cache lines. It returns when every chunk has finished, with the
// number of chunks it ran (alignment may leave fewer than c).
func (w *workers) parallel(k kernel, n, c, align int) int {
	if c <= 1 {
		k.run(0, 0, n)
		return 1
	}
	per := (n + c - 1) / c
	per = (per + align - 1) &^ (align - 1)
	// Recompute c: rounding up may leave the last chunks empty.
	c = (n + per - 1) / per
	if c <= 1 {
		k.run(0, 0, n)
		return 1
	}
	if !w.mu.TryLock() {
		// Busy: the same chunks, on the caller (so that reductions add
		// the same partial sums).
		for t := 0; t < c; t++ {
			k.run(t, t*per, min((t+1)*per, n))
		}
		return c
	}
	w.call(k, n, c, per)
	w.mu.Unlock()
	return c
}

// call runs the c chunks of per items of k over [0, n), with w.mu held.
func (w *workers) call(k kernel, n, c, per int) {
	// No helper may still be inside the previous call (one that entered
	// it late leaves at once: it finds no chunk to take).
	for w.active.Load() != 0 {
		runtime.Gosched()
	}
	w.k, w.n0, w.c, w.per = k, n, c, per
	w.ends.Store(uint64(c) << 32)
	w.done.Store(0)
	// A chunk that panics on the caller (recovered further up) must not
	// leave the process's workers locked with a call open: no chunk left
	// to claim, the helpers out, the call closed, the lock released, and
	// the panic goes on.
	defer func() {
		if r := recover(); r != nil {
			w.ends.Store(0)
			for w.active.Load() != 0 {
				runtime.Gosched()
			}
			if w.gen.Load()&1 == 1 {
				w.gen.Add(1)
			}
			w.k = nil
			w.mu.Unlock()
			panic(r)
		}
	}()
	w.gen.Add(1) // open (odd)
	for i := 1; i < w.n; i++ {
		if w.sleeping[i].Swap(0) == 1 {
			w.wake[i] <- struct{}{}
		}
	}
	w.take(false)
	if int(w.done.Load()) != c {
		w.awaitDone(c)
	}
	w.gen.Add(1) // closed (even)
	w.k = nil
}

// awaitDone waits until the c chunks of the current call are done: it
// polls for callerSpin (giving its core away between polls past
// pureSpin), then blocks on fin.
func (w *workers) awaitDone(c int) {
	t0 := time.Now()
	for spins := 0; int(w.done.Load()) != c; spins++ {
		if spins&63 != 63 {
			continue
		}
		e := time.Since(t0)
		if e <= callerSpin {
			if e > pureSpin {
				yield()
			}
			continue
		}
		w.waiting.Store(1)
		if int(w.done.Load()) == c {
			if w.waiting.Swap(0) == 0 {
				<-w.fin // the last chunk's runner took the flag and sends
			}
		} else {
			<-w.fin
		}
		return
	}
}

// yield lets the other goroutines of this P run, then other threads of
// this core (osYield).
func yield() {
	runtime.Gosched()
	osYield()
}
