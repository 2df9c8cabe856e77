package cpu

import (
	"math"
	"sync/atomic"
	"testing"

	"github.com/kilnml/kiln/device"
)

// TestReduceSplitIndependent: a reduction's chunks are fixed by its size,
// not by the number of workers, so Sum, SumSquares, Loss and
// CrossEntropy give the same bits on 1, 2 and 4 workers. The data make
// the chunking visible: 2⁶⁰ first, −2⁶⁰ in the middle, then 1 — one
// chunk keeps the 1, two chunks split at the middle lose it (a reviewer's
// reproducer of the old cap at the worker count, which this test catches).
func TestReduceSplitIndependent(t *testing.T) {
	const n = 1 << 18
	x := make([]float32, n)
	x[0], x[n/2], x[n/2+1] = 1<<60, -(1 << 60), 1
	for i := 3; i < n; i += 7 {
		if i != n/2 && i != n/2+1 {
			x[i] = float32(i%13) * 0.001
		}
	}
	const rows, cols = 4096, 64 // for the losses: rows of logits
	logits := make([]float32, rows*cols)
	for i := range logits {
		logits[i] = float32((i*7919)%101)*0.05 - 2.5
	}
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(i % cols)
	}
	run := func(workers int) []uint32 {
		d := &Device{w: newWorkers(workers)}
		d.pool.init()
		defer d.Close()
		up := func(v []float32) device.Buffer {
			b, err := d.Alloc(device.Float32, len(v))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.WriteF32(b, 0, v); err != nil {
				t.Fatal(err)
			}
			return b
		}
		xb, lb, out := up(x), up(logits), up([]float32{0})
		lab, err := d.Alloc(device.Int32, rows)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteI32(lab, 0, labels); err != nil {
			t.Fatal(err)
		}
		grad := up(make([]float32, rows*cols))
		var got []uint32
		read := func() {
			h := []float32{0}
			if err := d.ReadF32(h, out, 0); err != nil {
				t.Fatal(err)
			}
			got = append(got, math.Float32bits(h[0]))
		}
		for _, f := range []func() error{
			func() error { return d.Sum(xb, n, out, 0) },
			func() error { return d.SumSquares(lb, rows*cols, out, 0) },
			func() error { return d.Loss(device.MSE, lb, xb, rows, cols, out, grad) },
			func() error { return d.CrossEntropy(lb, lab, rows, cols, -1, out, grad) },
		} {
			if err := f(); err != nil {
				t.Fatal(err)
			}
			read()
		}
		return got
	}
	one := run(1)
	for _, w := range []int{2, 4} {
		got := run(w)
		for i := range one {
			if got[i] != one[i] {
				t.Errorf("reduction %d: %d workers give %v, one worker %v", i, w, math.Float32frombits(got[i]), math.Float32frombits(one[i]))
			}
		}
	}
}

// panicKern panics in chunk 0 and counts the chunks it ran.
type panicKern struct{ ran atomic.Int32 }

func (k *panicKern) run(chunk, lo, hi int) {
	k.ran.Add(1)
	if chunk == 0 {
		panic("chunk 0")
	}
}

// countKern counts its chunks.
type countKern struct{ ran atomic.Int32 }

func (k *countKern) run(chunk, lo, hi int) { k.ran.Add(1) }

// TestWorkersSurvivePanic: a chunk that panics on the caller, recovered
// there, leaves the workers unlocked with no call open, so the next
// call runs on them as before (not serially on its caller for good, which
// a shared pool left locked would do to every device in the process).
func TestWorkersSurvivePanic(t *testing.T) {
	w := newWorkers(2)
	defer w.stop()
	func() {
		defer func() {
			if r := recover(); r != "chunk 0" {
				t.Fatalf("recovered %v, want the chunk's panic", r)
			}
		}()
		w.parallel(&panicKern{}, 64, 4, 1)
	}()
	if !w.mu.TryLock() {
		t.Fatal("the workers' lock is still held after the panic")
	}
	w.mu.Unlock()
	if g := w.gen.Load(); g&1 != 0 {
		t.Fatalf("a call is still open (gen %d)", g)
	}
	var k countKern
	if c := w.parallel(&k, 64, 4, 1); c != 4 || k.ran.Load() != 4 {
		t.Fatalf("the next call ran %d of %d chunks", k.ran.Load(), c)
	}
}
