//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// A parity case runs one primitive on the same inputs on the CPU backend
// and on the GPU and compares every output buffer.
type parityCase struct {
	name   string
	in     [][]float32 // float32 inputs (outputs may alias them: they are read back too)
	lab    []int32     // optional int32 input
	outs   []int       // float32 outputs, zero-initialised
	outI   []int       // int32 outputs
	run    func(d device.Device, in []device.Buffer, lab device.Buffer, out, outI []device.Buffer) error
	tol    float64 // normwise relative tolerance; 0 means bit-exact
	inTol  float64 // tolerance for inputs modified in place (defaults to tol)
	viewAt int     // when > 0, every float32 buffer is a view at this element offset (misaligned paths)
}

// paritytol is the brief's CPU/GPU parity tolerance for computed values.
const parityTol = 1e-5

// adamTol bounds the CPU/GPU difference of AdamStep (p, m and v, normwise
// relative). The GPU kernel and the CPU's scalar loop run the update in
// float64 with one rounding each and agree bit for bit, but on x86-64 with
// AVX2 and FMA (every GPU host) the CPU backend runs all but the last
// len%8 elements of each chunk through internal/simd's float32 FMA kernel:
// a few float32 roundings per value, so m and v differ by an ulp or two
// (normwise about 1e-7) and p, whose lr-sized update is far below its own
// ulp, in the last bit at most.
const adamTol = 1e-6

func runParity(t *testing.T, gpu, cpu device.Device, c parityCase) {
	t.Helper()
	type result struct {
		in, out [][]float32
		outI    [][]int32
	}
	var res [2]result
	for di, dev := range []device.Device{gpu, cpu} {
		mk := func(x []float32) device.Buffer {
			if c.viewAt == 0 {
				return upload(t, dev, x)
			}
			padded := append(make([]float32, c.viewAt), x...)
			b := upload(t, dev, padded)
			v, err := dev.View(b, c.viewAt, len(x))
			must(t, "View", err)
			return v
		}
		var ins, outs, outI []device.Buffer
		for _, x := range c.in {
			ins = append(ins, mk(x))
		}
		for _, n := range c.outs {
			outs = append(outs, mk(make([]float32, n)))
		}
		for _, n := range c.outI {
			b, err := dev.Alloc(device.Int32, n)
			must(t, "Alloc", err)
			outI = append(outI, b)
		}
		var lab device.Buffer
		if c.lab != nil {
			lab = uploadI32(t, dev, c.lab)
		}
		must(t, dev.Name()+": "+c.name, c.run(dev, ins, lab, outs, outI))
		for _, b := range ins {
			res[di].in = append(res[di].in, download(t, dev, b))
		}
		for _, b := range outs {
			res[di].out = append(res[di].out, download(t, dev, b))
		}
		for _, b := range outI {
			res[di].outI = append(res[di].outI, downloadI32(t, dev, b))
		}
	}
	check := func(what string, g, w []float32, tol float64) {
		e := relErr(g, w)
		if tol == 0 {
			for i := range g {
				if math.Float32bits(g[i]) != math.Float32bits(w[i]) && !(g[i] != g[i] && w[i] != w[i]) {
					t.Errorf("%s %s: element %d: gpu %v, cpu %v (want bit-exact; normwise rel err %.3g)", c.name, what, i, g[i], w[i], e)
					return
				}
			}
			return
		}
		if e > tol {
			d, at := maxAbsDiff(g, w)
			t.Errorf("%s %s: normwise relative error %.3g > %.3g (largest difference %.3g at %d: gpu %v, cpu %v)",
				c.name, what, e, tol, d, at, g[at], w[at])
		}
	}
	inTol := c.inTol
	if inTol == 0 {
		inTol = c.tol
	}
	for i := range res[0].in {
		check(fmt.Sprintf("input %d (after the call)", i), res[0].in[i], res[1].in[i], inTol)
	}
	for i := range res[0].out {
		check(fmt.Sprintf("output %d", i), res[0].out[i], res[1].out[i], c.tol)
	}
	for i := range res[0].outI {
		for j := range res[0].outI[i] {
			if res[0].outI[i][j] != res[1].outI[i][j] {
				t.Errorf("%s int32 output %d: element %d: gpu %d, cpu %d", c.name, i, j, res[0].outI[i][j], res[1].outI[i][j])
				break
			}
		}
	}
}

