// Package cpu is kiln's CPU backend: its own pure-Go + assembly SGEMM
// (internal/gemm: AVX-512, AVX2+FMA or portable micro-kernels; OpenBLAS
// under the openblas build tag) and goroutine-parallel elementwise kernels.
// Import it for its side effect of registering the "cpu" device.
//
// Memory is ordinary Go memory. Freed buffers go to per-dtype free lists
// by size class (64 elements, then four classes per power of two, so at
// most 25% is wasted) and Alloc reuses them, zeroed, so that a training
// step in steady state makes no new allocation: on the development VMs a
// page fault costs about 14 µs. Allocations of 16 MiB and more are checked
// against MemAvailable first and refused with a *device.OutOfMemoryError
// rather than letting the Go runtime abort.
//
// Kernels with fewer elements than a measured cut-over (see ewGrain and
// trGrain) run on the calling goroutine; larger ones are split across a
// fixed set of worker goroutines, one per GOMAXPROCS, that every device of
// the process and the GEMM share (sharedWorkers): a helper keeps polling
// between the calls of a step, so none waits for a parked one to wake.
// Reductions and
// losses accumulate in float64. Adam runs eight lanes at a time in AVX2
// and FMA assembly (internal/simd) when the processor has them, in a
// portable float64 loop otherwise. No primitive allocates on the heap per
// call (TestNoAllocs) apart from the small handle Alloc and View return;
// GEMM's packing buffers and jobs are reused from free lists.
//
// Builds:
//
//	go test ./device/cpu/                   kiln's pure-Go + assembly SGEMM
//	KILN_GEMM_KERNEL=avx2|generic go test ./device/cpu/   force a micro-kernel
//	go test -tags openblas ./device/cpu/    OpenBLAS through cgo (needs libopenblas-dev)
//	go test -tags purego ./device/cpu/      no assembly (portable Adam and GEMM kernels)
package cpu
