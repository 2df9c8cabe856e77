//go:build cuda

package main

// Built with -tags cuda, the program also links the CUDA backend, and
// -device auto (the default) picks the first GPU when one answers.
import _ "github.com/kilnml/kiln/device/cuda"
