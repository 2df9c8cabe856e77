package device

// Argument checks shared by every backend, so that the same mistake gives
// the same error on each.

// CheckBuf checks that b is a live buffer of dev with dtype dt and at least
// n elements. op and arg name the primitive and the argument for the error.
func CheckBuf(dev Device, op, arg string, b Buffer, dt DType, n int) error {
	if b == nil {
		return Errorf(op, arg, ErrNilBuffer, "expected a %s buffer of %d elements, got nil", dt, n)
	}
	if b.Freed() {
		return Errorf(op, arg, ErrFreed, "the buffer was freed before this call")
	}
	if b.Device() != dev {
		return Errorf(op, arg, ErrDeviceMismatch, "expected a buffer of %s, got one of %s", dev.Name(), b.Device().Name())
	}
	if b.DType() != dt {
		return Errorf(op, arg, ErrDType, "expected %s, got %s", dt, b.DType())
	}
	if b.Len() < n {
		return Errorf(op, arg, ErrSize, "expected at least %d elements, got %d", n, b.Len())
	}
	return nil
}

// CheckF32 is CheckBuf for float32 buffers.
func CheckF32(dev Device, op, arg string, b Buffer, n int) error {
	return CheckBuf(dev, op, arg, b, Float32, n)
}

// CheckDims checks that every named dimension is at least 1. names and
// dims alternate: CheckDims("Gemm", "m", m, "n", n).
func CheckDims(op string, namesAndDims ...any) error {
	for i := 0; i+1 < len(namesAndDims); i += 2 {
		name, _ := namesAndDims[i].(string)
		d, _ := namesAndDims[i+1].(int)
		if d < 1 {
			return Errorf(op, name, ErrInvalid, "expected a dimension ≥ 1, got %d", d)
		}
	}
	return nil
}

// CheckAll returns the first non-nil error.
func CheckAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
