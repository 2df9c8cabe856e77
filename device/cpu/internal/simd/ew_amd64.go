//go:build amd64 && !purego

package simd

import "golang.org/x/sys/cpu"

// HasAVX2 reports whether the elementwise kernels may be called: the
// processor (and the operating system) support AVX2.
var HasAVX2 = cpu.X86.HasAVX2

// The assembly kernels of ew_amd64.s. n is a multiple of 8; when nt is
// true, dst is 32-byte aligned and written with non-temporal stores.

//go:noescape
func addAVX2(dst, a, b *float32, n int, nt bool)

//go:noescape
func subAVX2(dst, a, b *float32, n int, nt bool)

//go:noescape
func mulAVX2(dst, a, b *float32, n int, nt bool)

//go:noescape
func scaleAVX2(dst, x *float32, n int, s float32, nt bool)

//go:noescape
func axpyAVX2(y, x *float32, n int, s float32, nt bool)

//go:noescape
func maskPosAVX2(dst, x, v *float32, n int, nt bool)

//go:noescape
func leakyAVX2(dst, x, v *float32, n int, alpha float32, nt bool)
