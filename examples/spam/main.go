// Command spam classifies e-mail as spam or ham on the SpamAssassin public
// corpus: hashed tokens (words, word pairs, byte 4-grams), an embedding
// table, masked 1/√len pooling, a hidden layer and a two-way classifier
// (fastText's recipe with a hidden layer), trained with AdamW. On the same held-out split (fixed by -seed) it trains
// a bag-of-words logistic regression with train.Trainer as the baseline,
// and prints accuracy, precision, recall and F1 of both (spam is the
// positive class).
//
//	go run ./examples/spam            # full run
//	go run ./examples/spam -quick     # CI: fewer epochs, checks the bar
//
// The corpus is embedded (testdata/spamassassin.jsonl.gz, derived by
// ./prepare; see README.md for its licence and how it was made).
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // the CPU backend
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "spam:", err)
		os.Exit(1)
	}
}

type options struct {
	quick           bool
	epochs, batch   int
	buckets, dim    int
	hidden, tokens  int
	vocab, minCount int
	lr              float64
	seed            uint64
	testFrac        float64
	bar             float64
	dev, dataPath   string
	save            string
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("spam", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "CI size: 5 epochs for the model and for the baseline")
	fs.IntVar(&o.epochs, "epochs", 0, "epochs of the embedding model (default 8, quick 5)")
	fs.IntVar(&o.batch, "batch", 32, "batch size")
	fs.IntVar(&o.buckets, "buckets", 1<<15, "hash buckets of the token embedding table")
	fs.IntVar(&o.dim, "dim", 32, "embedding width")
	fs.IntVar(&o.hidden, "hidden", 32, "hidden layer width")
	fs.IntVar(&o.tokens, "tokens", 2048, "tokens kept per message (words, word pairs, byte 4-grams)")
	fs.IntVar(&o.vocab, "vocab", 4000, "words of the bag-of-words baseline")
	fs.IntVar(&o.minCount, "min-count", 3, "drop tokens found in fewer training messages")
	fs.Float64Var(&o.lr, "lr", 3e-3, "learning rate (AdamW, cosine schedule)")
	fs.Uint64Var(&o.seed, "seed", 2, "seed of the split, initialisation, batch order and dropout")
	fs.Float64Var(&o.testFrac, "test-frac", 0.2, "fraction held out for the test")
	fs.Float64Var(&o.bar, "bar", 0.97, "fail below this test accuracy, or when the baseline is not beaten")
	fs.StringVar(&o.dev, "device", "auto", "device: auto, cpu, cuda, cuda:N")
	fs.StringVar(&o.dataPath, "data", "", "corpus file (default: the embedded testdata/spamassassin.jsonl.gz)")
	fs.StringVar(&o.save, "save", "", "write the trained model here (safetensors)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.epochs == 0 {
		o.epochs = 8
		if o.quick {
			o.epochs = 5
		}
	}
	if o.epochs < 1 || o.batch < 1 || o.buckets < 2 || o.dim < 1 || o.tokens < 1 || o.vocab < 1 {
		return o, fmt.Errorf("-epochs, -batch, -dim, -tokens, -vocab must be ≥ 1 and -buckets ≥ 2")
	}
	if o.testFrac <= 0 || o.testFrac >= 1 {
		return o, fmt.Errorf("-test-frac %g, expected in (0, 1)", o.testFrac)
	}
	return o, nil
}

func run(args []string, w io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	msgs, err := loadCorpus(o.dataPath)
	if err != nil {
		return err
	}
	trainIdx, testIdx := split(msgs, o.testFrac, o.seed)
	trainMsgs, testMsgs := pickMsgs(msgs, trainIdx), pickMsgs(msgs, testIdx)
	fmt.Fprintf(w, "SpamAssassin: %d messages (%d spam); %d training, %d test (seed %d)\n",
		len(msgs), countSpam(msgs), len(trainMsgs), len(testMsgs), o.seed)

	dev, err := device.Open(o.dev)
	if err != nil {
		return err
	}
	defer dev.Close()

	// Baseline: bag-of-words logistic regression, trained by train.Trainer.
	began := time.Now()
	base, err := baseline(dev, trainMsgs, testMsgs, o)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	fmt.Fprintf(w, "baseline  bag-of-words logistic regression (%d words): %s  [%s]\n",
		o.vocab, report(base), time.Since(began).Round(time.Millisecond))

	// The model: hashed tokens → embedding → masked pooling → MLP.
	began = time.Now()
	trainTok := tokenize(trainMsgs, o.buckets, o.tokens)
	testTok := tokenize(testMsgs, o.buckets, o.tokens)
	dropRare(trainTok, o.minCount, testTok)
	model := newBagModel(o.buckets, o.dim, o.hidden)
	params, err := nn.NewParamSet(dev, model, o.seed)
	if err != nil {
		return err
	}
	defer params.Free()
	fmt.Fprintf(w, "model     embedding bag %d×%d, hidden %d: %d parameters\n", o.buckets, o.dim, o.hidden, params.NumParams())
	if err := fit(dev, model, params, trainTok, o, w); err != nil {
		return err
	}
	pred, err := predict(dev, model, testTok, 256)
	if err != nil {
		return err
	}
	met, err := train.ClassMetrics(testTok.labels, pred, 2)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "model     embedding bag + MLP: %s  [%s]\n", report(met), time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(w, "confusion (rows true ham/spam, columns predicted): %v\n", met.Confusion)
	if o.save != "" {
		m := train.Model{Module: model, Params: params, Outputs: 2}
		if err := train.SaveModel(o.save, m, map[string]string{"buckets": fmt.Sprint(o.buckets), "tokens": fmt.Sprint(o.tokens)}); err != nil {
			return err
		}
		fmt.Fprintf(w, "saved %s\n", o.save)
	}
	if met.Accuracy < o.bar {
		return fmt.Errorf("test accuracy %.4f is below the bar %.4f", met.Accuracy, o.bar)
	}
	if met.Accuracy <= base.Accuracy {
		return fmt.Errorf("the model (accuracy %.4f) does not beat the baseline (%.4f)", met.Accuracy, base.Accuracy)
	}
	fmt.Fprintf(w, "bar %.4f and baseline %.4f: passed\n", o.bar, base.Accuracy)
	return nil
}

