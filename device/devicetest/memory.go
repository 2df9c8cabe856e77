package devicetest

import (
	"errors"
	"testing"

	"github.com/kilnml/kiln/device"
)

func (s *suite) testMemory(t *testing.T) {
	t.Run("Info", func(t *testing.T) {
		if s.dev.Name() == "" {
			t.Errorf("Name() is empty")
		}
		if info := s.dev.Info(); info.Backend == "" || info.Spec == "" {
			t.Errorf("Info() = %+v; want Spec and Backend set", info)
		}
		do(t, "Sync", s.dev.Sync)
	})
	t.Run("AllocZeroed", s.testAllocZeroed)
	t.Run("WriteRead", s.testWriteRead)
	t.Run("View", s.testView)
	t.Run("Copy", s.testCopy)
	t.Run("FreeReuse", s.testFreeReuse)
	t.Run("Stats", s.testStats)
	t.Run("OutOfMemory", s.testOOM)
}

// testAllocZeroed checks dtype, length and zero contents, also for a buffer
// that the pool hands out again after it held data.
func (s *suite) testAllocZeroed(t *testing.T) {
	for _, n := range []int{1, 7, 1000, 4099} {
		b := s.alloc(t, device.Float32, n)
		if b.DType() != device.Float32 || b.Len() != n || b.Device() != s.dev || b.Freed() {
			t.Errorf("Alloc(float32, %d): dtype %s, len %d, same device %v, freed %v",
				n, b.DType(), b.Len(), b.Device() == s.dev, b.Freed())
		}
		c := newChecker(t, "Alloc float32 contents")
		for i, v := range s.read(t, b, n) {
			c.equal(i, v, 0)
		}
		c.done()

		bi := s.alloc(t, device.Int32, n)
		if bi.DType() != device.Int32 || bi.Len() != n {
			t.Errorf("Alloc(int32, %d): dtype %s, len %d", n, bi.DType(), bi.Len())
		}
		for i, v := range s.readI32(t, bi, n) {
			if v != 0 {
				t.Errorf("Alloc(int32, %d)[%d] = %d, want 0", n, i, v)
				break
			}
		}
	}
	// Dirty the memory, free it, allocate the same size: a pooled buffer
	// must come back zeroed.
	for _, dt := range []device.DType{device.Float32, device.Int32} {
		const n = 3001
		b := s.alloc(t, dt, n)
		if dt == device.Float32 {
			s.write(t, b, filled(n, 7.5))
		} else {
			ones := make([]int32, n)
			for i := range ones {
				ones[i] = -3
			}
			do(t, "WriteI32", func() error { return s.dev.WriteI32(b, 0, ones) })
		}
		do(t, "Free", func() error { return s.dev.Free(b) })
		b2 := s.alloc(t, dt, n)
		if dt == device.Float32 {
			for i, v := range s.read(t, b2, n) {
				if v != 0 {
					t.Errorf("re-Alloc(float32, %d)[%d] = %v after the pool held data: want 0", n, i, v)
					break
				}
			}
		} else {
			for i, v := range s.readI32(t, b2, n) {
				if v != 0 {
					t.Errorf("re-Alloc(int32, %d)[%d] = %d after the pool held data: want 0", n, i, v)
					break
				}
			}
		}
	}
}

func (s *suite) testWriteRead(t *testing.T) {
	r := newRand(t)
	const n = 37
	b := s.alloc(t, device.Float32, n)
	x := uniform(r, n, -5, 5)
	s.write(t, b, x)
	// Overwrite a middle run at an offset; the rest must stay.
	part := uniform(r, 9, 10, 20)
	do(t, "WriteF32 at offset 11", func() error { return s.dev.WriteF32(b, 11, part) })
	copy(x[11:], part)
	c := newChecker(t, "ReadF32 after WriteF32 at offset")
	for i, v := range s.read(t, b, n) {
		c.equal(i, v, x[i])
	}
	c.done()
	// Read a run at an offset, up to the last element.
	got := make([]float32, 6)
	do(t, "ReadF32 at offset 31", func() error { return s.dev.ReadF32(got, b, 31) })
	c = newChecker(t, "ReadF32 at offset 31")
	for i, v := range got {
		c.equal(i, v, x[31+i])
	}
	c.done()

	// int32 round trip with offsets.
	bi := s.alloc(t, device.Int32, n)
	xi := make([]int32, n)
	for i := range xi {
		xi[i] = int32(r.IntN(1<<31)) - 1<<30
	}
	do(t, "WriteI32", func() error { return s.dev.WriteI32(bi, 0, xi) })
	pi := []int32{-1, 2147483647, -2147483648}
	do(t, "WriteI32 at offset 34", func() error { return s.dev.WriteI32(bi, 34, pi) })
	copy(xi[34:], pi)
	gi := make([]int32, n-2)
	do(t, "ReadI32 at offset 2", func() error { return s.dev.ReadI32(gi, bi, 2) })
	for i, v := range gi {
		if v != xi[2+i] {
			t.Errorf("ReadI32 at offset 2: [%d] = %d, want %d", i, v, xi[2+i])
			break
		}
	}
}

