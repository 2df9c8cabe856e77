package data

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSyntheticDeterministicPerSeed(t *testing.T) {
	gens := map[string]func(seed uint64) (*Dataset, error){
		"moons":   func(s uint64) (*Dataset, error) { return Moons(200, 0.1, s) },
		"circles": func(s uint64) (*Dataset, error) { return Circles(200, 0.05, 0.5, s) },
		"flower":  func(s uint64) (*Dataset, error) { return Flower(200, 0.2, s) },
	}
	for name, gen := range gens {
		a, err := gen(1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := gen(1)
		c, _ := gen(2)
		if !slices.Equal(a.X, b.X) || !slices.Equal(a.Labels, b.Labels) {
			t.Errorf("%s: same seed, different data", name)
		}
		if slices.Equal(a.X, c.X) {
			t.Errorf("%s: seeds 1 and 2 gave the same data", name)
		}
		if a.Len() != 200 || a.Features != 2 || a.Classes != 2 || a.Outputs != 1 {
			t.Errorf("%s: len %d features %d classes %d outputs %d", name, a.Len(), a.Features, a.Classes, a.Outputs)
		}
		ones := 0
		for i, l := range a.Labels {
			if a.Y[i] != float32(l) {
				t.Fatalf("%s: Y[%d] = %v but label %d", name, i, a.Y[i], l)
			}
			ones += int(l)
		}
		if ones != 100 {
			t.Errorf("%s: %d of 200 samples in class 1, want 100", name, ones)
		}
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSyntheticGeometry checks each generator draws the shape it claims
// (noise-free, so exactly).
func TestSyntheticGeometry(t *testing.T) {
	m, _ := Moons(100, 0, 3)
	for i := 0; i < m.Len(); i++ {
		x, y := float64(m.X[2*i]), float64(m.X[2*i+1])
		if m.Labels[i] == 1 {
			x, y = 1-x, 0.5-y
		}
		if math.Abs(math.Hypot(x, y)-1) > 1e-5 || y < -1e-6 {
			t.Fatalf("moons sample %d (class %d) not on its half circle: %v", i, m.Labels[i], m.X[2*i:2*i+2])
		}
	}
	c, _ := Circles(100, 0, 0.3, 3)
	for i := 0; i < c.Len(); i++ {
		r, want := math.Hypot(float64(c.X[2*i]), float64(c.X[2*i+1])), 1.0
		if c.Labels[i] == 1 {
			want = 0.3
		}
		if math.Abs(r-want) > 1e-5 {
			t.Fatalf("circles sample %d radius %v, want %v", i, r, want)
		}
	}
	f, _ := Flower(400, 0, 3)
	for i := 0; i < f.Len(); i++ {
		if r := math.Hypot(float64(f.X[2*i]), float64(f.X[2*i+1])); r > 4+1e-5 {
			t.Fatalf("flower sample %d radius %v, want <= 4", i, r)
		}
	}
}

func TestSyntheticErrors(t *testing.T) {
	if _, err := Moons(1, 0.1, 0); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("n=1: %v", err)
	}
	if _, err := Moons(10, -1, 0); err == nil || !strings.Contains(err.Error(), "noise") {
		t.Errorf("negative noise: %v", err)
	}
	if _, err := Flower(10, math.NaN(), 0); err == nil {
		t.Error("NaN noise: no error")
	}
	if _, err := Circles(10, 0.1, 1, 0); err == nil || !strings.Contains(err.Error(), "factor") {
		t.Errorf("factor 1: %v", err)
	}
}

func TestLoadSynthetic(t *testing.T) {
	for _, name := range []string{"moons", "circles", "flower"} {
		tr, te, err := Load(name, Options{Samples: 80, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Len() != 80 || te.Len() != 20 {
			t.Errorf("%s: sizes %d/%d, want 80/20", name, tr.Len(), te.Len())
		}
		if slices.Equal(tr.X[:40], te.X[:40]) {
			t.Errorf("%s: test set repeats the training set", name)
		}
	}
	if _, _, err := Load("moons", Options{Samples: 1}); err == nil {
		t.Error("Samples 1: no error")
	}
}
