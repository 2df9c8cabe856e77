package cpu

// The attention family: strided-batched GEMM, the scaled softmax with an
// optional causal mask and its gradient, and the 4-D axis permutation
// (head split and merge).

import (
	"math"
	"sync"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu/internal/simd"
)

// attnJob is the argument block of one attention kernel, run by the
// device's workers. Jobs come from attnJobs, so a steady call allocates
// nothing (the Device type has no field for them).
type attnJob struct {
	op   uint8
	a, b []float32 // inputs (softmax: x, or y and dy; permute: x)
	c    []float32 // output (softmax: y or dx; permute: y)

	// softmax
	cols   int
	scale  float32
	causal bool
	qLen   int

	// permute: output dimensions and, for each output axis, the input
	// stride (elements) along it.
	od, is [4]int
}

const (
	jobSoftmax uint8 = iota + 1
	jobSoftmaxGrad
	jobPermute
)

var attnJobs = sync.Pool{New: func() any { return new(attnJob) }}

func getJob(op uint8) *attnJob {
	j := attnJobs.Get().(*attnJob)
	j.op = op
	return j
}

// put drops the job's references to buffers (so the pool keeps no freed
// memory alive) and returns it to the pool.
func (j *attnJob) put() {
	j.a, j.b, j.c = nil, nil, nil
	attnJobs.Put(j)
}

func (j *attnJob) run(chunk, lo, hi int) {
	switch j.op {
	case jobSoftmax:
		softmaxMaskedRows(j.a, j.c, j.cols, j.scale, j.causal, j.qLen, lo, hi)
	case jobSoftmaxGrad:
		softmaxMaskedGradRows(j.a, j.b, j.c, j.cols, j.scale, lo, hi)
	case jobPermute:
		permuteRows(j.a, j.c, j.od, j.is, lo, hi)
	}
}

// batchSpan is the elements a strided batch needs: (batch−1)·stride + size,
// or an ErrSize error when that is more than any buffer holds.
func batchSpan(op, arg string, batch, stride, size int) (int, error) {
	if stride > 0 && batch-1 > (maxElems-size)/stride {
		return 0, device.Errorf(op, arg, device.ErrSize,
			"%d matrices %d elements apart span more elements than any buffer holds", batch, stride)
	}
	return (batch-1)*stride + size, nil
}

// GemmBatched computes C_i = alpha·op(A_i)·op(B_i) + beta·C_i for i < batch
// with A_i at element i·strideA of a, B_i at i·strideB of b and C_i at
// i·strideC of c, through kiln's GEMM in every build (gemmBatchedF32,
// gemm.go: in the default build the products multiply exactly as Gemm's,
// in the openblas build Gemm's are OpenBLAS's; a shared operand, stride 0, is
// packed once; small products run side by side on goroutines, large ones
// are split in tiles). When alpha is 0, A and B are not read; when beta is
// 0, C is not read. The elements of c between the C_i (strideC > m·n) are
// left alone.
func (d *Device) GemmBatched(transA, transB bool, m, n, k int, alpha float32, a device.Buffer, strideA int, b device.Buffer, strideB int, beta float32, c device.Buffer, strideC int, batch int) error {
	const op = "GemmBatched"
	if d.closed {
		return errClosed(op)
	}
	if m < 1 || n < 1 || k < 1 || batch < 1 {
		return device.CheckDims(op, "m", m, "n", n, "k", k, "batch", batch)
	}
	mk, err := area(op, "m×k", m, k)
	if err != nil {
		return err
	}
	kn, err := area(op, "k×n", k, n)
	if err != nil {
		return err
	}
	mn, err := area(op, "m×n", m, n)
	if err != nil {
		return err
	}
	switch {
	case strideA < 0:
		return device.Errorf(op, "strideA", device.ErrInvalid, "expected a stride ≥ 0, got %d", strideA)
	case strideB < 0:
		return device.Errorf(op, "strideB", device.ErrInvalid, "expected a stride ≥ 0, got %d", strideB)
	case strideC < mn:
		return device.Errorf(op, "strideC", device.ErrInvalid,
			"expected strideC ≥ m·n = %d (the C_i must not overlap), got %d", mn, strideC)
	}
	na, err := batchSpan(op, "a", batch, strideA, mk)
	if err != nil {
		return err
	}
	nb, err := batchSpan(op, "b", batch, strideB, kn)
	if err != nil {
		return err
	}
	nc, err := batchSpan(op, "c", batch, strideC, mn)
	if err != nil {
		return err
	}
	af, err := d.f32(op, "a", a, na)
	if err != nil {
		return err
	}
	bf, err := d.f32(op, "b", b, nb)
	if err != nil {
		return err
	}
	cf, err := d.f32(op, "c", c, nc)
	if err != nil {
		return err
	}
	if alpha == 0 {
		// BLAS semantics, as Gemm: A and B are not referenced.
		if beta == 1 {
			return nil
		}
		for i := 0; i < batch; i++ {
			ci := cf[i*strideC : i*strideC+mn]
			if beta == 0 {
				d.fill(ci, 0)
			} else {
				d.scale(beta, ci, ci)
			}
		}
		return nil
	}
	gemmBatchedF32(transA, transB, m, n, k, alpha, af, strideA, bf, strideB, beta, cf, strideC, batch)
	return nil
}

