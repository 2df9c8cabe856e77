package simd

import "unsafe"

// The elementwise kernels run the vector body of an elementwise loop:
// len(dst) must be a multiple of 8 (they panic otherwise) and the inputs
// at least as long. The caller runs the elements around the body (see
// Span) with its own scalar loop, so head and tail are computed by the
// very loop the kernels stand in for. Results are bit for bit those of
// device/cpu's portable loops: the same single roundings (no fused
// multiply-add), the same bit operations for ReLU, and, where two NaNs
// meet, the same operand order (see ew_amd64.s).
//
// nt asks for non-temporal stores: the destination is written around
// the caches, which saves the read of each destination line that a
// normal store costs (write-allocate) but leaves the result out of
// cache; worth it for arrays much larger than the last-level cache. It
// takes effect only where dst is 32-byte aligned (Span arranges that);
// elsewhere the kernels use plain stores.
//
// dst may be one of the inputs (in place) but must not overlap one
// partly: the body reads eight elements before writing them.

// Span returns where the vector body of an n-element destination dst
// lies: dst[head:head+body], body a multiple of 8. Without nt, head is
// 0. With nt, head (< 8) brings the body to a 32-byte boundary and ntOK
// reports whether it could (always, for float32 arrays Go allocated).
func Span(dst []float32, nt bool) (head, body int, ntOK bool) {
	n := len(dst)
	if n == 0 {
		return 0, 0, false
	}
	if nt {
		a := uintptr(unsafe.Pointer(&dst[0]))
		if a%4 == 0 {
			head = min(int((-a)&31)/4, n)
		} else {
			nt = false
		}
	}
	return head, (n - head) &^ 7, nt
}

// check panics unless n is a multiple of 8 and every input holds n
// elements; it reports whether nt can be honoured (dst aligned).
func check(dst []float32, nt bool, in ...int) bool {
	n := len(dst)
	if n%8 != 0 {
		panic("simd: length not a multiple of 8")
	}
	for _, l := range in {
		if l < n {
			panic("simd: input shorter than the destination")
		}
	}
	return nt && uintptr(unsafe.Pointer(&dst[0]))%32 == 0
}

// Add sets dst = a + b.
func Add(dst, a, b []float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(a), len(b))
	addAVX2(&dst[0], &a[0], &b[0], len(dst), nt)
}

// Sub sets dst = a − b.
func Sub(dst, a, b []float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(a), len(b))
	subAVX2(&dst[0], &a[0], &b[0], len(dst), nt)
}

// Mul sets dst = a ⊙ b.
func Mul(dst, a, b []float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(a), len(b))
	mulAVX2(&dst[0], &a[0], &b[0], len(dst), nt)
}

// Scale sets dst = s·x (computed as x·s: the NaN of x wins over s's).
func Scale(dst, x []float32, s float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(x))
	scaleAVX2(&dst[0], &x[0], len(dst), s, nt)
}

// Axpy sets y = s·x + y, the product rounded before the sum (computed
// as (x·s) + y).
func Axpy(y, x []float32, s float32, nt bool) {
	if len(y) == 0 {
		return
	}
	nt = check(y, nt, len(x))
	axpyAVX2(&y[0], &x[0], len(y), s, nt)
}

// MaskPos sets dst = v where x > 0 and +0 elsewhere, on the bit patterns:
// x > 0 means the sign bit clear and x not +0, so a NaN with its sign
// bit clear counts as positive. ReLU is MaskPos(y, x, x): values with
// the sign bit set (negative numbers, −0, −Inf, negative NaNs) and +0
// give +0, the rest pass unchanged, as device/cpu's x &^ signmask does.
// ReLU's gradient is MaskPos(dx, x, dy).
func MaskPos(dst, x, v []float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(x), len(v))
	maskPosAVX2(&dst[0], &x[0], &v[0], len(dst), nt)
}

// Leaky sets dst = v where x > 0 (as MaskPos) and v·alpha elsewhere.
// Leaky ReLU is Leaky(y, x, x, alpha); its gradient Leaky(dx, x, dy,
// alpha).
func Leaky(dst, x, v []float32, alpha float32, nt bool) {
	if len(dst) == 0 {
		return
	}
	nt = check(dst, nt, len(x), len(v))
	leakyAVX2(&dst[0], &x[0], &v[0], len(dst), alpha, nt)
}
