package main

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// TestQuick is what CI runs: the -quick form (3 seeds, fewer model epochs)
// must meet the criterion — the model's mean test accuracy ≥ 0.97 and
// above the bag-of-words baseline's.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two classifiers on 3 seeds for about 20 s")
	}
	var out bytes.Buffer
	err := run([]string{"-quick"}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"over 3 seeds", "paired difference", "criterion:", "passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q", want)
		}
	}
}

// TestBarFails shows that the criterion can fail: a bar the model cannot
// reach makes run return an error and print FAILED.
func TestBarFails(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-seeds", "1", "-epochs", "1", "-buckets", "1024", "-word-ids", "100", "-wide", "50", "-tokens", "64", "-vocab", "50", "-base-epochs", "1", "-bar", "0.9999"}, &out)
	if err == nil || !strings.Contains(err.Error(), "below the bar") {
		t.Fatalf("err = %v, want a bar failure", err)
	}
	if !strings.Contains(out.String(), "FAILED") {
		t.Errorf("output does not say FAILED:\n%s", out.String())
	}
}

// TestVerdict pins both halves of the criterion.
func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		model, base, bar float64
		want             string // "" passes
	}{
		{0.99, 0.98, 0.97, ""},
		{0.96, 0.90, 0.97, "below the bar"},
		{0.985, 0.985, 0.97, "does not beat"},         // a tie is not a win
		{0.985 + 1e-15, 0.985, 0.97, "does not beat"}, // nor is a rounding difference
		{0.985 + 1e-6, 0.985, 0.97, ""},               // an error in 1e6 messages is
		{0.980, 0.990, 0.97, "does not beat"},
	} {
		err := verdict(c.model, c.base, c.bar)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("verdict(%g, %g, %g) = %v, want %q", c.model, c.base, c.bar, err, c.want)
		}
	}
}

// TestRank checks the selection rule: highest mean validation accuracy
// (equal within tieEps), then lowest mean validation loss, then grid order.
func TestRank(t *testing.T) {
	rows := []selRow{
		{name: "a", acc: []float64{0.98, 0.99}, loss: []float64{0.05, 0.05}, order: 0},
		{name: "b", acc: []float64{0.99, 0.99}, loss: []float64{0.09, 0.07}, order: 1},
		{name: "c", acc: []float64{0.985, 0.995}, loss: []float64{0.04, 0.06}, order: 2},       // same mean accuracy as b, lower loss
		{name: "d", acc: []float64{0.99, 0.99}, loss: []float64{0.09, 0.07}, order: 3},         // b's twin, later in the grid
		{name: "e", acc: []float64{0.99 + 1e-12, 0.99}, loss: []float64{0.08, 0.09}, order: 4}, // b's accuracy but for rounding, higher loss
	}
	rank(rows)
	var got []string
	for _, r := range rows {
		got = append(got, r.name)
	}
	if strings.Join(got, "") != "cbdea" {
		t.Errorf("rank order %v, want [c b d e a]", got)
	}
}

// TestParseErrors: bad flags give errors, not panics.
func TestParseErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-seeds", "1,x"}, {"-seeds", "1,1"}, {"-seeds", "1,"},
		{"-test-frac", "0.9", "-val-frac", "0.2"}, {"-val-frac", "0"},
		{"-lr", "0"}, {"-base-wd", "-1"}, {"-buckets", "1"}, {"extra"},
		{"-widths", "3,x"}, {"-widths", "0"}, {"-widths", "3,3"}, {"-filters", "-1"}, {"-filters", "4", "-seq-len", "4", "-widths", "5"}, {"-seq-len", "0"},
		{"-wide", "0"}, {"-nb"}, {"-filters", "8"}, // -residual (the default) needs a binary wide part and the bag
	} {
		if _, err := parse(args); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
}

