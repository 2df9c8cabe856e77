package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/train"
)

// The grids of -select. The model's grid varies its learning rate and
// training length and three choices of its structure (words hashed or
// given their own embedding rows; with or without the wide bag-of-words
// term; with the wide term, trained with the rest from random weights or
// fitted first as the baseline's regression and frozen, -residual); its
// other settings are the defaults. The baseline's grid varies its
// vocabulary, learning rate, L2 weight decay and epochs; the epochs come
// from one run of the longest length per setting (see fitBaseline), so the
// baseline is offered 72 settings to the model's 24.
var (
	gridModelLR      = []float64{3e-3, 1e-2}
	gridModelEpochs  = []int{4, 8}
	gridModelWordIDs = []int{0, 8000}
	gridModelWide    = []int{0, 8000}
	// gridModelResidual applies to the settings with a wide term only.
	gridModelResidual = []bool{false, true}

	// -select-cnn: the convolutional model's grid (8 settings), fixed
	// before any of it was run: learning rate × epochs × filter widths;
	// 64 filters per width, dropout 0.5 (Kim 2014), the first 256 words,
	// and the chosen bag model's word ids and wide part.
	gridCNNLR      = []float64{3e-3, 1e-2}
	gridCNNEpochs  = []int{4, 8}
	gridCNNWidths  = [][]int{{3}, {3, 5}}
	gridCNNFilters = 64
	gridCNNDropout = 0.5

	gridBaseVocab  = []int{4000, 8000, 16000}
	gridBaseLR     = []float64{0.001, 0.003, 0.01}
	gridBaseWD     = []float64{0, 1e-4}
	gridBaseEpochs = []int{5, 10, 20, 30}
)

// selRow is one setting's validation figures over the seeds.
type selRow struct {
	name  string
	errs  []int     // validation errors per seed
	acc   []float64 // validation accuracy per seed
	loss  []float64 // validation mean cross-entropy per seed
	model modelCfg
	base  baseCfg
	order int // position in the grid: the last tie-break
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// valSplit is one seed's split for the validation-only modes: the
// training and validation indices and messages, and the training split's
// words ranked by frequency (rankWords). The test split is not returned.
func valSplit(msgs []message, o options, seed uint64) (trIdx, vaIdx []int, trMsgs, vaMsgs []message, ranked []string) {
	trIdx, vaIdx, _ = split(msgs, o.testFrac, o.valFrac, seed)
	trMsgs, vaMsgs = pickMsgs(msgs, trIdx), pickMsgs(msgs, vaIdx)
	return trIdx, vaIdx, trMsgs, vaMsgs, rankWords(trMsgs)
}

// rank orders rows best first: highest mean validation accuracy, then
// lowest mean validation loss, then grid order. rows[0] is the choice.
func rank(rows []selRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		ai, aj := mean(rows[i].acc), mean(rows[j].acc)
		if math.Abs(ai-aj) > tieEps { // equal error counts can differ in the last bits
			return ai > aj
		}
		li, lj := mean(rows[i].loss), mean(rows[j].loss)
		if li != lj {
			return li < lj
		}
		return rows[i].order < rows[j].order
	})
}

