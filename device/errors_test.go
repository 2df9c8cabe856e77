package device_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

func TestOpErrorMessage(t *testing.T) {
	err := device.Errorf("Gemm", "c", device.ErrSize, "expected at least %d elements, got %d", 12, 6)
	want := "Gemm c: size mismatch: expected at least 12 elements, got 6"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	noArg := &device.OpError{Op: "Sync", Err: device.ErrClosed}
	if noArg.Error() != "Sync: device closed" {
		t.Errorf("message without arg or detail %q", noArg.Error())
	}
}

func TestOpErrorIsAs(t *testing.T) {
	sentinels := []error{device.ErrFreed, device.ErrNilBuffer, device.ErrDeviceMismatch, device.ErrDType,
		device.ErrSize, device.ErrInvalid, device.ErrClosed, device.ErrUnknownDevice, device.ErrUnavailable}
	for _, s := range sentinels {
		err := fmt.Errorf("layer 3: %w", device.Errorf("Add", "a", s, "detail"))
		if !errors.Is(err, s) {
			t.Errorf("errors.Is(wrapped OpError, %v) = false", s)
		}
		for _, other := range sentinels {
			if other != s && errors.Is(err, other) {
				t.Errorf("an OpError of %v also matches %v", s, other)
			}
		}
		var op *device.OpError
		if !errors.As(err, &op) || op.Op != "Add" || op.Arg != "a" || op.Err != s {
			t.Errorf("errors.As gave %+v", op)
		}
	}
}

func TestOutOfMemoryError(t *testing.T) {
	e := &device.OutOfMemoryError{Device: "cpu", Requested: 3 << 20, Free: 1 << 20}
	msg := e.Error()
	for _, want := range []string{"cpu", "out of memory", "3145728 bytes", "3.0 MiB", "1048576 bytes", "1.0 MiB"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	wrapped := fmt.Errorf("alloc weights: %w", e)
	var oom *device.OutOfMemoryError
	if !errors.As(wrapped, &oom) || oom.Requested != 3<<20 || oom.Free != 1<<20 {
		t.Errorf("errors.As on a wrapped OutOfMemoryError gave %+v", oom)
	}
	var op *device.OpError
	if errors.As(wrapped, &op) {
		t.Errorf("an OutOfMemoryError also matched *OpError")
	}
}