// TestSplitAndTokens pins the properties the figures rely on: the three
// splits are disjoint, cover the corpus, are stratified and fixed by the
// seed; the test split does not move when the validation fraction does;
// tokens are in range and rare tokens are dropped by their training counts
// alone.
func TestSplitAndTokens(t *testing.T) {
	msgs, err := loadCorpus("")
	if err != nil {
		t.Fatal(err)
	}
	tr, va, te := split(msgs, 0.2, 0.1, 2)
	tr2, va2, te2 := split(msgs, 0.2, 0.1, 2)
	if len(tr)+len(va)+len(te) != len(msgs) {
		t.Fatalf("split sizes %d+%d+%d of %d", len(tr), len(va), len(te), len(msgs))
	}
	if d := float64(len(te))/float64(len(msgs)) - 0.2; d > 0.001 || d < -0.001 {
		t.Errorf("test fraction %.4f, want 0.2", float64(len(te))/float64(len(msgs)))
	}
	if d := float64(len(va))/float64(len(msgs)) - 0.1; d > 0.001 || d < -0.001 {
		t.Errorf("validation fraction %.4f, want 0.1", float64(len(va))/float64(len(msgs)))
	}
	same := func(a, b []int) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	if !same(tr, tr2) || !same(va, va2) || !same(te, te2) {
		t.Fatal("the split is not fixed by the seed")
	}
	part := map[int]string{}
	for name, idx := range map[string][]int{"train": tr, "validation": va, "test": te} {
		for _, j := range idx {
			if p, ok := part[j]; ok {
				t.Fatalf("message %d is in %s and %s", j, p, name)
			}
			part[j] = name
		}
	}
	spamFrac := func(idx []int) float64 {
		return float64(countSpam(pickMsgs(msgs, idx))) / float64(len(idx))
	}
	whole := float64(countSpam(msgs)) / float64(len(msgs))
	for name, idx := range map[string][]int{"train": tr, "validation": va, "test": te} {
		if d := spamFrac(idx) - whole; d > 0.005 || d < -0.005 {
			t.Errorf("spam fraction %.4f in %s, %.4f in the corpus: not stratified", spamFrac(idx), name, whole)
		}
	}
	_, va3, te3 := split(msgs, 0.2, 0.25, 2)
	if !same(te, te3) {
		t.Error("the test split moved when -val-frac changed")
	}
	if same(va, va3) {
		t.Error("the validation split did not change with -val-frac")
	}
	_, _, te4 := split(msgs, 0.2, 0.1, 3)
	if same(te, te4) {
		t.Error("seeds 2 and 3 give the same test split")
	}

	all := tokenize(msgs, 100, 64, false, false, nil)
	tk := all.pick(tr[:50])
	for r, s := range tr[:50] {
		if tk.count[r] != all.count[s] || tk.labels[r] != all.labels[s] || tk.ids[r*64] != all.ids[s*64] {
			t.Fatalf("pick row %d is not message %d", r, s)
		}
	}
	before := append([]int32(nil), all.ids...)
	dropRare(tk, 3)
	if !same32(before, all.ids) {
		t.Error("dropRare on a picked set changed the source rows")
	}
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

func same32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWordIDs: with a word vocabulary, its words get the ids 1+column and
// every other token is hashed above them, below buckets.
func TestWordIDs(t *testing.T) {
	msgs := []message{{Subject: "free money", Body: "click here for free money now"}}
	words := map[string]int{"free": 0, "money": 1}
	tk := tokenize(msgs, 64, 256, false, false, words)
	var got []int32
	for i := 0; i < tk.count[0]; i++ {
		id, f := tk.ids[i], tk.fam[i]
		if f == famWord && id <= 2 {
			got = append(got, id)
			continue
		}
		if id < 3 || id >= 64 {
			t.Fatalf("token %d (family %d): id %d outside [3, 64)", i, f, id)
		}
	}
	// free, money (subject), free, money (body): ids 1, 2, 1, 2.
	if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 1 || got[3] != 2 {
		t.Errorf("vocabulary word ids %v, want [1 2 1 2]", got)
	}
	tk.setBow(msgs, &wideVocab{cols: [families]map[string]int{famWord: words}})
	if len(tk.bow[0]) != 2 || tk.bow[0][0] != 0 || tk.bow[0][1] != 1 {
		t.Errorf("bag of words %v, want [0 1] (each word once)", tk.bow[0])
	}
}

// TestMetricsOf checks the scoring of probabilities against a float64
// computation written out by hand (exact up to float64 rounding of the
// logs: tolerance 1e-12).
func TestMetricsOf(t *testing.T) {
	labels := []int32{0, 1, 1, 0}
	p := [][2]float64{{0.9, 0.1}, {0.2, 0.8}, {0.6, 0.4}, {0.5, 0.5}} // the last is a tie: ham
	met, err := metricsOf(labels, p)
	if err != nil {
		t.Fatal(err)
	}
	want := -(math.Log(0.9) + math.Log(0.8) + math.Log(0.4) + math.Log(0.5)) / 4
	if math.Abs(met.Loss-want) > 1e-12 {
		t.Errorf("loss %.15f, want %.15f", met.Loss, want)
	}
	if met.Accuracy != 0.75 || errorsOf(met) != 1 || met.Recall != 0.5 || met.Precision != 1 {
		t.Errorf("accuracy %g errors %d precision %g recall %g, want 0.75 1 1 0.5", met.Accuracy, errorsOf(met), met.Precision, met.Recall)
	}
	if _, err := metricsOf(labels, p[:3]); err == nil {
		t.Error("metricsOf accepted 3 probabilities for 4 labels")
	}
}

// corpusOnCPU loads the embedded corpus and opens a CPU device, closed
// when the test ends.
func corpusOnCPU(t *testing.T) ([]message, device.Device) {
	t.Helper()
	msgs, err := loadCorpus("")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return msgs, dev
}

// TestOptionsTrain runs the options that are off by default (one pool per
// token family, token dropout, early stopping, an ensemble of two) on a
// small model and checks it learns: validation accuracy above 0.85, well
// above the 0.695 of always answering ham.
func TestOptionsTrain(t *testing.T) {
	msgs, dev := corpusOnCPU(t)
	c := modelCfg{epochs: 2, batch: 32, buckets: 4096, tokens: 256, dim: 8, hidden: 8, minCount: 3, lr: 1e-2,
		dropout: 0.2, tokenDrop: 0.1, earlyStop: true, pools: 3, ensemble: 2, wordIDs: 1000, wide: 500}
	_, _, _, trTok, vaTok := seedOneSets(msgs, c)
	met, err := trainModel(dev, trTok, vaTok, vaTok, c, 1, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if met.Accuracy < 0.85 || met.Samples != len(vaTok.labels) {
		t.Errorf("validation accuracy %.4f on %d messages, want ≥ 0.85 on %d", met.Accuracy, met.Samples, len(vaTok.labels))
	}
}

// TestPairedSE checks the standard error of the paired difference against
// the seeds 1–5 figures of README.md: differences +1 −3 −6 +7 −1, sample
// standard deviation 4.8785, standard error 2.1817 (printed to 0.1).
func TestPairedSE(t *testing.T) {
	var res []seedResult
	for _, d := range []int{1, -3, -6, 7, -1} {
		base := train.Metrics{Confusion: [][]int{{800, 10}, {7, 365}}} // 17 errors
		model := train.Metrics{Confusion: [][]int{{800, 10 + d}, {7, 365}}}
		res = append(res, seedResult{base: base, model: model})
	}
	if got := pairedSE(res); got != " ± 2.2 s.e." {
		t.Errorf("pairedSE = %q, want \" ± 2.2 s.e.\"", got)
	}
	if got := pairedSE(res[:1]); got != "" {
		t.Errorf("pairedSE of one seed = %q, want \"\"", got)
	}
}

// TestWideVocab: the wide part's words, word pairs and byte 4-grams get
// disjoint columns in that order (the 4-gram "free" is not the word
// "free"), setBow lists each hit column once, and nbScale gives a feature
// seen only in spam a positive log-count ratio, one seen only in ham a
// negative one, and one seen equally often in both (with equal class
// totals) zero.
func TestWideVocab(t *testing.T) {
	msgs := []message{
		{Spam: true, Subject: "free money", Body: "free money"},
		{Spam: false, Subject: "meeting notes", Body: "see notes"},
	}
	c := modelCfg{wide: 3, widePairs: 2, wideGrams: 2}
	wv := newWideVocab(c, rankWords(msgs), msgs)
	if len(wv.cols[famWord]) != 3 || len(wv.cols[famPair]) != 2 || len(wv.cols[famGram]) != 2 {
		t.Fatalf("vocabulary sizes %d %d %d, want 3 2 2", len(wv.cols[famWord]), len(wv.cols[famPair]), len(wv.cols[famGram]))
	}
	seen := map[int]bool{}
	for fam, lo := range []int{0, 3, 5} {
		for f, j := range wv.cols[fam] {
			if j < lo || j >= lo+len(wv.cols[fam]) || seen[j] {
				t.Errorf("family %d feature %q: column %d outside [%d, %d) or repeated", fam, f, j, lo, lo+len(wv.cols[fam]))
			}
			seen[j] = true
		}
	}
	// Every pair is in one message; ties go alphabetically, so the two
	// pairs kept are "free money" and "meeting notes".
	if _, ok := wv.cols[famPair]["free money"]; !ok {
		t.Errorf("pairs %v lack \"free money\"", wv.cols[famPair])
	}
	tk := &tokens{labels: []int32{1, 0}}
	tk.setBow(msgs, wv)
	for i, row := range tk.bow {
		got := map[int32]bool{}
		for _, j := range row {
			if got[j] {
				t.Errorf("message %d: column %d twice in %v", i, j, row)
			}
			got[j] = true
		}
	}
	j := int32(wv.cols[famPair]["free money"])
	if !contains(tk.bow[0], j) || contains(tk.bow[1], j) {
		t.Errorf("pair column %d: spam bow %v, ham bow %v", j, tk.bow[0], tk.bow[1])
	}
	// nbScale on a hand-made set: column 0 spam only, 1 ham only, 2 both.
	nb := &tokens{labels: []int32{1, 0}, bow: [][]int32{{0, 2}, {1, 2}}}
	r := nbScale(nb, 3)
	if !(r[0] > 0) || !(r[1] < 0) || math.Abs(float64(r[2])) > 1e-6 {
		t.Errorf("nbScale = %v, want [>0 <0 0]", r)
	}
	if want := float32(math.Log(2)); math.Abs(float64(r[0]-want)) > 1e-6 {
		t.Errorf("nbScale[0] = %g, want log 2 = %g", r[0], want)
	}
}

func contains(v []int32, x int32) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// TestTriples: -triples adds one token per run of three words, of the
// pairs' family, and nothing else.
func TestTriples(t *testing.T) {
	msgs := []message{{Subject: "a b", Body: "c d e"}} // 5 words, 4 pairs, 3 triples
	fams := func(tk *tokens) (c [families]int) {
		for _, f := range tk.fam[:tk.count[0]] {
			c[f]++
		}
		return c
	}
	off, on := fams(tokenize(msgs, 1<<12, 256, false, false, nil)), fams(tokenize(msgs, 1<<12, 256, false, true, nil))
	if off[famWord] != 5 || off[famPair] != 4 || on[famWord] != 5 || on[famPair] != 7 || on[famGram] != off[famGram] {
		t.Errorf("tokens per family without triples %v, with %v; want [5 4 g] and [5 7 g]", off, on)
	}
}

// TestSeq: the convolutional model's sequence of a message is its words in
// order, each with the id tokenize gives it as a word token (own rows for
// the vocabulary, hashed above them otherwise), cut at L words, and 0
// after the last word; pick copies the sequences with the rows.
func TestSeq(t *testing.T) {
	msgs := []message{
		{Subject: "free money", Body: "click here for free money now"}, // 8 words
		{Subject: "hi", Body: "see you"},                               // 3 words
	}
	words := map[string]int{"free": 0, "money": 1}
	tk := tokenize(msgs, 64, 256, false, false, words)
	tk.setSeq(msgs, 64, 6, words)
	for i, want := range []int{6, 3} {
		if tk.seqLen[i] != want {
			t.Errorf("message %d: %d words in the sequence, want %d", i, tk.seqLen[i], want)
		}
		// The word tokens of tokenize, in order, are the same ids.
		var wordIDs []int32
		for j := 0; j < tk.count[i]; j++ {
			if tk.fam[i*tk.T+j] == famWord {
				wordIDs = append(wordIDs, tk.ids[i*tk.T+j])
			}
		}
		row := tk.seq[i*6 : (i+1)*6]
		if !same32(row[:want], wordIDs[:want]) {
			t.Errorf("message %d: sequence %v, want the word ids %v", i, row[:want], wordIDs[:want])
		}
		for _, id := range row[want:] {
			if id != 0 {
				t.Errorf("message %d: padding %v, want 0", i, row[want:])
			}
		}
	}
	// free money click here for free: ids 1 2 h h h 1.
	if r := tk.seq[:6]; r[0] != 1 || r[1] != 2 || r[5] != 1 || r[2] < 3 || r[2] >= 64 {
		t.Errorf("sequence %v, want [1 2 h h h 1] with h in [3, 64)", r)
	}
	p := tk.pick([]int{1, 0})
	if p.L != 6 || p.seqLen[0] != 3 || p.seqLen[1] != 6 || !same32(p.seq[6:12], tk.seq[:6]) {
		t.Errorf("pick: L %d, lengths %v, rows %v", p.L, p.seqLen, p.seq)
	}
}

// TestConvPadding: the padding after a message's last word acts as Kim's
// zero padding: beyond the k−1 zero positions that the windows of width k
// running past the last word see, more padding changes nothing. The same
// weights (a model's parameters do not depend on L) give the same logits
// for a message read as its n words plus 2 positions (widths 2 and 3)
// and read with 40 or more padding positions, although the padding row of
// the table is not zero; and batch.load masks exactly the padding.
func TestConvPadding(t *testing.T) {
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	msgs := []message{
		{Spam: true, Subject: "free money", Body: "click here for free money now!!!"},
		{Subject: "meeting", Body: "see the notes of today's meeting"},
		{Subject: "x", Body: "y z"},
		{Spam: true, Subject: "", Body: "$$$ win win win"},
	}
	const L = 56
	// p(spam) of the messages ms read as L words each.
	run := func(ms []message, L int) []float64 {
		tk := tokenize(ms, 512, 1, false, false, nil)
		tk.setSeq(ms, 512, L, nil)
		m := newConvModel(512, 8, 5, []int{2, 3}, L, 0)
		params, err := nn.NewParamSet(dev, m, 7)
		if err != nil {
			t.Fatal(err)
		}
		defer params.Free()
		if len(ms) > 1 {
			row, err := m.Embedding.Weight.Values()
			if err != nil {
				t.Fatal(err)
			}
			if row[0] == 0 && row[1] == 0 {
				t.Fatal("the padding row is zero: the test would not see an unmasked padding")
			}
			b, err := newBatch(dev, len(ms), 1, m.layout())
			if err != nil {
				t.Fatal(err)
			}
			defer b.free()
			g := nn.NewGraph(dev)
			defer g.Free()
			if _, _, err := b.load(g, tk, []int{0, 1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			for r := range ms {
				for p := 0; p < L; p++ {
					want := float32(0)
					if p < tk.seqLen[r] {
						want = 1
					}
					if b.hmask[(r*L+p)*8] != want || b.hmask[(r*L+p)*8+7] != want {
						t.Fatalf("message %d position %d: mask %g, want %g (length %d)", r, p, b.hmask[(r*L+p)*8], want, tk.seqLen[r])
					}
				}
			}
		}
		p, err := probs(dev, m, tk, 3)
		if err != nil {
			t.Fatal(err)
		}
		var v []float64
		for _, q := range p {
			v = append(v, q[1])
		}
		return v
	}
	padded := run(msgs, L)
	for i, m := range msgs {
		n := 0
		forWords(m.text(), func(string) { n++ })
		if n < 3 || n+40 > L {
			t.Fatalf("message %d has %d words, the test needs 3 to %d", i, n, L-40)
		}
		exact := run([]message{m}, n+2)
		if math.Abs(exact[0]-padded[i]) > 1e-6 {
			t.Errorf("message %d: p(spam) %.7f read as its %d words + 2, %.7f with %d padding positions", i, exact[0], n, padded[i], L-n)
		}
	}
}

// TestConvTrain: the convolutional model, with a wide part, learns: a
// small one reaches validation accuracy above 0.85 in two epochs, well
// above the 0.695 of always answering ham.
func TestConvTrain(t *testing.T) {
	msgs, dev := corpusOnCPU(t)
	c := modelCfg{epochs: 2, batch: 32, buckets: 4096, dim: 8, filters: 8, widths: []int{2, 3}, seqLen: 64, lr: 1e-2,
		dropout: 0.5, ensemble: 1, wordIDs: 1000, wide: 500}
	_, _, _, trTok, vaTok := seedOneSets(msgs, c)
	met, err := trainModel(dev, trTok, vaTok, vaTok, c, 1, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if met.Accuracy < 0.85 || met.Samples != len(vaTok.labels) {
		t.Errorf("validation accuracy %.4f on %d messages, want ≥ 0.85 on %d", met.Accuracy, met.Samples, len(vaTok.labels))
	}
}

// TestResidualStart: before any training, the residual model computes the
// baseline's regression exactly (the same probabilities as the baseline
// trained on its own bag of words: same columns, initialisation and batch
// order), and training it leaves that regression's weights untouched while
// the output layer, started at 0, learns.
func TestResidualStart(t *testing.T) {
	msgs, dev := corpusOnCPU(t)
	base := baseCfg{vocab: 500, epochs: 2, lr: 3e-3}
	c := modelCfg{epochs: 1, batch: 32, buckets: 4096, tokens: 256, dim: 8, hidden: 8, minCount: 3, lr: 3e-3,
		dropout: 0.2, pools: 1, ensemble: 1, wordIDs: 1000, wide: 500, residual: true, base: base}
	const seed = 7
	trMsgs, vaMsgs, ranked, trTok, vaTok := seedOneSets(msgs, c)

	m := newBagModel(c.buckets, c.dim, c.hidden, c.pools, c.wideDim())
	params, err := nn.NewParamSet(dev, m, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer params.Free()
	reg, err := fitRegression(dev, trTok, c.wideDim(), base, seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := residualStart(dev, m, reg); err != nil {
		t.Fatal(err)
	}
	got, err := probs(dev, m, vaTok, 256)
	if err != nil {
		t.Fatal(err)
	}

	vocab := vocabOf(ranked, base.vocab)
	lr, _, err := trainLR(dev, bagOfWords("tr", trMsgs, vocab), nil, base, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer lr.Free()
	vaSet := bagOfWords("va", vaMsgs, vocab)
	logits, err := train.Outputs(dev, train.Model{Module: lr, Params: lr.ParamSet(), Outputs: 2}, vaSet.X, len(vaMsgs), 256)
	if err != nil {
		t.Fatal(err)
	}
	// The float32 logits are the same products summed in the same order
	// (0·h is exactly 0, and b + Wx = Wx + b), so they agree bit for bit;
	// 1e-12 leaves room only for the float64 sigmoid here against probs'
	// softmax (about 1e-16). One float32 ulp of a logit would move p by
	// about 1e-8, a wrong column, weight, bias, seed or epoch count by far
	// more.
	worst := 0.0
	for i, q := range got {
		z0, z1 := float64(logits[2*i]), float64(logits[2*i+1])
		p1 := 1 / (1 + math.Exp(z0-z1))
		worst = max(worst, math.Abs(p1-q[1]))
	}
	if worst > 1e-12 {
		t.Fatalf("untrained residual model against the baseline: max |Δp(spam)| = %g, want ≤ 1e-12", worst)
	}

	wideBefore := make([]float32, 2*m.Wide.In)
	if err := dev.ReadF32(wideBefore, m.Wide.Weight.Value(), 0); err != nil {
		t.Fatal(err)
	}
	tableBefore := make([]float32, c.buckets*c.dim)
	if err := dev.ReadF32(tableBefore, m.Embedding.Weight.Value(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fit(dev, m, params, trTok, nil, c, seed, nil); err != nil {
		t.Fatal(err)
	}
	wideAfter := make([]float32, len(wideBefore))
	outW := make([]float32, 2*m.Out.In)
	if err := dev.ReadF32(wideAfter, m.Wide.Weight.Value(), 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.ReadF32(outW, m.Out.Weight.Value(), 0); err != nil {
		t.Fatal(err)
	}
	for i := range wideBefore {
		if wideBefore[i] != wideAfter[i] {
			t.Fatalf("wide weight %d moved in training: %g → %g (it is frozen)", i, wideBefore[i], wideAfter[i])
		}
	}
	nonzero := 0
	for _, x := range outW {
		if x != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Errorf("the output weights stayed 0: the deep part learnt nothing")
	}
	tableAfter := make([]float32, len(tableBefore))
	if err := dev.ReadF32(tableAfter, m.Embedding.Weight.Value(), 0); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := range tableBefore {
		if tableBefore[i] != tableAfter[i] {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("the embedding table did not move: the deep part learnt nothing")
	}
}

// TestResidualOptions: the regression of -residual is trained with the
// baseline's settings as the flags (and -quick) leave them, and the grid
// offers it only where residualStart applies.
func TestResidualOptions(t *testing.T) {
	o, err := parse([]string{"-base-epochs", "7", "-base-lr", "0.02"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.model.residual || o.model.base != o.base || o.model.base.epochs != 7 || o.model.base.lr != 0.02 {
		t.Errorf("model.residual %v, model.base %+v, base %+v: want on, the baseline's settings", o.model.residual, o.model.base, o.base)
	}
	if o, err = parse([]string{"-quick"}); err != nil || o.model.base.epochs != quickBaseEpochs {
		t.Errorf("-quick: regression epochs %d (err %v), want the quick baseline's %d", o.model.base.epochs, err, quickBaseEpochs)
	}
	for _, args := range [][]string{{"-residual=false", "-wide", "0"}, {"-residual=false", "-nb"}, {"-residual=false", "-filters", "8"}, {"-wide", "0", "-wide-pairs", "100"}} {
		if _, err := parse(args); err != nil {
			t.Errorf("parse(%q): %v", args, err)
		}
	}
	if _, err := parse([]string{"-nb"}); err == nil || !strings.Contains(err.Error(), "-residual=false") {
		t.Errorf("parse(-nb) = %v, want an error that names -residual=false", err)
	}
}

// seedOneSets is seed 1's training and validation split prepared for c as
// the program prepares them (tokens, rare tokens dropped, the wide part's
// bag of words), with the messages and the training split's word ranking.
func seedOneSets(msgs []message, c modelCfg) (trMsgs, vaMsgs []message, ranked []string, trTok, vaTok *tokens) {
	trIdx, vaIdx, _ := split(msgs, 0.2, 0.1, 1)
	trMsgs, vaMsgs = pickMsgs(msgs, trIdx), pickMsgs(msgs, vaIdx)
	ranked = rankWords(trMsgs)
	all := tokenizeFor(msgs, c, ranked)
	trTok, vaTok = all.pick(trIdx), all.pick(vaIdx)
	dropRare(trTok, c.minCount, vaTok)
	setWide(c, ranked, trMsgs, trTok, [][]message{vaMsgs}, vaTok)
	return
}
