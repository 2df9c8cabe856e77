// Command recommender learns user and item embeddings from implicit
// feedback (who interacted with what) by matrix factorisation with the BPR
// loss, and ranks held-out interactions: recall@10 and NDCG@10 against the
// most-popular baseline. The data are synthetic with planted structure
// (latent factors and a popularity skew; see synth.go and README.md), so
// it also reports how well the learned item similarities recover the
// planted ones.
//
//	go run ./examples/recommender           # 6000 users, 2000 items
//	go run ./examples/recommender -quick    # CI size, checks the bar
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // the CPU backend
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recommender:", err)
		os.Exit(1)
	}
}

type options struct {
	quick         bool
	users, items  int
	dim, epochs   int
	batch         int
	lr, wd        float64
	seed          uint64
	dev           string
	minCorr, gain float64
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("recommender", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "CI size: 1500 users, 600 items, fewer epochs")
	fs.IntVar(&o.users, "users", 0, "users (default 6000, quick 1500)")
	fs.IntVar(&o.items, "items", 0, "items (default 2000, quick 600)")
	fs.IntVar(&o.dim, "dim", 32, "embedding width")
	fs.IntVar(&o.epochs, "epochs", 0, "epochs over the training interactions (default 20, quick 12)")
	fs.IntVar(&o.batch, "batch", 256, "(user, positive, negative) triples per step")
	fs.Float64Var(&o.lr, "lr", 0.01, "learning rate (AdamW)")
	fs.Float64Var(&o.wd, "wd", 0.05, "weight decay of the embedding tables")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the data, initialisation and sampling")
	fs.StringVar(&o.dev, "device", "auto", "device: auto, cpu, cuda, cuda:N")
	fs.Float64Var(&o.gain, "bar-gain", 2, "fail unless recall@10 is at least this many times the baseline's")
	fs.Float64Var(&o.minCorr, "bar-corr", 0.5, "fail unless learned and planted item similarities correlate at least this much")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.users, 6000, 1500)
	def(&o.items, 2000, 600)
	def(&o.epochs, 20, 12)
	if o.users < 2 || o.items < 20 || o.dim < 1 || o.epochs < 1 || o.batch < 1 {
		return o, fmt.Errorf("need -users ≥ 2, -items ≥ 20, and -dim, -epochs, -batch ≥ 1")
	}
	return o, nil
}

func run(args []string, w io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	began := time.Now()
	wd := generate(worldConfig{users: o.users, items: o.items, k: 8, minItems: 10, maxPer: 50,
		strength: 3, skew: 0.8, testFrac: 0.2, seed: o.seed})
	nTrain, nTest := 0, 0
	for u := range wd.train {
		nTrain += len(wd.train[u])
		nTest += len(wd.test[u])
	}
	fmt.Fprintf(w, "synthetic implicit feedback: %d users, %d items, 8 planted factors, Zipf popularity; %d training and %d held-out interactions [%s]\n",
		o.users, o.items, nTrain, nTest, time.Since(began).Round(time.Millisecond))

	dev, err := device.Open(o.dev)
	if err != nil {
		return err
	}
	defer dev.Close()

	pop := popularity(wd)
	baseRecall, baseNDCG := evaluate(wd, func(u int, scores []float32) {
		copy(scores, pop)
	})
	fmt.Fprintf(w, "most popular    recall@10 %.4f  NDCG@10 %.4f\n", baseRecall, baseNDCG)
	oracleRecall, oracleNDCG := evaluate(wd, wd.plantedScores)
	fmt.Fprintf(w, "planted (oracle) recall@10 %.4f  NDCG@10 %.4f  (the generator's own logits: the ceiling)\n", oracleRecall, oracleNDCG)

	model := newBPR(o.users, o.items, o.dim)
	params, err := nn.NewParamSet(dev, model, o.seed)
	if err != nil {
		return err
	}
	defer params.Free()
	began = time.Now()
	if err := fit(dev, model, params, wd, o, w); err != nil {
		return err
	}
	trainTime := time.Since(began)
	scores, err := model.scoreAll(dev)
	if err != nil {
		return err
	}
	recall, ndcg := evaluate(wd, func(u int, s []float32) {
		copy(s, scores[u*o.items:(u+1)*o.items])
	})
	fmt.Fprintf(w, "BPR-MF (dim %d) recall@10 %.4f  NDCG@10 %.4f  (trained in %s)\n", o.dim, recall, ndcg, trainTime.Round(time.Millisecond))

	items, err := readParam(dev, model.Items.Weight)
	if err != nil {
		return err
	}
	bias, err := readParam(dev, model.ItemBias.Weight)
	if err != nil {
		return err
	}
	simCorr, overlap, chance := recovery(wd, items, o.dim, o.seed)
	fmt.Fprintf(w, "structure: item-item cosine similarity, learned vs planted: Pearson r = %.3f over 20000 random pairs\n", simCorr)
	fmt.Fprintf(w, "           10 nearest neighbours shared with the planted ones: %.2f of 10 on average (chance %.3f)\n", overlap, chance)
	popCorr := pearson(toF64(bias), wd.pop)
	fmt.Fprintf(w, "           learned item bias vs planted popularity logit: Pearson r = %.3f\n", popCorr)

	switch {
	case recall < o.gain*baseRecall:
		return fmt.Errorf("recall@10 %.4f is not %.2f× the baseline's %.4f", recall, o.gain, baseRecall)
	case ndcg <= baseNDCG:
		return fmt.Errorf("NDCG@10 %.4f does not beat the baseline's %.4f", ndcg, baseNDCG)
	case simCorr < o.minCorr:
		return fmt.Errorf("learned item similarities correlate %.3f with the planted ones, below the bar %.2f", simCorr, o.minCorr)
	}
	fmt.Fprintf(w, "bars (recall ≥ %.2f× baseline, NDCG above it, similarity r ≥ %.2f): passed\n", o.gain, o.minCorr)
	return nil
}

