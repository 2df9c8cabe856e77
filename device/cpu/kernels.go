package cpu

import (
	"math"
	"unsafe"

	"github.com/kilnml/kiln/device"
	fastact "github.com/kilnml/kiln/device/cpu/internal/act"
	"github.com/kilnml/kiln/device/cpu/internal/simd"
	"github.com/kilnml/kiln/device/cpu/internal/stat"
)

// ewGrain is the number of elements from which an elementwise kernel is
// split across goroutines; below it the call runs serially on the caller.
// Measured with BenchmarkCutover (Add, 2-core AMD EPYC VM shared with
// other jobs, median of 3): serial Add runs at about 0.2–0.4 ns an element
// while cache-resident; a hand-off to a worker and the wait cost about
// 3 µs. Two chunks lost at 4K (4.7 vs 3.2 µs) and 16K elements (15 vs
// 12 µs), tied at 64K (50 vs 47 µs) and won at 256K (115 vs 196 µs) and
// 4M (4.0 vs 4.9 ms). So the cut-over is 64K elements: from 128K the
// work is split.
const ewGrain = 1 << 16

// opcode selects the loop kern.run executes.
type opcode uint8

const (
	opAdd opcode = iota + 1
	opSub
	opMul
	opScale
	opAxpy
	opFill
	opCopy
	opAct
	opActGrad
	opSum
	opSumSq
	opSGD
	opAdam
	opRandNormal
	opRandUniform
	opDropout
	opAddBias
	opBiasGrad
	opSoftmax
	opSoftmaxGrad
	opArgmax
	opLoss
)

// kern is the argument block of one kernel call. The Device keeps one and
// passes a pointer to it to the workers, so a call allocates nothing.
type kern struct {
	op          opcode
	a, b, c, e  []float32
	lab         []int32
	s0, s1, s2  float32
	s3, s4, s5  float32
	act         device.Activation
	loss        device.LossKind
	flag, flag2 bool
	f, f1, f2   float64
	seed, off   uint64
	cols        int
	acc         []float64           // BiasGrad column sums
	part        *[maxChunks]float64 // per-chunk partial sums (the Device's)
}

// launch runs d.k over n items (elements, or rows for row kernels), split
// across the workers when n/grain allows.
func (d *Device) launch(n, grain int) int {
	return d.w.parallel(&d.k, n, d.w.chunks(n, grain), 16)
}

// launchReduce is launch for a reduction: its chunks are fixed by n alone
// (reduceChunks), and it returns how many ran, for partSum.
func (d *Device) launchReduce(n, grain int) int {
	return d.w.parallel(&d.k, n, reduceChunks(n, grain), 16)
}

// partSum adds up the per-chunk partial sums of a reduction.
func (d *Device) partSum(c int) float64 {
	s := 0.0
	for i := 0; i < c; i++ {
		s += d.part[i]
	}
	return s
}

// release drops the slices the argument block points to, so it does not
// keep freed memory alive.
func (d *Device) release() {
	k := &d.k
	k.a, k.b, k.c, k.e, k.lab, k.acc = nil, nil, nil, nil, nil, nil
}

