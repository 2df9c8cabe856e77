// Package stat holds the vector kernels of the CPU backend's batch norm:
// sums of a float32 row in float64 (Σ x, Σ (x − m)², and Σ g with
// Σ g·(x − m)) and the two elementwise passes (y = (x − m)·s + b and
// dx = a·dy − (am1 + (x − m)·k1)), each computed in float64 and rounded
// to float32 once.
//
// Every function has one fixed order of operations, stated in its doc
// comment, that the AVX-512 and AVX2 kernels of stat_amd64.s and the
// portable Go of this file all follow without FMA, so the two agree bit for bit
// (TestVectorMatchesGeneric) and the results depend neither on the
// processor nor on how the caller splits its work.
//
// The sums use C independent chains: element i < n8 = len(x) rounded down
// to a multiple of 8 is added to chain i mod C; the chains are then
// combined by halving (chain l with chain l + C/2, and so on, down to
// one: for C = 32, v_l = (c_l + c_{l+8}) + (c_{l+16} + c_{l+24}) for
// l < 8, then w_j = v_j + v_{j+4}, u_j = w_j + w_{j+2}, r = u_0 + u_1);
// the last len(x) − n8 elements are then added to r one by one, in order.
package stat

// Sum is Σ x in float64 over 32 chains (see the package comment).
func Sum(x []float32) float64 {
	n8 := len(x) &^ 7
	r := 0.0
	if n8 > 0 {
		if useAVX512 {
			r = sumAVX512(&x[0], n8)
		} else if useAVX2 {
			r = sumAVX2(&x[0], n8)
		} else {
			r = sumGeneric(x[:n8])
		}
	}
	for _, v := range x[n8:] {
		r += float64(v)
	}
	return r
}

// SqDev is Σ (x − m)² in float64 over 32 chains, each term (x − m)·(x − m)
// rounded before it is added.
func SqDev(x []float32, m float64) float64 {
	n8 := len(x) &^ 7
	r := 0.0
	if n8 > 0 {
		if useAVX512 {
			r = sqDevAVX512(&x[0], n8, m)
		} else if useAVX2 {
			r = sqDevAVX2(&x[0], n8, m)
		} else {
			r = sqDevGeneric(x[:n8], m)
		}
	}
	for _, v := range x[n8:] {
		t := float64(v) - m
		r += float64(t * t)
	}
	return r
}

// GradSums returns Σ g and Σ g·(x − m) in float64 over g = dy (len(dy) ≥
// len(x)), each over 16 chains (the combining: v_l = c_l + c_{l+8}, then
// as for 32), each product rounded before it is added.
func GradSums(x, dy []float32, m float64) (sg, sgx float64) {
	dy = dy[:len(x)]
	n8 := len(x) &^ 7
	if n8 > 0 {
		if useAVX512 {
			gradSumsAVX512(&x[0], &dy[0], n8, m, &sg, &sgx)
		} else if useAVX2 {
			gradSumsAVX2(&x[0], &dy[0], n8, m, &sg, &sgx)
		} else {
			sg, sgx = gradSumsGeneric(x[:n8], dy[:n8], m)
		}
	}
	for i, v := range x[n8:] {
		g := float64(dy[n8+i])
		sg += g
		sgx += float64(g * (float64(v) - m))
	}
	return sg, sgx
}

// Affine sets y[i] = float32((x[i] − m)·s + b) (len(y) ≥ len(x)), the
// product rounded to float64 before b is added. y may be x.
func Affine(x, y []float32, m, s, b float64) {
	y = y[:len(x)]
	if useAVX512 && len(x) > 0 { // the whole row, the tail masked
		affineAVX512(&x[0], &y[0], len(x), m, s, b)
		return
	}
	n8 := len(x) &^ 7
	if n8 > 0 && useAVX2 {
		affineAVX2(&x[0], &y[0], n8, m, s, b)
		x, y = x[n8:], y[n8:]
	}
	for i, v := range x {
		y[i] = float32(float64((float64(v)-m)*s) + b)
	}
}

// GradApply sets dx[i] = float32(a·dy[i] − (am1 + (x[i] − m)·k1)) (dy
// and dx at least len(x) long), each product rounded to float64 before it
// is added. dx may be x or dy.
func GradApply(x, dy, dx []float32, m, a, am1, k1 float64) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	if useAVX512 && len(x) > 0 { // the whole row, the tail masked
		gradApplyAVX512(&x[0], &dy[0], &dx[0], len(x), m, a, am1, k1)
		return
	}
	n8 := len(x) &^ 7
	if n8 > 0 && useAVX2 {
		gradApplyAVX2(&x[0], &dy[0], &dx[0], n8, m, a, am1, k1)
		x, dy, dx = x[n8:], dy[n8:], dx[n8:]
	}
	for i, v := range x {
		dx[i] = float32(float64(a*float64(dy[i])) - (am1 + float64((float64(v)-m)*k1)))
	}
}

// halve32 combines 32 chains as the package comment states.
func halve32(c *[32]float64) float64 {
	var v [8]float64
	for l := range v {
		v[l] = (c[l] + c[l+8]) + (c[l+16] + c[l+24])
	}
	return halve8(&v)
}

// halve16 combines 16 chains: v_l = c_l + c_{l+8}, then halve8.
func halve16(c *[16]float64) float64 {
	var v [8]float64
	for l := range v {
		v[l] = c[l] + c[l+8]
	}
	return halve8(&v)
}

// halve8 is u_0 + u_1 with w_j = v_j + v_{j+4}, u_j = w_j + w_{j+2}.
func halve8(v *[8]float64) float64 {
	w0, w1, w2, w3 := v[0]+v[4], v[1]+v[5], v[2]+v[6], v[3]+v[7]
	return (w0 + w2) + (w1 + w3)
}

// sumGeneric is Sum's chains over x (len a multiple of 8).
func sumGeneric(x []float32) float64 {
	var c [32]float64
	for i, v := range x {
		c[i&31] += float64(v)
	}
	return halve32(&c)
}

// sqDevGeneric is SqDev's chains over x (len a multiple of 8).
func sqDevGeneric(x []float32, m float64) float64 {
	var c [32]float64
	for i, v := range x {
		t := float64(v) - m
		c[i&31] += float64(t * t)
	}
	return halve32(&c)
}

// gradSumsGeneric is GradSums' chains over x and dy (len a multiple of 8).
func gradSumsGeneric(x, dy []float32, m float64) (float64, float64) {
	var a, b [16]float64
	dy = dy[:len(x)]
	for i, v := range x {
		g := float64(dy[i])
		a[i&15] += g
		b[i&15] += float64(g * (float64(v) - m))
	}
	return halve16(&a), halve16(&b)
}
