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
	// A number that is not an integer is not a class name: a float target
	// without Regression is an error naming the line and the value, not a
	// silent many-class problem.
	_, err = ParseCSV(strings.NewReader("a,label\n1,0.5\n2,1\n"), "f.csv", CSVOptions{})
	if want := `f.csv:2: column 2 ("label"): label "0.5" is not an integer, want a class index >= 0 (a float target needs Regression)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("non-integral label: err = %v, want %q", err, want)
	}
}

// TestParseCSVByteOrderMark: spreadsheet exports start with a UTF-8 BOM,
// which must not become part of the first column's name or, when that
// name is quoted, break the CSV syntax.
func TestParseCSVByteOrderMark(t *testing.T) {
	for _, in := range []string{
		"\ufeff\"a\",\"label\"\n1,0\n2,1\n",
		"\ufeffa,label\n1,0\n2,1\n",
		"\ufefflabel,a\n0,1\n1,2\n",
	} {
		d, err := ParseCSV(strings.NewReader(in), "bom.csv", CSVOptions{})
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if d.Features != 1 || d.Len() != 2 || !slices.Equal(d.Labels, []int32{0, 1}) {
			t.Errorf("%q: features %d len %d labels %v, want 1 2 [0 1]", in, d.Features, d.Len(), d.Labels)
		}
	}
	// Only a leading mark is skipped: one inside the text is data.
	_, err := ParseCSV(strings.NewReader("a,\ufefflabel\n1,0\n"), "bom.csv", CSVOptions{})
	if err == nil || !strings.Contains(err.Error(), "no label column") {
		t.Errorf("BOM inside the header: err = %v, want no label column", err)
	}
}

func TestParseCSVMultiColumnTargets(t *testing.T) {
	in := "y1,x1,y2,x2,y3\n0.5,1,-2,2,3\n1.5,3,4,4,-6\n"
	d, err := ParseCSV(strings.NewReader(in), "m.csv", CSVOptions{Label: "y1, y2,y3", Regression: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Outputs != 3 || d.Labels != nil || d.Features != 2 ||
		!slices.Equal(d.Y, []float32{0.5, -2, 3, 1.5, 4, -6}) || !slices.Equal(d.X, []float32{1, 2, 3, 4}) {
		t.Errorf("multi-output regression: outputs %d labels %v features %d Y %v X %v", d.Outputs, d.Labels, d.Features, d.Y, d.X)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	// Without Regression, several label columns are multi-label 0/1 targets.
	d, err = ParseCSV(strings.NewReader("a,b,c,x\n1,0,1.0,7\n0,0,0,8\n"), "ml.csv", CSVOptions{Label: "a,b,c"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Outputs != 3 || d.Labels != nil || !slices.Equal(d.Y, []float32{1, 0, 1, 0, 0, 0}) || !slices.Equal(d.X, []float32{7, 8}) {
		t.Errorf("multi-label: outputs %d labels %v Y %v X %v", d.Outputs, d.Labels, d.Y, d.X)
	}
	// A header name with a comma in it is matched whole before splitting.
	d, err = ParseCSV(strings.NewReader("\"y,z\",x\n1,2\n"), "q.csv", CSVOptions{Label: "y,z"})
	if err != nil || d.Labels == nil || d.Labels[0] != 1 || d.X[0] != 2 {
		t.Errorf("comma in a header name: %+v %v", d, err)
	}
}

// TestParseCSVInputsOnly: prediction inputs are read by the same rules,
// without a label column (LabelOptional) or without a header (NoHeader).
func TestParseCSVInputsOnly(t *testing.T) {
	d, err := ParseCSV(strings.NewReader("\ufeffa,b\n1,2\n3,4\n"), "in.csv", CSVOptions{LabelOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Features != 2 || d.Len() != 2 || d.Labels != nil || d.Y != nil || !slices.Equal(d.X, []float32{1, 2, 3, 4}) {
		t.Errorf("LabelOptional without labels: features %d len %d labels %v Y %v X %v", d.Features, d.Len(), d.Labels, d.Y, d.X)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	// With the label column present it is read (and checked) as usual.
	d, err = ParseCSV(strings.NewReader("a,label\n1,2\n"), "in.csv", CSVOptions{LabelOptional: true})
	if err != nil || d.Features != 1 || !slices.Equal(d.Labels, []int32{2}) {
		t.Errorf("LabelOptional with labels: %+v %v", d, err)
	}
	for _, c := range []struct {
		in   string
		opt  CSVOptions
		want string
	}{
		{"a,b\n1,NaN\n", CSVOptions{LabelOptional: true}, `in.csv:2: column 2 ("b"): "NaN" is not a finite number`},
		{"a,label\n1,0.5\n", CSVOptions{LabelOptional: true}, `label "0.5" is not an integer`},
		{"a,y1\n1,0\n", CSVOptions{Label: "y1,y2", LabelOptional: true}, `no label column "y2" (of "y1,y2")`},
		{"1,2\n3,x\n", CSVOptions{NoHeader: true}, `in.csv:2: column 2: "x" is not a number`},
		{"1,2\n3\n", CSVOptions{NoHeader: true}, "in.csv:2: row has 1 fields, want 2"},
		{"1,2\n", CSVOptions{NoHeader: true, Label: "y"}, "with NoHeader"},
		{"", CSVOptions{NoHeader: true}, "in.csv: empty file, want rows of numbers"},
	} {
		if _, err := ParseCSV(strings.NewReader(c.in), "in.csv", c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %+v: err = %v, want %q", c.in, c.opt, err, c.want)
		}
	}
	d, err = ParseCSV(strings.NewReader("\ufeff1,2,3\n4,5,6\n"), "in.csv", CSVOptions{NoHeader: true})
	if err != nil || d.Features != 3 || d.Len() != 2 || d.Labels != nil || !slices.Equal(d.X, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("NoHeader: %+v %v", d, err)
	}
}

// TestParseCSVQuotesShortly: an error quotes a short prefix of a huge cell
// and says its length, and lists only the first names of a long header.
func TestParseCSVQuotesShortly(t *testing.T) {
	huge := strings.Repeat("x", 1_000_000)
	_, err := ParseCSV(strings.NewReader("a,label\n"+huge+",0\n"), "big.csv", CSVOptions{})
	if err == nil || !strings.Contains(err.Error(), `big.csv:2: column 1 ("a"): "xxxx`) || !strings.Contains(err.Error(), "(1000000 bytes) is not a number") || len(err.Error()) > 200 {
		t.Errorf("huge cell: error of %d bytes: %.300v", len(err.Error()), err)
	}
	_, err = ParseCSV(strings.NewReader("a,label\n1,"+huge+"\n"), "big.csv", CSVOptions{Classes: 3, ClassNames: []string{"p", "q", "r"}})
	if err == nil || !strings.Contains(err.Error(), "(1000000 bytes) is not one of the 3 known classes") || len(err.Error()) > 200 {
		t.Errorf("huge label: error of %d bytes: %.300v", len(err.Error()), err)
	}
	cols := make([]string, 1000)
	for i := range cols {
		cols[i] = "c" + strconv.Itoa(i)
	}
	_, err = ParseCSV(strings.NewReader(strings.Join(cols, ",")+"\n"), "wide.csv", CSVOptions{})
	if err == nil || !strings.Contains(err.Error(), `["c0" "c1" "c2" "c3" "c4" "c5" "c6" "c7" … and 992 more]`) || len(err.Error()) > 200 {
		t.Errorf("wide header: %v", err)
	}
	// A multi-byte rune is not cut in half.
	if q := quote(strings.Repeat("é", 100)); !strings.HasPrefix(q, `"`+strings.Repeat("é", 16)+`"…`) {
		t.Errorf("quote cut a rune: %s", q)
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
		{"nan", "a,label\nNaN,0\n", CSVOptions{}, `bad.csv:2: column 1 ("a"): "NaN" is not a finite number`},
		{"inf", "a,b,label\n1,2,0\n1,-Inf,1\n", CSVOptions{}, `bad.csv:3: column 2 ("b"): "-Inf" is not a finite number`},
		{"infinity", "a,label\n+infinity,0\n", CSVOptions{}, `bad.csv:2: column 1 ("a"): "+infinity" is not a finite number`},
		{"nan target", "a,y\n1,2\n1,nan\n", CSVOptions{Label: "y", Regression: true}, `bad.csv:3: column 2 ("y"): "nan" is not a finite number`},
		{"inf target", "y,a\nInf,1\n", CSVOptions{Label: "y", Regression: true}, `bad.csv:2: column 1 ("y"): "Inf" is not a finite number`},
		{"nan label", "a,label\n1,0\n2,NaN\n", CSVOptions{}, `bad.csv:3: column 2 ("label"): label "NaN" is not an integer`},
		{"inf label", "a,label\n1,Inf\n", CSVOptions{Classes: 3}, `bad.csv:2: column 2 ("label"): label "Inf" is not an integer, want a class index in [0, 3)`},
		{"float label", "a,label\n1,0\n2,2.5\n", CSVOptions{Classes: 3}, `bad.csv:3: column 2 ("label"): label "2.5" is not an integer, want a class index in [0, 3)`},
		{"huge label", "a,label\n1,1e400\n", CSVOptions{}, `bad.csv:2: column 2 ("label"): label "1e400" out of range`},
		{"big label", "a,label\n1,3000000000\n", CSVOptions{}, `label "3000000000" out of range`},
		{"name among numbers", "a,label\n1,0\n2,NA\n", CSVOptions{}, `bad.csv:3: column 2 ("label"): label "NA", but line 2 has "0": the label column mixes numbers and names`},
		{"number among names", "a,label\n1,cat\n2,7\n", CSVOptions{}, `bad.csv:3: column 2 ("label"): label "7", but line 2 has "cat"`},
		{"missing one of several labels", "a,y1,y2\n1,2,3\n", CSVOptions{Label: "y1,y3", Regression: true}, `bad.csv:1: no label column "y3" (of "y1,y3")`},
		{"repeated label name", "a,y1,y2\n1,2,3\n", CSVOptions{Label: "y1,y1"}, "empty or repeated name"},
		{"multi-label not 0/1", "a,y1,y2\n1,0,1\n1,0,2\n", CSVOptions{Label: "y1,y2"}, `bad.csv:3: column 3 ("y2"): "2" is not a 0/1 target`},
		{"multi-label with classes", "a,y1,y2\n1,0,1\n", CSVOptions{Label: "y1,y2", Classes: 2}, "apply to a single label column"},
		{"only label columns", "y1,y2\n1,0\n", CSVOptions{Label: "y1,y2"}, "at least one feature column"},
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
	// NoTest holds nothing out: all rows train, the test set is empty but
	// has the same columns and classes (and the training statistics).
	tr, te, err = Load(p, Options{Label: "cls", NoTest: true, Standardize: true})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 50 || te.Len() != 0 || te.Features != 2 || te.Classes != 2 || !slices.Equal(te.ClassNames, tr.ClassNames) || te.Stats == nil {
		t.Errorf("NoTest: train %d test %d features %d classes %d names %v stats %v", tr.Len(), te.Len(), te.Features, te.Classes, te.ClassNames, te.Stats)
	}
	if err := te.Validate(); err != nil {
		t.Errorf("NoTest: empty test set: %v", err)
	}
	for _, bad := range []Options{{Label: "cls", NoTest: true, TestFrac: 0.3}, {Label: "cls", NoTest: true, TestFile: tp}} {
		if _, _, err := Load(p, bad); err == nil || !strings.Contains(err.Error(), "choose one") {
			t.Errorf("NoTest with %+v: %v", bad, err)
		}
	}
	if _, _, err := Load("Digits", Options{NoTest: true}); err == nil || !strings.Contains(err.Error(), "digits has a fixed test set") {
		t.Errorf("NoTest on digits: %v", err)
	}
	// A missing label column names the file.
	if _, _, err = Load(p, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
		t.Errorf("missing label column: %v", err)
	}
	if _, _, err = Load(filepath.Join(dir, "absent.csv"), Options{}); err == nil || !strings.Contains(err.Error(), "absent.csv") {
		t.Errorf("absent file: %v", err)
	}
}

