// Package simd holds the CPU backend's assembly kernels. It is a package
// of its own because Go does not allow Go assembly in a package that uses
// cgo, and the CPU backend uses cgo under the openblas build tag.
//
// Adam needs AVX2 and FMA (HasAdam). The elementwise kernels (Add, Sub,
// Mul, Scale, Axpy, MaskPos for ReLU and its gradient, Leaky for leaky
// ReLU and its gradient) need AVX2 (HasAVX2) and give results bit for bit
// equal to the portable Go loops of the CPU backend. The rows of 2×2
// max pooling and its gradient (MaxPool2x2Row, MaxPoolGrad2x2Row) need
// AVX-512F (HasAVX512) and give the backend's loops' results bit for bit.
// On other processors, and under the purego build tag, HasAdam, HasAVX2
// and HasAVX512 are false and the kernels must not be called.
package simd