func report(m train.Metrics) string {
	return fmt.Sprintf("accuracy %.4f precision %.4f recall %.4f F1 %.4f", m.Accuracy, m.Precision, m.Recall, m.F1)
}

// split is a stratified split fixed by seed: testFrac of the spam and of
// the ham, each class shuffled by its own PCG stream.
func split(msgs []message, testFrac float64, seed uint64) (trainIdx, testIdx []int) {
	for class, want := range []bool{false, true} {
		var idx []int
		for i, m := range msgs {
			if m.Spam == want {
				idx = append(idx, i)
			}
		}
		r := rand.New(rand.NewPCG(seed, uint64(class)))
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := int(math.Round(testFrac * float64(len(idx))))
		testIdx = append(testIdx, idx[:k]...)
		trainIdx = append(trainIdx, idx[k:]...)
	}
	return trainIdx, testIdx
}

func pickMsgs(msgs []message, idx []int) []message {
	out := make([]message, len(idx))
	for i, j := range idx {
		out[i] = msgs[j]
	}
	return out
}

func countSpam(msgs []message) int {
	n := 0
	for _, m := range msgs {
		if m.Spam {
			n++
		}
	}
	return n
}

// baseline trains logistic regression on binary bag-of-words features of
// the vocab words most frequent (by document count) in the training set:
// an nn.Sequential of one Linear layer (spec "<vocab>-2"), softmax
// cross-entropy, Adam, 10 epochs (5 quick) through train.Trainer, and
// evaluated by train.Evaluate.
func baseline(dev device.Device, trainMsgs, testMsgs []message, o options) (train.Metrics, error) {
	vocab := buildVocab(trainMsgs, o.vocab)
	trainSet := bagOfWords("spam-train", trainMsgs, vocab)
	testSet := bagOfWords("spam-test", testMsgs, vocab)
	spec, err := nn.ParseSpec(fmt.Sprintf("%d-2", len(vocab)))
	if err != nil {
		return train.Metrics{}, err
	}
	lr, err := nn.Build(dev, spec, nn.Init{}, o.seed)
	if err != nil {
		return train.Metrics{}, err
	}
	defer lr.Free()
	opt, err := train.NewAdam(lr, train.DefaultAdam(0.01))
	if err != nil {
		return train.Metrics{}, err
	}
	epochs := 10
	if o.quick {
		epochs = 5
	}
	tr, err := train.NewTrainer(dev, lr, opt, train.Config{
		Epochs: epochs, BatchSize: 32, Loss: device.SoftmaxCrossEntropy, Seed: o.seed, Shuffle: true,
	})
	if err != nil {
		return train.Metrics{}, err
	}
	defer tr.Free()
	if _, err := tr.Fit(trainSet, nil); err != nil {
		return train.Metrics{}, err
	}
	return train.Evaluate(dev, lr, testSet, device.SoftmaxCrossEntropy, 512)
}

// bagOfWords is the dataset of binary word-presence features.
func bagOfWords(name string, msgs []message, vocab map[string]int) *data.Dataset {
	v := len(vocab)
	ds := &data.Dataset{Name: name, X: make([]float32, len(msgs)*v), Features: v, Shape: []int{v},
		Labels: make([]int32, len(msgs)), Classes: 2, Source: "SpamAssassin"}
	for i, m := range msgs {
		row := ds.X[i*v : (i+1)*v]
		forWords(m.text(), func(word string) {
			if j, ok := vocab[word]; ok {
				row[j] = 1
			}
		})
		if m.Spam {
			ds.Labels[i] = 1
		}
	}
	return ds
}