// TestParseCSVShape reads pixel columns as images: Shape [1, 2, 2] for four
// feature columns gives Dense [N, 1, 2, 2]; a shape of another size, or
// with a zero, is refused naming the file and the column count.
func TestParseCSVShape(t *testing.T) {
	in := "p0,p1,p2,p3,label\n1,2,3,4,0\n5,6,7,8,1\n"
	d, err := ParseCSV(strings.NewReader(in), "img.csv", CSVOptions{Shape: []int{1, 2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{1, 2, 2}) {
		t.Fatalf("Shape %v, expected [1 2 2]", d.Shape)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	if got := []int(d.Dense().Shape()); !slices.Equal(got, []int{2, 1, 2, 2}) {
		t.Errorf("Dense shape %v, expected [2 1 2 2]", got)
	}
	for _, bad := range [][]int{{1, 2, 3}, {0, 2, 2}, {4, 1, 0}, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}} {
		_, err := ParseCSV(strings.NewReader(in), "img.csv", CSVOptions{Shape: bad})
		if err == nil || !strings.Contains(err.Error(), "img.csv") || !strings.Contains(err.Error(), "the 4 feature columns") {
			t.Errorf("Shape %v: error %v, expected one naming img.csv and the 4 feature columns", bad, err)
		}
	}
}
