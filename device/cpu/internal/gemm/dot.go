package gemm

// Products whose output is a vector and whose sums run along contiguous
// memory (a dot product, a matrix times a vector) skip packing: packing
// would copy the whole matrix to use each element once. They are summed
// by dot, in eight interleaved partial sums, which also shortens the
// chains of roundings (about 8× smaller error growth than one running
// sum).

// dotPath reports whether the product goes through gemv instead of the
// blocked algorithm: m = n = 1, or n = 1 with A's rows contiguous, or
// m = 1 with B's columns contiguous (B transposed).
func dotPath(transA, transB bool, m, n int) bool {
	return (m == 1 && n == 1) || (n == 1 && !transA) || (m == 1 && transB)
}

// gemv computes the dot-path products of Sgemm.
func gemv(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	incA := 1 // along p in op(A)'s row
	if transA {
		incA = lda
	}
	incB := ldb // along p in op(B)'s column
	if transB {
		incB = 1
	}
	put := func(ci *float32, s float32) {
		if beta == 0 {
			*ci = alpha * s
		} else {
			*ci = alpha*s + beta**ci
		}
	}
	switch {
	case n == 1:
		// Row i of op(A) (contiguous unless m = 1) against op(B)'s column.
		for i := 0; i < m; i++ {
			oa, sa := i*lda, incA
			if transA {
				oa = i
			}
			put(&c[i*ldc], dot(a[oa:], sa, b, incB, k))
		}
	default:
		// m = 1: op(A)'s row against each column of op(B) (row j of B).
		for j := 0; j < n; j++ {
			put(&c[j], dot(a, incA, b[j*ldb:], 1, k))
		}
	}
}

// dot returns Σ_{p<k} x[p·incx]·y[p·incy], in eight partial sums
// combined pairwise.
func dot(x []float32, incx int, y []float32, incy int, k int) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	p := 0
	if incx == 1 && incy == 1 {
		x, y = x[:k], y[:k]
		for ; p+8 <= k; p += 8 {
			xs, ys := x[p:p+8:p+8], y[p:p+8:p+8]
			s0 += xs[0] * ys[0]
			s1 += xs[1] * ys[1]
			s2 += xs[2] * ys[2]
			s3 += xs[3] * ys[3]
			s4 += xs[4] * ys[4]
			s5 += xs[5] * ys[5]
			s6 += xs[6] * ys[6]
			s7 += xs[7] * ys[7]
		}
		for ; p < k; p++ {
			s0 += x[p] * y[p]
		}
	} else {
		ix, iy := 0, 0
		for ; p+4 <= k; p += 4 {
			s0 += x[ix] * y[iy]
			s1 += x[ix+incx] * y[iy+incy]
			s2 += x[ix+2*incx] * y[iy+2*incy]
			s3 += x[ix+3*incx] * y[iy+3*incy]
			ix += 4 * incx
			iy += 4 * incy
		}
		for ; p < k; p++ {
			s0 += x[ix] * y[iy]
			ix += incx
			iy += incy
		}
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}
