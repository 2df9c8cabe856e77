//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/kilnml/kiln/device"
)

// stagingMax caps the pinned staging buffer; larger transfers go through
// it in chunks of this size.
const stagingMax = 32 << 20

// staging returns the pinned buffer with room for bytes (≤ stagingMax),
// after the previous copy through it has finished.
func (d *Device) staging(bytes int) (unsafe.Pointer, error) {
	if d.pinBusy {
		if err := d.pinEvent.Synchronize(); err != nil {
			return nil, fmt.Errorf("cuda: waiting for the previous copy through the staging buffer (cuEventSynchronize): %w", err)
		}
		d.pinBusy = false
	}
	if bytes > d.pinSize {
		size := max(bytes, 1<<20, min(2*d.pinSize, stagingMax))
		p, err := allocPinned(size)
		if err != nil {
			return nil, err
		}
		if err := freePinned(d.pin); err != nil {
			_ = freePinned(p)
			return nil, err
		}
		d.pin, d.pinSize = p, size
	}
	return d.pin, nil
}

// writeBytes copies host bytes to device address dst through the staging
// buffer, asynchronously; it returns when src has been captured.
func (d *Device) writeBytes(op string, dst cu.DevicePtr, src []byte) error {
	for done := 0; done < len(src); {
		n := min(len(src)-done, stagingMax)
		pin, err := d.staging(n)
		if err != nil {
			return fmt.Errorf("cuda: %s: %w", op, err)
		}
		copy(unsafe.Slice((*byte)(pin), n), src[done:done+n])
		if err := cu.MemcpyHtoDAsync(dst+cu.DevicePtr(done), pin, int64(n), d.stream); err != nil {
			return fmt.Errorf("cuda: %s: copying %d bytes to %s (cuMemcpyHtoDAsync): %w", op, n, d.spec, err)
		}
		if err := d.pinEvent.Record(d.stream); err != nil {
			// Without the event the next write could not know when the
			// buffer is free: wait for the copy now instead.
			if serr := d.sync(op); serr != nil {
				return serr
			}
			return fmt.Errorf("cuda: %s: recording the staging event (cuEventRecord): %w", op, err)
		}
		d.pinBusy = true
		done += n
	}
	return nil
}

// readBytes copies device bytes at src into dst, waiting for everything
// queued before it.
func (d *Device) readBytes(op string, dst []byte, src cu.DevicePtr) error {
	for done := 0; done < len(dst); {
		n := min(len(dst)-done, stagingMax)
		pin, err := d.staging(n)
		if err != nil {
			return fmt.Errorf("cuda: %s: %w", op, err)
		}
		if err := cu.MemcpyDtoHAsync(pin, src+cu.DevicePtr(done), int64(n), d.stream); err != nil {
			return fmt.Errorf("cuda: %s: copying %d bytes from %s (cuMemcpyDtoHAsync): %w", op, n, d.spec, err)
		}
		if err := d.sync(op); err != nil {
			return err
		}
		copy(dst[done:done+n], unsafe.Slice((*byte)(pin), n))
		done += n
	}
	return nil
}

func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

func i32Bytes(x []int32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// span checks a host copy's offset.
func span(op string, off int) error {
	if off < 0 {
		return device.Errorf(op, "off", device.ErrInvalid, "expected off ≥ 0, got %d", off)
	}
	return nil
}

// hostCopy checks a host copy's arguments and returns the device buffer.
func (d *Device) hostCopy(op, arg string, b device.Buffer, dt device.DType, off, count int) (*buffer, error) {
	if d.closed {
		return nil, d.errClosed(op)
	}
	if err := span(op, off); err != nil {
		return nil, err
	}
	if err := device.CheckBuf(d, op, arg, b, dt, off+count); err != nil {
		return nil, err
	}
	return d.own(op, arg, b)
}

// WriteF32 copies src into dst from element off. It returns once src has
// been copied to pinned memory; the transfer to the GPU is queued.
func (d *Device) WriteF32(dst device.Buffer, off int, src []float32) error {
	const op = "WriteF32"
	b, err := d.hostCopy(op, "dst", dst, device.Float32, off, len(src))
	if err != nil || len(src) == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.writeBytes(op, b.at(off), f32Bytes(src))
}

// ReadF32 copies len(dst) elements of src from element off into dst,
// after everything queued before it has run.
func (d *Device) ReadF32(dst []float32, src device.Buffer, off int) error {
	const op = "ReadF32"
	b, err := d.hostCopy(op, "src", src, device.Float32, off, len(dst))
	if err != nil || len(dst) == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.readBytes(op, f32Bytes(dst), b.at(off))
}

// WriteI32 copies src into the int32 buffer dst from element off.
func (d *Device) WriteI32(dst device.Buffer, off int, src []int32) error {
	const op = "WriteI32"
	b, err := d.hostCopy(op, "dst", dst, device.Int32, off, len(src))
	if err != nil || len(src) == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.writeBytes(op, b.at(off), i32Bytes(src)); err != nil {
		b.a.lbl.known = false
		return err
	}
	b.noteWrite(off, src)
	return nil
}

// ReadI32 copies len(dst) elements of the int32 buffer src from element
// off into dst.
func (d *Device) ReadI32(dst []int32, src device.Buffer, off int) error {
	const op = "ReadI32"
	b, err := d.hostCopy(op, "src", src, device.Int32, off, len(dst))
	if err != nil || len(dst) == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.readBytes(op, i32Bytes(dst), b.at(off))
}

// Copy copies n elements from src to dst (same dtype) on the device,
// asynchronously. Overlapping ranges of one allocation are copied as
// memmove does, through the scratch workspace.
func (d *Device) Copy(dst, src device.Buffer, n int) error {
	const op = "Copy"
	if d.closed {
		return d.errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	db, err := d.own(op, "dst", dst)
	if err != nil {
		return err
	}
	if err := device.CheckAll(
		device.CheckBuf(d, op, "dst", dst, db.dt, n),
		device.CheckBuf(d, op, "src", src, db.dt, n)); err != nil {
		return err
	}
	// CheckBuf compared src.Device() with d; own also checks that src is
	// this package's buffer, so a foreign type claiming to be d's is an
	// error, not a panic.
	sb, err := d.own(op, "src", src)
	if err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	bytes := int64(n * db.dt.Size())
	from, to := sb.ptr(), db.ptr()
	if from == to {
		return nil
	}
	if sb.a == db.a && from < to+cu.DevicePtr(bytes) && to < from+cu.DevicePtr(bytes) {
		ws, err := d.workspace(bytes)
		if err != nil {
			return err
		}
		if err := cu.MemcpyDtoDAsync(ws, from, bytes, d.stream); err != nil {
			return fmt.Errorf("cuda: Copy: %d bytes to scratch (cuMemcpyDtoDAsync): %w", bytes, err)
		}
		from = ws
	}
	if err := cu.MemcpyDtoDAsync(to, from, bytes, d.stream); err != nil {
		return fmt.Errorf("cuda: Copy: %d bytes (cuMemcpyDtoDAsync): %w", bytes, err)
	}
	if db.dt == device.Int32 {
		db.a.lbl.merge(sb.a.lbl) // the copied values are among the source's
	}
	return nil
}
