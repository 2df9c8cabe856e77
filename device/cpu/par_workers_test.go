package cpu

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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
