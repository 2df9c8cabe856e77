// Package cuda is kiln's CUDA backend. Its files build only with the cuda
// build tag (go build -tags cuda), because gorgonia.org/cu initialises the
// driver at program start and exits when no GPU answers; the default build
// is CPU-only. It runs the PTX kernels of package kernels through the CUDA
// driver API and registers the "cuda" device ("cuda" or "cuda:N" in
// device.Open).
//
// Design, in brief (details beside the code):
//
//   - Context: each Device retains its GPU's primary context and makes it
//     current, on a locked OS thread, at the start of every method that
//     talks to the driver (device.go explains the choice; see
//     BenchmarkLaunchOverhead for its cost).
//   - Stream: one non-blocking stream per Device; kernels, memsets and
//     copies are queued on it asynchronously. The host waits only in
//     ReadF32/ReadI32, Sync, Close and, rarely, in cross-entropy's label
//     check (labels.go).
//   - Host writes go through a reused pinned staging buffer and an
//     asynchronous copy; they return once the data is captured.
//   - Memory: a caching allocator (512-byte classes up to 1 MiB, 2 MiB
//     granules above, free lists per class): a steady training step calls
//     cuMemAlloc zero times. On out-of-memory the cache is emptied and the
//     allocation retried once before a *device.OutOfMemoryError.
//   - Kernels: kernels/*.cu compiled to PTX for compute_70 and compute_80,
//     embedded, JIT-compiled by the driver at Open. Reductions are
//     deterministic (per-block partials in a per-device workspace, then one
//     block; no float atomics). Elementwise and SGD kernels round each
//     operation as the CPU backend does, so the two agree bit for bit; Adam
//     runs in float64 as the CPU's portable loop does (bit for bit with it),
//     but the CPU backend's AVX2/FMA float32 Adam kernel, used on x86-64,
//     differs from it by an ulp or two; transcendentals run in float64 as
//     on the CPU.
//   - TF32: off by default; SetAllowTF32(true) lets Gemm use tensor cores
//     on compute capability 8.0 and newer.
//
// Debugging: with KILN_CUDA_SYNC=1 in the environment when a device is
// opened, every kernel launch waits for the kernel, so a fault is reported
// by the call that caused it (named, with its launch shape) instead of by
// the next synchronising call.
//
// The tests (go test -tags cuda) need a GPU: they run the conformance
// suite, CPU/GPU parity of every primitive and of 20 training steps, and
// the GPU benchmarks (go test -tags cuda -run '^$' -bench .).
package cuda
