package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTwoClass writes a CSV of two noisy classes split by x1 + x2 > 0.
func writeTwoClass(t *testing.T, path string, n int, phase float64) {
	t.Helper()
	var b strings.Builder
	b.WriteString("x1,x2,label\n")
	for i := 0; i < n; i++ {
		a, c := math.Sin(float64(i)*1.7+phase), math.Cos(float64(i)*0.9+phase)
		l := 0
		if a+c+0.3*math.Sin(float64(i)*5.1) > 0 {
			l = 1
		}
		fmt.Fprintf(&b, "%.6f,%.6f,%d\n", a, c, l)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPredictMSEMatchesEval: a one-output model trained with mse on two
// classes gets the same classes from predict as eval scores (predict used
// to say class 0 for every row while eval thresholded at 0.5).
func TestPredictMSEMatchesEval(t *testing.T) {
	dir := t.TempDir()
	tr, te := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeTwoClass(t, tr, 300, 0)
	writeTwoClass(t, te, 80, 0.5)
	ck := filepath.Join(dir, "m.safetensors")
	mustKiln(t, "train", "--data", tr, "--test-file", te, "--loss", "mse", "--model", "2-16-tanh-1", "--epochs", "20", "--lr", "0.01", "--out", ck, "--progress", "none")
	var ev struct {
		Confusion [][]int `json:"confusion"`
	}
	if err := json.Unmarshal([]byte(mustKiln(t, "eval", "--checkpoint", ck, "--json")), &ev); err != nil {
		t.Fatal(err)
	}
	labels := readLabels(t, te)
	conf := [][]int{{0, 0}, {0, 0}}
	lines := strings.Split(strings.TrimSpace(mustKiln(t, "predict", "--checkpoint", ck, "--input", te, "--json")), "\n")
	if len(lines) != len(labels) {
		t.Fatalf("predict: %d rows, want %d", len(lines), len(labels))
	}
	for i, line := range lines {
		var p prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil || p.Class == nil {
			t.Fatalf("predict line %q: %v", line, err)
		}
		conf[labels[i]][*p.Class]++
	}
	if fmt.Sprint(conf) != fmt.Sprint(ev.Confusion) || conf[1][1] == 0 {
		t.Fatalf("predict's confusion %v, eval's %v: want the same, with class 1 predicted", conf, ev.Confusion)
	}
}

func readLabels(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		f := strings.Split(line, ",")
		var l int
		fmt.Sscan(f[len(f)-1], &l)
		out = append(out, l)
	}
	return out
}

// TestPredictUsesTrainingReader: predict reads its CSV with the training
// reader: NaN and Inf are errors naming the line, a byte-order mark is
// stripped, a headerless file is read as data.
func TestPredictUsesTrainingReader(t *testing.T) {
	dir := t.TempDir()
	tr := filepath.Join(dir, "train.csv")
	writeTwoClass(t, tr, 200, 0)
	ck := filepath.Join(dir, "m.safetensors")
	mustKiln(t, "train", "--data", tr, "--model", "2-8-tanh-2", "--epochs", "3", "--out", ck, "--progress", "none")
	for _, bad := range []string{"x1,x2\n0.5,NaN\n", "x1,x2\n0.5,0.1\nInf,0\n"} {
		p := filepath.Join(dir, "bad.csv")
		os.WriteFile(p, []byte(bad), 0o644)
		if _, errOut, code := kiln(t, "predict", "--checkpoint", ck, "--input", p); code == 0 || !strings.Contains(errOut, "not a finite number") {
			t.Errorf("predict on %q: exit %d, %s; want the reader's non-finite error", bad, code, errOut)
		}
	}
	bom := filepath.Join(dir, "bom.csv")
	os.WriteFile(bom, []byte("\xef\xbb\xbfx1,x2\n0.5,0.1\n-1,-1\n"), 0o644)
	if out := mustKiln(t, "predict", "--checkpoint", ck, "--input", bom); strings.Count(out, "\n") != 3 {
		t.Errorf("predict with a byte-order mark:\n%s", out)
	}
	plain := filepath.Join(dir, "plain.csv")
	os.WriteFile(plain, []byte("0.5,0.1\n-1,-1\n"), 0o644)
	if out := mustKiln(t, "predict", "--checkpoint", ck, "--input", plain); strings.Count(out, "\n") != 3 {
		t.Errorf("predict without a header:\n%s", out)
	}
}

// TestEvalSeesTrainingSplit: eval without --seed scores the training run's
// test split (the seed, sample count and noise come from the checkpoint),
// so its loss equals the one train reported; the training header names the
// file read.
func TestEvalSeesTrainingSplit(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "two.csv")
	writeTwoClass(t, csv, 300, 0)
	ck := filepath.Join(dir, "c.safetensors")
	out := mustKiln(t, "train", "--data", csv, "--seed", "7", "--test-split", "0.3", "--model", "2-8-tanh-2", "--epochs", "3", "--out", ck, "--progress", "none")
	if !strings.Contains(out, "data: two from "+csv+":") {
		t.Errorf("the training header does not name %s:\n%s", csv, out)
	}
	for _, line := range strings.Split(out, "\n")[:3] {
		if len(line) > 80 && !strings.Contains(line, csv) {
			t.Errorf("header line of %d columns: %q", len(line), line)
		}
	}
	ev := mustKiln(t, "eval", "--checkpoint", ck)
	if a, b := number(t, out, "test loss:"), number(t, ev, "loss (cross_entropy):"); a != b || !strings.Contains(ev, "(test split, 90 samples)") {
		t.Errorf("eval without --seed: loss %g on\n%s\ntrain's test loss %g", b, ev, a)
	}
	ck2 := filepath.Join(dir, "m.safetensors")
	out = mustKiln(t, "train", "--data", "moons", "--samples", "400", "--noise", "0.3", "--seed", "4", "--model", "2-8-tanh-2", "--epochs", "3", "--out", ck2, "--progress", "none")
	ev = mustKiln(t, "eval", "--checkpoint", ck2)
	if a, b := number(t, out, "test loss:"), number(t, ev, "loss (cross_entropy):"); a != b || !strings.Contains(ev, "100 samples") {
		t.Errorf("eval of moons without --seed/--samples/--noise: loss %g on\n%s\ntrain's %g", b, ev, a)
	}
	// --test-split 0 trains on every row and says there is no test set.
	out = mustKiln(t, "train", "--data", csv, "--test-split", "0", "--model", "2-8-tanh-2", "--epochs", "1", "--progress", "none")
	if !strings.Contains(out, ": 300 train, 0 val, 0 test samples") {
		t.Errorf("--test-split 0:\n%s", out)
	}
}

