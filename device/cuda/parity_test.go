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
	for act := device.Identity; act <= device.GELUTanh; act++ {
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