// SoftmaxMasked sets y to the row-wise softmax of scale·x, with the causal
// mask when causal (row r is the query at position r mod qLen + cols −
// qLen; later columns get exactly 0). Per unmasked row prefix:
// z_j = float32(scale·x_j), m = max z_j, e_j = exp(float64(z_j − m)) in
// float64 to 4e-11 (expRow), the sum of the e_j in float64 in index
// order, y_j = float32(e_j)·float32(1/sum) in float32. The result
// depends on neither the thread count nor the purego tag. y may be x.
func (d *Device) SoftmaxMasked(x, y device.Buffer, rows, cols int, scale float32, causal bool, qLen int) error {
	const op = "SoftmaxMasked"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	if causal && (qLen < 1 || qLen > cols) {
		return device.Errorf(op, "qLen", device.ErrInvalid, "expected 1 ≤ qLen ≤ cols = %d when causal, got %d", cols, qLen)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, nn)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, nn)
	if err != nil {
		return err
	}
	j := getJob(jobSoftmax)
	j.a, j.c, j.cols, j.scale, j.causal, j.qLen = xf, yf, cols, scale, causal, qLen
	d.w.parallel(j, rows, d.w.chunks(rows, rowGrain(trGrain, cols)), 16)
	j.put()
	return nil
}

// softmaxMaskedRows is SoftmaxMasked's loop over rows lo … hi−1.
func softmaxMaskedRows(x, y []float32, cols int, scale float32, causal bool, qLen, lo, hi int) {
	for r := lo; r < hi; r++ {
		xr := x[r*cols : r*cols+cols]
		yr := y[r*cols : r*cols+cols]
		valid := cols
		if causal {
			valid = r%qLen + cols - qLen + 1 // columns 0 … q
		}
		xv, yv := xr[:valid], yr[:valid]
		m := scaledMax(xv, scale)
		// e_j = exp(float32(scale·x_j) − m): the product rounded on its
		// own, as in the maximum, so the largest gives exactly 1 and the
		// sum lies in [1, valid]; then y_j = e_j·float32(1/sum), eight
		// at a time with AVX2 (one rounding, as scaleLoop).
		inv := float32(1 / expRow(xv, yv, scale, m))
		n8 := 0
		if useAVX2EW {
			n8 = valid &^ 7
			simd.Scale(yv[:n8], yv, inv, false)
		}
		scaleLoop(yv[n8:], yv[n8:], inv)
		clear(yr[valid:])
	}
}

