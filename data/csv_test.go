package data

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseCSVIntegerLabels(t *testing.T) {
	in := "a, label ,b\n1,2,3\n4,0,5.5\n\n-1e-3,1,7\n"
	d, err := ParseCSV(strings.NewReader(in), "ok.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || d.Features != 2 || d.Classes != 3 || d.ClassNames != nil {
		t.Fatalf("len %d features %d classes %d names %v", d.Len(), d.Features, d.Classes, d.ClassNames)
	}
	if want := []float32{1, 3, 4, 5.5, -1e-3, 7}; !slices.Equal(d.X, want) {
		t.Errorf("X = %v, want %v", d.X, want)
	}
	if want := []int32{2, 0, 1}; !slices.Equal(d.Labels, want) {
		t.Errorf("Labels = %v, want %v", d.Labels, want)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseCSVStringLabels(t *testing.T) {
	in := "x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n"
	d, err := ParseCSV(strings.NewReader(in), "iris.csv", CSVOptions{Label: "species"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"setosa", "versicolor", "virginica"}; !slices.Equal(d.ClassNames, want) {
		t.Errorf("ClassNames = %v, want %v (sorted)", d.ClassNames, want)
	}
	if want := []int32{2, 0, 1, 0}; !slices.Equal(d.Labels, want) {
		t.Errorf("Labels = %v, want %v", d.Labels, want)
	}
	// A test file reuses the mapping; an unknown name is an error.
	d2, err := ParseCSV(strings.NewReader("x,species\n5,virginica\n"), "t.csv", CSVOptions{Label: "species", ClassNames: d.ClassNames})
	if err != nil || d2.Labels[0] != 2 || d2.Classes != 3 {
		t.Errorf("mapped test file: %v %v", d2, err)
	}
	_, err = ParseCSV(strings.NewReader("x,species\n5,rose\n"), "t.csv", CSVOptions{Label: "species", ClassNames: d.ClassNames})
	if err == nil || !strings.Contains(err.Error(), `t.csv:2: column 2 ("species"): label "rose" is not one of the 3 known classes`) {
		t.Errorf("unknown class: %v", err)
	}
}

func TestParseCSVFloatWrittenLabels(t *testing.T) {
	d, err := ParseCSV(strings.NewReader("a,label\n1,10.0\n2,2.0\n3,0\n"), "f.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Labels, []int32{10, 2, 0}) || d.Classes != 11 || d.ClassNames != nil {
		t.Errorf("labels %v classes %d names %v, want [10 2 0] 11 nil", d.Labels, d.Classes, d.ClassNames)
	}
	d, err = ParseCSV(strings.NewReader("a,label\n1,0.5\n2,1\n"), "f.csv", CSVOptions{})
	if err != nil || !slices.Equal(d.ClassNames, []string{"0.5", "1"}) {
		t.Errorf("non-integral labels should be names: %v %v", d, err)
	}
}

func TestParseCSVRegression(t *testing.T) {
	d, err := ParseCSV(strings.NewReader("x1,x2,price\n1,2,3.5\n4,5,-6\n"), "r.csv", CSVOptions{Label: "price", Regression: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels != nil || d.Outputs != 1 || !slices.Equal(d.Y, []float32{3.5, -6}) || !slices.Equal(d.X, []float32{1, 2, 4, 5}) {
		t.Errorf("regression: labels %v outputs %d Y %v X %v", d.Labels, d.Outputs, d.Y, d.X)
	}
}

func TestParseCSVErrors(t *testing.T) {
	cases := []struct {
		name, in string
		opt      CSVOptions
		want     string
	}{
		{"empty", "", CSVOptions{}, "bad.csv: empty file, want a header row"},
		{"no label column", "a,b\n1,2\n", CSVOptions{}, `bad.csv:1: no label column "label" in header ["a" "b"]`},
		{"label only", "label\n1\n", CSVOptions{}, "at least one feature column"},
		{"duplicate label", "label,a,label\n1,2,3\n", CSVOptions{}, "appears twice"},
		{"no rows", "a,label\n", CSVOptions{}, "no data rows"},
		{"non-numeric", "a,b,label\n1,2,0\n3,x7,1\n", CSVOptions{}, `bad.csv:3: column 2 ("b"): "x7" is not a number`},
		{"empty field", "a,b,label\n1,,0\n", CSVOptions{}, `bad.csv:2: column 2 ("b"): empty field, want a number`},
		{"nan", "a,label\nNaN,0\n", CSVOptions{}, `"NaN" is not a finite number`},
		{"overflow", "a,label\n1e60,0\n", CSVOptions{}, "out of float32 range"},
		{"short row", "a,b,label\n1,2,0\n3,1\n", CSVOptions{}, "bad.csv:3: row has 2 fields, want 3"},
		{"long row", "a,b,label\n1,2,0,9\n", CSVOptions{}, "bad.csv:2: row has 4 fields, want 3"},
		{"negative label", "a,label\n1,0\n2,-1\n", CSVOptions{}, `bad.csv:3: column 2 ("label"): label -1 out of range, want a class index >= 0`},
		{"label >= classes", "a,label\n1,0\n2,10\n", CSVOptions{Classes: 10}, "label 10 out of range, want a class index in [0, 10)"},
		{"bad target", "a,y\n1,abc\n", CSVOptions{Label: "y", Regression: true}, `bad.csv:2: column 2 ("y"): "abc" is not a number`},
		{"empty string label", "a,label\n1,cat\n2,\n", CSVOptions{}, "empty label"},
		{"bad quote", "a,label\n\"1,0\n", CSVOptions{}, "bad.csv:2"},
		{"wrong class count", "a,label\n1,cat\n2,dog\n", CSVOptions{Classes: 3}, "2 class names found, want 3"},
	}
	for _, c := range cases {
		_, err := ParseCSV(strings.NewReader(c.in), "bad.csv", c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestStandardizeUsesTrainOnly(t *testing.T) {
	train := &Dataset{Name: "tr", Features: 2, X: []float32{1, 10, 3, 10, 5, 10}}
	test := &Dataset{Name: "te", Features: 2, X: []float32{100, 0, 3, 20}}
	s, err := Standardize(train, test)
	if err != nil {
		t.Fatal(err)
	}
	// Train column 0: mean 3, population std sqrt(8/3); column 1 constant: std 1.
	sd := float32(math.Sqrt(8.0 / 3))
	if s.Mean[0] != 3 || s.Std[0] != sd || s.Mean[1] != 10 || s.Std[1] != 1 {
		t.Fatalf("stats %+v, want mean [3 10] std [%v 1]", s, sd)
	}
	if want := []float32{(100 - 3) / sd, -10, 0, 10}; !slices.Equal(test.X, want) {
		t.Errorf("test X = %v, want %v (train statistics)", test.X, want)
	}
	if train.X[2] != 0 || train.X[1] != 0 {
		t.Errorf("train X = %v", train.X)
	}
	if train.Stats == nil || test.Stats == nil || test.Stats.Mean[0] != 3 {
		t.Error("Stats not recorded on the datasets")
	}
	// Statistics survive a JSON round trip for checkpoint metadata.
	b, _ := json.Marshal(s)
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.Std, s.Std) {
		t.Errorf("JSON round trip: %s -> %+v, %v", b, back, err)
	}
	if err := s.Apply(test); err == nil {
		t.Error("standardising twice: no error")
	}
	if _, err := Standardize(&Dataset{Name: "e", Features: 1}); err == nil {
		t.Error("statistics of an empty set: no error")
	}
	bad := &Stats{Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}
	if err := bad.Apply(&Dataset{Features: 2, X: []float32{1, 2}}); err == nil {
		t.Error("3 statistics for 2 features: no error")
	}
	zero := &Stats{Mean: []float32{0}, Std: []float32{0}}
	if err := zero.Apply(&Dataset{Features: 1, X: []float32{1}}); err == nil {
		t.Error("std 0: no error")
	}
}

func TestLoadCSVSplitAndStandardize(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("f1,f2,cls\n")
	for i := 0; i < 50; i++ {
		c := "a"
		if i%2 == 1 {
			c = "b"
		}
		b.WriteString(strings.Join([]string{strconv.Itoa(i), strconv.Itoa(2 * i), c}, ",") + "\n")
	}
	p := writeFile(t, dir, "set.csv", []byte(b.String()))
	tr, te, err := Load(p, Options{Label: "cls", Standardize: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 40 || te.Len() != 10 || tr.Classes != 2 || !slices.Equal(tr.ClassNames, []string{"a", "b"}) {
		t.Fatalf("train %d test %d classes %d names %v", tr.Len(), te.Len(), tr.Classes, tr.ClassNames)
	}
	// Train statistics: the training mean of f1 is standardised to 0 on
	// train but, in general, not on test.
	var m float64
	for i := 0; i < tr.Len(); i++ {
		m += float64(tr.X[2*i])
	}
	if math.Abs(m/float64(tr.Len())) > 1e-5 {
		t.Errorf("train mean after standardising = %v, want 0", m/float64(tr.Len()))
	}
	if tr.Stats == nil || te.Stats == nil || !slices.Equal(tr.Stats.Mean, te.Stats.Mean) {
		t.Error("train and test should carry the same (train) statistics")
	}

	// A separate test file with the training mapping.
	tp := writeFile(t, dir, "test.csv", []byte("f1,f2,cls\n1,2,b\n"))
	tr, te, err = Load(p, Options{Label: "cls", TestFile: tp})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 50 || te.Len() != 1 || te.Labels[0] != 1 {
		t.Errorf("train %d test %d label %v", tr.Len(), te.Len(), te.Labels)
	}
	tp2 := writeFile(t, dir, "test2.csv", []byte("f1,cls\n1,b\n"))
	if _, _, err = Load(p, Options{Label: "cls", TestFile: tp2}); err == nil || !strings.Contains(err.Error(), "1 feature columns") {
		t.Errorf("feature count mismatch: %v", err)
	}
	// A missing label column names the file.
	if _, _, err = Load(p, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
		t.Errorf("missing label column: %v", err)
	}
	if _, _, err = Load(filepath.Join(dir, "absent.csv"), Options{}); err == nil || !strings.Contains(err.Error(), "absent.csv") {
		t.Errorf("absent file: %v", err)
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("a,label\n1,0\n2,1\n", false)
	f.Add("a,b,label\n1,2,cat\n3,4,dog\n", false)
	f.Add("x,label\n1.5,2.5\n", true)
	f.Add("label\n", false)
	f.Add("a,label\n\"1,0\n", false)
	f.Add("a,label\n1,-5\n", false)
	f.Fuzz(func(t *testing.T, in string, reg bool) {
		d, err := ParseCSV(strings.NewReader(in), "fuzz.csv", CSVOptions{Regression: reg})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseCSV returned an invalid dataset: %v", err)
		}
	})
}
