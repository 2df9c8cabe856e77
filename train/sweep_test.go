package train

import (
	"bytes"
	"encoding/csv"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnml/kiln/data"
)

func TestGrid(t *testing.T) {
	runs, err := Grid([]SweepAxis{{"lr", []string{"0.1", "0.01"}}, {"model", []string{"a", "b", "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	want := "lr=0.1 model=a|lr=0.1 model=b|lr=0.1 model=c|lr=0.01 model=a|lr=0.01 model=b|lr=0.01 model=c"
	if strings.Join(names, "|") != want {
		t.Fatalf("grid %q, want %q", strings.Join(names, "|"), want)
	}
	if _, err := Grid([]SweepAxis{{"lr", nil}}); err == nil {
		t.Error("an axis without values: no error")
	}
	if _, err := Grid([]SweepAxis{{"lr", []string{"1"}}, {"lr", []string{"2"}}}); err == nil {
		t.Error("an axis given twice: no error")
	}
}

// TestSweepOrderAndSort: parallel runs come back in run order, each run
// once, a failure in its own row; sorting puts the best first and runs
// without the figure last.
func TestSweepOrderAndSort(t *testing.T) {
	runs, _ := Grid([]SweepAxis{{"x", []string{"3", "1", "4", "1b", "5"}}})
	var calls atomic.Int32
	val := map[string]float64{"3": 0.3, "1": 0.1, "4": 0.4, "5": 0.05}
	s := Sweep(runs, 3, func(i int, r SweepRun) (Result, error) {
		calls.Add(1)
		v, ok := val[r.Settings[0].Value]
		if !ok {
			return Result{}, errors.New("diverged")
		}
		return Result{Epochs: 2, History: []EpochMetrics{
			{Val: &Metrics{Loss: v * 2, Classes: 2, Accuracy: 1 - v*2}},
			{Val: &Metrics{Loss: v, Classes: 2, Accuracy: 1 - v}},
		}}, nil
	})
	if calls.Load() != 5 || len(s) != 5 {
		t.Fatalf("%d calls, %d summaries; want 5", calls.Load(), len(s))
	}
	for i, r := range s {
		if r.Run.Name != runs[i].Name {
			t.Fatalf("summary %d is %q, want %q (run order)", i, r.Run.Name, runs[i].Name)
		}
	}
	if s[3].Err != "diverged" || !math.IsNaN(s[3].FinalValLoss) || s[0].BestValLoss != 0.3 || s[0].BestValAcc != 0.7 {
		t.Fatalf("summaries: %+v", s)
	}
	order := func() string {
		var o []string
		for _, r := range s {
			o = append(o, r.Run.Settings[0].Value)
		}
		return strings.Join(o, ",")
	}
	if err := SortSummaries(s, "val_loss"); err != nil || order() != "5,1,3,4,1b" {
		t.Fatalf("by val_loss: %s (%v), want 5,1,3,4,1b", order(), err)
	}
	if err := SortSummaries(s, "val_acc"); err != nil || order() != "5,1,3,4,1b" {
		t.Fatalf("by val_acc (descending): %s (%v)", order(), err)
	}
	if err := SortSummaries(s, "nope"); err == nil {
		t.Error("unknown metric: no error")
	}
	var b bytes.Buffer
	if err := WriteSummariesCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 6 || recs[1][0] != "x=5" || recs[1][1] != "0.05" || recs[5][8] != "diverged" {
		t.Fatalf("CSV: %v %v", recs, err)
	}
	b.Reset()
	if err := WriteSummariesJSON(&b, s); err != nil || !strings.Contains(b.String(), `"final_val_loss": null`) {
		t.Fatalf("JSON: %v\n%s", err, b.String())
	}
}

// TestStratifiedKFold: every sample is validated exactly once, every fold
// holds each class in proportion (within one sample), fold sizes differ by
// at most one, and the split depends on the seed only.
func TestStratifiedKFold(t *testing.T) {
	ds := &data.Dataset{Name: "s", Features: 1, Classes: 3}
	counts := []int{50, 23, 7}
	for c, n := range counts {
		for i := 0; i < n; i++ {
			ds.X = append(ds.X, float32(i))
			ds.Labels = append(ds.Labels, int32(c))
		}
	}
	const k = 5
	folds, err := StratifiedKFold(ds, k, 11)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, ds.Len())
	minSize, maxSize := ds.Len(), 0
	for _, f := range folds {
		if len(f[0])+len(f[1]) != ds.Len() {
			t.Fatalf("fold of %d + %d samples, want %d", len(f[0]), len(f[1]), ds.Len())
		}
		per := make([]int, 3)
		for _, i := range f[1] {
			seen[i]++
			per[ds.Labels[i]]++
		}
		for c, n := range counts {
			if want := float64(n) / k; math.Abs(float64(per[c])-want) >= 1 {
				t.Errorf("class %d: %d in a fold, want %.1f ± 1", c, per[c], want)
			}
		}
		minSize, maxSize = min(minSize, len(f[1])), max(maxSize, len(f[1]))
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d validated %d times", i, n)
		}
	}
	if maxSize-minSize > 1 {
		t.Errorf("fold sizes from %d to %d", minSize, maxSize)
	}
	again, _ := StratifiedKFold(ds, k, 11)
	other, _ := StratifiedKFold(ds, k, 12)
	if !equalFolds(folds, again) || equalFolds(folds, other) {
		t.Error("the folds must depend on the seed, and only on it")
	}
	if _, err := StratifiedKFold(ds, 8, 1); err == nil {
		t.Error("8 folds with a class of 7: no error")
	}
}

func equalFolds(a, b [][2][]int) bool {
	for f := range a {
		for p := 0; p < 2; p++ {
			if len(a[f][p]) != len(b[f][p]) {
				return false
			}
			for i := range a[f][p] {
				if a[f][p][i] != b[f][p][i] {
					return false
				}
			}
		}
	}
	return true
}

// TestCrossValidateStats: mean and population std of the folds' figures
// against a float64 reference (exact to 1e-12: a handful of values).
func TestCrossValidateStats(t *testing.T) {
	ds := blobs(60, 0)
	s, err := CrossValidate(ds, 4, 1, 2, func(f int, tr, va *data.Dataset) (Metrics, Result, error) {
		if tr.Len()+va.Len() != 60 {
			return Metrics{}, Result{}, errors.New("bad fold")
		}
		return Metrics{Loss: float64(f + 1), Classes: 3, Accuracy: 0.5 + 0.1*float64(f)}, Result{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// losses 1..4: mean 2.5, std sqrt(1.25); accuracies 0.5..0.8: mean 0.65, std sqrt(0.0125)
	if math.Abs(s.MeanLoss-2.5) > 1e-12 || math.Abs(s.StdLoss-math.Sqrt(1.25)) > 1e-12 ||
		math.Abs(s.MeanAcc-0.65) > 1e-12 || math.Abs(s.StdAcc-math.Sqrt(0.0125)) > 1e-12 || len(s.Folds) != 4 || s.Folds[2].Val != 15 {
		t.Fatalf("summary %+v", s)
	}
	if _, err := CrossValidate(ds, 3, 1, 1, func(f int, tr, va *data.Dataset) (Metrics, Result, error) {
		return Metrics{}, Result{}, errors.New("boom")
	}); err == nil || !strings.Contains(err.Error(), "fold 1") {
		t.Fatalf("failing fold: %v", err)
	}
}
