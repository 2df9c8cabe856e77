package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// edgeVec returns n values mixing ordinary numbers with the ones a
// bit-exact kernel must get right: signed zeros and infinities, NaNs of
// both signs with distinct payloads (which NaN survives two NaN operands
// depends on operand order), denormals and extremes.
func edgeVec(r *rand.Rand, n int) []float32 {
	specials := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
		0x7fc12345, 0xffc54321, 0x7f800001, 0xff80abcd, 1, 0x80000001, 0x7f7fffff, 0xff7fffff}
	x := make([]float32, n)
	for i := range x {
		switch r.IntN(6) {
		case 0:
			x[i] = math.Float32frombits(specials[r.IntN(len(specials))])
		case 1:
			x[i] = math.Float32frombits(r.Uint32())
		default:
			x[i] = float32(r.NormFloat64())
		}
	}
	return x
}

// eitherNaN reports whether x and y are both NaN and each is the quieted
// NaN of a or of b, both NaN: for a commutative a+b or a·b of two NaNs,
// which payload the result carries is the operand order the instruction
// got, which Go leaves to the compiler (under -race the portable loop's
// ADDSS takes them the other way round), so either is right.
func eitherNaN(x, y, a, b float32) bool {
	if !(a != a && b != b && x != x && y != y) {
		return false
	}
	q := func(v float32) uint32 { return math.Float32bits(v) | 0x00400000 }
	ok := func(v float32) bool { return math.Float32bits(v) == q(a) || math.Float32bits(v) == q(b) }
	return ok(x) && ok(y)
}

// TestVectorMatchesPortable runs every elementwise op with the AVX2
// kernels on and off and requires the same bits, NaN payloads included:
// on views at every offset (so every head before 32-byte alignment),
// serial and split across workers, with plain and non-temporal stores.
func TestVectorMatchesPortable(t *testing.T) {
	if !useAVX2EW {
		t.Skip("no AVX2 kernels on this machine or build")
	}
	defer func(v bool, m int) { useAVX2EW, ntMin = v, m }(useAVX2EW, ntMin)
	d := newDev(t)
	r := rand.New(rand.NewPCG(11, 12))
	nan := math.Float32frombits(0xffc0f00d)
	type op struct {
		name string
		run  func(a, b, c, e device.Buffer, n int) error
	}
	ops := []op{
		{"Add", func(a, b, c, _ device.Buffer, n int) error { return d.Add(a, b, c, n) }},
		{"Sub", func(a, b, c, _ device.Buffer, n int) error { return d.Sub(a, b, c, n) }},
		{"Mul", func(a, b, c, _ device.Buffer, n int) error { return d.Mul(a, b, c, n) }},
		{"Scale", func(a, _, c, _ device.Buffer, n int) error { return d.Scale(-0.3, a, c, n) }},
		{"ScaleNaN", func(a, _, c, _ device.Buffer, n int) error { return d.Scale(nan, a, c, n) }},
		{"ScaleInPlace", func(a, _, c, _ device.Buffer, n int) error {
			must(t, d.Copy(c, a, n))
			return d.Scale(3, c, c, n)
		}},
		{"Axpy", func(a, b, c, _ device.Buffer, n int) error {
			must(t, d.Copy(c, b, n))
			return d.Axpy(0.7, a, c, n)
		}},
		{"AxpyNaN", func(a, b, c, _ device.Buffer, n int) error {
			must(t, d.Copy(c, b, n))
			return d.Axpy(nan, a, c, n)
		}},
		{"ReLU", func(a, _, c, _ device.Buffer, n int) error { return d.Activate(device.ReLU, 0, a, c, n) }},
		{"ReLUInPlace", func(a, _, c, _ device.Buffer, n int) error {
			must(t, d.Copy(c, a, n))
			return d.Activate(device.ReLU, 0, c, c, n)
		}},
		{"LeakyReLU", func(a, _, c, _ device.Buffer, n int) error { return d.Activate(device.LeakyReLU, 0.01, a, c, n) }},
		{"LeakyReLUNaN", func(a, _, c, _ device.Buffer, n int) error { return d.Activate(device.LeakyReLU, nan, a, c, n) }},
		{"ReLUGradX", func(a, b, c, _ device.Buffer, n int) error {
			return d.ActivateGrad(device.ReLU, 0, a, nil, b, c, n)
		}},
		{"ReLUGradY", func(a, b, c, _ device.Buffer, n int) error {
			return d.ActivateGrad(device.ReLU, 0, nil, a, b, c, n)
		}},
		{"LeakyReLUGrad", func(a, b, c, _ device.Buffer, n int) error {
			return d.ActivateGrad(device.LeakyReLU, -0.2, a, nil, b, c, n)
		}},
		{"LeakyReLUGradNaN", func(a, b, c, _ device.Buffer, n int) error {
			return d.ActivateGrad(device.LeakyReLU, nan, a, nil, b, c, n)
		}},
	}
	for _, n := range []int{1, 7, 8, 9, 31, 33, 1000, 3*ewGrain + 5} {
		const pad = 8
		hostA, hostB := edgeVec(r, n+pad), edgeVec(r, n+pad)
		A, B := upload(t, d, hostA), upload(t, d, hostB)
		C, err := d.Alloc(device.Float32, n+pad)
		must(t, err)
		for _, nt := range []bool{false, true} {
			ntMin = 1 << 40
			if nt {
				ntMin = 0
			}
			for _, o := range [][3]int{{0, 0, 0}, {1, 2, 3}, {3, 0, 5}, {5, 7, 7}, {2, 6, 1}} {
				a, err := d.View(A, o[0], n)
				must(t, err)
				b, err := d.View(B, o[1], n)
				must(t, err)
				c, err := d.View(C, o[2], n)
				must(t, err)
				for _, op := range ops {
					useAVX2EW = false
					must(t, op.run(a, b, c, nil, n))
					want := download(t, d, c)
					must(t, d.Fill(c, n, 0))
					useAVX2EW = true
					must(t, op.run(a, b, c, nil, n))
					got := download(t, d, c)
					for i := range want {
						if (op.name == "Add" || op.name == "Mul") && eitherNaN(got[i], want[i], hostA[o[0]+i], hostB[o[1]+i]) {
							continue
						}
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s", fmt.Sprintf("%s n=%d offsets=%v nt=%v [%d]: vector %#08x, portable %#08x",
								op.name, n, o, nt, i, math.Float32bits(got[i]), math.Float32bits(want[i])))
						}
					}
				}
			}
		}
	}
}
