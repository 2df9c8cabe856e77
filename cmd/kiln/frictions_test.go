package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kilnml/kiln/train"
)

// TestSweep: a 2×2 grid and a runs file train on the same split, the
// table is sorted by the metric, and CSV, JSON and the plot are written.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	csvPath, jsonPath, png := filepath.Join(dir, "s.csv"), filepath.Join(dir, "s.json"), filepath.Join(dir, "s.png")
	out := mustKiln(t, "sweep", "--data", "moons", "--samples", "200", "--epochs", "3", "--model", "2-8-tanh-2,2-8-relu-2",
		"--lr", "0.01,0.001", "--parallel", "2", "--sort", "val_loss", "--csv", csvPath, "--json", jsonPath, "--plot", png)
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 5 {
		t.Fatalf("sweep CSV: %v, %d rows; want a header and 4 runs\n%s", err, len(recs), out)
	}
	prev := -1.0
	for _, r := range recs[1:] {
		var v float64
		if _, err := fmt.Sscan(r[1], &v); err != nil || v < prev {
			t.Fatalf("CSV not sorted by val_loss ascending: %v", recs)
		}
		prev = v
	}
	var js []map[string]any
	b, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(b, &js); err != nil || len(js) != 4 || len(js[0]["val_loss_curve"].([]any)) != 3 {
		t.Fatalf("sweep JSON: %v\n%s", err, b)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("sweep plot: %v", err)
	}
	if !strings.Contains(out, "lr=0.001 model=2-8-relu-2") {
		t.Errorf("table lacks a run:\n%s", out)
	}

	// A runs file: the same configuration twice gets the same figures (same
	// seed, same split), a different one others.
	runs := filepath.Join(dir, "runs.txt")
	os.WriteFile(runs, []byte("# two runs\n--lr 0.01\n--lr=0.01\n--lr 0.05 --batch-size 8\n"), 0o644)
	csv2 := filepath.Join(dir, "r.csv")
	mustKiln(t, "sweep", "--data", "moons", "--samples", "200", "--epochs", "2", "--model", "2-8-tanh-2", "--runs", runs, "--csv", csv2, "--sort", "time")
	b, _ = os.ReadFile(csv2)
	got := map[string]string{}
	for _, r := range mustCSV(t, b)[1:] {
		got[r[0]] = r[1]
	}
	if len(got) != 2 || got["lr=0.01"] == "" || got["lr=0.05 batch-size=8"] == got["lr=0.01"] {
		t.Fatalf("runs file results: %v", got)
	}
	if _, errOut, code := kiln(t, "sweep", "--epochs", "2"); code == 0 || !strings.Contains(errOut, "nothing to sweep") {
		t.Errorf("sweep without lists: exit %d, %s", code, errOut)
	}
	if _, errOut, code := kiln(t, "sweep", "--lr", "0.1,-1"); code == 0 || !strings.Contains(errOut, "--lr") {
		t.Errorf("sweep with a bad value: exit %d, %s", code, errOut)
	}
}

func mustCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestCV: K folds of the training set, per-fold lines and mean ± std that
// agree with the folds.
func TestCV(t *testing.T) {
	out := mustKiln(t, "cv", "--data", "moons", "--samples", "200", "--folds", "4", "--epochs", "3", "--model", "2-8-tanh-2", "--lr", "0.01", "--json")
	var v struct {
		Folds []struct {
			Loss     float64  `json:"val_loss"`
			Accuracy *float64 `json:"val_accuracy"`
			Val      int      `json:"val_samples"`
		} `json:"folds"`
		MeanLoss float64 `json:"mean_loss"`
		StdLoss  float64 `json:"std_loss"`
		MeanAcc  float64 `json:"mean_accuracy"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Folds) != 4 {
		t.Fatalf("cv --json: %v\n%s", err, out)
	}
	sum, n := 0.0, 0
	for _, f := range v.Folds {
		sum += f.Loss
		n += f.Val
		if f.Accuracy == nil {
			t.Fatalf("fold without accuracy: %s", out)
		}
	}
	if n != 200 || math.Abs(sum/4-v.MeanLoss) > 1e-9 || !(v.StdLoss >= 0) || !(v.MeanAcc > 0.5) {
		t.Fatalf("cv: %d validation samples (want 200), mean %g vs %g from the folds\n%s", n, v.MeanLoss, sum/4, out)
	}
	text := mustKiln(t, "cv", "--data", "moons", "--samples", "200", "--folds", "3", "--epochs", "1")
	if !regexp.MustCompile(`val accuracy: 0\.\d{4} ± 0\.\d{4}`).MatchString(text) {
		t.Errorf("cv text output:\n%s", text)
	}
	if _, errOut, code := kiln(t, "cv", "--folds", "1"); code == 0 || !strings.Contains(errOut, "--folds") {
		t.Errorf("cv --folds 1: exit %d, %s", code, errOut)
	}
}

// TestFlagSuggestions: a mistyped flag gets the nearest one; bench takes
// --batch-size like train.
func TestFlagSuggestions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--bacth-size", "3"}, "did you mean --batch-size?"},
		{[]string{"train", "--epoch", "3"}, "did you mean --epochs?"},
		{[]string{"eval", "--chekpoint", "x"}, "did you mean --checkpoint?"},
		{[]string{"bench", "--batchsize", "8"}, "did you mean --batch-size?"},
	} {
		_, errOut, code := kiln(t, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("kiln %v: exit %d, %q; want %q", c.args, code, errOut, c.want)
		}
	}
	if _, errOut, _ := kiln(t, "train", "--zzzzqqq"); strings.Contains(errOut, "did you mean") {
		t.Errorf("a flag like no other got a suggestion: %s", errOut)
	}
}

// TestPlotPanels: without a validation set only the loss panel is drawn;
// with one, the accuracy panel too; the title names the data; the y axis
// leaves room above the curves for the legend.
func TestPlotPanels(t *testing.T) {
	hist := []train.EpochMetrics{{Epoch: 0, TrainLoss: 1}, {Epoch: 1, TrainLoss: 0.5}}
	plots, err := historyPlots("2-8-2 on moons", hist)
	if err != nil || len(plots) != 1 {
		t.Fatalf("no validation: %d panels (%v), want 1", len(plots), err)
	}
	if plots[0].Title.Text != "2-8-2 on moons" || !(plots[0].Y.Max >= 1+0.1*0.5) {
		t.Errorf("title %q, y max %g: want the dataset named and headroom of a tenth of the span above 1", plots[0].Title.Text, plots[0].Y.Max)
	}
	hist[0].Val = &train.Metrics{Loss: 1.2, Classes: 2, Accuracy: 0.6}
	hist[1].Val = &train.Metrics{Loss: 0.7, Classes: 2, Accuracy: 0.9}
	if plots, _ = historyPlots("x", hist); len(plots) != 2 || !(plots[1].Y.Max >= 0.9+0.1*0.3) {
		t.Errorf("with validation accuracy: %d panels, want 2 with headroom", len(plots))
	}
	out := mustKiln(t, "train", "--data", "moons", "--samples", "100", "--epochs", "2", "--plot", filepath.Join(t.TempDir(), "p.png"))
	if !strings.Contains(out, "plot:") {
		t.Errorf("train --plot:\n%s", out)
	}
}

// TestProgressBar: the bar shows the running mean of the epoch's loss (not
// the last batch's) and every line of it fits in 80 columns.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, true, 20, 60000, nil)
	p.OnEpochStart(9, 0.001)
	p.OnBatch(train.BatchInfo{Rows: 30000, Loss: 1})
	p.OnBatch(train.BatchInfo{Rows: 10000, Loss: math.NaN()})
	p.OnBatch(train.BatchInfo{Rows: 10000, Loss: 3})
	if got := p.describe(); got != "epoch 10/20 loss 1.5000" {
		t.Errorf("description %q, want the running mean (30000·1 + 10000·3) / 40000 = 1.5", got)
	}
	_ = p.cur.Add(10000)
	_ = p.cur.RenderBlank()
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")
	for _, line := range strings.FieldsFunc(ansi.ReplaceAllString(b.String(), ""), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if n := utf8.RuneCountInString(strings.TrimRight(line, " ")); n > 80 {
			t.Errorf("bar line of %d columns: %q", n, line)
		}
	}
}

// TestLossAndTargetChecks: bce on a model without a final sigmoid is an
// error saying so; integer labels with nearly a class per sample warn
// that --regression may be meant.
func TestLossAndTargetChecks(t *testing.T) {
	_, errOut, code := kiln(t, "train", "--data", "moons", "--samples", "100", "--model", "2-8-tanh-1", "--loss", "bce", "--epochs", "1")
	if code == 0 || !strings.Contains(errOut, "sigmoid") || strings.Contains(errOut, "diverged") {
		t.Errorf("bce without sigmoid: exit %d, %s", code, errOut)
	}
	mustKiln(t, "train", "--data", "moons", "--samples", "100", "--model", "2-8-tanh-1-sigmoid", "--loss", "bce", "--epochs", "1")

	var b strings.Builder
	b.WriteString("x,price\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, 100+i*3)
	}
	p := filepath.Join(t.TempDir(), "prices.csv")
	os.WriteFile(p, []byte(b.String()), 0o644)
	_, errOut, _ = kiln(t, "train", "--data", p, "--label", "price", "--test-split", "0", "--epochs", "1", "--model", "1-4-relu-998")
	if !strings.Contains(errOut, "--regression") {
		t.Errorf("998 classes for 300 samples: no hint at --regression:\n%s", errOut)
	}
	os.WriteFile(p, []byte("x,y\n1,0.5\n2,1.5\n3,2.5\n4,3.5\n5,4.5\n"), 0o644)
	if _, errOut, code := kiln(t, "train", "--data", p, "--label", "y", "--epochs", "1"); code == 0 || !strings.Contains(errOut, "--regression") {
		t.Errorf("a float target without --regression: exit %d, %s; want an error naming --regression", code, errOut)
	}
}
