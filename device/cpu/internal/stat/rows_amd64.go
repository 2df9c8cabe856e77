//go:build amd64 && !purego

package stat

// The AVX-512 kernels of rows_amd64.s. gradSumsRowAVX512 takes n a
// multiple of 8 and > 0; the other two any n > 0, masking the last n mod 8.

//go:noescape
func affineRowAVX512(x, y, gamma, beta *float32, n int, m, s float64)

//go:noescape
func gradSumsRowAVX512(x, dy, gamma *float32, n int, m float64, sg, sgx *float64)

//go:noescape
func gradApplyRowAVX512(x, dy, gamma, dx *float32, n int, m, a, am1, k1 float64)

//go:noescape
func colSumsAVX512(x, dy *float32, sdy, sdyx *float64, n int, m, rs float64)
