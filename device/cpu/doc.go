// Package cpu is kiln's CPU backend: gonum BLAS for GEMM (OpenBLAS under
// the openblas build tag) and goroutine-parallel elementwise kernels.
// Import it for its side effect of registering the "cpu" device.
package cpu
