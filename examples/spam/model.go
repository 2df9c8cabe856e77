package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// bagModel is an embedding bag classifier written as an nn.Module with
// named children, so nn.NewParamSet gives its parameters PyTorch's
// state_dict names (embedding.weight, hidden.weight, …):
//
//	e = Embedding(ids)                     [B, T, D]
//	p[b, k, :] = Σ_t pool[b, k, t]·e[b, t, :]  [B, P, D]   masked pooling, P pools
//	logits = Out(ReLU(Hidden(Dropout(p as [B, P·D])))) [+ Wide(bow)]
//
// With one pool, pool[b, 0, t] is 1/√len on the real tokens and 0 on the
// padding; with three (one per token family: words, word pairs, byte
// 4-grams), pool[b, k, t] is 1/√len_k on the tokens of family k, so the
// many 4-grams of a long message do not drown its words. The pooling
// weights are a second input: set them with SetPool before each Forward.
//
// With a wide part (wide > 0), a linear term over the binary bag of words
// of the wide most frequent training words is added to the logits (Wide &
// Deep): the deep part then only has to learn what a linear model of the
// words misses. SetPool also sets that input.
type bagModel struct {
	Embedding *nn.Embedding
	Dropout   *nn.Dropout
	Hidden    *nn.Linear
	Out       *nn.Linear
	Wide      *nn.Linear // nil without a wide part
	pools     int
	pool, bow *nn.Tensor
}

func newBagModel(buckets, dim, hidden, pools, wide int) *bagModel {
	m := &bagModel{
		Embedding: nn.NewEmbedding(buckets, dim),
		Dropout:   &nn.Dropout{P: 0.2}, // fit sets P from modelCfg
		Hidden:    nn.NewLinear(pools*dim, hidden, true),
		pools:     pools,
		Out:       nn.NewLinear(hidden, 2, true),
	}
	// PyTorch's nn.Embedding starts from N(0, 1); a bag of thousands of
	// hashed tokens learns better from small vectors (fastText starts
	// them at ±1/dim), so the table's Init is set before NewParamSet
	// draws it.
	m.Embedding.Weight.Init = nn.NormalInit(0, 0.01)
	if wide > 0 {
		m.Wide = nn.NewLinear(wide, 2, false)
	}
	return m
}

// SetPool sets the pooling weights [B, P, T] and, with a wide part, the
// bag of words [B, wide] of the next Forward.
func (m *bagModel) SetPool(w, bow *nn.Tensor) { m.pool, m.bow = w, bow }

func (m *bagModel) Forward(g *nn.Graph, ids *nn.Tensor) (*nn.Tensor, error) {
	if m.pool == nil {
		return nil, fmt.Errorf("bagModel: SetPool before Forward")
	}
	e, err := m.Embedding.Forward(g, ids) // [B, T, D]
	if err != nil {
		return nil, err
	}
	p, err := g.BatchedMatMul(m.pool, e, false, false) // [B, P, D]
	if err != nil {
		return nil, err
	}
	p, err = g.Reshape(p, ids.Shape()[0], m.pools*m.Embedding.Dim)
	if err != nil {
		return nil, err
	}
	if p, err = m.Dropout.Forward(g, p); err != nil {
		return nil, err
	}
	h, err := m.Hidden.Forward(g, p)
	if err != nil {
		return nil, err
	}
	if h, err = g.Activate(device.ReLU, 0, h); err != nil {
		return nil, err
	}
	out, err := m.Out.Forward(g, h)
	if err != nil || m.Wide == nil {
		return out, err
	}
	if m.bow == nil {
		return nil, fmt.Errorf("bagModel: the wide part needs the bag of words (SetPool)")
	}
	wide, err := m.Wide.Forward(g, m.bow)
	if err != nil {
		return nil, err
	}
	return g.Add(out, wide)
}

