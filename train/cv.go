package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/kilnml/kiln/data"
)

// cvStream is the PCG stream of the fold assignment, apart from every
// other use of the seed.
const cvStream = 0x6376666f6c647321

// StratifiedKFold cuts ds into k folds for cross-validation and returns k
// (train, validation) index pairs, each fold the validation part once.
// For classification (ds.Labels) every class is shuffled with seed and
// dealt round-robin over the folds, continuing from fold to fold across
// classes, so that each fold holds every class in nearly the dataset's
// proportion and fold sizes differ by at most one (scikit-learn's
// StratifiedKFold(shuffle=True) in spirit, not in its exact draws);
// otherwise the samples are shuffled and cut into k nearly equal parts.
// Indices are sorted within each part. k must be in [2, ds.Len()], and a
// class with fewer than k samples is an error (some fold would lack it).
func StratifiedKFold(ds *data.Dataset, k int, seed uint64) ([][2][]int, error) {
	if ds == nil {
		return nil, fmt.Errorf("train: StratifiedKFold: dataset is nil")
	}
	n := ds.Len()
	if k < 2 || k > n {
		return nil, fmt.Errorf("train: StratifiedKFold: %d folds of %d samples, expected 2 ≤ folds ≤ samples", k, n)
	}
	r := rand.New(rand.NewPCG(seed, cvStream))
	fold := make([]int, n)
	if ds.Labels != nil && ds.Classes > 0 {
		groups := make([][]int, ds.Classes)
		for i, l := range ds.Labels {
			if l < 0 || int(l) >= ds.Classes {
				return nil, fmt.Errorf("train: StratifiedKFold: sample %d has label %d, outside [0, %d)", i, l, ds.Classes)
			}
			groups[l] = append(groups[l], i)
		}
		next := 0
		for c, g := range groups {
			if len(g) > 0 && len(g) < k {
				return nil, fmt.Errorf("train: StratifiedKFold: class %d has %d samples, fewer than the %d folds", c, len(g), k)
			}
			r.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
			for _, i := range g {
				fold[i] = next
				next = (next + 1) % k
			}
		}
	} else {
		p := r.Perm(n)
		for j, i := range p {
			fold[i] = j * k / n
		}
	}
	out := make([][2][]int, k)
	for i, f := range fold {
		for g := 0; g < k; g++ {
			if g == f {
				out[g][1] = append(out[g][1], i)
			} else {
				out[g][0] = append(out[g][0], i)
			}
		}
	}
	for g := range out {
		slices.Sort(out[g][0])
		slices.Sort(out[g][1])
	}
	return out, nil
}

// FoldResult is one fold of a cross-validation.
type FoldResult struct {
	Fold    int     `json:"fold"`
	Train   int     `json:"train_samples"`
	Val     int     `json:"val_samples"`
	Metrics Metrics `json:"metrics"` // on the fold's validation part, after training
	Result  Result  `json:"result"`
}

// CVSummary is a cross-validation's folds and their mean and standard
// deviation (population, ddof 0, as numpy.std) of the validation loss and,
// for classification, accuracy (NaN otherwise).
type CVSummary struct {
	Folds    []FoldResult `json:"folds"`
	MeanLoss float64      `json:"mean_loss"`
	StdLoss  float64      `json:"std_loss"`
	MeanAcc  float64      `json:"mean_accuracy"`
	StdAcc   float64      `json:"std_accuracy"`
}

// CrossValidate runs stratified k-fold cross-validation of ds
// (StratifiedKFold with seed): fit trains a fresh model on the fold's
// training part and returns its metrics on the validation part. Folds run
// up to parallel at a time (≤ 0: one); fit must then be safe for
// concurrent use. The first failing fold's error is returned.
func CrossValidate(ds *data.Dataset, k int, seed uint64, parallel int, fit func(fold int, train, val *data.Dataset) (Metrics, Result, error)) (CVSummary, error) {
	folds, err := StratifiedKFold(ds, k, seed)
	if err != nil {
		return CVSummary{}, err
	}
	res := make([]FoldResult, k)
	errs := make([]error, k)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, min(parallel, k)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range next {
				tr, va := ds.Subset(folds[f][0]), ds.Subset(folds[f][1])
				m, r, err := fit(f, tr, va)
				res[f] = FoldResult{Fold: f, Train: tr.Len(), Val: va.Len(), Metrics: m, Result: r}
				if err != nil {
					errs[f] = fmt.Errorf("fold %d: %w", f+1, err)
				}
			}
		}()
	}
	for f := 0; f < k; f++ {
		next <- f
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return CVSummary{Folds: res}, err
		}
	}
	s := CVSummary{Folds: res}
	losses, accs := make([]float64, k), make([]float64, 0, k)
	for f, r := range res {
		losses[f] = r.Metrics.Loss
		if r.Metrics.Classes > 0 {
			accs = append(accs, r.Metrics.Accuracy)
		}
	}
	s.MeanLoss, s.StdLoss = meanStd(losses)
	s.MeanAcc, s.StdAcc = math.NaN(), math.NaN()
	if len(accs) == k {
		s.MeanAcc, s.StdAcc = meanStd(accs)
	}
	return s, nil
}

// meanStd is the mean and population standard deviation of v, summed in
// order in float64.
func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)))
}
