//go:build amd64 && !purego

package stat

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 kernels of stat_amd64.s where the processor
// (and the operating system) has AVX2; tests switch it off to compare the
// two paths.
var useAVX2 = cpu.X86.HasAVX2

// useAVX512 selects the AVX-512 kernels (before the AVX2 ones) where the
// processor and the operating system have AVX-512F.
var useAVX512 = cpu.X86.HasAVX512F

// The kernels of stat_amd64.s: n is a multiple of 8 and > 0, except for
// affineAVX512 and gradApplyAVX512, which take any n > 0 (masking the
// last n mod 8). Each AVX-512 kernel is its AVX2 namesake, eight lanes
// wide.

// sumAVX2 is sumGeneric over x[:n].
//
//go:noescape
func sumAVX2(x *float32, n int) float64

// sqDevAVX2 is sqDevGeneric over x[:n].
//
//go:noescape
func sqDevAVX2(x *float32, n int, m float64) float64

// gradSumsAVX2 is gradSumsGeneric over x[:n] and dy[:n], into *sg and *sgx.
//
//go:noescape
func gradSumsAVX2(x, dy *float32, n int, m float64, sg, sgx *float64)

// affineAVX2 is Affine's loop over n elements.
//
//go:noescape
func affineAVX2(x, y *float32, n int, m, s, b float64)

// gradApplyAVX2 is GradApply's loop over n elements.
//
//go:noescape
func gradApplyAVX2(x, dy, dx *float32, n int, m, a, am1, k1 float64)

//go:noescape
func sumAVX512(x *float32, n int) float64

//go:noescape
func sqDevAVX512(x *float32, n int, m float64) float64

//go:noescape
func gradSumsAVX512(x, dy *float32, n int, m float64, sg, sgx *float64)

//go:noescape
func affineAVX512(x, y *float32, n int, m, s, b float64)

//go:noescape
func gradApplyAVX512(x, dy, dx *float32, n int, m, a, am1, k1 float64)