func (k *kern) run(chunk, lo, hi int) {
	switch k.op {
	case opAdd:
		a, b, c := k.a[lo:hi], k.b[lo:hi], k.c[lo:hi]
		if h, m, nt := vecSpan(c, len(k.c)); m > 0 {
			addLoop(c[:h], a, b)
			simd.Add(c[h:h+m], a[h:], b[h:], nt)
			a, b, c = a[h+m:], b[h+m:], c[h+m:]
		}
		addLoop(c, a, b)
	case opSub:
		a, b, c := k.a[lo:hi], k.b[lo:hi], k.c[lo:hi]
		if h, m, nt := vecSpan(c, len(k.c)); m > 0 {
			subLoop(c[:h], a, b)
			simd.Sub(c[h:h+m], a[h:], b[h:], nt)
			a, b, c = a[h+m:], b[h+m:], c[h+m:]
		}
		subLoop(c, a, b)
	case opMul:
		a, b, c := k.a[lo:hi], k.b[lo:hi], k.c[lo:hi]
		if h, m, nt := vecSpan(c, len(k.c)); m > 0 {
			mulLoop(c[:h], a, b)
			simd.Mul(c[h:h+m], a[h:], b[h:], nt)
			a, b, c = a[h+m:], b[h+m:], c[h+m:]
		}
		mulLoop(c, a, b)
	case opScale:
		a, c, s := k.a[lo:hi], k.c[lo:hi], k.s0
		// A NaN factor stays on the portable loop: which of two NaNs
		// survives s·x depends on how the compiler orders the operands.
		if h, m, nt := vecSpan(c, len(k.c)); m > 0 && s == s {
			scaleLoop(c[:h], a, s)
			simd.Scale(c[h:h+m], a[h:], s, nt)
			a, c = a[h+m:], c[h+m:]
		}
		scaleLoop(c, a, s)
	case opAxpy:
		x, y, s := k.a[lo:hi], k.b[lo:hi], k.s0
		if h, m, nt := vecSpan(y, len(k.b)); m > 0 && s == s { // NaN s: as Scale
			axpyLoop(y[:h], x, s)
			simd.Axpy(y[h:h+m], x[h:], s, nt)
			x, y = x[h+m:], y[h+m:]
		}
		axpyLoop(y, x, s)
	case opFill:
		a, v := k.a[lo:hi], k.s0
		if v == 0 {
			clear(a)
			return
		}
		for i := range a {
			a[i] = v
		}
	case opCopy:
		copy(k.c[lo:hi], k.a[lo:hi])
	case opAct:
		activate(k.act, k.s0, k.a[lo:hi], k.c[lo:hi], len(k.c))
	case opActGrad:
		var x, y []float32
		if k.a != nil {
			x = k.a[lo:hi]
		}
		if k.b != nil {
			y = k.b[lo:hi]
		}
		activateGrad(k.act, k.s0, x, y, k.c[lo:hi], k.e[lo:hi], len(k.e))
	case opSum:
		k.part[chunk] = sum64(k.a[lo:hi])
	case opSumSq:
		k.part[chunk] = sumSq64(k.a[lo:hi])
	case opSGD:
		k.sgd(lo, hi)
	case opAdam:
		k.adam(lo, hi)
	case opRandNormal, opRandUniform, opDropout:
		k.random(lo, hi)
	case opAddBias:
		addBias(k.a, k.b, k.cols, lo, hi)
	case opBiasGrad:
		biasGrad(k.acc, k.b, k.cols, k.s0, k.a, lo, hi)
	case opSoftmax:
		softmaxRows(k.a, k.c, k.cols, lo, hi)
	case opSoftmaxGrad:
		softmaxGradRows(k.a, k.b, k.c, k.cols, lo, hi)
	case opArgmax:
		argmaxRows(k.a, k.lab, k.cols, lo, hi)
	case opLoss:
		k.part[chunk] = k.lossRows(lo, hi)
	}
}

// useAVX2EW selects the AVX2 elementwise kernels of internal/simd (Add,
// Sub, Mul, Scale, Axpy, ReLU and leaky ReLU with their gradients) where
// the processor has AVX2, as useAVX2 selects the Adam kernel; under the
// purego tag, and on other processors, the portable loops run. Tests
// switch it off to compare the two bit for bit.
var useAVX2EW = simd.HasAVX2

// ntMin is the destination length (elements, the whole call's) from
// which the vector kernels write with non-temporal stores: three arrays
// of 2M float32 (24 MiB) no longer stay in a 32 MiB L3 shared with other
// work, and streaming saves the write-allocate read of every destination
// line. Below it the result stays in cache for the next kernel. A
// variable so tests can exercise both paths on small arrays.
var ntMin = 1 << 21

