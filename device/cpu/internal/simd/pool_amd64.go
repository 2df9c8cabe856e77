//go:build amd64 && !purego

package simd

import "golang.org/x/sys/cpu"

// HasAVX512 reports whether MaxPool2x2Row may be called: the processor
// (and the operating system) support AVX-512F.
var HasAVX512 = cpu.X86.HasAVX512F

// maxPoolGrad2x2AVX512 is MaxPoolGrad2x2Row's kernel (pool_amd64.s), n > 0.
//
//go:noescape
func maxPoolGrad2x2AVX512(dy *float32, idx *int32, d0, d1 *float32, n int, q0, w int32)

// maxPool2x2AVX512 is MaxPool2x2Row's kernel (pool_amd64.s), n > 0.
//
//go:noescape
func maxPool2x2AVX512(x0, x1, y *float32, idx *int32, n int, q0, w int32) int