// popularity scores every item by its count of training interactions.
func popularity(wd *world) []float32 {
	pop := make([]float32, wd.items)
	for _, items := range wd.train {
		for _, i := range items {
			pop[i]++
		}
	}
	return pop
}

// evaluate ranks, for every user, all items the user has no training
// interaction with by the scores fill writes, and returns the mean over
// users of recall@10 (held-out items in the top 10 / held-out items) and
// NDCG@10 (binary relevance, the ideal ranking putting every held-out item
// first).
func evaluate(wd *world, fill func(u int, scores []float32)) (recall, ndcg float64) {
	scores := make([]float32, wd.items)
	seen := make([]bool, wd.items)
	held := make([]bool, wd.items)
	order := make([]int, 0, wd.items)
	for u := 0; u < wd.users; u++ {
		fill(u, scores)
		for _, i := range wd.train[u] {
			seen[i] = true
		}
		for _, i := range wd.test[u] {
			held[i] = true
		}
		order = order[:0]
		for i := range scores {
			if !seen[i] {
				order = append(order, i)
			}
		}
		sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
		hits, dcg, idcg := 0, 0.0, 0.0
		for r := 0; r < 10 && r < len(order); r++ {
			if held[order[r]] {
				hits++
				dcg += 1 / math.Log2(float64(r+2))
			}
		}
		for r := 0; r < min(10, len(wd.test[u])); r++ {
			idcg += 1 / math.Log2(float64(r+2))
		}
		recall += float64(hits) / float64(len(wd.test[u]))
		ndcg += dcg / idcg
		for _, i := range wd.train[u] {
			seen[i] = false
		}
		for _, i := range wd.test[u] {
			held[i] = false
		}
	}
	return recall / float64(wd.users), ndcg / float64(wd.users)
}

// recovery compares the learned item vectors (items×dim) with the planted
// factors: the Pearson correlation of the cosine similarities of 20000
// random item pairs, and the mean overlap of each item's 10 nearest
// neighbours (by cosine) under both, with the overlap chance would give.
func recovery(wd *world, items []float32, dim int, seed uint64) (corr, overlap, chance float64) {
	learned := func(a, b int) float64 {
		return cosine(toF64(items[a*dim:(a+1)*dim]), toF64(items[b*dim:(b+1)*dim]))
	}
	r := rand.New(rand.NewPCG(seed, 99))
	xs, ys := make([]float64, 0, 20000), make([]float64, 0, 20000)
	for len(xs) < 20000 {
		a, b := r.IntN(wd.items), r.IntN(wd.items)
		if a == b {
			continue
		}
		xs = append(xs, learned(a, b))
		ys = append(ys, wd.plantedItemSim(a, b))
	}
	corr = pearson(xs, ys)

	const probes, k = 200, 10
	nearest := func(a int, sim func(a, b int) float64) map[int]bool {
		type s struct {
			v float64
			i int
		}
		all := make([]s, 0, wd.items-1)
		for b := 0; b < wd.items; b++ {
			if b != a {
				all = append(all, s{sim(a, b), b})
			}
		}
		sort.Slice(all, func(x, y int) bool { return all[x].v > all[y].v })
		set := map[int]bool{}
		for _, e := range all[:k] {
			set[e.i] = true
		}
		return set
	}
	for p := 0; p < probes; p++ {
		a := r.IntN(wd.items)
		planted := nearest(a, wd.plantedItemSim)
		for b := range nearest(a, learned) {
			if planted[b] {
				overlap++
			}
		}
	}
	return corr, overlap / probes, float64(k*k) / float64(wd.items-1)
}