// TestPrimitiveParity runs every primitive on the CPU backend and on the
// GPU with the same inputs: elementwise arithmetic, SGD and the float32
// steps are bit-exact by construction (explicit rounding, no FMA
// contraction); Adam agrees within adamTol (see there); everything with a
// transcendental function, a reduction or a GEMM agrees within 1e-5
// normwise relative error.
func TestPrimitiveParity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	r := rand.New(rand.NewPCG(3, 4))
	u := func(n int, lo, hi float64) []float32 { return uniform(r, n, lo, hi) }
	var cases []parityCase

	// GEMM.
	for _, sh := range [][3]int{{64, 256, 784}, {33, 65, 17}, {1, 300, 200}, {300, 1, 200}, {512, 512, 512}, {8, 10, 4096}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, sc := range [][2]float32{{1, 0}, {0.5, 1.5}, {0, 2}} {
				ta, tb, alpha, beta := tr[0], tr[1], sc[0], sc[1]
				cases = append(cases, parityCase{
					name: fmt.Sprintf("Gemm/%dx%dx%d/%v%v/a%gb%g", m, n, k, ta, tb, alpha, beta),
					in:   [][]float32{u(m*k, -1, 1), u(k*n, -1, 1), u(m*n, -1, 1)},
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
						return d.Gemm(ta, tb, m, n, k, alpha, in[0], in[1], beta, in[2])
					},
					tol: parityTol,
				})
			}
		}
	}
	// Bias.
	for _, sh := range [][2]int{{64, 256}, {1024, 4096}, {7, 10}, {1000, 3}, {3, 5000}} {
		rows, cols := sh[0], sh[1]
		cases = append(cases,
			parityCase{name: fmt.Sprintf("AddBias/%dx%d", rows, cols), in: [][]float32{u(rows*cols, -1, 1), u(cols, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.AddBias(in[0], in[1], rows, cols)
				}},
			parityCase{name: fmt.Sprintf("BiasGrad/%dx%d/beta0", rows, cols), in: [][]float32{u(cols, -1, 1), u(rows*cols, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.BiasGrad(in[0], in[1], rows, cols, 0)
				}, tol: parityTol},
			parityCase{name: fmt.Sprintf("BiasGrad/%dx%d/beta1", rows, cols), in: [][]float32{u(cols, -1, 1), u(rows*cols, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.BiasGrad(in[0], in[1], rows, cols, 1)
				}, tol: parityTol},
		)
	}
	// Activations, forward and backward, aligned and misaligned.
	for act := device.Identity; act <= device.ELU; act++ {
		for _, view := range []int{0, 1} {
			n := 100003
			x := u(n, -6, 6)
			cases = append(cases,
				parityCase{name: fmt.Sprintf("Activate/%s/view%d", act, view), in: [][]float32{x}, outs: []int{n}, viewAt: view,
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						return d.Activate(act, 0.01, in[0], out[0], n)
					}, tol: 1e-6},
				parityCase{name: fmt.Sprintf("ActivateGrad/%s/view%d", act, view), in: [][]float32{x, u(n, 0, 1), u(n, -2, 2)}, outs: []int{n}, viewAt: view,
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						return d.ActivateGrad(act, 0.01, in[0], in[1], in[2], out[0], n)
					}, tol: 1e-6},
				parityCase{name: fmt.Sprintf("ActivateGrad/%s/noY", act), in: [][]float32{x, u(n, -2, 2)}, outs: []int{n},
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						if act == device.Identity {
							return d.ActivateGrad(act, 0.01, nil, nil, in[1], out[0], n)
						}
						return d.ActivateGrad(act, 0.01, in[0], nil, in[1], out[0], n)
					}, tol: 1e-6},
			)
		}
	}
	// Softmax.
	for _, sh := range [][2]int{{64, 10}, {1024, 4096}, {3, 1}, {5, 100000}} {
		rows, cols := sh[0], sh[1]
		cases = append(cases,
			parityCase{name: fmt.Sprintf("Softmax/%dx%d", rows, cols), in: [][]float32{u(rows*cols, -20, 20)}, outs: []int{rows * cols},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.Softmax(in[0], out[0], rows, cols)
				}, tol: parityTol},
			parityCase{name: fmt.Sprintf("SoftmaxGrad/%dx%d", rows, cols), in: [][]float32{u(rows*cols, 0, 1), u(rows*cols, -1, 1)}, outs: []int{rows * cols},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.SoftmaxGrad(in[0], in[1], out[0], rows, cols)
				}, tol: parityTol},
			parityCase{name: fmt.Sprintf("ArgmaxRows/%dx%d", rows, cols), in: [][]float32{u(rows*cols, -1, 1)}, outI: []int{rows},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, outI []device.Buffer) error {
					return d.ArgmaxRows(in[0], rows, cols, outI[0])
				}},
		)
	}
	// Elementwise: bit-exact, aligned and misaligned, with tails.
	for _, n := range []int{1, 5, 1<<20 + 3} {
		for _, view := range []int{0, 1} {
			ew := func(name string, f func(d device.Device, in []device.Buffer, out []device.Buffer) error, nin int) {
				var in [][]float32
				for i := 0; i < nin; i++ {
					in = append(in, u(n, -3, 3))
				}
				cases = append(cases, parityCase{name: fmt.Sprintf("%s/n%d/view%d", name, n, view), in: in, outs: []int{n}, viewAt: view,
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						return f(d, in, out)
					}})
			}
			ew("Add", func(d device.Device, in, out []device.Buffer) error { return d.Add(in[0], in[1], out[0], n) }, 2)
			ew("Sub", func(d device.Device, in, out []device.Buffer) error { return d.Sub(in[0], in[1], out[0], n) }, 2)
			ew("Mul", func(d device.Device, in, out []device.Buffer) error { return d.Mul(in[0], in[1], out[0], n) }, 2)
			ew("Scale", func(d device.Device, in, out []device.Buffer) error { return d.Scale(-0.37, in[0], out[0], n) }, 1)
			ew("Axpy", func(d device.Device, in, out []device.Buffer) error { return d.Axpy(0.37, in[0], in[1], n) }, 2)
			ew("Fill", func(d device.Device, in, out []device.Buffer) error { return d.Fill(out[0], n, 2.5) }, 0)
			ew("AddInPlace", func(d device.Device, in, out []device.Buffer) error { return d.Add(in[0], in[1], in[0], n) }, 2)
		}
	}
	// Losses with gradients.
	for _, sh := range [][2]int{{64, 10}, {1024, 10}, {3, 7}, {20000, 1}} {
		rows, cols := sh[0], sh[1]
		n := rows * cols
		for kind := device.MSE; kind <= device.SoftmaxCrossEntropy; kind++ {
			c := parityCase{name: fmt.Sprintf("Loss/%s/%dx%d", kind, rows, cols), outs: []int{1, n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
					target := lab
					if kind != device.SoftmaxCrossEntropy {
						target = in[1]
					}
					return d.Loss(kind, in[0], target, rows, cols, out[0], out[1])
				}}
			switch kind {
			case device.BCE:
				pred := u(n, 0, 1)
				pred[0], pred[n-1] = 0, 1 // log clamps at -100
				c.in = [][]float32{pred, u(n, 0, 1)}
			case device.SoftmaxCrossEntropy:
				c.in = [][]float32{u(n, -10, 10)}
				c.lab = make([]int32, rows)
				for i := range c.lab {
					c.lab[i] = int32(r.IntN(cols))
				}
			default:
				c.in = [][]float32{u(n, -5, 5), u(n, -5, 5)}
			}
			cases = append(cases, c)
		}
	}
	// Reductions.
	for _, n := range []int{1, 1000, 1<<22 + 1} {
		for _, beta := range []float32{0, 1, 0.5} {
			for _, sq := range []bool{false, true} {
				cases = append(cases, parityCase{name: fmt.Sprintf("Sum/sq%v/n%d/beta%g", sq, n, beta), in: [][]float32{u(n, -1, 1), {3}},
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
						if sq {
							return d.SumSquares(in[0], n, in[1], beta)
						}
						return d.Sum(in[0], n, in[1], beta)
					}, tol: parityTol})
			}
		}
	}
	for _, sumSq := range []float32{0.25, 400, 0} {
		cases = append(cases, parityCase{name: fmt.Sprintf("ClipByNorm/sumSq%g", sumSq), in: [][]float32{u(10007, -1, 1), {sumSq}},
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
				return d.ClipByNorm(in[0], 10007, in[1], 1.5)
			}})
	}
	// Optimizers: SGD bit-exact; Adam within adamTol.
	const on = 100003
	for _, cfg := range []device.SGDConfig{{LR: 0.1}, {LR: 0.1, WeightDecay: 0.01}, {LR: 0.05, Momentum: 0.9},
		{LR: 0.05, Momentum: 0.9, Dampening: 0.1, WeightDecay: 1e-4}, {LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-3}} {
		for _, step := range []int{1, 2} {
			cases = append(cases, parityCase{name: fmt.Sprintf("SGDStep/%+v/step%d", cfg, step), in: [][]float32{u(on, -1, 1), u(on, -1, 1), u(on, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.SGDStep(in[0], in[1], in[2], on, cfg, step)
				}})
		}
	}
	for _, cfg := range []device.AdamConfig{{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Decoupled: true}} {
		for _, step := range []int{1, 7, 1000} {
			cases = append(cases, parityCase{name: fmt.Sprintf("AdamStep/%+v/step%d", cfg, step),
				in: [][]float32{u(on, -1, 1), u(on, -1, 1), u(on, -0.1, 0.1), u(on, 0, 0.01)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.AdamStep(in[0], in[1], in[2], in[3], on, cfg, step)
				}, tol: adamTol})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runParity(t, gpu, cpu, c) })
	}
}

