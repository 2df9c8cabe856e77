//go:build !cuda

package main

// cudaBuilt reports whether this binary was built with the CUDA backend.
const cudaBuilt = false

// ptxISA is the PTX ISA version of the embedded kernels; a CPU-only binary
// embeds none.
func ptxISA() string { return "none" }