// vecSpan splits a chunk's destination c (of a call whose destination
// holds total elements) for the vector kernels: c[:h] and c[h+m:] run in
// the portable loop, c[h:h+m] in the vector kernel (m a multiple of 8,
// 0 when the kernels are off), with non-temporal stores when nt.
func vecSpan(c []float32, total int) (h, m int, nt bool) {
	if !useAVX2EW || len(c) < 8 {
		return 0, 0, false
	}
	return simd.Span(c, total >= ntMin)
}

// The portable elementwise loops. Each also runs the head and tail
// around the vector kernel's part, so the two paths agree bit for bit.

func addLoop(c, a, b []float32) {
	a, b = a[:len(c)], b[:len(c)]
	for i := range c {
		c[i] = a[i] + b[i]
	}
}

func subLoop(c, a, b []float32) {
	a, b = a[:len(c)], b[:len(c)]
	for i := range c {
		c[i] = a[i] - b[i]
	}
}

func mulLoop(c, a, b []float32) {
	a, b = a[:len(c)], b[:len(c)]
	for i := range c {
		c[i] = a[i] * b[i]
	}
}

func scaleLoop(c, a []float32, s float32) {
	a = a[:len(c)]
	for i := range c {
		c[i] = s * a[i]
	}
}

func axpyLoop(y, x []float32, s float32) {
	x = x[:len(y)]
	for i := range y {
		// The conversion rounds the product on its own: without it a
		// GOAMD64=v3 build would fuse the multiply-add (one rounding) and
		// disagree with the vector kernel and with other builds.
		y[i] += float32(s * x[i])
	}
}

// sum64 adds x in float64, four accumulators wide.
func sum64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		s0 += float64(v[0])
		s1 += float64(v[1])
		s2 += float64(v[2])
		s3 += float64(v[3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// sumSq64 adds the squares of x in float64.
func sumSq64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a, b, c, d := float64(v[0]), float64(v[1]), float64(v[2]), float64(v[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		v := float64(x[i])
		s0 += v * v
	}
	return (s0 + s1) + (s2 + s3)
}

// addBias adds bias to rows lo … hi−1 of the rows×cols x, one row at a
// time: the AVX2 Add kernel over the row's largest multiple of 8 (plain
// stores: x is read again by the next kernel), addLoop over the rest, so
// each element is x + bias rounded once, on either path.
func addBias(x, bias []float32, cols, lo, hi int) {
	bias = bias[:cols]
	m := 0
	if useAVX2EW {
		m = cols &^ 7
	}
	for r := lo; r < hi; r++ {
		row := x[r*cols : r*cols+cols]
		if m > 0 {
			simd.Add(row[:m], row, bias, false)
		}
		addLoop(row[m:], row[m:], bias[m:])
	}
}

// biasGrad sums the columns [lo, hi) of rows×cols dy into acc (float64),
// then sets db = beta·db + acc. Chunks split the columns. Each column is
// added in row order, acc_j = ((dy_0j + dy_1j) + dy_2j) + …, whatever the
// chunks; four rows are added per pass over acc, so acc is loaded and
// stored once per four rows.
func biasGrad(acc []float64, dy []float32, cols int, beta float32, db []float32, lo, hi int) {
	a := acc[lo:hi]
	clear(a)
	n := hi - lo
	rows := len(dy) / cols
	r := 0
	for ; r+4 <= rows; r += 4 {
		// (((a + r0) + r1) + r2) + r3 per column, in float64 (the AVX2
		// kernel where there is one: the same bits).
		o := r*cols + lo
		stat.ColAdd4(a, dy[o:o+n], dy[o+cols:o+cols+n], dy[o+2*cols:o+2*cols+n], dy[o+3*cols:o+3*cols+n])
	}
	for ; r < rows; r++ {
		row := dy[r*cols+lo : r*cols+lo+n][:len(a)]
		for j := range a {
			a[j] += float64(row[j])
		}
	}
	out := db[lo:hi]
	if beta == 0 {
		for j := range out {
			out[j] = float32(a[j])
		}
		return
	}
	for j := range out {
		out[j] = float32(float64(beta)*float64(out[j]) + a[j])
	}
}

func softmaxRows(x, y []float32, cols, lo, hi int) {
	for r := lo; r < hi; r++ {
		xr := x[r*cols : r*cols+cols]
		yr := y[r*cols : r*cols+cols]
		m := xr[0]
		for _, v := range xr {
			if v > m {
				m = v
			}
		}
		s := 0.0
		for j, v := range xr {
			e := math.Exp(float64(v - m))
			s += e
			yr[j] = float32(e)
		}
		inv := 1 / s
		for j := range yr {
			yr[j] = float32(float64(yr[j]) * inv)
		}
	}
}

func softmaxGradRows(y, dy, dx []float32, cols, lo, hi int) {
	for r := lo; r < hi; r++ {
		yr := y[r*cols : r*cols+cols]
		gr := dy[r*cols : r*cols+cols]
		xr := dx[r*cols : r*cols+cols]
		dot := 0.0
		for j, v := range yr {
			dot += float64(v) * float64(gr[j])
		}
		dt := float32(dot)
		for j, v := range yr {
			xr[j] = v * (gr[j] - dt)
		}
	}
}

func argmaxRows(x []float32, out []int32, cols, lo, hi int) {
	for r := lo; r < hi; r++ {
		xr := x[r*cols : r*cols+cols]
		best, bi := xr[0], 0
		for j, v := range xr {
			if v > best {
				best, bi = v, j
			}
		}
		out[r] = int32(bi)
	}
}

// Activation math. GELU uses the exact erf form; GELUTanh PyTorch's tanh
// approximation; ELU expm1 (as PyTorch), so that it keeps its relative
// accuracy near 0. All of the transcendental ones (GELU, GELUTanh, Tanh,
// Sigmoid, SiLU, ELU) run in float32 through internal/act: an AVX2
// kernel and its bit-identical scalar twin, accurate to a few ulp.

// bitsOf views float32s as their IEEE-754 bit patterns (same memory).
func bitsOf(x []float32) []uint32 {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&x[0])), len(x))
}