// Tolerances of the Ops2 parity cases (normwise relative error; 0 is
// bit-exact), with why:
//
//   - copies (Im2Col, Gather, Permute4, MaxPool2D and its indices) and
//     fixed-order float32 sums that the contract or the kernels' comments
//     fix on both backends (Col2Im in ascending window offset,
//     MaxPool2DGrad in ascending output, ScatterAdd in ascending index, the
//     one add of AddChannelBias) are bit-exact;
//   - a double-precision sum in the same order rounded once on both
//     backends (AvgPool2D, AdaptiveAvgPool2D and their gradients) agrees
//     to the last bit in exact arithmetic; opsRoundTol (1e-6, about eight
//     float32 ulps) allows one rounding apart should a compiler reassociate;
//   - reductions in a different order (ChannelBiasGrad's block tree,
//     BatchNorm's chunked statistics, LayerNorm's warp sums, the softmaxes'
//     row sums, CrossEntropy's log-sum-exp, every GEMM) use parityTol
//     (1e-5): float32 rounding of a few thousand terms in another order
//     moves the result by about √n·2⁻²⁴ relative, 1e-6 to 4e-6 here.
const opsRoundTol = 1e-6

// tf32Tol bounds GemmBatched with TF32 allowed against the CPU's float32:
// TF32 keeps 10 bits of each operand's mantissa (relative rounding 2⁻¹¹ ≈
// 5e-4 per operand); with independent signs over k terms the normwise
// error of the products is about 5e-4, so 5e-3 separates it from a wrong
// tile (error ≈ 1).
const tf32Tol = 5e-3

