package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// BatchedMatMul is torch.matmul over equal leading batch axes: a is
// [..., M, K] (or [..., K, M] when transA), b [..., K, N] (or [..., N, K]
// when transB), and the result [..., M, N] = op(a)·op(b) for each batch
// index, one GemmBatched. Both need rank ≥ 2 and the same leading axes (no
// broadcasting). Backward, for C = op(A)·op(B):
//
//	dA = dC·op(B)ᵀ (stored as A is), dB = op(A)ᵀ·dC (stored as B is)
//
// each one GemmBatched with the transpose flags that fit the layouts.
func (g *Graph) BatchedMatMul(a, b *Tensor, transA, transB bool) (*Tensor, error) {
	const name = "BatchedMatMul"
	if a == nil || b == nil {
		return nil, fmt.Errorf("nn: %s: nil operand", name)
	}
	ra, rb := len(a.shape), len(b.shape)
	if ra < 2 || ra != rb {
		return nil, fmt.Errorf("nn: %s: operands %v and %v, expected the same rank ≥ 2", name, a.shape, b.shape)
	}
	for i := 0; i < ra-2; i++ {
		if a.shape[i] != b.shape[i] {
			return nil, fmt.Errorf("nn: %s: batch axes of %v and %v differ, expected equal leading dimensions", name, a.shape, b.shape)
		}
	}
	m, k := a.shape[ra-2], a.shape[ra-1]
	if transA {
		m, k = k, m
	}
	kb, n := b.shape[rb-2], b.shape[rb-1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		return nil, fmt.Errorf("nn: %s: inner dimensions differ: op(a) is %d×%d and op(b) %d×%d (a %v transA=%v, b %v transB=%v)",
			name, m, k, kb, n, a.shape, transA, b.shape, transB)
	}
	batch := a.n / (m * k)
	var buf [8]int
	s := append(buf[:0], a.shape...)
	s[ra-2], s[ra-1] = m, n
	c, err := g.newValue(s, a.requiresGrad || b.requiresGrad)
	if err != nil {
		return nil, wrap(name, err)
	}
	if err := g.dev.GemmBatched(transA, transB, m, n, k, 1, a.val, m*k, b.val, k*n, 0, c.val, m*n, batch); err != nil {
		return nil, wrap(name, err)
	}
	if c.requiresGrad {
		g.record(op{kind: opBatchedMatMul, x: a, y: b, out: c,
			ext: opExt{dims: [4]int{m, n, k, batch}, transA: transA, transB: transB}})
	}
	return c, nil
}

func (o *op) batchedMatMulBackward(g *Graph) error {
	dev, dc := g.dev, o.out.grad
	m, n, k, batch := o.ext.dims[0], o.ext.dims[1], o.ext.dims[2], o.ext.dims[3]
	a, b := o.x, o.y
	if a.requiresGrad {
		dst, beta, err := g.gradDst(a)
		if err != nil {
			return err
		}
		var err2 error
		switch {
		case !o.ext.transA && !o.ext.transB: // dA [M,K] = dC·Bᵀ
			err2 = dev.GemmBatched(false, true, m, k, n, 1, dc, m*n, b.val, k*n, beta, dst, m*k, batch)
		case !o.ext.transA && o.ext.transB: // dA [M,K] = dC·B
			err2 = dev.GemmBatched(false, false, m, k, n, 1, dc, m*n, b.val, k*n, beta, dst, m*k, batch)
		case o.ext.transA && !o.ext.transB: // dA [K,M] = B·dCᵀ
			err2 = dev.GemmBatched(false, true, k, m, n, 1, b.val, k*n, dc, m*n, beta, dst, m*k, batch)
		default: // dA [K,M] = Bᵀ·dCᵀ
			err2 = dev.GemmBatched(true, true, k, m, n, 1, b.val, k*n, dc, m*n, beta, dst, m*k, batch)
		}
		if err2 != nil {
			return err2
		}
	}
	if b.requiresGrad {
		dst, beta, err := g.gradDst(b)
		if err != nil {
			return err
		}
		switch {
		case !o.ext.transA && !o.ext.transB: // dB [K,N] = Aᵀ·dC
			return dev.GemmBatched(true, false, k, n, m, 1, a.val, m*k, dc, m*n, beta, dst, k*n, batch)
		case !o.ext.transA && o.ext.transB: // dB [N,K] = dCᵀ·A
			return dev.GemmBatched(true, false, n, k, m, 1, dc, m*n, a.val, m*k, beta, dst, k*n, batch)
		case o.ext.transA && !o.ext.transB: // dB [K,N] = A·dC
			return dev.GemmBatched(false, false, k, n, m, 1, a.val, m*k, dc, m*n, beta, dst, k*n, batch)
		default: // dB [N,K] = dCᵀ·Aᵀ
			return dev.GemmBatched(true, true, n, k, m, 1, dc, m*n, a.val, m*k, beta, dst, k*n, batch)
		}
	}
	return nil
}

// SoftmaxMasked is the attention softmax: y = softmax(scale·x) over the
// last axis of x ([..., Tq, Tk] scores), and when causal, key positions
// after each query's get weight 0 (query i of the Tq rows sits at position
// i + Tk − Tq, so a KV cache of earlier keys works). Backward:
// dx = scale·y ⊙ (dy − Σ dy⊙y) (SoftmaxMaskedGrad).
func (g *Graph) SoftmaxMasked(x *Tensor, scale float32, causal bool) (*Tensor, error) {
	const name = "SoftmaxMasked"
	if x == nil {
		return nil, fmt.Errorf("nn: %s: nil input", name)
	}
	if len(x.shape) < 2 {
		return nil, fmt.Errorf("nn: %s: input has shape %v, expected [..., queries, keys]", name, x.shape)
	}
	rows, cols := x.rowsCols()
	qLen := x.shape[len(x.shape)-2]
	if causal && qLen > cols {
		return nil, fmt.Errorf("nn: %s: causal scores %v have more queries than keys", name, x.shape)
	}
	y, err := g.newValue(x.shape, x.requiresGrad)
	if err != nil {
		return nil, wrap(name, err)
	}
	if err := g.dev.SoftmaxMasked(x.val, y.val, rows, cols, scale, causal, qLen); err != nil {
		return nil, wrap(name, err)
	}
	if y.requiresGrad {
		g.record(op{kind: opSoftmaxMasked, x: x, out: y, rows: rows, cols: cols, ext: opExt{scale: scale}})
	}
	return y, nil
}

func (o *op) softmaxMaskedBackward(g *Graph) error {
	if !o.x.requiresGrad {
		return nil
	}
	return g.contribute(o.x, func(dst device.Buffer) error {
		return g.dev.SoftmaxMaskedGrad(o.out.val, o.out.grad, dst, o.rows, o.cols, o.ext.scale)
	})
}
