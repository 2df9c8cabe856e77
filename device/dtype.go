package device

import "fmt"

// DType is the element type of a Buffer.
type DType uint8

// The element types a Buffer can hold. BFloat16 is reserved: no backend
// allocates it yet, and Alloc returns an ErrDType error for it.
const (
	Float32 DType = iota + 1
	Int32
	BFloat16
)

// Size is the width of one element in bytes.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case BFloat16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}
