package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestQuick is what CI runs: the -quick form must reach twice the
// most-popular baseline's recall@10, beat its NDCG@10, and recover the
// planted item similarities (r ≥ 0.5).
func TestQuick(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-quick"}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "passed") {
		t.Error("output does not say the bars passed")
	}
}

// TestBarFails shows that an unreachable bar makes run fail: one epoch of
// a 2-wide factorisation cannot recover the similarities with r ≥ 0.99.
func TestBarFails(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-users", "300", "-items", "100", "-dim", "2", "-epochs", "1", "-bar-gain", "0.01", "-bar-corr", "0.99"}, &out)
	if err == nil || !(strings.Contains(err.Error(), "below the bar") || strings.Contains(err.Error(), "baseline")) {
		t.Fatalf("err = %v, want a bar failure", err)
	}
}

// TestEvaluate checks recall@10 and NDCG@10 on a hand-made case against
// figures worked out by hand.
func TestEvaluate(t *testing.T) {
	wd := &world{users: 1, items: 30,
		train: [][]int32{{0}}, // item 0 is seen: never ranked
		test:  [][]int32{{1, 5}}}
	// Scores rank the unseen items 29, 28, …, 1 (item 0 is excluded): item 5
	// is at rank 24 (outside the top 10), so only a score that puts item 1
	// first counts.
	recall, ndcg := evaluate(wd, func(u int, s []float32) {
		for i := range s {
			s[i] = float32(i)
		}
		s[1] = 100 // rank 0
		s[0] = 1000
	})
	// One hit of two: recall 1/2. DCG 1/log2(2) = 1; ideal 1 + 1/log2(3).
	wantNDCG := 1 / (1 + 1/1.584962500721156)
	if recall != 0.5 || ndcg < wantNDCG-1e-12 || ndcg > wantNDCG+1e-12 {
		t.Fatalf("recall %v ndcg %v, want 0.5 and %v", recall, ndcg, wantNDCG)
	}
}
