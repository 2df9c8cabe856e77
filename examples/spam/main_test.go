package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestQuick is what CI runs: the -quick form must reach 97% accuracy and
// beat the bag-of-words baseline on the held-out split.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two classifiers for about 10 s")
	}
	var out bytes.Buffer
	err := run([]string{"-quick"}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "passed") {
		t.Error("output does not say the bar passed")
	}
}

// TestBarFails shows that a bar the model cannot reach makes run fail.
func TestBarFails(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-epochs", "1", "-buckets", "1024", "-tokens", "64", "-vocab", "50", "-bar", "0.9999"}, &out)
	if err == nil || !(strings.Contains(err.Error(), "below the bar") || strings.Contains(err.Error(), "does not beat")) {
		t.Fatalf("err = %v, want a bar failure", err)
	}
}

// TestSplitAndTokens pins the properties the figures rely on: the split
// is stratified, disjoint and fixed by the seed; tokens are in range and
// rare tokens are dropped by their training counts alone.
func TestSplitAndTokens(t *testing.T) {
	msgs, err := loadCorpus("")
	if err != nil {
		t.Fatal(err)
	}
	tr, te := split(msgs, 0.2, 2)
	tr2, te2 := split(msgs, 0.2, 2)
	if len(tr)+len(te) != len(msgs) || len(te) != len(te2) {
		t.Fatalf("split sizes %d+%d of %d", len(tr), len(te), len(msgs))
	}
	in := map[int]bool{}
	for i, j := range te {
		if te2[i] != j {
			t.Fatal("the split is not fixed by the seed")
		}
		in[j] = true
	}
	for i, j := range tr {
		if in[j] || tr2[i] != j {
			t.Fatal("training and test sets overlap, or the split moved")
		}
	}
	spamFrac := func(idx []int) float64 {
		return float64(countSpam(pickMsgs(msgs, idx))) / float64(len(idx))
	}
	if d := spamFrac(tr) - spamFrac(te); d > 0.01 || d < -0.01 {
		t.Errorf("spam fraction %.3f in training, %.3f in test: not stratified", spamFrac(tr), spamFrac(te))
	}
	tk := tokenize(pickMsgs(msgs, tr[:50]), 100, 64)
	dropRare(tk, 3)
	for _, id := range tk.ids {
		if id < 0 || id >= 100 {
			t.Fatalf("token id %d outside [0, 100)", id)
		}
	}
	for i, n := range tk.count {
		for _, id := range tk.ids[i*64+n : (i+1)*64] {
			if id != 0 {
				t.Fatalf("message %d: padding after %d tokens is %d, want 0", i, n, id)
			}
		}
	}
}
