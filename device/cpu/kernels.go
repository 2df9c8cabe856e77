package cpu

import (
	"math"
	"unsafe"

	"github.com/kilnml/kiln/device"
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
// across the workers when n/grain allows. It returns the number of chunks
// run, for reductions to add up their partial sums.
func (d *Device) launch(n, grain int) int {
	return d.w.parallel(&d.k, n, d.w.chunks(n, grain), 16)
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
		for i := range c {
			c[i] = a[i] + b[i]
		}
	case opSub:
		a, b, c := k.a[lo:hi], k.b[lo:hi], k.c[lo:hi]
		for i := range c {
			c[i] = a[i] - b[i]
		}
	case opMul:
		a, b, c := k.a[lo:hi], k.b[lo:hi], k.c[lo:hi]
		for i := range c {
			c[i] = a[i] * b[i]
		}
	case opScale:
		a, c, s := k.a[lo:hi], k.c[lo:hi], k.s0
		for i := range c {
			c[i] = s * a[i]
		}
	case opAxpy:
		x, y, s := k.a[lo:hi], k.b[lo:hi], k.s0
		for i := range y {
			y[i] += s * x[i]
		}
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
		activate(k.act, k.s0, k.a[lo:hi], k.c[lo:hi])
	case opActGrad:
		var x, y []float32
		if k.a != nil {
			x = k.a[lo:hi]
		}
		if k.b != nil {
			y = k.b[lo:hi]
		}
		activateGrad(k.act, k.s0, x, y, k.c[lo:hi], k.e[lo:hi])
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

func addBias(x, bias []float32, cols, lo, hi int) {
	bias = bias[:cols]
	for r := lo; r < hi; r++ {
		row := x[r*cols : r*cols+cols]
		for j := range row {
			row[j] += bias[j]
		}
	}
}

// biasGrad sums the columns [lo, hi) of rows×cols dy into acc (float64),
// then sets db = beta·db + acc. Chunks split the columns.
func biasGrad(acc []float64, dy []float32, cols int, beta float32, db []float32, lo, hi int) {
	a := acc[lo:hi]
	clear(a)
	rows := len(dy) / cols
	for r := 0; r < rows; r++ {
		row := dy[r*cols+lo : r*cols+hi]
		for j := range row {
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
// approximation. Transcendentals run in float64 and round once.

const (
	invSqrt2    = 0.70710678118654752440
	invSqrt2Pi  = 0.39894228040143267794 // 1/√(2π)
	sqrt2OverPi = 0.79788456080286535588 // √(2/π)
	geluC       = 0.044715
)

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

func activate(act device.Activation, alpha float32, x, y []float32) {
	y = y[:len(x)]
	switch act {
	case device.Identity:
		copy(y, x)
	case device.ReLU:
		// Branch-free on the sign bit: real activations have random signs,
		// which a branch would mispredict half the time. NaN stays NaN
		// (as torch.relu) unless its sign bit is set.
		// The loop runs on the bit patterns (bitsOf), which keeps it in
		// integer registers: no moves between the float and integer units.
		xu, yu := bitsOf(x), bitsOf(y)
		for i, u := range xu {
			yu[i] = u &^ negMask(u)
		}
	case device.LeakyReLU:
		for i, v := range x {
			u := math.Float32bits(v)
			m := posMask(u)
			y[i] = math.Float32frombits(u&m | math.Float32bits(alpha*v)&^m)
		}
	case device.Tanh:
		for i, v := range x {
			y[i] = float32(math.Tanh(float64(v)))
		}
	case device.Sigmoid:
		for i, v := range x {
			y[i] = float32(sigmoid64(float64(v)))
		}
	case device.GELU:
		for i, v := range x {
			z := float64(v)
			y[i] = float32(0.5 * z * (1 + math.Erf(z*invSqrt2)))
		}
	case device.GELUTanh:
		for i, v := range x {
			z := float64(v)
			y[i] = float32(0.5 * z * (1 + math.Tanh(sqrt2OverPi*(z+geluC*z*z*z))))
		}
	}
}

// activateGrad sets dx = dy·f'(x). x or y may be nil when the function
// does not need it (the caller has checked which is present).
func activateGrad(act device.Activation, alpha float32, x, y, dy, dx []float32) {
	dx = dx[:len(dy)]
	switch act {
	case device.Identity:
		copy(dx, dy)
	case device.ReLU:
		src := x
		if src == nil {
			src = y
		}
		su, gu, du := bitsOf(src[:len(dy)]), bitsOf(dy), bitsOf(dx)
		for i, g := range gu {
			du[i] = g & posMask(su[i])
		}
	case device.LeakyReLU:
		x = x[:len(dy)]
		for i, g := range dy {
			m := posMask(math.Float32bits(x[i]))
			dx[i] = math.Float32frombits(math.Float32bits(g)&m | math.Float32bits(alpha*g)&^m)
		}
	case device.Tanh:
		if y != nil {
			y = y[:len(dy)]
			for i, g := range dy {
				t := y[i]
				dx[i] = g * (1 - t*t)
			}
			return
		}
		x = x[:len(dy)]
		for i, g := range dy {
			t := math.Tanh(float64(x[i]))
			dx[i] = float32(float64(g) * (1 - t*t))
		}
	case device.Sigmoid:
		if y != nil {
			y = y[:len(dy)]
			for i, g := range dy {
				s := y[i]
				dx[i] = g * s * (1 - s)
			}
			return
		}
		x = x[:len(dy)]
		for i, g := range dy {
			s := sigmoid64(float64(x[i]))
			dx[i] = float32(float64(g) * s * (1 - s))
		}
	case device.GELU:
		x = x[:len(dy)]
		for i, g := range dy {
			z := float64(x[i])
			cdf := 0.5 * (1 + math.Erf(z*invSqrt2))
			pdf := invSqrt2Pi * math.Exp(-0.5*z*z)
			dx[i] = float32(float64(g) * (cdf + z*pdf))
		}
	case device.GELUTanh:
		x = x[:len(dy)]
		for i, g := range dy {
			z := float64(x[i])
			inner := sqrt2OverPi * (z + geluC*z*z*z)
			t := math.Tanh(inner)
			d := 0.5*(1+t) + 0.5*z*(1-t*t)*sqrt2OverPi*(1+3*geluC*z*z)
			dx[i] = float32(float64(g) * d)
		}
	}
}
