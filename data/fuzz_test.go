package data

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for every reader of this package. Their seed corpora are
// committed under testdata/fuzz/<target>/ (go test runs every file there as
// a test case); they are written from fuzzCorpora below by
//
//	go test ./data -run TestFuzzCorpora -update-fuzz-corpora
//
// and TestFuzzCorpora fails when a committed file is missing or differs.
// To fuzz: go test ./data -run '^$' -fuzz FuzzParseCSV -fuzztime 1m
// (inputs that fail are added to the same folders; commit them).

var updateFuzzCorpora = flag.Bool("update-fuzz-corpora", false, "rewrite testdata/fuzz from fuzzCorpora")

// corpusEntry is one seed: a file name and the target's arguments.
type corpusEntry struct {
	name string
	args []any
}

func idxSeed(t testing.TB, dims []int, payload []uint8) []byte { return idxBytes(t, dims, payload) }

// fuzzCorpora returns the seed corpus of each fuzz target: valid files
// and each kind of malformed one the readers must reject.
func fuzzCorpora(t testing.TB) map[string][]corpusEntry {
	good := idxSeed(t, []int{2, 2}, []uint8{1, 2, 3, 4})
	im, lb := fixtureImages(3)
	images := idxSeed(t, []int{3, 2, 3}, im)
	labels := idxSeed(t, []int{3}, lb)
	bom := "\ufeff"
	return map[string][]corpusEntry{
		"FuzzReadIDX": {
			{"valid", []any{good}},
			{"valid-gzip", []any{gz(t, good)}},
			{"one-pixel", []any{[]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7}}},
			{"huge-claim", []any{[]byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff}}},
			{"zero-count", []any{[]byte{0, 0, 8, 1, 0, 0, 0, 0}}},
			{"float-type", []any{append([]byte{0, 0, 0x0d}, good[3:]...)}},
			{"truncated", []any{good[:len(good)-1]}},
			{"trailing", []any{append(append([]byte{}, good...), 9)}},
			{"gzip-magic-only", []any{[]byte{0x1f, 0x8b}}},
		},
		"FuzzLoadIDXPair": {
			{"valid", []any{images, labels}},
			{"valid-gzip", []any{gz(t, images), gz(t, labels)}},
			{"swapped", []any{labels, images}},
			{"count-mismatch", []any{images, idxSeed(t, []int{2}, lb[:2])}},
			{"labels-2d", []any{images, idxSeed(t, []int{3, 1}, lb)}},
			{"images-2d", []any{idxSeed(t, []int{3, 6}, im), labels}},
			{"label-out-of-range", []any{images, idxSeed(t, []int{3}, []uint8{0, 1, 10})}},
			{"zero-count", []any{[]byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3}, []byte{0, 0, 8, 1, 0, 0, 0, 0}}},
		},
		"FuzzParseCSV": {
			{"int-labels", []any{"a,label\n1,0\n2,1\n", "", false, 0, false, false}},
			{"names", []any{"a,b,label\n1,2,cat\n3,4,dog\n", "", false, 0, false, false}},
			{"regression", []any{"x,y\n1.5,2.5\n", "y", true, 0, false, false}},
			{"multi-output", []any{"y1,x,y2\n1,2,3\n4,5,6\n", "y1,y2", true, 0, false, false}},
			{"multi-label", []any{"a,b,x\n1,0,2\n0,1,3\n", "a,b", false, 0, false, false}},
			{"classes", []any{"a,label\n1,0\n2,4\n", "", false, 5, false, false}},
			{"bom-quoted", []any{bom + "\"a\",\"label\"\n1,0\n", "", false, 0, false, false}},
			{"label-only", []any{"label\n", "", false, 0, false, false}},
			{"bad-quote", []any{"a,label\n\"1,0\n", "", false, 0, false, false}},
			{"negative", []any{"a,label\n1,-5\n", "", false, 0, false, false}},
			{"nan-inf", []any{"a,label\nNaN,0\nInf,1\n", "", false, 0, false, false}},
			{"float-label", []any{"a,label\n1,0.5\n", "", false, 0, false, false}},
			{"mixed-labels", []any{"a,label\n1,0\n2,NA\n", "", false, 0, false, false}},
			{"huge-label", []any{"a,label\n1,1e400\n", "", false, 0, false, false}},
			{"label-optional", []any{"a,b\n1,2\n", "", false, 0, true, false}},
			{"no-header", []any{bom + "1,2\n3,4\n", "", false, 0, false, true}},
			{"no-header-short-row", []any{"1,2\n3\n", "", false, 0, false, true}},
		},
		"FuzzLoadCSV": {
			{"split", []any{[]byte("a,label\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n9,0\n10,1\n"), []byte{}, false}},
			{"test-file", []any{[]byte("a,label\n1,x\n2,y\n"), []byte("a,label\n3,y\n"), false}},
			{"test-file-unknown-class", []any{[]byte("a,label\n1,x\n2,y\n"), []byte("a,label\n3,z\n"), false}},
			{"test-file-int-out-of-range", []any{[]byte("a,label\n1,0\n2,1\n"), []byte("a,label\n3,2\n"), false}},
			{"test-file-columns", []any{[]byte("a,b,label\n1,2,0\n2,3,1\n"), []byte("a,label\n3,1\n"), false}},
			{"gzip", []any{gz(t, []byte("a,label\n1,0\n2,1\n3,0\n4,1\n5,0\n")), []byte{}, true}},
			{"gzip-bom", []any{gz(t, []byte(bom+"a,label\n1,0\n2,1\n3,0\n4,1\n5,0\n")), gz(t, []byte(bom+"a,label\n1,0\n")), true}},
			{"not-gzip", []any{[]byte("a,label\n1,0\n"), []byte{}, true}},
		},
	}
}

