package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnml/kiln/device/cpu/internal/gemm"
)

// coverKern counts how often each item is visited and records each
// chunk's range, so a test can check that a call ran every chunk once,
// with the ranges fixed by its size.
type coverKern struct {
	hits   []atomic.Int32
	lo, hi [maxChunks]atomic.Int64
	runs   [maxChunks]atomic.Int32
	spin   int
	sink   atomic.Int64
}

func (k *coverKern) run(chunk, lo, hi int) {
	k.runs[chunk].Add(1)
	k.lo[chunk].Store(int64(lo))
	k.hi[chunk].Store(int64(hi))
	s := 0
	for i := lo; i < hi; i++ {
		k.hits[i].Add(1)
		for j := 0; j < k.spin; j++ {
			s += j ^ i
		}
	}
	k.sink.Add(int64(s))
}

// checkCall runs one call of n items in c chunks aligned to align and
// checks every item was visited once and chunk t covered
// [t·per, min((t+1)·per, n)) with per the aligned share.
func checkCall(t *testing.T, w *workers, k *coverKern, n, c, align int) {
	t.Helper()
	if len(k.hits) < n {
		k.hits = make([]atomic.Int32, n)
	}
	for i := range k.hits {
		k.hits[i].Store(0)
	}
	for i := range k.runs {
		k.runs[i].Store(0)
	}
	got := w.parallel(k, n, c, align)
	want := 1
	per := n
	if c > 1 {
		per = (n + c - 1) / c
		per = (per + align - 1) &^ (align - 1)
		want = (n + per - 1) / per
	}
	if got != want {
		t.Fatalf("parallel(n=%d, c=%d, align=%d) ran %d chunks, expected %d", n, c, align, got, want)
	}
	for ch := 0; ch < maxChunks; ch++ {
		runs := k.runs[ch].Load()
		if ch >= want {
			if runs != 0 {
				t.Fatalf("n=%d c=%d: chunk %d of %d ran %d times", n, c, ch, want, runs)
			}
			continue
		}
		lo, hi := int64(ch*per), int64(min((ch+1)*per, n))
		if runs != 1 || k.lo[ch].Load() != lo || k.hi[ch].Load() != hi {
			t.Fatalf("n=%d c=%d: chunk %d ran %d times over [%d, %d), expected once over [%d, %d)",
				n, c, ch, runs, k.lo[ch].Load(), k.hi[ch].Load(), lo, hi)
		}
	}
	for i := 0; i < n; i++ {
		if h := k.hits[i].Load(); h != 1 {
			t.Fatalf("n=%d c=%d: item %d visited %d times", n, c, i, h)
		}
	}
}

// TestWorkersRunEveryChunkOnce makes thousands of calls back to back and
// with pauses (so that helpers are caught polling, parked and waking
// late), with more helpers than cores too: every chunk must run exactly
// once over its fixed range, whoever takes it.
func TestWorkersRunEveryChunkOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprint("workers", n), func(t *testing.T) {
			w := newWorkers(n)
			defer w.stop()
			k := &coverKern{}
			r := uint32(12345)
			rnd := func(m int) int { r = r*1664525 + 1013904223; return int(r>>8) % m }
			calls := 3000
			if testing.Short() {
				calls = 300
			}
			for i := 0; i < calls; i++ {
				items := 1 + rnd(600)
				c := 1 + rnd(n+1)
				align := 1 << rnd(5)
				k.spin = rnd(3) * 40
				checkCall(t, w, k, items, c, align)
				switch rnd(8) {
				case 0:
					time.Sleep(time.Duration(rnd(200)) * time.Microsecond)
				case 1:
					for j := 0; j < rnd(20000); j++ {
						k.sink.Add(1)
					}
				}
			}
		})
	}
}

// TestWorkersAfterStop checks that a call made after the helpers stopped
// (polling or parked) still runs every chunk, on the caller.
func TestWorkersAfterStop(t *testing.T) {
	for _, pause := range []time.Duration{0, time.Millisecond} {
		w := newWorkers(4)
		k := &coverKern{}
		checkCall(t, w, k, 100, 4, 1)
		time.Sleep(pause)
		w.stop()
		w.stop() // idempotent
		checkCall(t, w, k, 100, 4, 1)
	}
}

