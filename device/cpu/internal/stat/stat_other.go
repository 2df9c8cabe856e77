//go:build !amd64 || purego

package stat

// useAVX2 and useAVX512 are false where there is no assembly kernel: the portable Go of
// stat.go runs.
var useAVX2, useAVX512 = false, false

// The vector kernels are never called where useAVX2 and useAVX512 are false.

func sumAVX2(x *float32, n int) float64              { panic("stat: no vector kernel") }
func sqDevAVX2(x *float32, n int, m float64) float64 { panic("stat: no vector kernel") }
func gradSumsAVX2(x, dy *float32, n int, m float64, sg, sgx *float64) {
	panic("stat: no vector kernel")
}
func affineAVX2(x, y *float32, n int, m, s, b float64) { panic("stat: no vector kernel") }
func gradApplyAVX2(x, dy, dx *float32, n int, m, a, am1, k1 float64) {
	panic("stat: no vector kernel")
}
func sumAVX512(x *float32, n int) float64              { panic("stat: no vector kernel") }
func sqDevAVX512(x *float32, n int, m float64) float64 { panic("stat: no vector kernel") }
func gradSumsAVX512(x, dy *float32, n int, m float64, sg, sgx *float64) {
	panic("stat: no vector kernel")
}
func affineAVX512(x, y *float32, n int, m, s, b float64) { panic("stat: no vector kernel") }
func gradApplyAVX512(x, dy, dx *float32, n int, m, a, am1, k1 float64) {
	panic("stat: no vector kernel")
}
