package cpu

import "sync"

// maxChunks bounds how many pieces one kernel call is split into.
const maxChunks = 64

// kernel is a piece of work that can be split into index ranges. run is
// called once per chunk with the chunk number and its range [lo, hi).
type kernel interface {
	run(chunk, lo, hi int)
}

type task struct {
	k             kernel
	chunk, lo, hi int
}

// workers is a fixed set of goroutines that run chunks of kernels. The
// calling goroutine runs the first chunk itself, so a device on an n-core
// machine keeps n-1 helpers. Sending a task is a channel send of a small
// struct whose kernel points into the Device: no heap allocation per call.
type workers struct {
	n    int // parallelism including the caller
	ch   chan task
	wg   sync.WaitGroup
	once sync.Once
}

func newWorkers(n int) *workers {
	if n > maxChunks {
		n = maxChunks
	}
	if n < 1 {
		n = 1
	}
	w := &workers{n: n, ch: make(chan task, maxChunks)}
	for i := 1; i < n; i++ {
		go w.loop()
	}
	return w
}

func (w *workers) loop() {
	for t := range w.ch {
		t.k.run(t.chunk, t.lo, t.hi)
		w.wg.Done()
	}
}

func (w *workers) stop() { w.once.Do(func() { close(w.ch) }) }

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
	w.wg.Add(c - 1)
	for i := 1; i < c; i++ {
		lo := i * per
		hi := min(lo+per, n)
		w.ch <- task{k: k, chunk: i, lo: lo, hi: hi}
	}
	k.run(0, 0, min(per, n))
	w.wg.Wait()
	return c
}
