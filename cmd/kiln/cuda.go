//go:build cuda

package main

import (
	"github.com/kilnml/kiln/kernels"

	// The CUDA backend registers the "cuda" device. Linking it makes the
	// program exit at start-up on a machine without an NVIDIA driver; see
	// the package comment.
	_ "github.com/kilnml/kiln/device/cuda"
)

// cudaBuilt reports whether this binary was built with the CUDA backend.
const cudaBuilt = true

// ptxISA is the PTX ISA version of the embedded kernels, e.g. "7.8" for PTX
// from CUDA 11.8's nvcc. It decides the oldest driver that can load them,
// which `kiln version` reports so a user can compare it with nvidia-smi's.
func ptxISA() string { return embeddedPTXISA(kernels.Families(), kernels.PTX) }
