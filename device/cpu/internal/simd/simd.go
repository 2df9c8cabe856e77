// Package simd holds the CPU backend's assembly kernels. It is a package
// of its own because Go does not allow Go assembly in a package that uses
// cgo, and the CPU backend uses cgo under the openblas build tag.
package simd
