package kernels

// The PTX under ptx/ is generated from the *.cu files of this directory by
// gen/main.go, which runs nvcc -ptx for two virtual architectures per
// source file: compute_70 (portable: any GPU from Volta on) and compute_80
// (Ampere and newer, picked by PTX for compute capability ≥ 8.0). The
// output depends only on the sources and the nvcc version (11.8 here; the
// version is written in each PTX header), so CI regenerates it and diffs.
//
//go:generate go run ./gen