func (m *bagModel) Children() []nn.Child {
	c := []nn.Child{
		{Name: "embedding", Module: m.Embedding},
		{Name: "dropout", Module: m.Dropout},
		{Name: "hidden", Module: m.Hidden},
		{Name: "out", Module: m.Out},
	}
	if m.Wide != nil {
		c = append(c, nn.Child{Name: "wide", Module: m.Wide})
	}
	return c
}

func (m *bagModel) OwnParams() []*nn.Param { return nil }

func (m *bagModel) setInputs(in inputs)        { m.SetPool(in.pool, in.bow) }
func (m *bagModel) first(in inputs) *nn.Tensor { return in.ids }
func (m *bagModel) layout() batchLayout        { return batchLayout{P: m.pools, V: m.wide()} }
func (m *bagModel) table() *nn.Param           { return m.Embedding.Weight }
func (m *bagModel) setDropout(p float32)       { m.Dropout.P = p }

// wide is the vocabulary of the wide part, 0 without one.
func (m *bagModel) wide() int {
	if m.Wide == nil {
		return 0
	}
	return m.Wide.In
}
func (m *bagModel) SetTraining(bool) {}

// batch holds the host and device buffers of one batch, allocated once.
// It loads what the model's layout asks for: the bag's token ids and
// pooling weights (P > 0), the wide part's bag of words (V > 0), the word
// sequences and their padding mask (L > 0).
type batch struct {
	dev             device.Device
	T, P, V, L, D   int
	hids, hseq      []int32
	hpool, hbow     []float32
	hmask           []float32
	hlab            []int32
	ids, pool, labs device.Buffer
	bow             device.Buffer // [rows, V] when V > 0
	seq, mask       device.Buffer // [rows, L] and [rows, L, D] when L > 0
	// tokenDrop, when > 0, drops each real token of a message with this
	// probability at load (training only), drawing from rng.
	tokenDrop float64
	rng       *rand.Rand
}

func newBatch(dev device.Device, rows, T int, lay batchLayout) (*batch, error) {
	P, V, L, D := lay.P, lay.V, lay.L, lay.D
	if P == 0 {
		T = 0
	}
	b := &batch{dev: dev, T: T, P: P, V: V, L: L, D: D, hids: make([]int32, rows*T), hpool: make([]float32, rows*P*T), hbow: make([]float32, rows*V),
		hseq: make([]int32, rows*L), hmask: make([]float32, rows*L*D), hlab: make([]int32, rows)}
	var err error
	if V > 0 {
		if b.bow, err = dev.Alloc(device.Float32, rows*V); err != nil {
			return nil, err
		}
	}
	if P > 0 {
		if b.ids, err = dev.Alloc(device.Int32, rows*T); err != nil {
			return nil, err
		}
		if b.pool, err = dev.Alloc(device.Float32, rows*P*T); err != nil {
			return nil, err
		}
	}
	if L > 0 {
		if b.seq, err = dev.Alloc(device.Int32, rows*L); err != nil {
			return nil, err
		}
		if b.mask, err = dev.Alloc(device.Float32, rows*L*D); err != nil {
			return nil, err
		}
	}
	if b.labs, err = dev.Alloc(device.Int32, rows); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *batch) free() {
	for _, x := range []device.Buffer{b.ids, b.pool, b.labs, b.bow, b.seq, b.mask} {
		if x != nil {
			b.dev.Free(x)
		}
	}
}

// inputs are the tensors of one batch on the graph: the bag's token ids
// [rows, T] and pooling weights [rows, P, T], the wide part's bag of words
// [rows, V], the word sequences [rows, L] and their mask [rows, L, D]
// (each nil when the layout has none).
type inputs struct {
	ids, pool, bow, seq, mask *nn.Tensor
}

