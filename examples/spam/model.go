package main

import (
	"fmt"
	"io"
	"math"
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
//	e = Embedding(ids)                 [B, T, D]
//	p = Σ_t pool[b, t]·e[b, t, :]      [B, D]   masked pooling: pool is 1/√len on real tokens, 0 on padding
//	logits = Out(ReLU(Hidden(Dropout(p))))
//
// The pooling weights are a second input: set them with SetPool before
// each Forward.
type bagModel struct {
	Embedding *nn.Embedding
	Dropout   *nn.Dropout
	Hidden    *nn.Linear
	Out       *nn.Linear
	pool      *nn.Tensor
}

func newBagModel(buckets, dim, hidden int) *bagModel {
	m := &bagModel{
		Embedding: nn.NewEmbedding(buckets, dim),
		Dropout:   &nn.Dropout{P: 0.2},
		Hidden:    nn.NewLinear(dim, hidden, true),
		Out:       nn.NewLinear(hidden, 2, true),
	}
	// PyTorch's nn.Embedding starts from N(0, 1); a bag of thousands of
	// hashed tokens learns better from small vectors (fastText starts
	// them at ±1/dim), so the table's Init is set before NewParamSet
	// draws it.
	m.Embedding.Weight.Init = nn.NormalInit(0, 0.01)
	return m
}

// SetPool sets the pooling weights [B, 1, T] of the next Forward.
func (m *bagModel) SetPool(w *nn.Tensor) { m.pool = w }

func (m *bagModel) Forward(g *nn.Graph, ids *nn.Tensor) (*nn.Tensor, error) {
	if m.pool == nil {
		return nil, fmt.Errorf("bagModel: SetPool before Forward")
	}
	e, err := m.Embedding.Forward(g, ids) // [B, T, D]
	if err != nil {
		return nil, err
	}
	p, err := g.BatchedMatMul(m.pool, e, false, false) // [B, 1, D]
	if err != nil {
		return nil, err
	}
	p, err = g.Reshape(p, ids.Shape()[0], m.Embedding.Dim)
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
	return m.Out.Forward(g, h)
}

func (m *bagModel) Children() []nn.Child {
	return []nn.Child{
		{Name: "embedding", Module: m.Embedding},
		{Name: "dropout", Module: m.Dropout},
		{Name: "hidden", Module: m.Hidden},
		{Name: "out", Module: m.Out},
	}
}

func (m *bagModel) OwnParams() []*nn.Param { return nil }
func (m *bagModel) SetTraining(bool)       {}

// batch holds the host and device buffers of one batch, allocated once.
type batch struct {
	dev             device.Device
	T               int
	hids            []int32
	hpool           []float32
	hlab            []int32
	ids, pool, labs device.Buffer
}

func newBatch(dev device.Device, rows, T int) (*batch, error) {
	b := &batch{dev: dev, T: T, hids: make([]int32, rows*T), hpool: make([]float32, rows*T), hlab: make([]int32, rows)}
	var err error
	if b.ids, err = dev.Alloc(device.Int32, rows*T); err != nil {
		return nil, err
	}
	if b.pool, err = dev.Alloc(device.Float32, rows*T); err != nil {
		return nil, err
	}
	if b.labs, err = dev.Alloc(device.Int32, rows); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *batch) free() {
	b.dev.Free(b.ids)
	b.dev.Free(b.pool)
	b.dev.Free(b.labs)
}

// load copies the samples idx of tk to the device and returns the inputs of
// the model (ids [rows, T], pooling weights [rows, 1, T]) on g and the
// labels. The pooling weight of a real token is 1/√len: between the mean
// (1/len, which lets a long message dilute its few telling tokens) and the
// sum (1, which lets long messages saturate the hidden layer); on this
// corpus it was the better of the three by about 0.3 points of accuracy.
func (b *batch) load(g *nn.Graph, tk *tokens, idx []int) (ids, pool *nn.Tensor, labels device.Buffer, err error) {
	T, rows := b.T, len(idx)
	for r, s := range idx {
		copy(b.hids[r*T:(r+1)*T], tk.ids[s*T:(s+1)*T])
		w := b.hpool[r*T : (r+1)*T]
		clear(w)
		if n := tk.count[s]; n > 0 {
			v := float32(1 / math.Sqrt(float64(n)))
			for t := 0; t < n; t++ {
				w[t] = v
			}
		}
		b.hlab[r] = tk.labels[s]
	}
	if err = b.dev.WriteI32(b.ids, 0, b.hids[:rows*T]); err != nil {
		return
	}
	if err = b.dev.WriteF32(b.pool, 0, b.hpool[:rows*T]); err != nil {
		return
	}
	if err = b.dev.WriteI32(b.labs, 0, b.hlab[:rows]); err != nil {
		return
	}
	if ids, err = g.InputIndices(b.ids, rows, T); err != nil {
		return
	}
	if pool, err = g.Input(b.pool, rows, 1, T); err != nil {
		return
	}
	labels = b.labs
	if rows < len(b.hlab) {
		labels, err = b.dev.View(b.labs, 0, rows)
	}
	return
}

// fit trains the model with AdamW and a cosine schedule with a short
// warm-up, counted in steps. Weight decay applies to the hidden and output
// matrices only: AdamW decays every row of the table at every step, even
// rows of tokens absent from the batch, which would erase rare tokens.
func fit(dev device.Device, m *bagModel, params *nn.ParamSet, tk *tokens, o options, w io.Writer) error {
	n := len(tk.labels)
	bs := min(o.batch, n)
	steps := o.epochs * ((n + bs - 1) / bs)
	var decay, noDecay []*nn.Param
	for _, p := range params.Params() {
		if len(p.Shape) >= 2 && p != m.Embedding.Weight {
			decay = append(decay, p)
		} else {
			noDecay = append(noDecay, p)
		}
	}
	opt, err := train.NewAdamW(params, train.DefaultAdamW(float32(o.lr)),
		train.ParamGroup{Name: "decay", Params: decay, WeightDecay: 0.01},
		train.ParamGroup{Name: "no_decay", Params: noDecay})
	if err != nil {
		return err
	}
	sched := &train.Cosine{Base: o.lr, Min: o.lr / 20, Warmup: max(1, steps/20), Total: steps + 1, Steps: true}
	b, err := newBatch(dev, bs, tk.T)
	if err != nil {
		return err
	}
	defer b.free()
	lossSum, err := dev.Alloc(device.Float32, 1)
	if err != nil {
		return err
	}
	defer dev.Free(lossSum)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetRNG(o.seed^0xd00d, 0)
	for epoch := 0; epoch < o.epochs; epoch++ {
		began := time.Now()
		nn.SetTraining(m, true)
		if err := dev.Fill(lossSum, 1, 0); err != nil {
			return err
		}
		order := data.Permutation(n, o.seed, epoch)
		for start := 0; start < n; start += bs {
			idx := order[start:min(start+bs, n)]
			ids, pool, labels, err := b.load(g, tk, idx)
			if err != nil {
				return err
			}
			opt.SetLR(float32(sched.LR()))
			if err := params.ZeroGrad(); err != nil {
				return err
			}
			m.SetPool(pool)
			logits, err := m.Forward(g, ids)
			if err != nil {
				return err
			}
			loss, err := g.Loss(device.SoftmaxCrossEntropy, logits, labels)
			if err != nil {
				return err
			}
			if err := g.Backward(loss); err != nil {
				return err
			}
			if err := dev.Axpy(float32(len(idx)), loss.Value(), lossSum, 1); err != nil {
				return err
			}
			if err := opt.Step(); err != nil {
				return err
			}
			sched.Step(math.NaN())
			g.Reset()
		}
		var s [1]float32
		if err := dev.ReadF32(s[:], lossSum, 0); err != nil {
			return err
		}
		mean := float64(s[0]) / float64(n)
		if math.IsNaN(mean) || math.IsInf(mean, 0) {
			return fmt.Errorf("epoch %d: training loss %g: diverged (lower -lr)", epoch+1, mean)
		}
		fmt.Fprintf(w, "  epoch %d/%d  train loss %.4f  %.1fs\n", epoch+1, o.epochs, mean, time.Since(began).Seconds())
	}
	return nil
}

// predict returns the predicted class of every message of tk (evaluation
// mode: dropout off, no tape).
func predict(dev device.Device, m *bagModel, tk *tokens, bs int) ([]int32, error) {
	n := len(tk.labels)
	bs = min(bs, n)
	nn.SetTraining(m, false)
	b, err := newBatch(dev, bs, tk.T)
	if err != nil {
		return nil, err
	}
	defer b.free()
	am, err := dev.Alloc(device.Int32, bs)
	if err != nil {
		return nil, err
	}
	defer dev.Free(am)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	pred := make([]int32, n)
	idx := make([]int, bs)
	for start := 0; start < n; start += bs {
		rows := min(bs, n-start)
		for j := 0; j < rows; j++ {
			idx[j] = start + j
		}
		ids, pool, _, err := b.load(g, tk, idx[:rows])
		if err != nil {
			return nil, err
		}
		m.SetPool(pool)
		logits, err := m.Forward(g, ids)
		if err != nil {
			return nil, err
		}
		if err := dev.ArgmaxRows(logits.Value(), rows, 2, am); err != nil {
			return nil, err
		}
		if err := dev.ReadI32(pred[start:start+rows], am, 0); err != nil {
			return nil, err
		}
		g.Reset()
	}
	return pred, nil
}
