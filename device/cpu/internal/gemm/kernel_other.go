//go:build !amd64 || purego

package gemm

// archKernels: only the portable kernel off amd64 (or under purego).
func archKernels() []*kernel { return nil }
