package data

import (
	"slices"
	"testing"
)

func isPerm(p []int, n int) bool {
	if len(p) != n {
		return false
	}
	seen := make([]bool, n)
	for _, v := range p {
		if v < 0 || v >= n || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func TestPermutation(t *testing.T) {
	p := Permutation(100, 7, 3)
	if !isPerm(p, 100) {
		t.Fatalf("not a permutation: %v", p)
	}
	if !slices.Equal(p, Permutation(100, 7, 3)) {
		t.Error("same (seed, epoch) gave different orders")
	}
	if slices.Equal(p, Permutation(100, 7, 4)) {
		t.Error("epochs 3 and 4 gave the same order")
	}
	if slices.Equal(p, Permutation(100, 8, 3)) {
		t.Error("seeds 7 and 8 gave the same order")
	}
	if len(Permutation(0, 1, 0)) != 0 || len(Permutation(-3, 1, 0)) != 0 {
		t.Error("empty permutation expected for n <= 0")
	}
}

// TestPermutationGolden pins the batch order so that a checkpoint resumed
// by a later build (or a later Go release) replays the same batches.
func TestPermutationGolden(t *testing.T) {
	got := Permutation(10, 42, 1)
	want := []int{9, 5, 1, 7, 6, 8, 0, 2, 3, 4}
	if !slices.Equal(got, want) {
		t.Errorf("Permutation(10, 42, 1) = %v, want %v: the batch order changed, resumed runs would differ", got, want)
	}
}

func TestIntnUniform(t *testing.T) {
	r := newRNG(1, 2)
	var counts [6]int
	for i := 0; i < 60000; i++ {
		counts[r.intn(6)]++
	}
	for v, c := range counts {
		if c < 9500 || c > 10500 {
			t.Errorf("value %d drawn %d times of 60000, want about 10000", v, c)
		}
	}
}

func TestSplitStratified(t *testing.T) {
	// 30 of class 0, 10 of class 1, 20 of class 2.
	d := &Dataset{Name: "s", Features: 1, Shape: []int{1}, Classes: 3}
	for i := 0; i < 60; i++ {
		c := int32(0)
		if i >= 30 {
			c = 1
		}
		if i >= 40 {
			c = 2
		}
		d.X = append(d.X, float32(i))
		d.Labels = append(d.Labels, c)
	}
	tr, va := Split(d, 0.2, 5)
	if tr.Len() != 48 || va.Len() != 12 {
		t.Fatalf("sizes %d/%d, want 48/12", tr.Len(), va.Len())
	}
	count := func(ds *Dataset) [3]int {
		var c [3]int
		for _, l := range ds.Labels {
			c[l]++
		}
		return c
	}
	if c := count(va); c != [3]int{6, 2, 4} {
		t.Errorf("validation class counts %v, want [6 2 4]", c)
	}
	// Disjoint and covering: the X values are the sample indices.
	all := append(append([]float32(nil), tr.X...), va.X...)
	slices.Sort(all)
	for i, v := range all {
		if v != float32(i) {
			t.Fatalf("train ∪ val is not the whole set (position %d holds %v)", i, v)
		}
	}
	tr2, _ := Split(d, 0.2, 5)
	if !slices.Equal(tr.X, tr2.X) {
		t.Error("same seed, different split")
	}
	tr3, _ := Split(d, 0.2, 6)
	if slices.Equal(tr.X, tr3.X) {
		t.Error("different seeds, same split")
	}
	// Regression data splits without stratification.
	reg := &Dataset{Features: 1, X: make([]float32, 10), Y: make([]float32, 10), Outputs: 1}
	a, b := Split(reg, 0.3, 1)
	if a.Len() != 7 || b.Len() != 3 {
		t.Errorf("regression split %d/%d, want 7/3", a.Len(), b.Len())
	}
}

func TestKFold(t *testing.T) {
	folds := KFold(10, 3, 9)
	if len(folds) != 3 {
		t.Fatalf("%d folds, want 3", len(folds))
	}
	var vals []int
	for i, f := range folds {
		tr, va := f[0], f[1]
		if len(tr)+len(va) != 10 {
			t.Errorf("fold %d: %d + %d samples, want 10", i, len(tr), len(va))
		}
		if len(va) < 3 || len(va) > 4 {
			t.Errorf("fold %d: %d validation samples, want 3 or 4", i, len(va))
		}
		both := append(append([]int(nil), tr...), va...)
		slices.Sort(both)
		if !isPerm(both, 10) {
			t.Errorf("fold %d: train and validation overlap or miss samples", i)
		}
		vals = append(vals, va...)
	}
	slices.Sort(vals)
	if !isPerm(vals, 10) {
		t.Errorf("validation folds do not partition the samples: %v", vals)
	}
	if KFold(3, 4, 0) != nil || KFold(10, 1, 0) != nil {
		t.Error("impossible folds should return nil")
	}
}