// hostBNStats returns the per-channel batch mean and 1/sqrt(σ²+eps) (σ²
// biased) of x laid out [outer, channels, inner], in float64 rounded once,
// as the saved statistics BatchNormGrad takes.
func hostBNStats(x []float32, outer, channels, inner int, eps float64) (mean, invstd []float32) {
	mean, invstd = make([]float32, channels), make([]float32, channels)
	cnt := float64(outer * inner)
	for c := 0; c < channels; c++ {
		var s, ss float64
		for o := 0; o < outer; o++ {
			for _, v := range x[(o*channels+c)*inner : (o*channels+c+1)*inner] {
				s += float64(v)
			}
		}
		mu := s / cnt
		for o := 0; o < outer; o++ {
			for _, v := range x[(o*channels+c)*inner : (o*channels+c+1)*inner] {
				ss += (float64(v) - mu) * (float64(v) - mu)
			}
		}
		mean[c], invstd[c] = float32(mu), float32(1/math.Sqrt(ss/cnt+eps))
	}
	return mean, invstd
}

// hostLNStats returns each row's mean and 1/sqrt(σ²+eps) (σ² biased) of
// the rows×cols x, in float64 rounded once, as LayerNormGrad takes them.
func hostLNStats(x []float32, rows, cols int, eps float64) (mean, rstd []float32) {
	mean, rstd = make([]float32, rows), make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var s, ss float64
		for _, v := range row {
			s += float64(v)
		}
		mu := s / float64(cols)
		for _, v := range row {
			ss += (float64(v) - mu) * (float64(v) - mu)
		}
		mean[r], rstd[r] = float32(mu), float32(1/math.Sqrt(ss/float64(cols)+eps))
	}
	return mean, rstd
}

