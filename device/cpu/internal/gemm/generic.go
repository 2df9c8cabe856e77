package gemm

import "unsafe"

// genericKernel is the portable micro-kernel: a 4×4 tile held in sixteen
// scalar accumulators, which the Go compiler keeps in registers.
var genericKernel = &kernel{name: "generic", mr: 4, nr: 4, fn: kernGeneric, kc: 256, mc: 128, nc: 1024}

// kernGeneric is the microKernel for a 4×4 tile in plain Go.
func kernGeneric(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int) {
	as := unsafe.Slice(a, 4*kc)
	bs := unsafe.Slice(b, 4*kc)
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < kc; p++ {
		ap := as[4*p : 4*p+4 : 4*p+4]
		bp := bs[4*p : 4*p+4 : 4*p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	put := func(row []float32, x0, x1, x2, x3 float32) {
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
	put(cs[0:], c00, c01, c02, c03)
	put(cs[ldc:], c10, c11, c12, c13)
	put(cs[2*ldc:], c20, c21, c22, c23)
	put(cs[3*ldc:], c30, c31, c32, c33)
}
