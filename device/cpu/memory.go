package cpu

import (
	"math"
	"math/bits"
	"runtime/debug"

	"github.com/kilnml/kiln/device"
)

// buffer is a CPU buffer: a Go slice of float32 or int32. A view points at
// its root buffer, whose freed flag it shares.
type buffer struct {
	dev   *Device
	dt    device.DType
	f     []float32 // Float32 data (len = Len())
	i     []int32   // Int32 data
	root  *buffer   // the owning buffer; itself for an owner
	freed bool      // meaningful on the root only
	class int       // pool size class (elements) of the owner's backing array
}

func (b *buffer) Device() device.Device { return b.dev }
func (b *buffer) DType() device.DType   { return b.dt }

func (b *buffer) Len() int {
	if b.dt == device.Int32 {
		return len(b.i)
	}
	return len(b.f)
}

// Freed reports whether the buffer, or the buffer it views, was freed, or
// its device closed. It is safe on a nil *buffer.
func (b *buffer) Freed() bool {
	if b == nil || b.root == nil {
		return true
	}
	return b.root.freed || b.dev.closed
}

func (b *buffer) isView() bool { return b.root != b }

// minClass is the smallest pool size class in elements (256 bytes).
const minClass = 64

// sizeClass rounds n up to its pool size class: 64 elements, then each
// power of two split into four steps, so a class wastes at most 25%.
func sizeClass(n int) int {
	if n <= minClass {
		return minClass
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n ≤ 2^k
	base := 1 << (k - 1)
	step := base / 4
	return base + (n-base+step-1)/step*step
}

// pool keeps freed backing arrays by dtype and size class, so that a
// training loop's buffers are recycled instead of freshly allocated (page
// faults cost about 14 µs each on the development VMs).
type pool struct {
	f32   map[int][][]float32
	i32   map[int][][]int32
	stats device.MemStats
}

func (p *pool) init() {
	p.f32 = map[int][][]float32{}
	p.i32 = map[int][][]int32{}
}

// drop forgets every cached array, for the garbage collector to reclaim.
func (p *pool) drop() {
	p.init()
	p.stats.Cached = 0
}

// bigAlloc is the request size (bytes) from which Alloc checks
// MemAvailable before asking the Go runtime: below it, reading
// /proc/meminfo would cost more than the allocation.
const bigAlloc = 16 << 20

// Alloc returns a zeroed buffer of n elements, reusing a cached array of
// the same size class when there is one.
func (d *Device) Alloc(dt device.DType, n int) (device.Buffer, error) {
	if d.closed {
		return nil, errClosed("Alloc")
	}
	if dt != device.Float32 && dt != device.Int32 {
		return nil, device.Errorf("Alloc", "dtype", device.ErrDType, "expected float32 or int32, got %s", dt)
	}
	if n < 1 {
		return nil, device.Errorf("Alloc", "n", device.ErrInvalid, "expected n ≥ 1 elements, got %d", n)
	}
	if n > math.MaxInt64/8 {
		_, avail := memInfo()
		return nil, &device.OutOfMemoryError{Device: BackendName, Requested: math.MaxInt64, Free: avail}
	}
	c := sizeClass(n)
	bytes := int64(c) * 4
	b := &buffer{dev: d, dt: dt, class: c}
	b.root = b
	p := &d.pool
	reused := false
	if dt == device.Float32 {
		if l := p.f32[c]; len(l) > 0 {
			arr := l[len(l)-1]
			l[len(l)-1] = nil
			p.f32[c] = l[:len(l)-1]
			b.f = arr[:n]
			clear(b.f)
			reused = true
		}
	} else if l := p.i32[c]; len(l) > 0 {
		arr := l[len(l)-1]
		l[len(l)-1] = nil
		p.i32[c] = l[:len(l)-1]
		b.i = arr[:n]
		clear(b.i)
		reused = true
	}
	if reused {
		p.stats.Cached -= bytes
	} else {
		if err := d.sysAlloc(b, dt, n, c, bytes); err != nil {
			return nil, err
		}
		p.stats.SystemAllocs++
	}
	p.stats.Allocs++
	p.stats.InUse += bytes
	if p.stats.InUse > p.stats.Peak {
		p.stats.Peak = p.stats.InUse
	}
	return b, nil
}

// sysAlloc makes a fresh backing array, after checking that the system
// has the memory: make() of an impossible size would panic or kill the
// process, so a request larger than MemAvailable (after dropping the
// pool's cache) is refused with an OutOfMemoryError.
func (d *Device) sysAlloc(b *buffer, dt device.DType, n, c int, bytes int64) (err error) {
	if bytes >= bigAlloc {
		_, avail := memInfo()
		if avail > 0 && bytes > avail && d.pool.stats.Cached > 0 {
			d.pool.drop()
			debug.FreeOSMemory() // hand the dropped arrays back before re-reading
			_, avail = memInfo()
		}
		if avail > 0 && bytes > avail {
			return &device.OutOfMemoryError{Device: BackendName, Requested: bytes, Free: avail}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			_, avail := memInfo()
			err = &device.OutOfMemoryError{Device: BackendName, Requested: bytes, Free: avail}
		}
	}()
	if dt == device.Float32 {
		b.f = make([]float32, c)[:n]
	} else {
		b.i = make([]int32, c)[:n]
	}
	return nil
}

// Trim releases the pool's cached arrays to the garbage collector. It is
// for long-running programs that change working-set sizes.
func (d *Device) Trim() { d.pool.drop() }

// own returns b as one of this device's buffers, or the error CheckBuf
// gives for a buffer that is nil, freed or foreign.
func (d *Device) own(op, arg string, b device.Buffer) (*buffer, error) {
	if b == nil {
		return nil, device.Errorf(op, arg, device.ErrNilBuffer, "expected a buffer, got nil")
	}
	bb, ok := b.(*buffer)
	if !ok || bb == nil {
		return nil, device.Errorf(op, arg, device.ErrDeviceMismatch, "expected a buffer of cpu, got %T", b)
	}
	if bb.dev != d {
		if bb.Freed() {
			return nil, device.Errorf(op, arg, device.ErrFreed, "the buffer was freed before this call")
		}
		return nil, device.Errorf(op, arg, device.ErrDeviceMismatch, "expected a buffer of %s, got one of another %s device", d.Name(), bb.dev.Name())
	}
	if bb.Freed() {
		return nil, device.Errorf(op, arg, device.ErrFreed, "the buffer was freed before this call")
	}
	return bb, nil
}

// Free returns b's array to the pool.
func (d *Device) Free(b device.Buffer) error {
	if d.closed {
		return errClosed("Free")
	}
	bb, err := d.own("Free", "b", b)
	if err != nil {
		return err
	}
	if bb.isView() {
		return device.Errorf("Free", "b", device.ErrInvalid, "expected an owning buffer, got a view (free its parent instead)")
	}
	bb.freed = true
	bytes := int64(bb.class) * 4
	p := &d.pool
	if bb.dt == device.Float32 {
		p.f32[bb.class] = append(p.f32[bb.class], bb.f[:bb.class:bb.class])
		bb.f = nil
	} else {
		p.i32[bb.class] = append(p.i32[bb.class], bb.i[:bb.class:bb.class])
		bb.i = nil
	}
	p.stats.InUse -= bytes
	p.stats.Cached += bytes
	return nil
}

// View returns n elements of b from element off, sharing b's memory.
func (d *Device) View(b device.Buffer, off, n int) (device.Buffer, error) {
	if d.closed {
		return nil, errClosed("View")
	}
	bb, err := d.own("View", "b", b)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 1 {
		return nil, device.Errorf("View", "", device.ErrInvalid, "expected off ≥ 0 and n ≥ 1, got off=%d n=%d", off, n)
	}
	if off > bb.Len()-n {
		return nil, device.Errorf("View", "b", device.ErrSize, "expected at least off+n = %d elements, got %d", off+n, bb.Len())
	}
	v := &buffer{dev: d, dt: bb.dt, root: bb.root, class: bb.class}
	if bb.dt == device.Float32 {
		v.f = bb.f[off : off+n : off+n]
	} else {
		v.i = bb.i[off : off+n : off+n]
	}
	return v, nil
}

// f32 checks that b is a live float32 buffer of d with at least n
// elements and returns its first n elements.
func (d *Device) f32(op, arg string, b device.Buffer, n int) ([]float32, error) {
	if err := device.CheckF32(d, op, arg, b, n); err != nil {
		return nil, err
	}
	bb, ok := b.(*buffer)
	if !ok {
		return nil, device.Errorf(op, arg, device.ErrDeviceMismatch, "expected a buffer of cpu, got %T", b)
	}
	return bb.f[:n], nil
}

// i32 is f32 for int32 buffers.
func (d *Device) i32(op, arg string, b device.Buffer, n int) ([]int32, error) {
	if err := device.CheckBuf(d, op, arg, b, device.Int32, n); err != nil {
		return nil, err
	}
	bb, ok := b.(*buffer)
	if !ok {
		return nil, device.Errorf(op, arg, device.ErrDeviceMismatch, "expected a buffer of cpu, got %T", b)
	}
	return bb.i[:n], nil
}

// maxElems bounds every element count and product of dimensions a call
// may ask for (2⁴⁰ elements, 4 TiB of float32): no buffer is that long,
// and products of two dimensions below it are checked without overflow.
const maxElems = 1 << 40

// span checks the offset of a host copy.
func span(op string, off int) error {
	if off < 0 || off > maxElems {
		return device.Errorf(op, "off", device.ErrInvalid, "expected 0 ≤ off ≤ 2⁴⁰, got %d", off)
	}
	return nil
}

// area returns a·b, or an ErrSize error when the product is larger than
// any buffer can be (it would overflow int otherwise). a and b are ≥ 1.
func area(op, names string, a, b int) (int, error) {
	if a > maxElems/b {
		return 0, device.Errorf(op, names, device.ErrSize, "%d × %d elements is more than any buffer holds", a, b)
	}
	return a * b, nil
}

// WriteF32 copies src into dst from element off.
func (d *Device) WriteF32(dst device.Buffer, off int, src []float32) error {
	if d.closed {
		return errClosed("WriteF32")
	}
	if err := span("WriteF32", off); err != nil {
		return err
	}
	f, err := d.f32("WriteF32", "dst", dst, off+len(src))
	if err != nil {
		return err
	}
	copy(f[off:], src)
	return nil
}

// ReadF32 copies len(dst) elements of src from element off into dst.
func (d *Device) ReadF32(dst []float32, src device.Buffer, off int) error {
	if d.closed {
		return errClosed("ReadF32")
	}
	if err := span("ReadF32", off); err != nil {
		return err
	}
	f, err := d.f32("ReadF32", "src", src, off+len(dst))
	if err != nil {
		return err
	}
	copy(dst, f[off:])
	return nil
}

// WriteI32 copies src into the int32 buffer dst from element off.
func (d *Device) WriteI32(dst device.Buffer, off int, src []int32) error {
	if d.closed {
		return errClosed("WriteI32")
	}
	if err := span("WriteI32", off); err != nil {
		return err
	}
	v, err := d.i32("WriteI32", "dst", dst, off+len(src))
	if err != nil {
		return err
	}
	copy(v[off:], src)
	return nil
}

// ReadI32 copies len(dst) elements of the int32 buffer src from element
// off into dst.
func (d *Device) ReadI32(dst []int32, src device.Buffer, off int) error {
	if d.closed {
		return errClosed("ReadI32")
	}
	if err := span("ReadI32", off); err != nil {
		return err
	}
	v, err := d.i32("ReadI32", "src", src, off+len(dst))
	if err != nil {
		return err
	}
	copy(dst, v[off:])
	return nil
}

// Copy copies n elements from src to dst; both must have the same dtype.
// Overlapping views are handled as memmove does.
func (d *Device) Copy(dst, src device.Buffer, n int) error {
	if d.closed {
		return errClosed("Copy")
	}
	if n < 1 {
		return device.CheckDims("Copy", "n", n)
	}
	db, err := d.own("Copy", "dst", dst)
	if err != nil {
		return err
	}
	if err := device.CheckAll(
		device.CheckBuf(d, "Copy", "dst", dst, db.dt, n),
		device.CheckBuf(d, "Copy", "src", src, db.dt, n)); err != nil {
		return err
	}
	sb := src.(*buffer)
	if db.dt == device.Float32 {
		d.copyF32(db.f[:n], sb.f[:n])
	} else {
		copy(db.i[:n], sb.i[:n])
	}
	return nil
}