// marshalCorpusFile writes a seed in the format of go test's corpus files.
func marshalCorpusFile(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpus argument of type %T", a))
		}
	}
	return b.Bytes()
}

// TestFuzzCorpora checks that the committed seed corpora are those of
// fuzzCorpora (each file present and identical), so that deleting or
// editing testdata/fuzz cannot silently weaken the fuzz targets.
func TestFuzzCorpora(t *testing.T) {
	for target, entries := range fuzzCorpora(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateFuzzCorpora {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.name)
			want := marshalCorpusFile(e.args)
			if *updateFuzzCorpora {
				if err := os.WriteFile(p, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("seed corpus file missing (regenerate with -update-fuzz-corpora): %v", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from fuzzCorpora (regenerate with -update-fuzz-corpora)", p)
			}
		}
	}
}

// FuzzReadIDX: no input panics or allocates beyond the input's size; an
// accepted file has exactly as many bytes as its dimensions say.
func FuzzReadIDX(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ReadIDX(bytes.NewReader(b), "fuzz.idx")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.idx") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		n := 1
		for _, d := range x.Dims {
			n *= d
		}
		if n != len(x.Data) || n == 0 {
			t.Fatalf("dims %v but %d bytes", x.Dims, len(x.Data))
		}
	})
}

// FuzzLoadIDXPair: the images/labels pair reader either fails naming one
// of the two files, or returns a valid dataset of the images' count with
// pixels in [0, 1].
func FuzzLoadIDXPair(f *testing.F) {
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		dir := t.TempDir()
		ip, lp := filepath.Join(dir, "images-idx3"), filepath.Join(dir, "labels-idx1")
		if err := os.WriteFile(ip, images, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lp, labels, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := LoadIDXPair("fuzz", ip, lp, 10)
		if err != nil {
			if !strings.Contains(err.Error(), ip) && !strings.Contains(err.Error(), lp) {
				t.Fatalf("error names neither file: %v", err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("invalid dataset: %v", err)
		}
		if len(d.Shape) != 3 || d.Shape[0] != 1 || d.Len() != len(d.Labels) || d.Len() == 0 {
			t.Fatalf("shape %v, %d samples, %d labels", d.Shape, d.Len(), len(d.Labels))
		}
		for _, v := range d.X {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("pixel %v outside [0, 1]", v)
			}
		}
	})
}