// TestEvalMetrics: eval prints RMSE, MAE and R² for regression and macro
// and per-class scores (top-5 for ten classes) for classification.
func TestEvalMetrics(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := 0; i < 200; i++ {
		x := float64(i)/100 - 1
		fmt.Fprintf(&b, "%g,%g\n", x, 3*x+0.1*math.Sin(float64(i)))
	}
	reg := filepath.Join(dir, "reg.csv")
	os.WriteFile(reg, []byte(b.String()), 0o644)
	ck := filepath.Join(dir, "r.safetensors")
	mustKiln(t, "train", "--data", reg, "--label", "y", "--regression", "--model", "1-1", "--epochs", "40", "--lr", "0.05", "--out", ck, "--progress", "none")
	ev := mustKiln(t, "eval", "--checkpoint", ck)
	if rmse, r2 := number(t, ev, "rmse:"), number(t, ev, "r2:"); !(rmse < 0.5) || !(r2 > 0.9) || math.Abs(rmse*rmse-number(t, ev, "loss (mse):")) > 0.01 {
		t.Errorf("regression eval:\n%s", ev)
	}
	ck2 := filepath.Join(dir, "d.safetensors")
	mustKiln(t, "train", "--epochs", "2", "--out", ck2, "--progress", "none")
	ev = mustKiln(t, "eval", "--checkpoint", ck2)
	for _, want := range []string{"top-5 accuracy:", "macro precision:", "support"} {
		if !strings.Contains(ev, want) {
			t.Errorf("digits eval lacks %q:\n%s", want, ev)
		}
	}
}
