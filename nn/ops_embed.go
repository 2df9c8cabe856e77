package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// InputIndices wraps buf, an int32 buffer the caller owns (token ids,
// class labels), as a tensor of the given shape for Embedding. Its values
// are indices, not numbers: it never requires grad, and float ops reject
// it (the device checks the dtype). It is valid until Reset.
func (g *Graph) InputIndices(buf device.Buffer, shape ...int) (*Tensor, error) {
	t, err := g.tensor(shape)
	if err != nil {
		return nil, fmt.Errorf("nn: InputIndices: %w", err)
	}
	if err := device.CheckBuf(g.dev, "nn.InputIndices", "buf", buf, device.Int32, t.n); err != nil {
		return nil, err
	}
	t.val = buf
	return t, nil
}

// Embedding is nn.Embedding's lookup: idx holds int32 indices (see
// InputIndices) of any shape, table is [num, dim], and the result is
// [idx shape..., dim] with out[i, :] = table[idx[i], :] (Gather; an index
// outside [0, num) is an error). Backward: dtable[idx[i], :] += dout[i, :]
// in ascending i (ScatterAdd, deterministic); idx gets no gradient.
func (g *Graph) Embedding(idx, table *Tensor) (*Tensor, error) {
	const name = "Embedding"
	if idx == nil || table == nil {
		return nil, fmt.Errorf("nn: %s: nil indices or table", name)
	}
	if idx.val == nil || idx.val.DType() != device.Int32 {
		return nil, fmt.Errorf("nn: %s: indices must be an int32 tensor (Graph.InputIndices)", name)
	}
	if len(table.shape) != 2 {
		return nil, fmt.Errorf("nn: %s: table has shape %v, expected [num, dim]", name, table.shape)
	}
	num, dim := table.shape[0], table.shape[1]
	var buf [8]int
	s := append(buf[:0], idx.shape...)
	s = append(s, dim)
	y, err := g.newValue(s, table.requiresGrad)
	if err != nil {
		return nil, wrap(name, err)
	}
	if err := g.dev.Gather(table.val, idx.val, y.val, num, dim, idx.n); err != nil {
		return nil, fmt.Errorf("nn: %s of a [%d, %d] table: %w", name, num, dim, err)
	}
	if y.requiresGrad {
		g.record(op{kind: opEmbedding, x: idx, w: table, out: y, rows: num, cols: dim})
	}
	return y, nil
}

func (o *op) embeddingBackward(g *Graph) error {
	t := o.w
	if !t.requiresGrad {
		return nil
	}
	dst, beta, err := g.gradDst(t)
	if err != nil {
		return err
	}
	if beta == 0 {
		if err := g.dev.Fill(dst, t.n, 0); err != nil {
			return err
		}
	}
	return g.dev.ScatterAdd(dst, o.x.val, o.out.grad, o.rows, o.cols, o.x.n)
}

// CrossEntropy is F.cross_entropy(logits, labels, ignore_index=ignoreIndex)
// with the mean reduction, as a [1] tensor: logits are viewed as
// rows×classes (the last axis: [B, T, V] is B·T rows), labels is an int32
// buffer of rows labels, and rows labelled ignoreIndex count neither in
// the sum nor in the mean. The device writes d loss/d logits in the same
// pass (fused), and Backward hands it on as Loss does.
func (g *Graph) CrossEntropy(logits *Tensor, labels device.Buffer, ignoreIndex int32) (*Tensor, error) {
	if logits == nil {
		return nil, fmt.Errorf("nn: CrossEntropy: nil logits")
	}
	if len(logits.shape) < 2 {
		return nil, fmt.Errorf("nn: CrossEntropy: logits have shape %v, expected [..., classes]", logits.shape)
	}
	rows, cols := logits.rowsCols()
	out, err := g.newValue([]int{1}, logits.requiresGrad)
	if err != nil {
		return nil, wrap("CrossEntropy", err)
	}
	var grad device.Buffer
	if out.requiresGrad {
		if grad, err = g.buffer(logits.n); err != nil {
			return nil, wrap("CrossEntropy", err)
		}
	}
	if err := g.dev.CrossEntropy(logits.val, labels, rows, cols, ignoreIndex, out.val, grad); err != nil {
		return nil, fmt.Errorf("nn: CrossEntropy of logits %v: %w", logits.shape, err)
	}
	if out.requiresGrad {
		g.record(op{kind: opLoss, x: logits, out: out, buf: grad, rows: rows, cols: cols})
	}
	return out, nil
}
