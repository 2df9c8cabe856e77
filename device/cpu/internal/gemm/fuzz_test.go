package gemm

import (
	"math/rand/v2"
	"testing"
)

// FuzzGemm runs random shapes, transposes, scalars, paddings and
// kernels against the float64 reference (check's bound). The seed corpus
// is in testdata/fuzz/FuzzGemm; `go test -fuzz FuzzGemm` explores more.
func FuzzGemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint16(1), uint8(0), uint8(0), uint64(1))
	f.Add(uint8(13), uint8(33), uint16(257), uint8(3), uint8(1), uint64(2))
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, flags, pad uint8, seed uint64) {
		if m == 0 || n == 0 || k == 0 {
			return
		}
		k %= 700 // keep the float64 reference cheap
		if k == 0 {
			k = 1
		}
		names := Kernels()
		useKernel(t, names[int(flags>>4)%len(names)])
		scalars := [][2]float32{{1, 0}, {0.5, 1.5}, {-1, 0}, {2, 1}}
		sc := scalars[int(flags>>2)%len(scalars)]
		c := gemmCase{transA: flags&1 != 0, transB: flags&2 != 0, m: int(m), n: int(n), k: int(k),
			alpha: sc[0], beta: sc[1], pad: int(pad % 5), nanC: sc[1] == 0}
		runCase(t, rand.New(rand.NewPCG(seed, 99)), c)
	})
}
