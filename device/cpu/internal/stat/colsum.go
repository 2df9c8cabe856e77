package stat

// ColAdd4 adds four float32 rows to float64 column sums, in row order:
// acc[j] = (((acc[j] + r0[j]) + r1[j]) + r2[j]) + r3[j] (the rows at
// least len(acc) long; every conversion is exact and each add rounded
// once, so the AVX2 kernel and the Go loop agree bit for bit, and every
// column is the same sum whatever columns a caller hands it).
func ColAdd4(acc []float64, r0, r1, r2, r3 []float32) {
	n := len(acc)
	r0, r1, r2, r3 = r0[:n], r1[:n], r2[:n], r3[:n]
	n4 := n &^ 3
	if useAVX2 && n4 > 0 {
		colAdd4AVX2(&acc[0], &r0[0], &r1[0], &r2[0], &r3[0], n4)
	} else {
		n4 = 0
	}
	colAdd4Generic(acc[n4:], r0[n4:], r1[n4:], r2[n4:], r3[n4:])
}

// colAdd4Generic is ColAdd4 in Go.
func colAdd4Generic(acc []float64, r0, r1, r2, r3 []float32) {
	n := len(acc)
	r0, r1, r2, r3 = r0[:n], r1[:n], r2[:n], r3[:n]
	for j := range acc {
		acc[j] = (((acc[j] + float64(r0[j])) + float64(r1[j])) + float64(r2[j])) + float64(r3[j])
	}
}
