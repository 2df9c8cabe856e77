package device

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a Device returns for a bad call wraps one of
// these, so callers can test with errors.Is; the message says which
// operation and argument failed, what was expected and what was given.
var (
	ErrFreed          = errors.New("buffer already freed")
	ErrNilBuffer      = errors.New("nil buffer")
	ErrDeviceMismatch = errors.New("buffer belongs to another device")
	ErrDType          = errors.New("wrong dtype")
	ErrSize           = errors.New("size mismatch")
	ErrInvalid        = errors.New("invalid argument")
	ErrClosed         = errors.New("device closed")
	ErrUnknownDevice  = errors.New("unknown device")
	ErrUnavailable    = errors.New("backend unavailable")
)

// OpError is the error a primitive returns for a bad argument. It unwraps
// to one of the sentinel errors above.
type OpError struct {
	Op     string // the primitive, e.g. "Gemm"
	Arg    string // the argument at fault, e.g. "c"; empty when not one argument
	Err    error  // one of the sentinel errors
	Detail string // what was expected and what was given
}

func (e *OpError) Error() string {
	s := e.Op
	if e.Arg != "" {
		s += " " + e.Arg
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *OpError) Unwrap() error { return e.Err }

// Errorf builds an OpError. Backends use it so that every backend reports
// the same fault with the same words.
func Errorf(op, arg string, kind error, format string, a ...any) error {
	return &OpError{Op: op, Arg: arg, Err: kind, Detail: fmt.Sprintf(format, a...)}
}

// OutOfMemoryError says that an allocation could not be satisfied.
type OutOfMemoryError struct {
	Device    string
	Requested int64 // bytes asked for
	Free      int64 // bytes the device reported free at the time
}

func (e *OutOfMemoryError) Error() string {
	return fmt.Sprintf("%s: out of memory: asked for %d bytes (%.1f MiB), %d bytes (%.1f MiB) free",
		e.Device, e.Requested, float64(e.Requested)/(1<<20), e.Free, float64(e.Free)/(1<<20))
}
