package data

import (
	"slices"
	"strings"
	"testing"
)

func TestEmbeddedDigits(t *testing.T) {
	all, err := Digits()
	if err != nil {
		t.Fatal(err)
	}
	if all.Len() != 1797 || all.Features != 64 || all.Classes != 10 {
		t.Fatalf("digits: %d samples, %d features, %d classes; want 1797, 64, 10", all.Len(), all.Features, all.Classes)
	}
	// Class sizes of the UCI test set that scikit-learn ships.
	var counts [10]int
	for _, l := range all.Labels {
		counts[l]++
	}
	if want := [10]int{178, 182, 177, 183, 181, 182, 181, 179, 174, 180}; counts != want {
		t.Errorf("class counts %v, want %v", counts, want)
	}
	maxV := float32(0)
	for _, v := range all.X {
		if v < 0 || v > 1 {
			t.Fatalf("feature %v outside [0, 1]", v)
		}
		maxV = max(maxV, v)
	}
	if maxV != 1 {
		t.Errorf("largest feature %v, want 1 (16/16)", maxV)
	}
	// The first sample is a 0 whose first row is 0,0,5,13,9,1,0,0.
	if want := []float32{0, 0, 5. / 16, 13. / 16, 9. / 16, 1. / 16, 0, 0}; all.Labels[0] != 0 || !slices.Equal(all.X[:8], want) {
		t.Errorf("first sample: label %d row %v", all.Labels[0], all.X[:8])
	}

	for _, name := range []string{"", "digits", "DIGITS"} {
		tr, te, err := Load(name, Options{Seed: 99})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Len() != 1438 || te.Len() != 359 {
			t.Errorf("Load(%q): %d/%d samples, want 1438/359", name, tr.Len(), te.Len())
		}
		if tr.Name != "digits" || !slices.Equal(tr.Shape, []int{64}) {
			t.Errorf("Load(%q): name %q shape %v", name, tr.Name, tr.Shape)
		}
		var tc [10]int
		for _, l := range te.Labels {
			tc[l]++
		}
		for c, n := range tc {
			if n < 34 || n > 37 {
				t.Errorf("test split has %d samples of class %d, want about 36 (stratified)", n, c)
			}
		}
	}
	// The split is fixed: independent of Options.Seed.
	a, _, _ := Load("digits", Options{Seed: 1})
	b, _, _ := Load("digits", Options{Seed: 2})
	if !slices.Equal(a.X, b.X) {
		t.Error("digits split depends on Options.Seed; it should be fixed")
	}
	// Standardize computes statistics on the training split.
	s, te, err := Load("digits", Options{Standardize: true})
	if err != nil {
		t.Fatal(err)
	}
	fit, _ := FitStats(a)
	if s.Stats == nil || !slices.Equal(s.Stats.Mean, fit.Mean) || !slices.Equal(te.Stats.Std, fit.Std) {
		t.Error("digits standardisation does not use the training split's statistics")
	}
}

func TestLoadStandardizeAndNormalize(t *testing.T) {
	_, _, err := Load("mnist", Options{Standardize: true, Normalize: true})
	if err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("Standardize with Normalize: %v", err)
	}
}

func TestLoadUnknown(t *testing.T) {
	_, _, err := Load("imagenet", Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown dataset "imagenet"`) || !strings.Contains(err.Error(), "fashion-mnist") {
		t.Errorf("unknown dataset: %v", err)
	}
}