// negMask is all ones when the float32 with bits u has its sign bit set
// (negative numbers and -0), else zero.
func negMask(u uint32) uint32 { return uint32(int32(u) >> 31) }

// posMask is all ones when the float32 with bits u is greater than zero
// (sign bit clear and not +0; a positive NaN counts), else zero. It needs
// no branch.
func posMask(u uint32) uint32 { return ^negMask(u) & uint32(int32(u|-u)>>31) }

func sigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// reluLoop sets y = relu(x) for the len(x) elements of x. Branch-free on
// the sign bit: real activations have random signs, which a branch would
// mispredict half the time. NaN stays NaN (as torch.relu) unless its
// sign bit is set. The loop runs on the bit patterns (bitsOf), which
// keeps it in integer registers: no moves between the float and integer
// units.
func reluLoop(x, y []float32) {
	xu, yu := bitsOf(x), bitsOf(y[:len(x)])
	for i, u := range xu {
		yu[i] = u &^ negMask(u)
	}
}

// reluGradLoop sets dx = dy where src > 0 (posMask), else +0, for the
// len(dy) elements of dy.
func reluGradLoop(src, dy, dx []float32) {
	su, gu, du := bitsOf(src[:len(dy)]), bitsOf(dy), bitsOf(dx[:len(dy)])
	for i, g := range gu {
		du[i] = g & posMask(su[i])
	}
}

// leakyLoop sets dst = v where x > 0 (posMask), else alpha·v, for the
// len(v) elements of v: leaky ReLU with v = x, its gradient with v = dy.
func leakyLoop(alpha float32, x, v, dst []float32) {
	x, dst = x[:len(v)], dst[:len(v)]
	for i, g := range v {
		m := posMask(math.Float32bits(x[i]))
		dst[i] = math.Float32frombits(math.Float32bits(g)&m | math.Float32bits(alpha*g)&^m)
	}
}