func (s *suite) testView(t *testing.T) {
	r := newRand(t)
	const n = 50
	b := s.alloc(t, device.Float32, n)
	x := uniform(r, n, -1, 1)
	s.write(t, b, x)
	var v device.Buffer
	do(t, "View(b, 10, 20)", func() error {
		var err error
		v, err = s.dev.View(b, 10, 20)
		return err
	})
	if v.Len() != 20 || v.DType() != device.Float32 || v.Device() != s.dev || v.Freed() {
		t.Fatalf("View(b, 10, 20): len %d, dtype %s, same device %v, freed %v", v.Len(), v.DType(), v.Device() == s.dev, v.Freed())
	}
	c := newChecker(t, "ReadF32(view)")
	for i, g := range s.read(t, v, 20) {
		c.equal(i, g, x[10+i])
	}
	c.done()
	// Writes through the view show in the parent …
	w := uniform(r, 5, 3, 4)
	do(t, "WriteF32(view, 2)", func() error { return s.dev.WriteF32(v, 2, w) })
	copy(x[12:], w)
	// … and writes to the parent show in the view.
	do(t, "WriteF32(parent, 25)", func() error { return s.dev.WriteF32(b, 25, []float32{-9}) })
	x[25] = -9
	c = newChecker(t, "parent after write through view")
	for i, g := range s.read(t, b, n) {
		c.equal(i, g, x[i])
	}
	c.done()
	if g := s.read(t, v, 20); g[15] != -9 {
		t.Errorf("view[15] = %v after writing -9 to parent[25]", g[15])
	}
	// A primitive on a view touches only the view: Fill the view.
	do(t, "Fill(view)", func() error { return s.dev.Fill(v, 20, 2) })
	for i := 10; i < 30; i++ {
		x[i] = 2
	}
	c = newChecker(t, "parent after Fill(view)")
	for i, g := range s.read(t, b, n) {
		c.equal(i, g, x[i])
	}
	c.done()
	// A view of a view.
	var vv device.Buffer
	do(t, "View(view, 5, 3)", func() error {
		var err error
		vv, err = s.dev.View(v, 5, 3)
		return err
	})
	do(t, "WriteF32(view of view)", func() error { return s.dev.WriteF32(vv, 0, []float32{1, 2, 3}) })
	if g := s.read(t, b, n); g[15] != 1 || g[16] != 2 || g[17] != 3 {
		t.Errorf("parent[15:18] = %v after writing 1,2,3 to View(View(b,10,20),5,3)", g[15:18])
	}
	// Freeing the parent frees its views.
	do(t, "Free(parent)", func() error { return s.dev.Free(b) })
	if !v.Freed() || !vv.Freed() {
		t.Errorf("after Free(parent): view.Freed() = %v, view of view Freed() = %v; want true", v.Freed(), vv.Freed())
	}
}

func (s *suite) testCopy(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{1, 1000, 4097} {
		src := s.upload(t, uniform(r, n+3, -2, 2))
		dstHost := uniform(r, n+5, 5, 6)
		dst := s.upload(t, dstHost)
		do(t, "Copy", func() error { return s.dev.Copy(dst, src, n) })
		want := append([]float32(nil), dstHost...)
		copy(want, s.read(t, src, n))
		c := newChecker(t, "Copy(dst, src, n)")
		for i, g := range s.read(t, dst, n+5) {
			c.equal(i, g, want[i])
		}
		c.done()
	}
	// int32 copy, between views.
	xi := []int32{1, -2, 3, -4, 5, -6, 7, -8}
	a := s.uploadI32(t, xi)
	b := s.alloc(t, device.Int32, 8)
	var va, vb device.Buffer
	do(t, "View", func() error {
		var err error
		if va, err = s.dev.View(a, 2, 4); err != nil {
			return err
		}
		vb, err = s.dev.View(b, 4, 4)
		return err
	})
	do(t, "Copy int32 views", func() error { return s.dev.Copy(vb, va, 4) })
	got := s.readI32(t, b, 8)
	want := []int32{0, 0, 0, 0, 3, -4, 5, -6}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Copy int32 between views: got %v, want %v", got, want)
			break
		}
	}
}