// runSelect trains every setting of both grids on every seed's training
// split and scores it on that seed's validation split. It never reads the
// test split.
func runSelect(dev device.Device, msgs []message, o options, w io.Writer) error {
	var mrows []selRow
	for _, wi := range gridModelWordIDs {
		for _, wide := range gridModelWide {
			for _, res := range gridModelResidual {
				if res && (wide == 0 || o.model.nb || o.model.filters > 0) {
					continue // residualStart needs a binary wide part and the bag
				}
				for _, lr := range gridModelLR {
					for _, ep := range gridModelEpochs {
						c := o.model
						c.lr, c.epochs, c.wide, c.wordIDs, c.residual = lr, ep, wide, wi, res
						mrows = append(mrows, selRow{name: fmt.Sprintf("word-ids %-4d wide %-4d residual %-5v lr %-5g epochs %d", wi, wide, res, lr, ep), model: c, order: len(mrows)})
					}
				}
			}
		}
	}
	var brows []selRow
	for _, v := range gridBaseVocab {
		for _, lr := range gridBaseLR {
			for _, wd := range gridBaseWD {
				for _, ep := range gridBaseEpochs {
					c := baseCfg{vocab: v, lr: lr, wd: wd, epochs: ep}
					brows = append(brows, selRow{name: fmt.Sprintf("vocab %-5d lr %-6g wd %-6g epochs %-2d", v, lr, wd, ep), base: c, order: len(brows)})
				}
			}
		}
	}
	fmt.Fprintf(w, "selection on the validation splits of seeds %v: %d model settings, %d baseline settings\n", o.seeds, len(mrows), len(brows))
	maxEp := 0
	for _, e := range gridBaseEpochs {
		maxEp = max(maxEp, e)
	}
	for _, seed := range o.seeds {
		began := time.Now()
		trIdx, vaIdx, trMsgs, vaMsgs, ranked := valSplit(msgs, o, seed)
		// Baseline: one run of maxEp epochs per (vocab, lr, wd).
		for _, v := range gridBaseVocab {
			vocab := vocabOf(ranked, v)
			trSet, vaSet := bagOfWords("spam-train", trMsgs, vocab), bagOfWords("spam-val", vaMsgs, vocab)
			for _, lr := range gridBaseLR {
				for _, wd := range gridBaseWD {
					_, hist, err := fitBaseline(dev, trSet, vaSet, baseCfg{vocab: v, lr: lr, wd: wd, epochs: maxEp}, seed, true)
					if err != nil {
						return fmt.Errorf("seed %d: baseline: %w", seed, err)
					}
					for i := range brows {
						if c := brows[i].base; c.vocab == v && c.lr == lr && c.wd == wd {
							brows[i].add(hist[c.epochs-1])
						}
					}
				}
			}
		}
		bdone := time.Since(began)
		tokenized := map[int]*tokens{} // by -word-ids, the one tokenisation setting the grid varies
		for i := range mrows {
			c := mrows[i].model
			all := tokenized[c.wordIDs]
			if all == nil {
				all = tokenizeFor(msgs, c, ranked)
				tokenized[c.wordIDs] = all
			}
			trTok, vaTok := all.pick(trIdx), all.pick(vaIdx)
			dropRare(trTok, c.minCount, vaTok)
			setWide(c, ranked, trMsgs, trTok, [][]message{vaMsgs}, vaTok)
			met, err := trainModel(dev, trTok, vaTok, vaTok, c, seed, "", o.verbose, w)
			if err != nil {
				return fmt.Errorf("seed %d: model %s: %w", seed, mrows[i].name, err)
			}
			mrows[i].add(met)
		}
		fmt.Fprintf(w, "  seed %d: %d validation messages; baseline grid %.0fs, model grid %.0fs\n",
			seed, len(vaIdx), bdone.Seconds(), (time.Since(began) - bdone).Seconds())
	}
	rank(mrows)
	rank(brows)
	printTable(w, "model (embedding bag + MLP; "+fixedModel(o.model)+")", mrows, len(mrows))
	top := 12
	if o.verbose {
		top = len(brows)
	}
	printTable(w, "baseline (bag-of-words logistic regression, Adam, batch 32)", brows, top)
	fmt.Fprintf(w, "chosen model:    %s\n", mrows[0].model)
	fmt.Fprintf(w, "chosen baseline: %s\n", brows[0].base)
	return nil
}

func (r *selRow) add(m train.Metrics) {
	r.errs = append(r.errs, errorsOf(m))
	r.acc = append(r.acc, m.Accuracy)
	r.loss = append(r.loss, m.Loss)
}

func fixedModel(c modelCfg) string {
	return fmt.Sprintf("fixed: pools %d, dim %d, hidden %d, dropout %g, min-count %d, buckets %d, tokens %d, batch %d",
		c.pools, c.dim, c.hidden, c.dropout, c.minCount, c.buckets, c.tokens, c.batch)
}

// printTable prints the first top rows of ranked rows, the choice first.
func printTable(w io.Writer, title string, rows []selRow, top int) {
	fmt.Fprintf(w, "\n%s: validation, best first (of %d)\n", title, len(rows))
	printRows(w, rows[:min(top, len(rows))], true)
}

// printRows prints rows as printTable does, marking the first as the
// choice when chosen.
func printRows(w io.Writer, rows []selRow, chosen bool) {
	fmt.Fprintf(w, "  %-55s  %-14s  %-9s  %s\n", "setting", "errors/seed", "mean acc", "mean loss")
	for i, r := range rows {
		var e []string
		for _, x := range r.errs {
			e = append(e, fmt.Sprint(x))
		}
		mark := ""
		if i == 0 && chosen {
			mark = "  ← chosen"
		}
		fmt.Fprintf(w, "  %-55s  %-14s  %.4f     %.4f%s\n", r.name, strings.Join(e, " "), mean(r.acc), mean(r.loss), mark)
	}
}