func activate(act device.Activation, alpha float32, x, y []float32, total int) {
	y = y[:len(x)]
	switch act {
	case device.Identity:
		copy(y, x)
	case device.ReLU:
		if h, m, nt := vecSpan(y, total); m > 0 {
			// The AVX2 kernel computes x where x > 0, else +0, on the
			// bits: the same result as the loop below for every input.
			reluLoop(x[:h], y)
			simd.MaskPos(y[h:h+m], x[h:], x[h:], nt)
			x, y = x[h+m:], y[h+m:]
		}
		reluLoop(x, y)
	case device.LeakyReLU:
		// A NaN alpha stays on the portable loop, as a NaN factor of
		// Scale does.
		if h, m, nt := vecSpan(y, total); m > 0 && alpha == alpha {
			leakyLoop(alpha, x, x[:h], y)
			simd.Leaky(y[h:h+m], x[h:], x[h:], alpha, nt)
			x, y = x[h+m:], y[h+m:]
		}
		leakyLoop(alpha, x, x, y)
	case device.Tanh:
		fastact.Forward(fastact.Tanh, x, y)
	case device.Sigmoid:
		fastact.Forward(fastact.Sigmoid, x, y)
	case device.GELU:
		fastact.Forward(fastact.GELU, x, y)
	case device.GELUTanh:
		fastact.Forward(fastact.GELUTanh, x, y)
	case device.SiLU:
		fastact.Forward(fastact.SiLU, x, y)
	case device.ELU:
		fastact.ELU(x, y, alpha)
	}
}

// activateGrad sets dx = dy·f'(x). x or y may be nil when the function
// does not need it (the caller has checked which is present).
func activateGrad(act device.Activation, alpha float32, x, y, dy, dx []float32, total int) {
	dx = dx[:len(dy)]
	switch act {
	case device.Identity:
		copy(dx, dy)
	case device.ReLU:
		src := x
		if src == nil {
			src = y
		}
		src = src[:len(dy)]
		if h, m, nt := vecSpan(dx, total); m > 0 {
			reluGradLoop(src, dy[:h], dx)
			simd.MaskPos(dx[h:h+m], src[h:], dy[h:], nt)
			src, dy, dx = src[h+m:], dy[h+m:], dx[h+m:]
		}
		reluGradLoop(src, dy, dx)
	case device.LeakyReLU:
		x = x[:len(dy)]
		if h, m, nt := vecSpan(dx, total); m > 0 && alpha == alpha {
			leakyLoop(alpha, x, dy[:h], dx)
			simd.Leaky(dx[h:h+m], x[h:], dy[h:], alpha, nt)
			x, dy, dx = x[h+m:], dy[h+m:], dx[h+m:]
		}
		leakyLoop(alpha, x, dy, dx)
	case device.Tanh:
		if y != nil {
			fastact.GradY(fastact.Tanh, y, dy, dx)
			return
		}
		fastact.GradX(fastact.Tanh, x, dy, dx)
	case device.Sigmoid:
		if y != nil {
			fastact.GradY(fastact.Sigmoid, y, dy, dx)
			return
		}
		fastact.GradX(fastact.Sigmoid, x, dy, dx)
	case device.GELU:
		fastact.GradX(fastact.GELU, x, dy, dx)
	case device.GELUTanh:
		fastact.GradX(fastact.GELUTanh, x, dy, dx)
	case device.SiLU:
		// d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))) (internal/act).
		fastact.GradX(fastact.SiLU, x, dy, dx)
	case device.ELU:
		// 1 for x > 0, else alpha·exp(x) (PyTorch's elu_backward from x).
		fastact.ELUGrad(x, dy, dx, alpha)
	}
}
