package main

import (
	"fmt"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// trainBaseline trains logistic regression on binary bag-of-words features
// of the c.vocab words most frequent (by document count) in trMsgs and
// scores it on evMsgs (validation or test).
func trainBaseline(dev device.Device, trMsgs, evMsgs []message, c baseCfg, seed uint64) (train.Metrics, error) {
	vocab := vocabOf(rankWords(trMsgs), c.vocab)
	met, _, err := fitBaseline(dev, bagOfWords("spam-train", trMsgs, vocab), bagOfWords("spam-eval", evMsgs, vocab), c, seed, false)
	return met, err
}

// fitBaseline trains the baseline on trSet: an nn.Sequential of one Linear
// layer (spec "<features>-2"), softmax cross-entropy, Adam with c.lr and L2
// weight decay c.wd (torch.optim.Adam's weight_decay), batches of 32 in a
// new order every epoch, c.epochs epochs through train.Trainer. It returns
// the figures on evSet after the last epoch (train.Evaluate); with curve it
// also returns them after every epoch (the trainer's validation pass), which
// is what training for fewer epochs would give, since the learning rate is
// constant and the batch order of epoch e depends only on (seed, e).
func fitBaseline(dev device.Device, trSet, evSet *data.Dataset, c baseCfg, seed uint64, curve bool) (train.Metrics, []train.Metrics, error) {
	var val *data.Dataset
	if curve {
		val = evSet
	}
	lr, res, err := trainLR(dev, trSet, val, c, seed)
	if err != nil {
		return train.Metrics{}, nil, err
	}
	defer lr.Free()
	var hist []train.Metrics
	for _, e := range res.History {
		if e.Val != nil {
			hist = append(hist, *e.Val)
		}
	}
	if curve && len(hist) > 0 {
		return hist[len(hist)-1], hist, nil
	}
	met, err := train.Evaluate(dev, lr, evSet, device.SoftmaxCrossEntropy, 512)
	return met, hist, err
}

// trainLR builds the baseline's logistic regression and trains it on trSet
// as fitBaseline says, scoring val (nil for none) after every epoch. The
// caller frees the returned model.
func trainLR(dev device.Device, trSet, val *data.Dataset, c baseCfg, seed uint64) (*nn.Sequential, train.Result, error) {
	spec, err := nn.ParseSpec(fmt.Sprintf("%d-2", trSet.Features))
	if err != nil {
		return nil, train.Result{}, err
	}
	lr, err := nn.Build(dev, spec, nn.Init{}, seed)
	if err != nil {
		return nil, train.Result{}, err
	}
	res, err := func() (train.Result, error) {
		cfg := train.DefaultAdam(float32(c.lr))
		cfg.WeightDecay = float32(c.wd)
		opt, err := train.NewAdam(lr, cfg)
		if err != nil {
			return train.Result{}, err
		}
		tr, err := train.NewTrainer(dev, lr, opt, train.Config{
			Epochs: c.epochs, BatchSize: 32, Loss: device.SoftmaxCrossEntropy, Seed: seed, Shuffle: true,
		})
		if err != nil {
			return train.Result{}, err
		}
		defer tr.Free()
		return tr.Fit(trSet, val)
	}()
	if err != nil {
		lr.Free()
		return nil, train.Result{}, err
	}
	return lr, res, nil
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