// FuzzParseCSV: every error names the file; an accepted file gives a
// dataset that passes Validate, with finite features and targets of the
// kind the options ask for.
func FuzzParseCSV(f *testing.F) {
	f.Fuzz(func(t *testing.T, in, label string, reg bool, classes int, optional, noHeader bool) {
		if classes < 0 || classes > 1000 {
			return
		}
		opt := CSVOptions{Label: label, Regression: reg, Classes: classes, LabelOptional: optional, NoHeader: noHeader}
		d, err := ParseCSV(strings.NewReader(in), "fuzz.csv", opt)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			if len(err.Error()) > 2000 {
				t.Fatalf("error of %d bytes: it should quote a bad value by a prefix", len(err.Error()))
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseCSV returned an invalid dataset: %v", err)
		}
		checkFinite(t, d)
		if d.Labels != nil && d.Y != nil || d.Labels == nil && d.Y == nil && !optional && !noHeader {
			t.Fatalf("want exactly one of Labels and Y, have labels %v Y %v", d.Labels != nil, d.Y != nil)
		}
		if noHeader && (d.Labels != nil || d.Y != nil) {
			t.Fatal("targets read from a file without a header")
		}
		if classes > 0 && d.Labels != nil && d.Classes != classes {
			t.Fatalf("Classes = %d, asked for %d", d.Classes, classes)
		}
		if d.Y != nil && !reg {
			for _, v := range d.Y {
				if v != 0 && v != 1 {
					t.Fatalf("multi-label target %v, want 0 or 1", v)
				}
			}
		}
	})
}

// FuzzLoadCSV: Load on a CSV file (gzipped or not) with an optional test
// file (none when test is empty) either fails naming one of the files, or returns train and test sets
// that agree on features and classes.
func FuzzLoadCSV(f *testing.F) {
	f.Fuzz(func(t *testing.T, train, test []byte, gzipped bool) {
		dir := t.TempDir()
		ext := ".csv"
		if gzipped {
			ext = ".csv.gz"
		}
		tp := filepath.Join(dir, "train"+ext)
		if err := os.WriteFile(tp, train, 0o644); err != nil {
			t.Fatal(err)
		}
		opt := Options{Seed: 1}
		if len(test) > 0 { // empty: no test file (a corpus file cannot tell nil from empty)
			opt.TestFile = filepath.Join(dir, "test"+ext)
			if err := os.WriteFile(opt.TestFile, test, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tr, te, err := Load(tp, opt)
		if err != nil {
			if !strings.Contains(err.Error(), tp) && (opt.TestFile == "" || !strings.Contains(err.Error(), opt.TestFile)) {
				t.Fatalf("error names neither file: %v", err)
			}
			return
		}
		for _, d := range []*Dataset{tr, te} {
			if err := d.Validate(); err != nil {
				t.Fatalf("invalid dataset: %v", err)
			}
			checkFinite(t, d)
		}
		if tr.Features != te.Features || tr.Classes != te.Classes || tr.Len() == 0 || te.Len() == 0 {
			t.Fatalf("train %d×%d (%d classes), test %d×%d (%d classes)", tr.Len(), tr.Features, tr.Classes, te.Len(), te.Features, te.Classes)
		}
	})
}

func checkFinite(t *testing.T, d *Dataset) {
	t.Helper()
	for _, vs := range [][]float32{d.X, d.Y} {
		for _, v := range vs {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("non-finite value %v in dataset", v)
			}
		}
	}
}
