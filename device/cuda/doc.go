// Package cuda is kiln's CUDA backend. Its files build only with the cuda
// build tag (go build -tags cuda), because gorgonia.org/cu initialises the
// driver at program start and exits when no GPU answers; the default build
// is CPU-only. It runs the PTX kernels of package kernels through the CUDA
// driver API and registers the "cuda" device.
package cuda
