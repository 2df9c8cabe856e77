// Package kernels holds kiln's CUDA C kernel sources and the PTX generated
// from them (go generate ./kernels runs nvcc), embedded so that a binary
// needs only the CUDA driver at run time.
package kernels
