//go:build amd64 && !purego

package stat

// colAdd4AVX2 is ColAdd4 over the first n columns, n a multiple of 4 and
// > 0 (colsum_amd64.s).
//
//go:noescape
func colAdd4AVX2(acc *float64, r0, r1, r2, r3 *float32, n int)