// runValidate is -validate: the model and the baseline as the flags set
// them, trained on each seed's training split and scored on its validation
// split (no test figures), one row each as in -select's tables. It is how
// settings outside -select's grids are compared, on validation only.
func runValidate(dev device.Device, msgs []message, o options, w io.Writer) error {
	mrow := selRow{name: "model", model: o.model}
	brow := selRow{name: "baseline", base: o.base}
	for _, seed := range o.seeds {
		began := time.Now()
		trIdx, vaIdx, trMsgs, vaMsgs, ranked := valSplit(msgs, o, seed)
		bm, err := trainBaseline(dev, trMsgs, vaMsgs, o.base, seed)
		if err != nil {
			return fmt.Errorf("seed %d: baseline: %w", seed, err)
		}
		brow.add(bm)
		bdone := time.Since(began)
		all := tokenizeFor(msgs, o.model, ranked)
		trTok, vaTok := all.pick(trIdx), all.pick(vaIdx)
		dropRare(trTok, o.model.minCount, vaTok)
		setWide(o.model, ranked, trMsgs, trTok, [][]message{vaMsgs}, vaTok)
		mm, err := trainModel(dev, trTok, vaTok, vaTok, o.model, seed, "", o.verbose, w)
		if err != nil {
			return fmt.Errorf("seed %d: model: %w", seed, err)
		}
		mrow.add(mm)
		fmt.Fprintf(w, "  seed %d: validation errors baseline %d, model %d (baseline %.0fs, model %.0fs)\n",
			seed, errorsOf(bm), errorsOf(mm), bdone.Seconds(), (time.Since(began) - bdone).Seconds())
	}
	fmt.Fprintf(w, "model:    %s: %s\nbaseline: %s\n", kindOf(o.model), o.model, o.base)
	fmt.Fprintf(w, "\nvalidation, seeds %v\n  %-8s  %-14s  %-9s  %s\n", o.seeds, "", "errors/seed", "mean acc", "mean loss")
	for _, r := range []selRow{mrow, brow} {
		var e []string
		for _, x := range r.errs {
			e = append(e, fmt.Sprint(x))
		}
		fmt.Fprintf(w, "  %-8s  %-14s  %.4f     %.4f\n", r.name, strings.Join(e, " "), mean(r.acc), mean(r.loss))
	}
	return nil
}

// runSelectCNN is -select-cnn: the convolutional model's grid, trained on
// the training split of every seed and scored on its validation split,
// beside two reference rows trained and scored the same way: the model
// and the baseline as the other flags set them (by default the chosen
// embedding bag and the chosen baseline). It never reads a test split.
func runSelectCNN(dev device.Device, msgs []message, o options, w io.Writer) error {
	var rows []selRow
	for _, wd := range gridCNNWidths {
		for _, lr := range gridCNNLR {
			for _, ep := range gridCNNEpochs {
				c := o.model
				c.filters, c.widths, c.dropout, c.lr, c.epochs = gridCNNFilters, wd, gridCNNDropout, lr, ep
				c.residual = false // as the grid was run; residualStart is the bag's
				rows = append(rows, selRow{name: fmt.Sprintf("CNN widths %-4s lr %-5g epochs %d", intList(wd), lr, ep), model: c, order: len(rows)})
			}
		}
	}
	ref := selRow{name: "reference model (" + kindOf(o.model) + ")", model: o.model}
	brow := selRow{name: "baseline", base: o.base}
	fmt.Fprintf(w, "CNN selection on the validation splits of seeds %v: %d settings (%d filters per width, dropout %g, %d words, word ids %d, wide %d)\n",
		o.seeds, len(rows), gridCNNFilters, gridCNNDropout, o.model.seqLen, o.model.wordIDs, o.model.wide)
	for _, seed := range o.seeds {
		began := time.Now()
		trIdx, vaIdx, trMsgs, vaMsgs, ranked := valSplit(msgs, o, seed)
		bm, err := trainBaseline(dev, trMsgs, vaMsgs, o.base, seed)
		if err != nil {
			return fmt.Errorf("seed %d: baseline: %w", seed, err)
		}
		brow.add(bm)
		var cnnTok *tokens // the grid varies nothing its tokenisation depends on
		for i := -1; i < len(rows); i++ {
			r := &ref
			if i >= 0 {
				r = &rows[i]
			}
			c := r.model
			all := cnnTok
			if all == nil || c.filters == 0 {
				all = tokenizeFor(msgs, c, ranked)
				if c.filters > 0 {
					cnnTok = all
				}
			}
			trTok, vaTok := all.pick(trIdx), all.pick(vaIdx)
			dropRare(trTok, c.minCount, vaTok)
			setWide(c, ranked, trMsgs, trTok, [][]message{vaMsgs}, vaTok)
			met, err := trainModel(dev, trTok, vaTok, vaTok, c, seed, "", o.verbose, w)
			if err != nil {
				return fmt.Errorf("seed %d: %s: %w", seed, r.name, err)
			}
			r.add(met)
			if o.verbose {
				fmt.Fprintf(w, "  seed %d %s: %d errors\n", seed, r.name, errorsOf(met))
			}
		}
		fmt.Fprintf(w, "  seed %d: %d validation messages, %.0fs\n", seed, len(vaIdx), time.Since(began).Seconds())
	}
	rank(rows)
	printTable(w, "CNN (Kim 2014) + wide term", rows, len(rows))
	fmt.Fprintf(w, "\nreferences, the same validation splits\n")
	printRows(w, []selRow{ref, brow}, false)
	fmt.Fprintf(w, "best CNN:  %s\n", rows[0].model)
	fmt.Fprintf(w, "reference: %s: %s\nbaseline:  %s\n", kindOf(o.model), o.model, o.base)
	return nil
}

// kindOf names the deep part of c.
func kindOf(c modelCfg) string {
	if c.filters > 0 {
		return "CNN"
	}
	return "embedding bag + MLP"
}
