package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
// polls rather than park and pay that wake-up. A helper polls only
// briefly: while it holds its core, a goroutine of the GEMM's own pool
// that the caller wakes cannot run there. Past the windows nothing spins.
const (
	helperSpin = 10 * time.Microsecond
	callerSpin = 250 * time.Microsecond
)

// workers is a fixed set of goroutines that run chunks of kernels. The
// calling goroutine takes chunks too, so a device on an n-core machine
// keeps n-1 helpers. The chunks of a call are taken in turn by whoever
// is free (an atomic counter): the caller never waits for a helper that
// has not started yet (on a loaded machine it may not run for
// milliseconds), it runs the untaken chunks itself. Which goroutine runs
// a chunk never changes what the chunk computes: the chunks and their
// ranges are fixed by the call's size alone.
//
// A call is published by writing its fields and then bumping gen to an
// odd value; the caller closes it (gen even) once every chunk is done and
// waits until no helper is inside it (active) before it writes the next
// one. A helper enters a call by counting itself in active and checking
// that gen has not moved, so it never reads the fields of a call being
// written. No heap allocation per call.
type workers struct {
	n int // parallelism including the caller

	mu sync.Mutex // one call at a time

	// The current call (written only while no helper is inside).
	k        kernel
	n0, c    int // items and chunks
	per      int // items per chunk
	gen      atomic.Uint64
	next     atomic.Int32 // next chunk to take
	done     atomic.Int32 // chunks finished
	active   atomic.Int32 // helpers inside the current call
	waiting  atomic.Int32 // 1: the caller is blocked on fin
	fin      chan struct{}
	sleeping []atomic.Int32 // 1: helper i is blocked on wake[i]
	wake     []chan struct{}
	quit     atomic.Bool
	once     sync.Once
}

func newWorkers(n int) *workers {
	if n > maxChunks {
		n = maxChunks
	}
	if n < 1 {
		n = 1
	}
	w := &workers{n: n, fin: make(chan struct{}, 1)}
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
	seen := w.gen.Load()
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
			w.take()
		}
		w.active.Add(-1)
	}
}

// await waits until gen moves past seen (to an open call) or the workers
// stop; false when they stop.
func (w *workers) await(i int, seen uint64) bool {
	open := func() bool { g := w.gen.Load(); return g != seen && g&1 == 1 }
	t0 := time.Now()
	for spins := 0; ; spins++ {
		if w.quit.Load() {
			return false
		}
		if open() {
			return true
		}
		if spins&63 == 63 && time.Since(t0) > helperSpin {
			break
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

// take runs untaken chunks of the current call until none is left.
func (w *workers) take() {
	for {
		t := int(w.next.Add(1)) - 1
		if t >= w.c {
			return
		}
		lo := t * w.per
		w.k.run(t, lo, min(lo+w.per, w.n0))
		if int(w.done.Add(1)) == w.c && w.waiting.Swap(0) == 1 {
			w.fin <- struct{}{}
		}
	}
}

func (w *workers) stop() {
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
	w.mu.Lock()
	// No helper may still be inside the previous call (one that entered
	// it late leaves at once: it finds no chunk to take).
	for w.active.Load() != 0 {
		runtime.Gosched()
	}
	w.k, w.n0, w.c, w.per = k, n, c, per
	w.next.Store(0)
	w.done.Store(0)
	w.gen.Add(1) // open (odd)
	for i := 1; i < w.n; i++ {
		if w.sleeping[i].Swap(0) == 1 {
			w.wake[i] <- struct{}{}
		}
	}
	w.take()
	if int(w.done.Load()) != c {
		t0 := time.Now()
		for spins := 0; int(w.done.Load()) != c; spins++ {
			if spins&63 == 63 && time.Since(t0) > callerSpin {
				w.waiting.Store(1)
				if int(w.done.Load()) == c {
					if w.waiting.Swap(0) == 0 {
						<-w.fin // the last chunk's runner took the flag and sends
					}
				} else {
					<-w.fin
				}
				break
			}
		}
	}
	w.gen.Add(1) // closed (even)
	w.k = nil
	w.mu.Unlock()
	return c
}
