//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
)

// The caching allocator. Requests are rounded up to a size class: 512-byte
// steps up to 1 MiB, 2 MiB granules above. Freed blocks go to a free list
// per class and are handed out again for the same class, so a training
// step that allocates the same sizes as the step before never reaches
// cuMemAlloc (MemStats.SystemAllocs counts the calls that do). Reuse is
// safe without waiting for the GPU: every use of a block, old and new, is
// queued on the device's one stream, in order.
//
// When cuMemAlloc reports out-of-memory, the pool waits for the stream,
// returns every cached block to the driver and tries once more; if that
// fails too, Alloc returns a *device.OutOfMemoryError with the bytes asked
// for and the bytes the driver reports free.

const (
	smallLimit   = 1 << 20 // classes up to here step by smallGranule
	smallGranule = 512
	bigGranule   = 2 << 20
)

// sizeClass rounds a request in bytes up to its class.
func sizeClass(bytes int64) int64 {
	if bytes <= smallLimit {
		return (bytes + smallGranule - 1) / smallGranule * smallGranule
	}
	return (bytes + bigGranule - 1) / bigGranule * bigGranule
}

type pool struct {
	free  map[int64][]cu.DevicePtr // cached blocks by class
	all   map[cu.DevicePtr]int64   // every block obtained from cuMemAlloc, with its class
	stats device.MemStats
	sync  func() error // waits for the stream before blocks go back to the driver
}

func (p *pool) init() {
	p.free = map[int64][]cu.DevicePtr{}
	p.all = map[cu.DevicePtr]int64{}
}

// get returns a block of class bytes from the cache or the driver. The
// caller has made the context current.
func (p *pool) get(dev string, class int64, asked int64) (cu.DevicePtr, error) {
	if l := p.free[class]; len(l) > 0 {
		ptr := l[len(l)-1]
		p.free[class] = l[:len(l)-1]
		p.stats.Cached -= class
		return ptr, nil
	}
	ptr, err := cu.MemAlloc(class)
	if err != nil && errors.Is(err, cu.OutOfMemory) && p.stats.Cached > 0 {
		if err := p.releaseCache(); err != nil {
			return 0, err
		}
		ptr, err = cu.MemAlloc(class)
	}
	if err != nil {
		if errors.Is(err, cu.OutOfMemory) {
			free, _, _ := cu.MemInfo()
			return 0, &device.OutOfMemoryError{Device: dev, Requested: asked, Free: free}
		}
		return 0, fmt.Errorf("cuda: allocating %d bytes on %s (cuMemAlloc): %w", class, dev, err)
	}
	p.stats.SystemAllocs++
	p.all[ptr] = class
	return ptr, nil
}

// put returns a block to the cache.
func (p *pool) put(ptr cu.DevicePtr, class int64) {
	p.free[class] = append(p.free[class], ptr)
	p.stats.Cached += class
}

// releaseCache waits for the stream and gives every cached block back to
// the driver.
func (p *pool) releaseCache() error {
	if p.sync != nil {
		if err := p.sync(); err != nil {
			return err
		}
	}
	var errs []error
	for class, l := range p.free {
		for _, ptr := range l {
			if err := cu.MemFree(ptr); err != nil {
				errs = append(errs, fmt.Errorf("cuda: freeing a cached block of %d bytes (cuMemFree): %w", class, err))
			}
			delete(p.all, ptr)
			p.stats.Cached -= class
		}
		delete(p.free, class)
	}
	return errors.Join(errs...)
}

// releaseAll frees every block ever obtained, cached or in use (Close).
func (p *pool) releaseAll() error {
	var errs []error
	for ptr, class := range p.all {
		if err := cu.MemFree(ptr); err != nil {
			errs = append(errs, fmt.Errorf("cuda: freeing a block of %d bytes (cuMemFree): %w", class, err))
		}
	}
	p.init()
	p.stats.Cached = 0
	return errors.Join(errs...)
}

// allocation is one Alloc's memory. Its views share it, so that freeing the
// owner frees them all. A new Alloc of recycled memory gets a new
// allocation, so a stale handle stays freed.
type allocation struct {
	ptr   cu.DevicePtr
	class int64
	n     int // elements
	freed bool
	lbl   labelRange // int32 buffers: what the host knows of their values
}

// buffer is a CUDA buffer or a view of one.
type buffer struct {
	dev  *Device
	a    *allocation
	off  int // elements from a.ptr
	n    int
	dt   device.DType
	view bool
}

func (b *buffer) Device() device.Device { return b.dev }
func (b *buffer) DType() device.DType   { return b.dt }
func (b *buffer) Len() int              { return b.n }

// Freed reports whether the buffer, or the buffer it views, was freed, or
// its device closed. It is safe on a nil *buffer.
func (b *buffer) Freed() bool {
	if b == nil || b.a == nil || b.dev == nil {
		return true
	}
	return b.a.freed || b.dev.closed
}

// ptr is the device address of the buffer's first element.
func (b *buffer) ptr() cu.DevicePtr { return b.a.ptr + cu.DevicePtr(b.off*b.dt.Size()) }

// at is the device address of element i.
func (b *buffer) at(i int) cu.DevicePtr { return b.a.ptr + cu.DevicePtr((b.off+i)*b.dt.Size()) }