func toF64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func readParam(dev device.Device, p *nn.Param) ([]float32, error) {
	out := make([]float32, p.Len())
	return out, dev.ReadF32(out, p.Value(), 0)
}

// fit runs BPR: every epoch visits each training interaction (u, i) once
// in a seeded random order, pairs it with an item j drawn uniformly from
// those u has no training interaction with, and minimises
// −ln σ(s(u,i) − s(u,j)) with AdamW.
func fit(dev device.Device, m *bprModel, params *nn.ParamSet, wd *world, o options, w io.Writer) error {
	var us, is []int32
	for u, items := range wd.train {
		for _, i := range items {
			us = append(us, int32(u))
			is = append(is, i)
		}
	}
	seen := make([]bool, wd.users*wd.items)
	for i := range us {
		seen[int(us[i])*wd.items+int(is[i])] = true
	}
	n := len(us)
	bs := min(o.batch, n)
	var decay, noDecay []*nn.Param
	for _, p := range params.Params() {
		if p == m.ItemBias.Weight {
			noDecay = append(noDecay, p)
		} else {
			decay = append(decay, p)
		}
	}
	opt, err := train.NewAdamW(params, train.DefaultAdamW(float32(o.lr)),
		train.ParamGroup{Name: "decay", Params: decay, WeightDecay: float32(o.wd)},
		train.ParamGroup{Name: "no_decay", Params: noDecay})
	if err != nil {
		return err
	}
	host := make([]int32, 3*bs)
	trip, err := dev.Alloc(device.Int32, 3*bs)
	if err != nil {
		return err
	}
	defer dev.Free(trip)
	ones, err := dev.Alloc(device.Float32, bs)
	if err != nil {
		return err
	}
	defer dev.Free(ones)
	if err := dev.Fill(ones, bs, 1); err != nil {
		return err
	}
	lossSum, err := dev.Alloc(device.Float32, 1)
	if err != nil {
		return err
	}
	defer dev.Free(lossSum)
	g := nn.NewGraph(dev)
	defer g.Free()
	neg := rand.New(rand.NewPCG(o.seed, 3))
	for epoch := 0; epoch < o.epochs; epoch++ {
		began := time.Now()
		if err := dev.Fill(lossSum, 1, 0); err != nil {
			return err
		}
		order := data.Permutation(n, o.seed, epoch)
		for start := 0; start+bs <= n; start += bs { // whole batches only: the last partial one is dropped
			for r, s := range order[start : start+bs] {
				u := us[s]
				j := int32(neg.IntN(wd.items))
				for seen[int(u)*wd.items+int(j)] {
					j = int32(neg.IntN(wd.items))
				}
				host[r], host[bs+r], host[2*bs+r] = u, is[s], j
			}
			if err := dev.WriteI32(trip, 0, host); err != nil {
				return err
			}
			if err := params.ZeroGrad(); err != nil {
				return err
			}
			x, err := g.InputIndices(trip, 3, bs)
			if err != nil {
				return err
			}
			logit, err := m.Forward(g, x)
			if err != nil {
				return err
			}
			loss, err := g.Loss(device.BCEWithLogits, logit, ones)
			if err != nil {
				return err
			}
			if err := g.Backward(loss); err != nil {
				return err
			}
			if err := dev.Axpy(1, loss.Value(), lossSum, 1); err != nil {
				return err
			}
			if err := opt.Step(); err != nil {
				return err
			}
			g.Reset()
		}
		var s [1]float32
		if err := dev.ReadF32(s[:], lossSum, 0); err != nil {
			return err
		}
		if e := epoch + 1; e == 1 || e%5 == 0 || e == o.epochs {
			fmt.Fprintf(w, "  epoch %2d/%d  BPR loss %.4f  %.1fs\n", e, o.epochs, float64(s[0])/float64(n/bs), time.Since(began).Seconds())
		}
	}
	return nil
}
