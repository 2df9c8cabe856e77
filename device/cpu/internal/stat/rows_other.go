//go:build !amd64 || purego

package stat

// Never called where useAVX512 is false.

func affineRowAVX512(x, y, gamma, beta *float32, n int, m, s float64) {
	panic("stat: no vector kernel")
}
func gradSumsRowAVX512(x, dy, gamma *float32, n int, m float64, sg, sgx *float64) {
	panic("stat: no vector kernel")
}
func gradApplyRowAVX512(x, dy, gamma, dx *float32, n int, m, a, am1, k1 float64) {
	panic("stat: no vector kernel")
}
func colSumsAVX512(x, dy *float32, sdy, sdyx *float64, n int, m, rs float64) {
	panic("stat: no vector kernel")
}