// TestOps2Parity runs every primitive of device.Ops2 on the CPU backend and
// on the GPU with the same random inputs, over shapes chosen to take every
// launch path of device/cuda (see the comments at each family), and
// compares every output and every buffer updated in place, with the
// tolerances above.
func TestOps2Parity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	r := rand.New(rand.NewPCG(11, 12))
	u := func(n int, lo, hi float64) []float32 { return uniform(r, n, lo, hi) }
	labels := func(n, lo, hi int) []int32 {
		x := make([]int32, n)
		for i := range x {
			x[i] = int32(lo + r.IntN(hi-lo))
		}
		return x
	}
	var cases []parityCase
	add := func(c ...parityCase) { cases = append(cases, c...) }

	// GemmBatched. Paths (kernels.PlanGemmBatched, TF32 off): the 128×128
	// kernel when the batch has ≥ 128 tiles of 128×128 (48×256×256: 192
	// tiles; the attention shape 48 × 256×64·64×256), the 64×64 kernel
	// without split-K (many small products) and with split-K (few tiles, k ≥
	// 2·splitMinK: 2 × 64×64·4096, and 3 × 48×40·1000 with beta, strideB 0
	// and gaps in c), strides 0 for A or B (one matrix for all i), strideC >
	// m·n (the gaps of c must stay as they were: c is an input read back
	// whole), alpha 0 (A and B not read; C scaled or zeroed, as one block
	// and with gaps; bit-exact), a batch above kernels.MaxGemmBatch (65535),
	// which takes two launches, and the TF32 kernel (tf32Tol).
	type gb struct {
		name           string
		m, n, k, batch int
		sa, sb, sc     int // strides; −1 means packed (m·k, k·n, m·n)
		alpha, beta    float32
		trans          [][2]bool
		tf32           bool
		tol            float64
	}
	all4 := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
	plain := [][2]bool{{false, false}}
	for _, c := range []gb{
		{"attnScores", 256, 256, 64, 48, -1, -1, -1, 0.125, 0, [][2]bool{{false, true}, {false, false}}, false, parityTol},
		{"attnValues", 256, 64, 256, 48, -1, -1, -1, 1, 0, [][2]bool{{false, false}, {true, false}}, false, parityTol},
		{"big", 256, 256, 256, 48, -1, -1, -1, 1, 0.5, all4, false, parityTol},
		{"small", 33, 17, 65, 7, -1, -1, -1, 0.5, 1.5, all4, false, parityTol},
		{"splitK", 64, 64, 4096, 2, -1, -1, -1, 1, 0, all4, false, parityTol},
		{"splitKbeta", 64, 64, 4096, 2, -1, -1, -1, 1, 1, plain, false, parityTol},
		{"splitKstrideB0gaps", 48, 40, 1000, 3, -1, 0, 48*40 + 9, 1, 0.5, all4, false, parityTol},
		{"strideA0", 64, 96, 80, 12, 0, -1, -1, 1, 0, all4, false, parityTol},
		{"strideB0", 64, 96, 80, 12, -1, 0, -1, 1, 0.25, all4, false, parityTol},
		{"strideB0big", 512, 256, 128, 16, -1, 0, -1, 1, 0, plain, false, parityTol},
		{"gapsC", 31, 29, 40, 9, 31*40 + 3, 29*40 + 5, 31*29 + 7, 1, 1, all4, false, parityTol},
		{"alpha0beta0", 20, 30, 10, 5, -1, -1, -1, 0, 0, plain, false, 0},
		{"alpha0beta0gaps", 20, 30, 10, 5, -1, -1, 20*30 + 11, 0, 0, plain, false, 0},
		{"alpha0beta1", 20, 30, 10, 5, -1, -1, 20*30 + 11, 0, 1, plain, false, 0},
		{"alpha0scale", 20, 30, 10, 5, -1, -1, 20*30 + 11, 0, 0.5, plain, false, 0},
		{"batch65537", 1, 3, 2, 65537, -1, 0, -1, 1, 0.5, plain, false, parityTol},
		{"tf32", 256, 256, 256, 48, -1, -1, -1, 1, 0, [][2]bool{{false, false}, {false, true}}, true, tf32Tol},
	} {
		sa, sb, sc := c.sa, c.sb, c.sc
		if sa < 0 {
			sa = c.m * c.k
		}
		if sb < 0 {
			sb = c.k * c.n
		}
		if sc < 0 {
			sc = c.m * c.n
		}
		na, nb, nc := (c.batch-1)*sa+c.m*c.k, (c.batch-1)*sb+c.k*c.n, (c.batch-1)*sc+c.m*c.n
		for _, tr := range c.trans {
			c, ta, tb := c, tr[0], tr[1]
			add(parityCase{name: fmt.Sprintf("GemmBatched/%s/%dx%dx%d/b%d/%v%v", c.name, c.m, c.n, c.k, c.batch, ta, tb),
				in: [][]float32{u(na, -1, 1), u(nb, -1, 1), u(nc, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					if c.tf32 {
						if s, ok := d.(device.TF32Setter); ok {
							s.SetAllowTF32(true)
							defer s.SetAllowTF32(false)
						}
					}
					return d.GemmBatched(ta, tb, c.m, c.n, c.k, c.alpha, in[0], sa, in[1], sb, c.beta, in[2], sc, c.batch)
				}, tol: c.tol})
		}
	}

	// Im2Col / Col2Im: grid-stride loops over outputs (Im2Col) and inputs
	// (Col2Im), so a large case runs several grid strides (8·64·56·56 =
	// 1.6M threads' work on a grid capped at 8 blocks per SM); padding,
	// stride 2, dilation 2, non-square windows, 1×1 and a plane smaller than
	// its padding.
	windows := []device.Window2D{
		{N: 2, C: 3, H: 9, W: 11, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
		{N: 3, C: 5, H: 17, W: 13, KH: 3, KW: 5, StrideH: 2, StrideW: 2, PadH: 1, PadW: 2, DilH: 1, DilW: 1},
		{N: 2, C: 4, H: 15, W: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 2, DilH: 2, DilW: 2},
		{N: 1, C: 7, H: 8, W: 8, KH: 1, KW: 1, StrideH: 1, StrideW: 1, PadH: 0, PadW: 0, DilH: 1, DilW: 1},
		{N: 2, C: 2, H: 2, W: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1},
		{N: 8, C: 64, H: 56, W: 56, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	}
	for _, g := range windows {
		g := g
		nx, ncol := g.N*g.C*g.H*g.W, g.N*g.ColRows()*g.OutH()*g.OutW()
		name := fmt.Sprintf("%dx%dx%dx%d/k%dx%d/s%d%d/p%d%d/d%d%d", g.N, g.C, g.H, g.W, g.KH, g.KW, g.StrideH, g.StrideW, g.PadH, g.PadW, g.DilH, g.DilW)
		add(parityCase{name: "Im2Col/" + name, in: [][]float32{u(nx, -1, 1)}, outs: []int{ncol},
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.Im2Col(in[0], out[0], g)
			}})
		for _, beta := range []float32{0, 1, 0.5} {
			beta := beta
			add(parityCase{name: fmt.Sprintf("Col2Im/%s/beta%g", name, beta), in: [][]float32{u(ncol, -1, 1), u(nx, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.Col2Im(in[0], in[1], g, beta)
				}})
		}
	}

	// AddChannelBias / ChannelBiasGrad (one block per channel): channels
	// above 256 (more than one block of bias reads per row), inner 1 (the
	// AddBias layout) and a conv-sized inner.
	for _, sh := range [][3]int{{64, 10, 1}, {8, 512, 49}, {16, 64, 3136}, {3, 1000, 1}, {1, 3, 100003}} {
		outer, ch, inner := sh[0], sh[1], sh[2]
		n := outer * ch * inner
		add(parityCase{name: fmt.Sprintf("AddChannelBias/%dx%dx%d", outer, ch, inner), in: [][]float32{u(n, -1, 1), u(ch, -1, 1)},
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
				return d.AddChannelBias(in[0], in[1], outer, ch, inner)
			}})
		for _, beta := range []float32{0, 1} {
			beta := beta
			add(parityCase{name: fmt.Sprintf("ChannelBiasGrad/%dx%dx%d/beta%g", outer, ch, inner, beta), in: [][]float32{u(ch, -1, 1), u(n, -1, 1)},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
					return d.ChannelBiasGrad(in[0], in[1], outer, ch, inner, beta)
				}, tol: parityTol})
		}
	}

	// Max pooling: overlapping windows (3/1 and 3/2) over values drawn from
	// a few levels, so that ties pick the first in window order and the
	// gradient adds several dy into one position in ascending output order;
	// padding; dilation with padding, where a window can hold only padding
	// (−Inf, idx −1); NaNs, which win. The gradient runs on the indices the
	// same device's MaxPool2D wrote (bit-exact on both, so dx must be too).
	pools := []device.Window2D{
		{N: 2, C: 3, H: 12, W: 12, KH: 2, KW: 2, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1},
		{N: 2, C: 5, H: 11, W: 13, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
		{N: 3, C: 4, H: 15, W: 14, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
		{N: 1, C: 2, H: 1, W: 9, KH: 2, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1, DilH: 4, DilW: 1}, // rows −2 and 2 only: empty windows
		{N: 8, C: 64, H: 56, W: 56, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	}
	for pi, g := range pools {
		g := g
		nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH()*g.OutW()
		x := make([]float32, nx)
		for i := range x {
			x[i] = float32(r.IntN(5)) - 2 // ties
		}
		if pi == 1 {
			for _, i := range []int{0, 17, nx / 2, nx - 1} {
				x[i] = float32(math.NaN())
			}
		}
		name := fmt.Sprintf("%dx%dx%dx%d/k%dx%d/s%d%d/p%d%d/d%d%d", g.N, g.C, g.H, g.W, g.KH, g.KW, g.StrideH, g.StrideW, g.PadH, g.PadW, g.DilH, g.DilW)
		add(parityCase{name: "MaxPool2D+Grad/" + name, in: [][]float32{x, u(ny, -1, 1)}, outs: []int{ny, nx}, outI: []int{ny},
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, outI []device.Buffer) error {
				if err := d.MaxPool2D(in[0], out[0], outI[0], g); err != nil {
					return err
				}
				return d.MaxPool2DGrad(in[1], outI[0], out[1], g)
			}})
		if g.DilH == 1 && g.DilW == 1 {
			add(parityCase{name: "AvgPool2D/" + name, in: [][]float32{u(nx, -1, 1)}, outs: []int{ny},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.AvgPool2D(in[0], out[0], g)
				}, tol: opsRoundTol},
				parityCase{name: "AvgPool2DGrad/" + name, in: [][]float32{u(ny, -1, 1)}, outs: []int{nx},
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						return d.AvgPool2DGrad(in[0], out[0], g)
					}, tol: opsRoundTol})
		}
	}
	// Adaptive average pooling: global (1×1), windows that overlap
	// (7 → 3, 5 → 4), output larger than input (3 → 5), a ResNet head.
	for _, sh := range [][6]int{{2, 3, 7, 7, 1, 1}, {2, 3, 7, 9, 3, 4}, {1, 4, 5, 5, 4, 4}, {2, 2, 3, 3, 5, 5}, {8, 512, 7, 7, 1, 1}} {
		n, c, h, w, oh, ow := sh[0], sh[1], sh[2], sh[3], sh[4], sh[5]
		nx, ny := n*c*h*w, n*c*oh*ow
		add(parityCase{name: fmt.Sprintf("AdaptiveAvgPool2D/%v", sh), in: [][]float32{u(nx, -1, 1)}, outs: []int{ny},
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.AdaptiveAvgPool2D(in[0], out[0], n, c, h, w, oh, ow)
			}, tol: opsRoundTol},
			parityCase{name: fmt.Sprintf("AdaptiveAvgPool2DGrad/%v", sh), in: [][]float32{u(ny, -1, 1)}, outs: []int{nx},
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.AdaptiveAvgPool2DGrad(in[0], out[0], n, c, h, w, oh, ow)
				}, tol: opsRoundTol})
	}

	// BatchNorm (device/cuda's bnPlan, 132 SMs on an H200): one chunk per
	// channel (plane ≤ 1024, or channels ≥ 528), several chunks (16
	// channels × a plane of 8·32·32 = 8192: 8 chunks), channels above 256
	// (the final kernel's grid has more than one block) with one chunk (600
	// channels) and with two (300 channels, plane 4096); training with and
	// without running statistics and affine parameters, evaluation with and
	// without saved statistics.
	bnCfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
	for _, sh := range [][3]int{{64, 10, 1}, {8, 16, 1024}, {32, 64, 256}, {4, 600, 512}, {8, 300, 512}, {16, 300, 49}, {2, 3, 5}} {
		outer, ch, inner := sh[0], sh[1], sh[2]
		n := outer * ch * inner
		x := u(n, -2, 3)
		shape := fmt.Sprintf("%dx%dx%d", outer, ch, inner)
		runStats := func() []float32 { return u(ch, 0.5, 1.5) }
		add(parityCase{name: "BatchNorm/train/" + shape, in: [][]float32{x, u(ch, 0.5, 1.5), u(ch, -1, 1), u(ch, -1, 1), runStats()},
			outs: []int{n, ch, ch}, tol: parityTol,
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.BatchNorm(in[0], out[0], in[1], in[2], out[1], out[2], in[3], in[4], outer, ch, inner, true, bnCfg)
			}},
			parityCase{name: "BatchNorm/train/noaffine/norunning/" + shape, in: [][]float32{x}, outs: []int{n, ch, ch}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.BatchNorm(in[0], out[0], nil, nil, out[1], out[2], nil, nil, outer, ch, inner, true, bnCfg)
				}},
			parityCase{name: "BatchNorm/eval/" + shape, in: [][]float32{x, u(ch, 0.5, 1.5), u(ch, -1, 1), u(ch, -1, 1), runStats()},
				outs: []int{n, ch, ch}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.BatchNorm(in[0], out[0], in[1], in[2], out[1], out[2], in[3], in[4], outer, ch, inner, false, bnCfg)
				}},
			parityCase{name: "BatchNorm/eval/nostats/" + shape, in: [][]float32{x, u(ch, -1, 1), runStats()},
				outs: []int{n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.BatchNorm(in[0], out[0], nil, nil, nil, nil, in[1], in[2], outer, ch, inner, false, bnCfg)
				}},
		)
		mean, invstd := hostBNStats(x, outer, ch, inner, 1e-5)
		for _, accum := range []float32{0, 1} {
			accum := accum
			add(parityCase{name: fmt.Sprintf("BatchNormGrad/%s/accum%g", shape, accum),
				in:   [][]float32{x, u(n, -1, 1), u(ch, 0.5, 1.5), mean, invstd, u(ch, -1, 1), u(ch, -1, 1)},
				outs: []int{n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.BatchNormGrad(in[0], in[1], in[2], in[3], in[4], out[0], in[5], in[6], outer, ch, inner, accum)
				}})
		}
		add(parityCase{name: "BatchNormGrad/dxOnly/nogamma/" + shape, in: [][]float32{x, u(n, -1, 1), mean, invstd}, outs: []int{n}, tol: parityTol,
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.BatchNormGrad(in[0], in[1], nil, in[2], in[3], out[0], nil, nil, outer, ch, inner, 0)
			}},
			parityCase{name: "BatchNormGrad/paramsOnly/" + shape, in: [][]float32{x, u(n, -1, 1), u(ch, 0.5, 1.5), mean, invstd}, outs: []int{ch, ch}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.BatchNormGrad(in[0], in[1], in[2], in[3], in[4], nil, out[0], out[1], outer, ch, inner, 0)
				}})
	}

	// LayerNorm: one warp a row (cols below a warp, GPT-2's 768, odd and
	// long rows); LayerNormGrad's column sums unsplit (rows < 32) and split
	// over row chunks through the workspace (rows ≥ 32 with few column
	// blocks), dx wanted or not, accumulation on or off.
	for _, sh := range [][2]int{{7, 5}, {31, 768}, {64, 768}, {1024, 768}, {100, 4099}, {4, 20000}} {
		rows, cols := sh[0], sh[1]
		n := rows * cols
		x := u(n, -3, 2)
		shape := fmt.Sprintf("%dx%d", rows, cols)
		add(parityCase{name: "LayerNorm/" + shape, in: [][]float32{x, u(cols, 0.5, 1.5), u(cols, -1, 1)}, outs: []int{n, rows, rows}, tol: parityTol,
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.LayerNorm(in[0], out[0], in[1], in[2], out[1], out[2], rows, cols, 1e-5)
			}},
			parityCase{name: "LayerNorm/noaffine/" + shape, in: [][]float32{x}, outs: []int{n, rows, rows}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.LayerNorm(in[0], out[0], nil, nil, out[1], out[2], rows, cols, 1e-5)
				}})
		mean, rstd := hostLNStats(x, rows, cols, 1e-5)
		for _, accum := range []float32{0, 1} {
			accum := accum
			add(parityCase{name: fmt.Sprintf("LayerNormGrad/%s/accum%g", shape, accum),
				in:   [][]float32{x, u(n, -1, 1), u(cols, 0.5, 1.5), mean, rstd, u(cols, -1, 1), u(cols, -1, 1)},
				outs: []int{n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.LayerNormGrad(in[0], in[1], in[2], in[3], in[4], out[0], in[5], in[6], rows, cols, accum)
				}})
		}
		add(parityCase{name: "LayerNormGrad/dxOnly/nogamma/" + shape, in: [][]float32{x, u(n, -1, 1), mean, rstd}, outs: []int{n}, tol: parityTol,
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
				return d.LayerNormGrad(in[0], in[1], nil, in[2], in[3], out[0], nil, nil, rows, cols, 0)
			}},
			parityCase{name: "LayerNormGrad/paramsOnly/" + shape, in: [][]float32{x, u(n, -1, 1), u(cols, 0.5, 1.5), mean, rstd}, outs: []int{cols, cols}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.LayerNormGrad(in[0], in[1], in[2], in[3], in[4], nil, out[0], out[1], rows, cols, 0)
				}})
	}

	// Gather / ScatterAdd (scatter_add_rows_f32: ceil(cols/256) column
	// blocks × min(⌈4·SMs/colBlocks⌉, rows, n) row groups; indices staged
	// 256 at a time): GPT-2's vocabulary with a narrow and the full width,
	// a padding row named by most indices, one row (one group), one index,
	// cols not a multiple of 256, n not a multiple of 256. ScatterAdd is
	// bit-exact: both add in ascending i in float32.
	for _, sh := range [][3]int{{50257, 64, 4096}, {50257, 768, 1024}, {1000, 300, 5000}, {1, 7, 600}, {37, 1, 1}, {5, 513, 257}} {
		rows, cols, n := sh[0], sh[1], sh[2]
		idx := labels(n, 0, rows)
		if rows > 1 && n > 8 {
			for i := 0; i < n; i += 3 {
				idx[i] = 0 // a padding token: most sums land in row 0
			}
		}
		shape := fmt.Sprintf("%dx%d/n%d", rows, cols, n)
		add(parityCase{name: "Gather/" + shape, in: [][]float32{u(rows*cols, -1, 1)}, lab: idx, outs: []int{n * cols},
			run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
				return d.Gather(in[0], lab, out[0], rows, cols, n)
			}},
			parityCase{name: "ScatterAdd/" + shape, in: [][]float32{u(rows*cols, -1, 1), u(n*cols, -1, 1)}, lab: idx,
				run: func(d device.Device, in []device.Buffer, lab device.Buffer, _, _ []device.Buffer) error {
					return d.ScatterAdd(in[0], lab, in[1], rows, cols, n)
				}})
	}

	// SoftmaxMasked and its gradient (one warp per row): rows narrower than
	// a warp, GPT-2's context, rows of several thousand; causal with qLen =
	// cols (the triangle) and qLen < cols (a KV cache: queries at the end),
	// over several sequences of rows; in place (y = x, dx = dy).
	for _, sh := range [][3]int{{8, 5, 5}, {96, 64, 64}, {64, 1024, 1024}, {40, 1024, 8}, {12, 300, 1}, {6, 5000, 3}} {
		rows, cols, q := sh[0], sh[1], sh[2]
		n := rows * cols
		for _, causal := range []bool{false, true} {
			causal := causal
			name := fmt.Sprintf("%dx%d/causal%v/q%d", rows, cols, causal, q)
			add(parityCase{name: "SoftmaxMasked/" + name, in: [][]float32{u(n, -30, 30)}, outs: []int{n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.SoftmaxMasked(in[0], out[0], rows, cols, 0.125, causal, q)
				}},
				parityCase{name: "SoftmaxMasked/inplace/" + name, in: [][]float32{u(n, -30, 30)}, tol: parityTol,
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
						return d.SoftmaxMasked(in[0], in[0], rows, cols, 1, causal, q)
					}},
				// The gradient on the softmax the same device computed.
				parityCase{name: "SoftmaxMaskedGrad/" + name, in: [][]float32{u(n, -5, 5), u(n, -1, 1)}, outs: []int{n, n}, tol: parityTol,
					run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
						if err := d.SoftmaxMasked(in[0], out[0], rows, cols, 0.125, causal, q); err != nil {
							return err
						}
						return d.SoftmaxMaskedGrad(out[0], in[1], out[1], rows, cols, 0.125)
					}})
		}
		add(parityCase{name: fmt.Sprintf("SoftmaxMaskedGrad/inplace/%dx%d", rows, cols), in: [][]float32{u(n, 0, 2.0/float64(cols)), u(n, -1, 1)}, tol: parityTol,
			run: func(d device.Device, in []device.Buffer, _ device.Buffer, _, _ []device.Buffer) error {
				return d.SoftmaxMaskedGrad(in[0], in[1], in[1], rows, cols, 0.5)
			}})
	}

	// Permute4: attention's head split and merge, a full reversal, size-1
	// dimensions; bit-exact (a copy).
	for _, c := range []struct{ dims, perm [4]int }{
		{[4]int{8, 256, 12, 64}, [4]int{0, 2, 1, 3}},
		{[4]int{8, 12, 256, 64}, [4]int{0, 2, 1, 3}},
		{[4]int{1, 512, 18, 32}, [4]int{2, 0, 1, 3}},
		{[4]int{3, 5, 7, 11}, [4]int{3, 2, 1, 0}},
		{[4]int{3, 1, 7, 1}, [4]int{1, 3, 0, 2}},
		{[4]int{2, 3, 4, 5}, [4]int{0, 1, 2, 3}},
	} {
		c := c
		n := c.dims[0] * c.dims[1] * c.dims[2] * c.dims[3]
		for _, view := range []int{0, 1} {
			add(parityCase{name: fmt.Sprintf("Permute4/%v/%v/view%d", c.dims, c.perm, view), in: [][]float32{u(n, -1, 1)}, outs: []int{n}, viewAt: view,
				run: func(d device.Device, in []device.Buffer, _ device.Buffer, out, _ []device.Buffer) error {
					return d.Permute4(in[0], out[0], c.dims, c.perm)
				}})
		}
	}

	// CrossEntropy with an ignore index: GPT-2's vocabulary (50257, not a
	// multiple of a warp), small classes, −100 padding (the range check's
	// summary path), ignore = cols (the adjacent-range path), an ignore index
	// inside [0, cols) (read back and checked), every row ignored (NaN loss,
	// zero gradient), no gradient, gradient in place of the logits.
	for _, sh := range [][2]int{{64, 50257}, {1024, 10}, {3, 7}, {20000, 1}, {8, 4099}} {
		rows, cols := sh[0], sh[1]
		n := rows * cols
		for _, ig := range []int32{-100, int32(cols), int32(cols / 2)} {
			lab := labels(rows, 0, cols)
			for i := 0; i < rows; i += 4 {
				lab[i] = ig
			}
			ig := ig
			name := fmt.Sprintf("%dx%d/ignore%d", rows, cols, ig)
			add(parityCase{name: "CrossEntropy/" + name, in: [][]float32{u(n, -10, 10)}, lab: lab, outs: []int{1, n}, tol: parityTol,
				run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
					return d.CrossEntropy(in[0], lab, rows, cols, ig, out[0], out[1])
				}},
				parityCase{name: "CrossEntropy/nograd/" + name, in: [][]float32{u(n, -10, 10)}, lab: lab, outs: []int{1}, tol: parityTol,
					run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
						return d.CrossEntropy(in[0], lab, rows, cols, ig, out[0], nil)
					}},
				parityCase{name: "CrossEntropy/inplace/" + name, in: [][]float32{u(n, -10, 10)}, lab: lab, outs: []int{1}, tol: parityTol,
					run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
						return d.CrossEntropy(in[0], lab, rows, cols, ig, out[0], in[0])
					}})
		}
		allIgnored := make([]int32, rows)
		for i := range allIgnored {
			allIgnored[i] = -100
		}
		add(parityCase{name: fmt.Sprintf("CrossEntropy/allIgnored/%dx%d", rows, cols), in: [][]float32{u(n, -10, 10)}, lab: allIgnored, outs: []int{1, n},
			run: func(d device.Device, in []device.Buffer, lab device.Buffer, out, _ []device.Buffer) error {
				return d.CrossEntropy(in[0], lab, rows, cols, -100, out[0], out[1])
			}})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runParity(t, gpu, cpu, c) })
	}
}