// SoftmaxMaskedGrad sets dx = scale · y ⊙ (dy − Σ_j dy⊙y) row by row: the
// dot product in float64 (dot64, a fixed order) rounded once to float32,
// then dx_j =
// scale·(y_j·(dy_j − dot)) in float32. dx may be dy.
func (d *Device) SoftmaxMaskedGrad(y, dy, dx device.Buffer, rows, cols int, scale float32) error {
	const op = "SoftmaxMaskedGrad"
	if d.closed {
		return errClosed(op)
	}
	if rows < 1 || cols < 1 {
		return device.CheckDims(op, "rows", rows, "cols", cols)
	}
	nn, err := area(op, "rows×cols", rows, cols)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, nn)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, nn)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, nn)
	if err != nil {
		return err
	}
	j := getJob(jobSoftmaxGrad)
	j.a, j.b, j.c, j.cols, j.scale = yf, dyf, dxf, cols, scale
	d.w.parallel(j, rows, d.w.chunks(rows, rowGrain(ewGrain, cols)), 16)
	j.put()
	return nil
}

func softmaxMaskedGradRows(y, dy, dx []float32, cols int, scale float32, lo, hi int) {
	for r := lo; r < hi; r++ {
		yr := y[r*cols : r*cols+cols]
		gr := dy[r*cols : r*cols+cols]
		xr := dx[r*cols : r*cols+cols]
		dt := float32(dot64(yr, gr))
		for j, v := range yr {
			xr[j] = scale * (v * (gr[j] - dt))
		}
	}
}

// expTab[j] is the bits of 2^(j/64), for expRow.
var expTab = func() (t [64]uint64) {
	for j := range t {
		t[j] = math.Float64bits(math.Exp2(float64(j) / 64))
	}
	return t
}()

// expRow sets y_j = float32(e_j), e_j = exp(v_j) in float64 for
// v_j = float64(float32(scale·x_j) − m) ≤ 0, and returns Σ e_j added in
// index order. exp(v) = 2^n · 2^(j/64) · exp(r) with k = 64n + j =
// round(v·64/ln2) and r = v − k·(ln2/64), |r| ≤ ln2/128 (the product
// rounded in float64: an error below 1.2e-14 for |v| ≤ 104); exp(r) is its
// Taylor polynomial of degree 3 (remainder r⁴/24 < 3.6e-11 relative);
// 2^(j/64)·2^n is expTab[j] with n added to its exponent. So e_j is within
// 4e-11 of exp(v_j), and y_j the correctly rounded float32 exp but within
// 4e-11 of a rounding boundary. That is more accurate than a float32 exp
// (act.ExpScaled, ≤ 2 ulp, which the GPT forward parity test of nn/gpt,
// 1e-5, does not tolerate) and cheaper than math.Exp. v is clamped to −104
// first (exp(−104) rounds to 0 in float32 and cannot move a sum ≥ 1; the
// exponent of 2^n·2^(j/64) stays normal); a NaN passes through. Each
// product is converted on its own so that no build fuses it into an FMA:
// the bits are the same on every target.
func expRow(x, y []float32, scale, m float32) float64 {
	const (
		magic = 0x1.8p52 // t + magic rounds t to an integer in the low bits
		invC  = 64 / math.Ln2
		c     = math.Ln2 / 64
	)
	y = y[:len(x)]
	s := 0.0
	for j, xv := range x {
		v := float64(float32(scale*xv) - m)
		if v < -104 {
			v = -104
		}
		t := float64(v*invC) + magic
		k := math.Float64bits(t) - math.Float64bits(magic) // k mod 2^64
		r := v - float64((t-magic)*c)
		p := float64(r*(1.0/6)) + 0.5
		p = float64(p*r) + 1
		p = float64(p*r) + 1
		e := float64(p * math.Float64frombits(expTab[k&63]+(k>>6)<<52))
		s += e
		y[j] = float32(e)
	}
	return s
}

