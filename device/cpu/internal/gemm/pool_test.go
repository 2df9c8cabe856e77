package gemm

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// reversePool is a Pool that runs the parts on fresh goroutines, the
// last first, and counts its calls.
type reversePool struct{ calls atomic.Int32 }

func (p *reversePool) Run(j Parts, parts int) {
	p.calls.Add(1)
	var wg sync.WaitGroup
	for t := parts - 1; t >= 0; t-- {
		wg.Add(1)
		go func() { defer wg.Done(); j.Part(t) }()
	}
	wg.Wait()
}

// TestSetPool: products split over goroutines run their parts on the
// Pool given to SetPool, in any order, with the bits of the package's
// own pool — split by entry, by tiles and along k.
func TestSetPool(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Float64()*2 - 1)
		}
		return v
	}
	for _, s := range []struct{ m, n, k, batch int }{
		{32, 784, 288, 2},  // by entry
		{64, 3136, 128, 1}, // by tiles
		{9, 33, 20000, 1},  // along k
	} {
		a, b := vec(s.batch*s.m*s.k), vec(s.batch*s.k*s.n)
		run := func() []float32 {
			c := make([]float32, s.batch*s.m*s.n)
			SgemmBatched(false, false, s.m, s.n, s.k, 1, a, s.k, s.m*s.k, b, s.n, s.k*s.n, 0, c, s.n, s.m*s.n, s.batch)
			return c
		}
		old := nThreads
		nThreads = 2 // split even on one core
		want := run()
		p := &reversePool{}
		SetPool(p)
		got := run()
		SetPool(nil)
		nThreads = old
		if p.calls.Load() == 0 {
			t.Fatalf("%+v: the pool was not used", s)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v [%d]: %v on the given pool, %v on the package's", s, i, got[i], want[i])
			}
		}
	}
}
