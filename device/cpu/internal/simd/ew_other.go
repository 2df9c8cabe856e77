//go:build !amd64 || purego

package simd

// HasAVX2 is false where there is no assembly kernel.
var HasAVX2 = false

// Where HasAVX2 is false the exported kernels must not be called; these
// stand-ins only let them compile.

func addAVX2(dst, a, b *float32, n int, nt bool)                  { panic(noAVX2) }
func subAVX2(dst, a, b *float32, n int, nt bool)                  { panic(noAVX2) }
func mulAVX2(dst, a, b *float32, n int, nt bool)                  { panic(noAVX2) }
func scaleAVX2(dst, x *float32, n int, s float32, nt bool)        { panic(noAVX2) }
func axpyAVX2(y, x *float32, n int, s float32, nt bool)           { panic(noAVX2) }
func maskPosAVX2(dst, x, v *float32, n int, nt bool)              { panic(noAVX2) }
func leakyAVX2(dst, x, v *float32, n int, alpha float32, nt bool) { panic(noAVX2) }

const noAVX2 = "simd: AVX2 kernel called where HasAVX2 is false"
