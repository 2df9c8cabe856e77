package data

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// rng is the one random source of this package: a PCG (whose output is
// specified by math/rand/v2) with our own bounded-integer, uniform and
// normal draws on top, so that shuffles and synthetic sets depend only on
// the seed, not on how a Go release implements Perm or NormFloat64.
type rng struct{ p *rand.PCG }

func newRNG(seed, stream uint64) *rng { return &rng{rand.NewPCG(seed, stream)} }

// intn returns a uniform integer in [0, n) by Lemire's multiply-and-reject.
func (r *rng) intn(n int) int {
	un := uint64(n)
	for {
		hi, lo := bits.Mul64(r.p.Uint64(), un)
		if lo >= un || lo >= (-un)%un {
			return int(hi)
		}
	}
}

// float returns a uniform float64 in [0, 1).
func (r *rng) float() float64 { return float64(r.p.Uint64()>>11) * 0x1p-53 }

// normal returns a standard normal draw (Box–Muller, one value per call).
func (r *rng) normal() float64 {
	u := 1 - r.float() // (0, 1]
	v := r.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// shuffle permutes p in place (Fisher–Yates).
func (r *rng) shuffle(p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
}

// Streams keep the uses of one seed independent of each other.
const (
	streamPermutation = 0x6b696c6e_00000000 // + epoch
	streamSplit       = 0x6b696c6e_73706c74
	streamKFold       = 0x6b696c6e_6b666c64
	streamSynthetic   = 0x6b696c6e_73796e74
)

// Permutation returns the batch order of one epoch: a permutation of
// 0..n-1 that depends only on (n, seed, epoch). The trainer uses it so that
// a run resumed at epoch e sees exactly the batches the original run saw.
func Permutation(n int, seed uint64, epoch int) []int {
	if n <= 0 {
		return []int{}
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	newRNG(seed, streamPermutation+uint64(epoch)).shuffle(p)
	return p
}

// Split divides d into a training and a validation part, valFrac of the
// samples going to validation, chosen by a seeded shuffle. For
// classification the split is stratified (each class is split in the same
// proportion, rounded per class), so small sets keep every class in both
// parts. Both parts keep the original sample order. valFrac is clamped to
// [0, 1].
func Split(d *Dataset, valFrac float64, seed uint64) (train, val *Dataset) {
	tr, va := splitIndices(d, valFrac, seed)
	return d.Subset(tr), d.Subset(va)
}

func splitIndices(d *Dataset, valFrac float64, seed uint64) (tr, va []int) {
	if math.IsNaN(valFrac) || valFrac < 0 {
		valFrac = 0
	}
	if valFrac > 1 {
		valFrac = 1
	}
	n := d.Len()
	r := newRNG(seed, streamSplit)
	var groups [][]int
	if d.Labels != nil && len(d.Labels) == n && d.Classes > 0 {
		groups = make([][]int, d.Classes)
		var other []int
		for i, l := range d.Labels {
			if l >= 0 && int(l) < d.Classes {
				groups[l] = append(groups[l], i)
			} else {
				other = append(other, i)
			}
		}
		groups = append(groups, other)
	} else {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		groups = [][]int{all}
	}
	for _, g := range groups {
		r.shuffle(g)
		k := int(math.Round(valFrac * float64(len(g))))
		va = append(va, g[:k]...)
		tr = append(tr, g[k:]...)
	}
	slices.Sort(tr)
	slices.Sort(va)
	return tr, va
}

// KFold returns k (train, validation) index pairs for cross-validation:
// the samples 0..n-1 are shuffled with seed and cut into k folds of nearly
// equal size, each fold serving once as validation. It returns nil when
// k < 2 or k > n, since no such folds exist.
func KFold(n, k int, seed uint64) [][2][]int {
	if k < 2 || k > n {
		return nil
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	newRNG(seed, streamKFold).shuffle(p)
	folds := make([][2][]int, k)
	for f := 0; f < k; f++ {
		lo, hi := f*n/k, (f+1)*n/k
		va := append([]int(nil), p[lo:hi]...)
		tr := make([]int, 0, n-(hi-lo))
		tr = append(tr, p[:lo]...)
		tr = append(tr, p[hi:]...)
		slices.Sort(va)
		slices.Sort(tr)
		folds[f] = [2][]int{tr, va}
	}
	return folds
}
