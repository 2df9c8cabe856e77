//go:build !amd64 || purego

package stat

// Never called where useAVX2 is false.
func colAdd4AVX2(acc *float64, r0, r1, r2, r3 *float32, n int) { panic("stat: no vector kernel") }
