//go:build !amd64 || purego

package simd

// HasAVX512 is false where there is no assembly kernel.
var HasAVX512 = false

func maxPool2x2AVX512(x0, x1, y *float32, idx *int32, n int, q0, w int32) int {
	panic("simd: AVX-512 kernel called where HasAVX512 is false")
}

func maxPoolGrad2x2AVX512(dy *float32, idx *int32, d0, d1 *float32, n int, q0, w int32) {
	panic("simd: AVX-512 kernel called where HasAVX512 is false")
}
