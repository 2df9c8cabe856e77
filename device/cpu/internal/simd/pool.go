package simd

// MaxPool2x2Row computes the windows of one output row of 2×2, stride-2
// max pooling: output c reads x0[2c], x0[2c+1], x1[2c], x1[2c+1] (taps
// (0,0), (0,1), (1,0), (1,1); x0 and x1 the two input rows, at least
// 2·len(y) long, idx at least len(y)), and gets the first largest tap —
// compared as floats, −0 equal to +0, ties to the earlier tap — and its
// plane position q0 + 2c + the tap's offset (0, 1, w or w + 1; q0 is
// x0[0]'s). It stops before the first block of 16 outputs that holds a
// NaN and returns how many outputs it wrote, for the caller's general
// loop to go on from there. Only where HasAVX512.
func MaxPool2x2Row(x0, x1, y []float32, idx []int32, q0, w int32) int {
	n := len(y)
	if n == 0 {
		return 0
	}
	_, _, _ = x0[2*n-1], x1[2*n-1], idx[n-1]
	return maxPool2x2AVX512(&x0[0], &x1[0], &y[0], &idx[0], n, q0, w)
}

// MaxPoolGrad2x2Row routes one output row of 2×2, stride-2 max pooling's
// gradient: window c (of len(dy)) writes d0[2c], d0[2c+1], d1[2c] and
// d1[2c+1] (taps (0,0), (0,1), (1,0), (1,1); d0 and d1 at least
// 2·len(dy) long, idx at least len(dy)): dy[c] + 0 at the tap whose plane
// position q0 + 2c + (0, 1, w or w + 1) idx[c] names, +0 at the others
// (every tap +0 when idx[c] names none). Only where HasAVX512.
func MaxPoolGrad2x2Row(dy []float32, idx []int32, d0, d1 []float32, q0, w int32) {
	n := len(dy)
	if n == 0 {
		return
	}
	_, _, _ = idx[n-1], d0[2*n-1], d1[2*n-1]
	maxPoolGrad2x2AVX512(&dy[0], &idx[0], &d0[0], &d1[0], n, q0, w)
}