// TestWorkersNoAllocs checks that a split call makes no heap allocation,
// whether the helper is still polling or has parked.
func TestWorkersNoAllocs(t *testing.T) {
	w := newWorkers(2)
	defer w.stop()
	k := &coverKern{hits: make([]atomic.Int32, 256)}
	if a := testing.AllocsPerRun(200, func() { w.parallel(k, 256, 2, 16) }); a != 0 {
		t.Errorf("back to back: %v allocations per call, expected 0", a)
	}
	if a := testing.AllocsPerRun(20, func() {
		time.Sleep(200 * time.Microsecond)
		w.parallel(k, 256, 2, 16)
	}); a != 0 {
		t.Errorf("after a pause: %v allocations per call, expected 0", a)
	}
}

// TestWorkersBusyRunsSameChunks: a call that finds the workers busy
// (another goroutine's call in progress) runs on its caller, over the
// same chunks with the same ranges as a call that gets them.
func TestWorkersBusyRunsSameChunks(t *testing.T) {
	w := newWorkers(4)
	defer w.stop()
	k := &coverKern{}
	w.mu.Lock() // as a call of another goroutine would hold it
	for _, n := range []int{2, 17, 100, 600} {
		for c := 2; c <= 4; c++ {
			checkCall(t, w, k, n, c, 1+n%3)
		}
	}
	w.mu.Unlock()
	checkCall(t, w, k, 100, 4, 1)
}

// partsKern records which parts of a GEMM-style job (gemm.Parts) ran.
type partsKern struct {
	runs []atomic.Int32
	spin int
	sink atomic.Int64
}

func (p *partsKern) Part(t int) {
	p.runs[t].Add(1)
	s := 0
	for j := 0; j < p.spin; j++ {
		s += j ^ t
	}
	p.sink.Add(int64(s))
}

// TestWorkersRunParts checks Run, the GEMM's way onto the workers: every
// part runs exactly once, with several goroutines calling at once (each
// call that finds the workers busy runs on its caller) and mixed with
// kernel calls.
func TestWorkersRunParts(t *testing.T) {
	w := newWorkers(3)
	defer w.stop()
	calls := 2000
	if testing.Short() {
		calls = 200
	}
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &partsKern{runs: make([]atomic.Int32, 16)}
			k := &coverKern{}
			for i := 0; i < calls; i++ {
				parts := 1 + (i*7+g)%16
				p.spin = (i % 3) * 50
				for j := range p.runs {
					p.runs[j].Store(0)
				}
				w.Run(p, parts)
				for j := range p.runs {
					want := int32(0)
					if j < parts {
						want = 1
					}
					if got := p.runs[j].Load(); got != want {
						t.Errorf("goroutine %d call %d: part %d of %d ran %d times", g, i, j, parts, got)
						return
					}
				}
				if g == 0 && i%4 == 0 {
					checkCall(t, w, k, 1+i%300, 1+i%3, 1)
				}
			}
		}()
	}
	wg.Wait()
}

// TestWorkersRunNoAllocs: Run makes no heap allocation.
func TestWorkersRunNoAllocs(t *testing.T) {
	w := newWorkers(2)
	defer w.stop()
	p := &partsKern{runs: make([]atomic.Int32, 8)}
	if a := testing.AllocsPerRun(200, func() { w.Run(p, 8) }); a != 0 {
		t.Errorf("%v allocations per call, expected 0", a)
	}
}

// TestSharedWorkersOutliveClose: the process's workers, which every
// device and the GEMM share, are not stopped by closing a device, so a
// device opened after another was closed still splits its work.
func TestSharedWorkersOutliveClose(t *testing.T) {
	d := New()
	if d.w != sharedWorkers() {
		t.Fatal("New did not use the shared workers")
	}
	must(t, d.Close())
	if sharedWorkers().quit.Load() {
		t.Fatal("closing a device stopped the shared workers")
	}
}