// Alloc returns a zeroed buffer of n elements (float32 or int32) from the
// pool; the zeroing (cuMemsetD32Async) is queued on the stream.
func (d *Device) Alloc(dt device.DType, n int) (device.Buffer, error) {
	const op = "Alloc"
	if d.closed {
		return nil, d.errClosed(op)
	}
	if dt != device.Float32 && dt != device.Int32 {
		return nil, device.Errorf(op, "dtype", device.ErrDType, "expected float32 or int32, got %s", dt)
	}
	if n < 1 {
		return nil, device.Errorf(op, "n", device.ErrInvalid, "expected n ≥ 1 elements, got %d", n)
	}
	if n > math.MaxInt64/8 || int64(n)*4 > d.info.Memory {
		// More than the GPU has: no point in emptying the cache first.
		free := int64(0)
		if d.enter() == nil {
			free, _, _ = cu.MemInfo()
			d.leave()
		}
		asked := int64(math.MaxInt64)
		if n <= math.MaxInt64/8 {
			asked = int64(n) * 4
		}
		return nil, &device.OutOfMemoryError{Device: d.spec, Requested: asked, Free: free}
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	bytes := int64(n) * int64(dt.Size())
	class := sizeClass(bytes)
	ptr, err := d.pool.get(d.spec, class, bytes)
	if err != nil {
		return nil, err
	}
	if err := cu.MemsetD32Async(ptr, 0, int64(n), d.stream); err != nil {
		d.pool.put(ptr, class)
		return nil, fmt.Errorf("cuda: Alloc: zeroing %d bytes on %s (cuMemsetD32Async): %w", bytes, d.spec, err)
	}
	a := &allocation{ptr: ptr, class: class, n: n}
	if dt == device.Int32 {
		a.lbl = labelRange{known: true, oneNeg: true} // all zeros
	}
	st := &d.pool.stats
	st.Allocs++
	st.InUse += class
	if st.InUse > st.Peak {
		st.Peak = st.InUse
	}
	return &buffer{dev: d, a: a, n: n, dt: dt}, nil
}

// own returns b as one of this device's live buffers, or the error
// device.CheckBuf gives for it.
func (d *Device) own(op, arg string, b device.Buffer) (*buffer, error) {
	if b == nil {
		return nil, device.Errorf(op, arg, device.ErrNilBuffer, "expected a buffer, got nil")
	}
	if b.Freed() {
		return nil, device.Errorf(op, arg, device.ErrFreed, "the buffer was freed before this call")
	}
	bb, ok := b.(*buffer)
	if !ok || bb.dev != d {
		return nil, device.Errorf(op, arg, device.ErrDeviceMismatch, "expected a buffer of %s, got one of %s", d.spec, b.Device().Name())
	}
	return bb, nil
}

// Free returns an owning buffer's memory to the pool. Freeing twice or
// freeing a view is an error.
func (d *Device) Free(b device.Buffer) error {
	const op = "Free"
	if d.closed {
		return d.errClosed(op)
	}
	bb, err := d.own(op, "b", b)
	if err != nil {
		return err
	}
	if bb.view {
		return device.Errorf(op, "b", device.ErrInvalid, "expected an owning buffer, got a view (free its parent instead)")
	}
	bb.a.freed = true
	d.pool.put(bb.a.ptr, bb.a.class)
	d.pool.stats.InUse -= bb.a.class
	return nil
}

// View returns n elements of b from element off, sharing b's memory.
func (d *Device) View(b device.Buffer, off, n int) (device.Buffer, error) {
	const op = "View"
	if d.closed {
		return nil, d.errClosed(op)
	}
	bb, err := d.own(op, "b", b)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 1 {
		return nil, device.Errorf(op, "", device.ErrInvalid, "expected off ≥ 0 and n ≥ 1, got off=%d n=%d", off, n)
	}
	if off > bb.n-n {
		return nil, device.Errorf(op, "b", device.ErrSize, "expected at least off+n = %d elements, got %d", off+n, bb.n)
	}
	return &buffer{dev: d, a: bb.a, off: bb.off + off, n: n, dt: bb.dt, view: true}, nil
}

// wsBlock is the device's scratch buffer, taken from the pool and kept: it
// grows (the old block goes back to the cache) and never shrinks.
type wsBlock struct {
	ptr   cu.DevicePtr
	class int64
}

// workspace returns at least bytes of scratch memory, valid until the next
// call (every user is on the same stream, so reuse is ordered). The caller
// has made the context current.
func (d *Device) workspace(bytes int64) (cu.DevicePtr, error) {
	if bytes <= d.ws.class && d.ws.ptr != 0 {
		return d.ws.ptr, nil
	}
	class := sizeClass(max(bytes, 64<<10))
	ptr, err := d.pool.get(d.spec, class, class)
	if err != nil {
		return 0, fmt.Errorf("cuda: growing the scratch workspace to %d bytes: %w", class, err)
	}
	if d.ws.ptr != 0 {
		d.pool.put(d.ws.ptr, d.ws.class)
	}
	d.ws = wsBlock{ptr: ptr, class: class}
	return ptr, nil
}