// testFreeReuse checks that a freed handle stays freed after its memory is
// handed out again, and that the new buffer is independent of it.
func (s *suite) testFreeReuse(t *testing.T) {
	b := s.alloc(t, device.Float32, 512)
	do(t, "Free", func() error { return s.dev.Free(b) })
	if !b.Freed() {
		t.Errorf("Freed() = false after Free")
	}
	b2 := s.alloc(t, device.Float32, 512)
	if !b.Freed() {
		t.Errorf("old handle Freed() = false after its memory was reallocated")
	}
	if b2.Freed() {
		t.Errorf("new buffer Freed() = true")
	}
	err := protect(func() error { return s.dev.Fill(b, 512, 1) })
	if !errors.Is(err, device.ErrFreed) {
		t.Errorf("Fill on the old handle after reuse: got %v, want ErrFreed", err)
	}
	for i, v := range s.read(t, b2, 512) {
		if v != 0 {
			t.Errorf("new buffer[%d] = %v: the old handle wrote into it", i, v)
			break
		}
	}
}

func (s *suite) testStats(t *testing.T) {
	const n = 12347
	s0 := s.dev.Stats()
	b := s.alloc(t, device.Float32, n)
	s1 := s.dev.Stats()
	if d := s1.InUse - s0.InUse; d < 4*n {
		t.Errorf("InUse grew by %d bytes for a %d-element float32 buffer; want ≥ %d", d, n, 4*n)
	}
	if s1.Peak < s1.InUse || s1.Peak < s0.Peak {
		t.Errorf("Peak %d after Alloc; want ≥ InUse %d and ≥ previous Peak %d", s1.Peak, s1.InUse, s0.Peak)
	}
	if s1.Allocs != s0.Allocs+1 {
		t.Errorf("Allocs went %d → %d over one Alloc", s0.Allocs, s1.Allocs)
	}
	do(t, "Free", func() error { return s.dev.Free(b) })
	s2 := s.dev.Stats()
	if s2.InUse != s0.InUse {
		t.Errorf("InUse %d after Free; want %d as before the Alloc", s2.InUse, s0.InUse)
	}
	if s2.Peak != s1.Peak {
		t.Errorf("Peak changed %d → %d on Free", s1.Peak, s2.Peak)
	}
	// The same size again must come from the pool.
	b2 := s.alloc(t, device.Float32, n)
	s3 := s.dev.Stats()
	if s3.SystemAllocs != s2.SystemAllocs {
		t.Errorf("SystemAllocs went %d → %d re-allocating a freed size: want pool reuse", s2.SystemAllocs, s3.SystemAllocs)
	}
	if s3.InUse != s1.InUse {
		t.Errorf("InUse %d after re-Alloc; want %d as after the first", s3.InUse, s1.InUse)
	}
	// A steady "step" that allocates and frees the same sizes must not
	// reach the system after its first round.
	step := func() {
		bs := []device.Buffer{s.alloc(t, device.Float32, 100), s.alloc(t, device.Float32, 2048), s.alloc(t, device.Int32, 64)}
		for _, x := range bs {
			do(t, "Free", func() error { return s.dev.Free(x) })
		}
	}
	step()
	sa := s.dev.Stats()
	step()
	step()
	if sb := s.dev.Stats(); sb.SystemAllocs != sa.SystemAllocs {
		t.Errorf("SystemAllocs went %d → %d over two identical alloc/free rounds", sa.SystemAllocs, sb.SystemAllocs)
	}
	do(t, "Free", func() error { return s.dev.Free(b2) })
}

func (s *suite) testOOM(t *testing.T) {
	before := s.dev.Stats()
	for _, dt := range []device.DType{device.Float32, device.Int32} {
		var b device.Buffer
		err := protect(func() error {
			var err error
			b, err = s.dev.Alloc(dt, 1<<50)
			return err
		})
		if err == nil {
			t.Errorf("Alloc(%s, 1<<50) succeeded; want an OutOfMemoryError", dt)
			_ = protect(func() error { return s.dev.Free(b) })
			continue
		}
		var oom *device.OutOfMemoryError
		if !errors.As(err, &oom) {
			t.Errorf("Alloc(%s, 1<<50): got %v (%T); want an error satisfying errors.As(*device.OutOfMemoryError)", dt, err, err)
			continue
		}
		if oom.Requested <= 0 {
			t.Errorf("OutOfMemoryError.Requested = %d; want > 0", oom.Requested)
		}
		if oom.Error() == "" {
			t.Errorf("OutOfMemoryError has an empty message")
		}
	}
	if after := s.dev.Stats(); after.InUse != before.InUse {
		t.Errorf("InUse went %d → %d over failed allocations", before.InUse, after.InUse)
	}
	// The device still works.
	b := s.upload(t, []float32{1, 2, 3})
	if g := s.read(t, b, 3); g[2] != 3 {
		t.Errorf("device broken after an out-of-memory error: read %v", g)
	}
}