// load copies the samples idx of tk to the device and returns the inputs of
// the model on g and the labels. The pooling weight of a real token is
// 1/√len (len counted in its pool): between the mean (1/len, which lets a
// long message dilute its few telling tokens) and the sum (1, which lets
// long messages saturate the hidden layer). With token dropout the weights
// are 1/√kept on the kept tokens. The mask of a sequence is 1 (all D
// columns) at its seqLen real words and 0 at the padding after them.
func (b *batch) load(g *nn.Graph, tk *tokens, idx []int) (in inputs, labels device.Buffer, err error) {
	T, P, V, L, D, rows := b.T, b.P, b.V, b.L, b.D, len(idx)
	if V > 0 && len(tk.bow) != len(tk.labels) {
		err = fmt.Errorf("the wide part needs the bag of words of the set")
		return
	}
	if P > 0 && tk.T != T || L > 0 && tk.L != L {
		err = fmt.Errorf("the set has %d tokens and sequences of %d per message, the batch %d and %d", tk.T, tk.L, T, L)
		return
	}
	for r, s := range idx {
		if P > 0 {
			b.loadBag(r, tk, s)
		}
		if L > 0 {
			copy(b.hseq[r*L:(r+1)*L], tk.seq[s*L:(s+1)*L])
			m := b.hmask[r*L*D : (r+1)*L*D]
			n := tk.seqLen[s] * D
			for j := range m[:n] {
				m[j] = 1
			}
			clear(m[n:])
		}
		b.hlab[r] = tk.labels[s]
		if V > 0 {
			x := b.hbow[r*V : (r+1)*V]
			clear(x)
			for _, j := range tk.bow[s] {
				x[j] = 1
				if tk.bowScale != nil {
					x[j] = tk.bowScale[j]
				}
			}
		}
	}
	if V > 0 {
		if err = b.dev.WriteF32(b.bow, 0, b.hbow[:rows*V]); err != nil {
			return
		}
		if in.bow, err = g.Input(b.bow, rows, V); err != nil {
			return
		}
	}
	if P > 0 {
		if err = b.dev.WriteI32(b.ids, 0, b.hids[:rows*T]); err != nil {
			return
		}
		if err = b.dev.WriteF32(b.pool, 0, b.hpool[:rows*P*T]); err != nil {
			return
		}
		if in.ids, err = g.InputIndices(b.ids, rows, T); err != nil {
			return
		}
		if in.pool, err = g.Input(b.pool, rows, P, T); err != nil {
			return
		}
	}
	if L > 0 {
		if err = b.dev.WriteI32(b.seq, 0, b.hseq[:rows*L]); err != nil {
			return
		}
		if err = b.dev.WriteF32(b.mask, 0, b.hmask[:rows*L*D]); err != nil {
			return
		}
		if in.seq, err = g.InputIndices(b.seq, rows, L); err != nil {
			return
		}
		if in.mask, err = g.Input(b.mask, rows, L, D); err != nil {
			return
		}
	}
	if err = b.dev.WriteI32(b.labs, 0, b.hlab[:rows]); err != nil {
		return
	}
	labels = b.labs
	if rows < len(b.hlab) {
		labels, err = b.dev.View(b.labs, 0, rows)
	}
	return
}

// loadBag fills row r of the bag's host buffers from sample s of tk.
func (b *batch) loadBag(r int, tk *tokens, s int) {
	T, P := b.T, b.P
	copy(b.hids[r*T:(r+1)*T], tk.ids[s*T:(s+1)*T])
	w := b.hpool[r*P*T : (r+1)*P*T]
	clear(w)
	fam := tk.fam[s*T : (s+1)*T]
	var kept [families]int
	for t := 0; t < tk.count[s]; t++ {
		if b.tokenDrop > 0 && b.rng.Float64() < b.tokenDrop {
			continue
		}
		k := 0
		if P > 1 {
			k = int(fam[t])
		}
		w[k*T+t] = 1
		kept[k]++
	}
	for k := 0; k < P; k++ {
		if kept[k] == 0 {
			continue
		}
		v := float32(1 / math.Sqrt(float64(kept[k])))
		for t, x := range w[k*T : (k+1)*T] {
			if x != 0 {
				w[k*T+t] = v
			}
		}
	}
}