// scaledMax is the largest float32(scale·x_j) (−Inf for an empty x; NaNs
// are passed over, as a NaN in x makes its row NaN anyway), four
// comparisons side by side.
func scaledMax(x []float32, scale float32) float32 {
	m0 := float32(math.Inf(-1))
	m1, m2, m3 := m0, m0, m0
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		if z := float32(scale * v[0]); z > m0 {
			m0 = z
		}
		if z := float32(scale * v[1]); z > m1 {
			m1 = z
		}
		if z := float32(scale * v[2]); z > m2 {
			m2 = z
		}
		if z := float32(scale * v[3]); z > m3 {
			m3 = z
		}
	}
	for ; i < len(x); i++ {
		if z := float32(scale * x[i]); z > m0 {
			m0 = z
		}
	}
	if m1 > m0 {
		m0 = m1
	}
	if m3 > m2 {
		m2 = m3
	}
	if m2 > m0 {
		m0 = m2
	}
	return m0
}

// dot64 is Σ a_j·b_j over len(a) elements in float64 (each product exact),
// four accumulators wide in a fixed order, as sum64 adds: the chains run
// side by side instead of one float64 add waiting on the last.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		u, v := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += float64(u[0]) * float64(v[0])
		s1 += float64(u[1]) * float64(v[1])
		s2 += float64(u[2]) * float64(v[2])
		s3 += float64(u[3]) * float64(v[3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// Permute4 writes y = x.permute(perm).contiguous() for the 4-D x of
// dimensions dims: y has dimensions dims[perm[0]], …, dims[perm[3]], and
// y's axis k walks x's axis perm[k]. The rows of y's last axis are split
// across the workers. y must not overlap x.
func (d *Device) Permute4(x, y device.Buffer, dims [4]int, perm [4]int) error {
	const op = "Permute4"
	if d.closed {
		return errClosed(op)
	}
	n, err := permuteCheck(op, dims, perm)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, n)
	if err != nil {
		return err
	}
	j := getJob(jobPermute)
	j.a, j.c = xf, yf
	var xs [4]int // x's row-major strides
	xs[3] = 1
	for a := 2; a >= 0; a-- {
		xs[a] = xs[a+1] * dims[a+1]
	}
	for k := 0; k < 4; k++ {
		j.od[k] = dims[perm[k]]
		j.is[k] = xs[perm[k]]
	}
	rows := n / j.od[3]
	d.w.parallel(j, rows, d.w.chunks(rows, rowGrain(ewGrain, j.od[3])), 1)
	j.put()
	return nil
}

// permuteCheck checks Permute4's dimensions and permutation and returns
// the element count.
func permuteCheck(op string, dims, perm [4]int) (int, error) {
	if err := device.CheckDims(op, "dims[0]", dims[0], "dims[1]", dims[1], "dims[2]", dims[2], "dims[3]", dims[3]); err != nil {
		return 0, err
	}
	var seen [4]bool
	for _, p := range perm {
		if p < 0 || p > 3 || seen[p] {
			return 0, device.Errorf(op, "perm", device.ErrInvalid, "expected a permutation of 0, 1, 2, 3, got %v", perm)
		}
		seen[p] = true
	}
	n, err := area(op, "dims", dims[0], dims[1])
	if err == nil {
		n, err = area(op, "dims", n, dims[2])
	}
	if err == nil {
		n, err = area(op, "dims", n, dims[3])
	}
	return n, err
}

// permuteRows copies rows lo … hi−1 of y, seen as (od0·od1·od2) rows of
// od3: row r is output index (i0, i1, i2) and element i3 comes from
// x[i0·is0 + i1·is1 + i2·is2 + i3·is3].
func permuteRows(x, y []float32, od, is [4]int, lo, hi int) {
	n3, s3 := od[3], is[3]
	i2 := lo % od[2]
	i1 := lo / od[2] % od[1]
	i0 := lo / (od[2] * od[1])
	for r := lo; r < hi; r++ {
		src := i0*is[0] + i1*is[1] + i2*is[2]
		yr := y[r*n3 : r*n3+n3]
		if s3 == 1 {
			copy(yr, x[src:src+n3])
		} else {
			for i := range yr {
				yr[i] = x[src+i*s3]
			}
		}
		if i2++; i2 == od[2] {
			i2 = 0
			if i1++; i1 == od[1] {
				i1 = 0
				i0++
			}
		}
	}
}
