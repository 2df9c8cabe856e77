package gemm

import "unsafe"

// genericKernel is the portable micro-kernel: a 4×4 tile, computed as two
// 2×4 halves so that each half's eight accumulators and six operands fit
// in the 15 float registers the Go compiler has on amd64 (a 4×4 tile in
// one pass spills and runs at a third of the speed).
var genericKernel = &kernel{name: "generic", mr: 4, nr: 4, fn: kernGeneric, kc: 256, mc: 128, nc: 1024}

// kernGeneric is the microKernel for a 4×4 tile in plain Go.
func kernGeneric(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC, sa, sb int) {
	as := unsafe.Slice(a, (kc-1)*sa+4)
	bs := unsafe.Slice(b, (kc-1)*sb+4)
	cs := unsafe.Slice(c, 3*ldc+4)
	for h := 0; h < 4; h += 2 {
		var c00, c01, c02, c03, c10, c11, c12, c13 float32
		for p := 0; p < kc; p++ {
			ap, bp := as[sa*p+h:], bs[sb*p:]
			_, _ = ap[1], bp[3]
			a0, a1 := ap[0], ap[1]
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			c00 += a0 * b0
			c01 += a0 * b1
			c02 += a0 * b2
			c03 += a0 * b3
			c10 += a1 * b0
			c11 += a1 * b1
			c12 += a1 * b2
			c13 += a1 * b3
		}
		put4(cs[h*ldc:], c00, c01, c02, c03, alpha, beta, loadC)
		put4(cs[(h+1)*ldc:], c10, c11, c12, c13, alpha, beta, loadC)
	}
}

// put4 stores row = alpha·x (loadC 0: row not read) or alpha·x + beta·row.
func put4(row []float32, x0, x1, x2, x3, alpha, beta float32, loadC int) {
	row = row[:4:4]
	if loadC == 0 {
		row[0], row[1], row[2], row[3] = alpha*x0, alpha*x1, alpha*x2, alpha*x3
		return
	}
	row[0] = alpha*x0 + beta*row[0]
	row[1] = alpha*x1 + beta*row[1]
	row[2] = alpha*x2 + beta*row[2]
	row[3] = alpha*x3 + beta*row[3]
}