// fit trains the model with AdamW and a cosine schedule with a short
// warm-up, counted in steps, with the dropout and token dropout of o.
// Weight decay applies to the hidden, output and wide matrices only: AdamW
// decays every row of the table at every step, even rows of tokens absent
// from the batch, which would erase rare tokens.
//
// With val (the validation split; nil for none) it scores the model on val
// after every epoch and, when training ends, restores the weights of the
// epoch with the lowest validation loss (early stopping: o.epochs is then
// the longest it trains), and returns that epoch (1-based; o.epochs without
// val). It prints every epoch's mean training loss to w when w is not nil.
func fit(dev device.Device, m classifier, params *nn.ParamSet, tk, val *tokens, o modelCfg, seed uint64, w io.Writer) (int, error) {
	n := len(tk.labels)
	bs := min(o.batch, n)
	steps := o.epochs * ((n + bs - 1) / bs)
	var decay, noDecay []*nn.Param
	for _, p := range params.Params() {
		if len(p.Shape) >= 2 && p != m.table() {
			decay = append(decay, p)
		} else {
			noDecay = append(noDecay, p)
		}
	}
	opt, err := train.NewAdamW(params, train.DefaultAdamW(float32(o.lr)),
		train.ParamGroup{Name: "decay", Params: decay, WeightDecay: 0.01},
		train.ParamGroup{Name: "no_decay", Params: noDecay})
	if err != nil {
		return 0, err
	}
	sched := &train.Cosine{Base: o.lr, Min: o.lr / 20, Warmup: max(1, steps/20), Total: steps + 1, Steps: true}
	b, err := newBatch(dev, bs, tk.T, m.layout())
	if err != nil {
		return 0, err
	}
	defer b.free()
	b.tokenDrop, b.rng = o.tokenDrop, rand.New(rand.NewPCG(seed, 0x70c))
	m.setDropout(float32(o.dropout))
	values, _ := params.Flat()
	var best device.Buffer
	bestEpoch, bestLoss := o.epochs, math.Inf(1)
	if val != nil {
		if best, err = dev.Alloc(device.Float32, params.NumParams()); err != nil {
			return 0, err
		}
		defer dev.Free(best)
	}
	lossSum, err := dev.Alloc(device.Float32, 1)
	if err != nil {
		return 0, err
	}
	defer dev.Free(lossSum)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetRNG(seed^0xd00d, 0)
	for epoch := 0; epoch < o.epochs; epoch++ {
		began := time.Now()
		nn.SetTraining(m, true)
		if err := dev.Fill(lossSum, 1, 0); err != nil {
			return 0, err
		}
		order := data.Permutation(n, seed, epoch)
		for start := 0; start < n; start += bs {
			idx := order[start:min(start+bs, n)]
			in, labels, err := b.load(g, tk, idx)
			if err != nil {
				return 0, err
			}
			opt.SetLR(float32(sched.LR()))
			if err := params.ZeroGrad(); err != nil {
				return 0, err
			}
			m.setInputs(in)
			logits, err := m.Forward(g, m.first(in))
			if err != nil {
				return 0, err
			}
			loss, err := g.Loss(device.SoftmaxCrossEntropy, logits, labels)
			if err != nil {
				return 0, err
			}
			if err := g.Backward(loss); err != nil {
				return 0, err
			}
			if err := dev.Axpy(float32(len(idx)), loss.Value(), lossSum, 1); err != nil {
				return 0, err
			}
			if err := opt.Step(); err != nil {
				return 0, err
			}
			sched.Step(math.NaN())
			g.Reset()
		}
		var s [1]float32
		if err := dev.ReadF32(s[:], lossSum, 0); err != nil {
			return 0, err
		}
		mean := float64(s[0]) / float64(n)
		if math.IsNaN(mean) || math.IsInf(mean, 0) {
			return 0, fmt.Errorf("epoch %d: training loss %g: diverged (lower -lr)", epoch+1, mean)
		}
		if w != nil {
			fmt.Fprintf(w, "  seed %d epoch %d/%d  train loss %.4f  %.1fs\n", seed, epoch+1, o.epochs, mean, time.Since(began).Seconds())
		}
		if val != nil {
			vm, err := score(dev, m, val, 256)
			if err != nil {
				return 0, err
			}
			if w != nil {
				fmt.Fprintf(w, "    validation loss %.4f accuracy %.4f\n", vm.Loss, vm.Accuracy)
			}
			if vm.Loss < bestLoss {
				bestEpoch, bestLoss = epoch+1, vm.Loss
				if err := dev.Copy(best, values, params.NumParams()); err != nil {
					return 0, err
				}
			}
		}
	}
	if val != nil {
		if err := dev.Copy(values, best, params.NumParams()); err != nil {
			return 0, err
		}
	}
	return bestEpoch, nil
}

