package stat

// The row kernels of the CPU backend's layer norm: the batch-norm passes
// with a per-element gamma (and beta) along the row. Like those of stat.go
// each has one fixed order of operations, without FMA, that the AVX-512
// kernels of rows_amd64.s and the portable Go here share bit for bit
// (TestRowsVectorMatchesGeneric); where AVX-512 is absent the Go runs.

// AffineRow sets y[i] = float32(((x[i] − m)·s)·gamma[i] + beta[i])
// (y, gamma and beta at least len(x) long), each product rounded to
// float64 before the next operation. y may be x.
func AffineRow(x, y, gamma, beta []float32, m, s float64) {
	y, gamma, beta = y[:len(x)], gamma[:len(x)], beta[:len(x)]
	if useAVX512 && len(x) > 0 { // the whole row, the tail masked
		affineRowAVX512(&x[0], &y[0], &gamma[0], &beta[0], len(x), m, s)
		return
	}
	for i, v := range x {
		t := float64((float64(v) - m) * s)
		y[i] = float32(float64(t*float64(gamma[i])) + float64(beta[i]))
	}
}

// GradSumsRow is GradSums over g = dy·gamma (dy and gamma at least
// len(x) long; the product of two float32 is exact in float64): Σ g and
// Σ g·(x − m) over GradSums' 16 chains and tail order.
func GradSumsRow(x, dy, gamma []float32, m float64) (sg, sgx float64) {
	dy, gamma = dy[:len(x)], gamma[:len(x)]
	n8 := len(x) &^ 7
	if n8 > 0 {
		if useAVX512 {
			gradSumsRowAVX512(&x[0], &dy[0], &gamma[0], n8, m, &sg, &sgx)
		} else {
			sg, sgx = gradSumsRowGeneric(x[:n8], dy[:n8], gamma[:n8], m)
		}
	}
	for i := n8; i < len(x); i++ {
		g := float64(dy[i]) * float64(gamma[i])
		sg += g
		sgx += float64(g * (float64(x[i]) - m))
	}
	return sg, sgx
}

// GradApplyRow sets dx[i] = float32(a·g − (am1 + (x[i] − m)·k1)) with
// g = dy[i]·gamma[i] (exact in float64; dy, gamma and dx at least len(x)
// long), each product rounded to float64 before it is added. dx may be
// x or dy.
func GradApplyRow(x, dy, gamma, dx []float32, m, a, am1, k1 float64) {
	dy, gamma, dx = dy[:len(x)], gamma[:len(x)], dx[:len(x)]
	if useAVX512 && len(x) > 0 { // the whole row, the tail masked
		gradApplyRowAVX512(&x[0], &dy[0], &gamma[0], &dx[0], len(x), m, a, am1, k1)
		return
	}
	for i, v := range x {
		g := float64(dy[i]) * float64(gamma[i])
		dx[i] = float32(float64(a*g) - (am1 + float64((float64(v)-m)*k1)))
	}
}

// gradSumsRowGeneric is GradSumsRow's chains (len a multiple of 8).
func gradSumsRowGeneric(x, dy, gamma []float32, m float64) (float64, float64) {
	var a, b [16]float64
	dy, gamma = dy[:len(x)], gamma[:len(x)]
	for i, v := range x {
		g := float64(dy[i]) * float64(gamma[i])
		a[i&15] += g
		b[i&15] += float64(g * (float64(v) - m))
	}
	return halve16(&a), halve16(&b)
}

// ColSums adds one row to the column sums of layer norm's dgamma and
// dbeta: sdy[j] += dy[j] and sdyx[j] += dy[j]·((x[j] − m)·rs) (dy, sdy and
// sdyx at least len(x) long), each product rounded to float64 before the
// next operation. Every column is its own sum, so the order over rows is
// the caller's.
func ColSums(x, dy []float32, sdy, sdyx []float64, m, rs float64) {
	dy, sdy, sdyx = dy[:len(x)], sdy[:len(x)], sdyx[:len(x)]
	if useAVX512 && len(x) > 0 { // the whole row, the tail masked
		colSumsAVX512(&x[0], &dy[0], &sdy[0], &sdyx[0], len(x), m, rs)
		return
	}
	for j, v := range x {
		g := float64(dy[j])
		sdy[j] += g
		sdyx[j] += float64(g * float64((float64(v)-m)*rs))
	}
}