// TestGemmOnSharedWorkers: products split over the shared workers (the
// backend's Pool for the GEMM) have the bits of the same products on the
// GEMM package's own goroutines, for the CNN's shapes (split by entry and
// by tiles) and one split along k.
func TestGemmOnSharedWorkers(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(5, 6))
	type shape struct {
		ta, tb         bool
		m, n, k, batch int
		sa, sb         bool // operand shared (stride 0)
	}
	shapes := []shape{
		{false, false, 32, 784, 288, 2, true, false},
		{false, true, 32, 288, 784, 2, false, false},
		{true, false, 288, 784, 32, 2, true, false},
		{false, false, 64, 196, 576, 4, true, false},
		{false, false, 64, 3136, 128, 1, false, false},
		{false, true, 64, 128, 3136, 1, false, false},
		{false, true, 32, 9, 784, 64, false, false},
		{true, false, 9, 33, 20000, 1, false, false},
	}
	for _, s := range shapes {
		sa, sb := s.m*s.k, s.k*s.n
		na, nb := s.batch*sa, s.batch*sb
		if s.sa {
			sa, na = 0, s.m*s.k
		}
		if s.sb {
			sb, nb = 0, s.k*s.n
		}
		a := upload(t, d, randVec(r, na, -1, 1))
		b := upload(t, d, randVec(r, nb, -1, 1))
		run := func() []float32 {
			c := upload(t, d, make([]float32, s.batch*s.m*s.n))
			must(t, d.GemmBatched(s.ta, s.tb, s.m, s.n, s.k, 1, a, sa, b, sb, 0, c, s.m*s.n, s.batch))
			return download(t, d, c)
		}
		shared := run()
		gemm.SetPool(nil)
		own := run()
		gemm.SetPool(sharedWorkers())
		for i := range own {
			if math.Float32bits(own[i]) != math.Float32bits(shared[i]) {
				t.Fatalf("%+v [%d]: %v on the shared workers, %v on the GEMM's own", s, i, shared[i], own[i])
			}
		}
	}
}

// pairKern's two chunks each wait (up to a deadline) until the other has
// started: the call completes in time only if two goroutines ran them at
// once, that is, if the helper took one.
type pairKern struct {
	started  atomic.Int32
	timedOut atomic.Bool
}

func (k *pairKern) run(_, _, _ int) {
	k.started.Add(1)
	for end := time.Now().Add(5 * time.Second); k.started.Load() < 2; {
		if time.Now().After(end) {
			k.timedOut.Store(true)
			return
		}
		runtime.Gosched()
	}
}

// TestWorkersHush checks hush: a hushed helper parks — its polling
// window is an hour here, so only hush can make it park within the 10 s
// the test waits — and is woken by the next call, alike with hush still
// on and after it is lifted: each call's two chunks must run at once, one
// on the helper. A hush that did nothing, that stopped the helper instead
// of parking it, or parked it where no call wakes it, fails here.
func TestWorkersHush(t *testing.T) {
	w := newWorkersSpin(2, time.Hour)
	defer w.stop()
	pair := func(what string) {
		t.Helper()
		k := &pairKern{}
		w.parallel(k, 2, 2, 1)
		if k.started.Load() != 2 {
			t.Fatalf("%s: a chunk did not run", what)
		}
		if k.timedOut.Load() {
			t.Fatalf("%s: the two chunks did not run at once (no helper took one within 5 s)", what)
		}
		if !w.mu.TryLock() {
			t.Fatalf("%s: workers still locked after the call", what)
		}
		w.mu.Unlock()
	}
	parked := func() bool {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Microsecond) {
			if w.sleeping[1].Load() == 1 {
				return true
			}
		}
		return false
	}
	for round := 0; round < 20; round++ {
		t0 := time.Now()
		pair("before hush")
		w.hush(true)
		if !parked() {
			t.Fatal("hushed helper never parked")
		}
		if round == 0 {
			t.Logf("parked %v after the call", time.Since(t0))
		}
		pair("hushed")
		w.hush(false)
		pair("after hush")
	}
}