// score runs the model over every message of tk in evaluation mode
// (dropout off, no tape) and returns its accuracy, precision, recall, F1,
// confusion matrix and mean cross-entropy.
func score(dev device.Device, m classifier, tk *tokens, bs int) (train.Metrics, error) {
	p, err := probs(dev, m, tk, bs)
	if err != nil {
		return train.Metrics{}, err
	}
	return metricsOf(tk.labels, p)
}

// probs returns the model's class probabilities (ham, spam) of every
// message of tk, in evaluation mode. The logits are read back and the
// softmax is taken on the host in float64.
func probs(dev device.Device, m classifier, tk *tokens, bs int) ([][2]float64, error) {
	n := len(tk.labels)
	if n == 0 {
		return nil, fmt.Errorf("score: no messages")
	}
	bs = min(bs, n)
	nn.SetTraining(m, false)
	b, err := newBatch(dev, bs, tk.T, m.layout())
	if err != nil {
		return nil, err
	}
	defer b.free()
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	p := make([][2]float64, n)
	idx := make([]int, bs)
	logits := make([]float32, 2*bs)
	for start := 0; start < n; start += bs {
		rows := min(bs, n-start)
		for j := 0; j < rows; j++ {
			idx[j] = start + j
		}
		in, _, err := b.load(g, tk, idx[:rows])
		if err != nil {
			return nil, err
		}
		m.setInputs(in)
		out, err := m.Forward(g, m.first(in))
		if err != nil {
			return nil, err
		}
		if err := dev.ReadF32(logits[:2*rows], out.Value(), 0); err != nil {
			return nil, err
		}
		for j := 0; j < rows; j++ {
			z0, z1 := float64(logits[2*j]), float64(logits[2*j+1])
			hi := max(z0, z1)
			e0, e1 := math.Exp(z0-hi), math.Exp(z1-hi)
			p[start+j] = [2]float64{e0 / (e0 + e1), e1 / (e0 + e1)}
		}
		g.Reset()
	}
	return p, nil
}

// metricsOf scores class probabilities against the labels: the predicted
// class is the more probable (ham on a tie), the loss the mean
// cross-entropy −log p(label), summed in message order.
func metricsOf(labels []int32, p [][2]float64) (train.Metrics, error) {
	if len(p) != len(labels) {
		return train.Metrics{}, fmt.Errorf("%d probabilities for %d labels", len(p), len(labels))
	}
	pred := make([]int32, len(p))
	loss := 0.0
	for i, q := range p {
		if q[1] > q[0] {
			pred[i] = 1
		}
		loss -= math.Log(max(q[labels[i]], 1e-300))
	}
	met, err := train.ClassMetrics(labels, pred, 2)
	if err != nil {
		return train.Metrics{}, err
	}
	met.Loss = loss / float64(len(p))
	return met, nil
}
