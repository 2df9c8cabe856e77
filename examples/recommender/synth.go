package main

import (
	"math"
	"math/rand/v2"
	"sort"
)

// world is a synthetic implicit-feedback dataset with planted structure:
// K latent factors for every user and item and a Zipf popularity skew. It
// stands in for a real interaction log (none is reachable through the
// package registries of the machine this example was written on; see
// README.md).
//
// User u interacts with n_u distinct items drawn without replacement from
//
//	P(i | u) ∝ exp(strength·⟨p_u, q_i⟩/√K + pop_i),   pop_i = −skew·ln(rank_i + 1)
//
// (p_u, q_i ~ N(0, I_K); rank_i a random permutation of the items), by the
// Gumbel-top-k trick: the n_u largest of logit + Gumbel noise are an exact
// draw without replacement from the softmax.
type world struct {
	users, items, k int
	strength        float64
	p, q            []float64 // planted factors, users×K and items×K
	pop             []float64 // planted popularity logit per item
	train, test     [][]int32 // per user: training and held-out items
}

type worldConfig struct {
	users, items, k  int
	minItems, maxPer int
	strength, skew   float64
	testFrac         float64
	seed             uint64
}

func generate(c worldConfig) *world {
	r := rand.New(rand.NewPCG(c.seed, 7))
	w := &world{users: c.users, items: c.items, k: c.k, strength: c.strength,
		p: make([]float64, c.users*c.k), q: make([]float64, c.items*c.k), pop: make([]float64, c.items),
		train: make([][]int32, c.users), test: make([][]int32, c.users)}
	for i := range w.p {
		w.p[i] = r.NormFloat64()
	}
	for i := range w.q {
		w.q[i] = r.NormFloat64()
	}
	for i, rank := range r.Perm(c.items) {
		w.pop[i] = -c.skew * math.Log(float64(rank+1))
	}
	scale := c.strength / math.Sqrt(float64(c.k))
	type scored struct {
		key  float64
		item int32
	}
	keys := make([]scored, c.items)
	for u := 0; u < c.users; u++ {
		pu := w.p[u*c.k : (u+1)*c.k]
		for i := 0; i < c.items; i++ {
			dot := 0.0
			for f, x := range w.q[i*c.k : (i+1)*c.k] {
				dot += pu[f] * x
			}
			gumbel := -math.Log(-math.Log(r.Float64() + 1e-300))
			keys[i] = scored{scale*dot + w.pop[i] + gumbel, int32(i)}
		}
		n := c.minItems + r.IntN(c.maxPer-c.minItems+1)
		sort.Slice(keys, func(a, b int) bool { return keys[a].key > keys[b].key })
		chosen := make([]int32, n)
		for j := range chosen {
			chosen[j] = keys[j].item
		}
		// The held-out items are a random testFrac of the user's items.
		r.Shuffle(n, func(a, b int) { chosen[a], chosen[b] = chosen[b], chosen[a] })
		t := max(1, int(math.Round(c.testFrac*float64(n))))
		w.test[u], w.train[u] = chosen[:t], chosen[t:]
	}
	return w
}

// plantedScores writes the generator's logit of every item for user u.
func (w *world) plantedScores(u int, scores []float32) {
	scale := w.strength / math.Sqrt(float64(w.k))
	pu := w.p[u*w.k : (u+1)*w.k]
	for i := range scores {
		dot := 0.0
		for f, x := range w.q[i*w.k : (i+1)*w.k] {
			dot += pu[f] * x
		}
		scores[i] = float32(scale*dot + w.pop[i])
	}
}

// plantedItemSim is the cosine similarity of the planted factors of items
// a and b.
func (w *world) plantedItemSim(a, b int) float64 {
	return cosine(w.q[a*w.k:(a+1)*w.k], w.q[b*w.k:(b+1)*w.k])
}

func cosine(x, y []float64) float64 {
	var xy, xx, yy float64
	for i := range x {
		xy += x[i] * y[i]
		xx += x[i] * x[i]
		yy += y[i] * y[i]
	}
	if xx == 0 || yy == 0 {
		return 0
	}
	return xy / math.Sqrt(xx*yy)
}

// pearson is the correlation coefficient of x and y.
func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / math.Sqrt(sxx*syy)
}
