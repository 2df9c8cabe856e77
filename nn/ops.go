package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

type opKind uint8

const (
	opLinear opKind = iota + 1
	opActivate
	opSoftmax
	opDropout
	opAdd
	opMul
	opScale
	opLoss
	// ops beyond MLPs (ops_shape.go, ops_conv.go, ops_norm.go, ops_embed.go, ops_attn.go)
	opView
	opNarrow
	opPermute
	opAddBroadcast
	opConv2d
	opMaxPool2d
	opAvgPool2d
	opAdaptiveAvgPool2d
	opBatchNorm
	opLayerNorm
	opEmbedding
	opBatchedMatMul
	opSoftmaxMasked
)

var opNames = [...]string{
	opLinear: "Linear", opActivate: "Activate", opSoftmax: "Softmax", opDropout: "Dropout",
	opAdd: "Add", opMul: "Mul", opScale: "Scale", opLoss: "Loss",
	opView: "View", opNarrow: "Narrow", opPermute: "Permute", opAddBroadcast: "AddBroadcast",
	opConv2d: "Conv2d", opMaxPool2d: "MaxPool2d", opAvgPool2d: "AvgPool2d", opAdaptiveAvgPool2d: "AdaptiveAvgPool2d",
	opBatchNorm: "BatchNorm", opLayerNorm: "LayerNorm", opEmbedding: "Embedding",
	opBatchedMatMul: "BatchedMatMul", opSoftmaxMasked: "SoftmaxMasked",
}

func (k opKind) String() string {
	if int(k) < len(opNames) && opNames[k] != "" {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// op is one entry of the tape. It is a plain struct (not an interface) so
// that recording a step appends to a reused slice without allocating.
type op struct {
	kind  opKind
	x, y  *Tensor // inputs (y: second operand of Add/Mul)
	w, b  *Tensor // Linear's weight and bias (b may be nil)
	out   *Tensor
	act   device.Activation
	alpha float32       // activation slope, or Scale's factor
	buf   device.Buffer // dropout mask, or the loss gradient
	rows  int
	cols  int
	ext   opExt // fields of the ops beyond MLPs (ops_shape.go)
}

func (g *Graph) record(o op) { g.tape = append(g.tape, o) }

// wrap names the op in a device error.
func wrap(name string, err error) error { return fmt.Errorf("nn: %s: %w", name, err) }

// Linear is y = x·Wᵀ + b, PyTorch's nn.Linear: x is [..., in], w is
// [out, in], b is [out] or nil, y is [..., out]. On the device: one Gemm
// with transB and one AddBias. Backward:
//
//	dW += dyᵀ·x   (Gemm transA, beta 1 for a parameter)
//	db += Σ_rows dy (BiasGrad, beta 1)
//	dx  = dy·W    (only when x requires grad)
func (g *Graph) Linear(x, w, b *Tensor) (*Tensor, error) {
	if x == nil || w == nil {
		return nil, fmt.Errorf("nn: Linear: nil input or weight")
	}
	if len(w.shape) != 2 {
		return nil, fmt.Errorf("nn: Linear: weight has shape %v, expected [out, in]", w.shape)
	}
	out, in := w.shape[0], w.shape[1]
	if len(x.shape) == 0 || x.shape[len(x.shape)-1] != in {
		return nil, fmt.Errorf("nn: Linear: input has shape %v, expected last dimension %d (the weight is [%d, %d])", x.shape, in, out, in)
	}
	if b != nil && (len(b.shape) != 1 || b.shape[0] != out) {
		return nil, fmt.Errorf("nn: Linear: bias has shape %v, expected [%d]", b.shape, out)
	}
	rows := x.n / in
	var dims [4]int
	shape := dims[:0]
	if len(x.shape) <= len(dims) {
		shape = dims[:len(x.shape)]
	} else {
		shape = make([]int, len(x.shape))
	}
	copy(shape, x.shape)
	shape[len(shape)-1] = out
	grad := x.requiresGrad || w.requiresGrad || (b != nil && b.requiresGrad)
	y, err := g.newValue(shape, grad)
	if err != nil {
		return nil, wrap("Linear", err)
	}
	if err := g.dev.Gemm(false, true, rows, out, in, 1, x.val, w.val, 0, y.val); err != nil {
		return nil, wrap("Linear", err)
	}
	if b != nil {
		if err := g.dev.AddBias(y.val, b.val, rows, out); err != nil {
			return nil, wrap("Linear", err)
		}
	}
	if y.requiresGrad {
		g.record(op{kind: opLinear, x: x, w: w, b: b, out: y, rows: rows, cols: out})
	}
	return y, nil
}

func (o *op) backward(g *Graph) error {
	dev := g.dev
	dy := o.out.grad
	switch o.kind {
	case opLinear:
		rows, out, in := o.rows, o.cols, o.w.shape[1]
		if o.w.requiresGrad {
			dst, beta, err := g.gradDst(o.w)
			if err != nil {
				return err
			}
			if err := dev.Gemm(true, false, out, in, rows, 1, dy, o.x.val, beta, dst); err != nil {
				return err
			}
		}
		if o.b != nil && o.b.requiresGrad {
			dst, beta, err := g.gradDst(o.b)
			if err != nil {
				return err
			}
			if err := dev.BiasGrad(dst, dy, rows, out, beta); err != nil {
				return err
			}
		}
		if o.x.requiresGrad {
			dst, beta, err := g.gradDst(o.x)
			if err != nil {
				return err
			}
			return dev.Gemm(false, false, rows, in, out, 1, dy, o.w.val, beta, dst)
		}
	case opActivate:
		if o.x.requiresGrad {
			return g.contribute(o.x, func(dst device.Buffer) error {
				return dev.ActivateGrad(o.act, o.alpha, o.x.val, o.out.val, dy, dst, o.x.n)
			})
		}
	case opSoftmax:
		if o.x.requiresGrad {
			return g.contribute(o.x, func(dst device.Buffer) error {
				return dev.SoftmaxGrad(o.out.val, dy, dst, o.rows, o.cols)
			})
		}
	case opDropout:
		if o.x.requiresGrad {
			return g.contribute(o.x, func(dst device.Buffer) error {
				return dev.Mul(dy, o.buf, dst, o.x.n)
			})
		}
	case opAdd:
		for _, t := range [2]*Tensor{o.x, o.y} {
			if !t.requiresGrad {
				continue
			}
			one := o.out.gradOne
			dst, beta, err := g.gradDst(t)
			if err != nil {
				return err
			}
			if beta == 0 {
				if err := dev.Copy(dst, dy, t.n); err != nil {
					return err
				}
				t.gradOne = one
			} else if err := dev.Axpy(1, dy, dst, t.n); err != nil {
				return err
			}
		}
	case opMul:
		if o.x.requiresGrad {
			if err := g.contribute(o.x, func(dst device.Buffer) error {
				return dev.Mul(dy, o.y.val, dst, o.x.n)
			}); err != nil {
				return err
			}
		}
		if o.y.requiresGrad {
			return g.contribute(o.y, func(dst device.Buffer) error {
				return dev.Mul(dy, o.x.val, dst, o.y.n)
			})
		}
	case opScale:
		if o.x.requiresGrad {
			dst, beta, err := g.gradDst(o.x)
			if err != nil {
				return err
			}
			if beta == 0 {
				return dev.Scale(o.alpha, dy, dst, o.x.n)
			}
			return dev.Axpy(o.alpha, dy, dst, o.x.n)
		}
	case opLoss:
		return o.lossBackward(g)
	case opView, opNarrow, opPermute, opAddBroadcast, opConv2d, opMaxPool2d, opAvgPool2d, opAdaptiveAvgPool2d,
		opBatchNorm, opLayerNorm, opEmbedding, opBatchedMatMul, opSoftmaxMasked:
		return o.backwardExt(g)
	}
	return nil
}

// lossBackward applies the gradient the device computed in the forward
// pass (fused). When the upstream gradient is known to be 1 (Backward was
// called on this loss) it is used as is: handed over without a copy to a
// first contribution, or added. Otherwise it is scaled by the upstream
// scalar on the device, as a k=1 Gemm: dpred (n×1) = g (n×1) · dL (1×1).
func (o *op) lossBackward(g *Graph) error {
	p := o.x
	if !p.requiresGrad {
		return nil
	}
	if o.out.gradOne {
		if !p.accumulate && !p.gradSet {
			// First contribution: hand the step's gradient buffer over.
			p.grad, p.gradSet, p.gradOne = o.buf, true, false
			return nil
		}
		dst, _, err := g.gradDst(p) // beta is 1 here: accumulate
		if err != nil {
			return err
		}
		return g.dev.Axpy(1, o.buf, dst, p.n)
	}
	dst, beta, err := g.gradDst(p)
	if err != nil {
		return err
	}
	return g.dev.Gemm(false, false, p.n, 1, 1, 1, o.buf, o.out.grad, beta, dst)
}

// Activate is y = f(x) elementwise for one of device.Activation (alpha is
// LeakyReLU's negative slope). Backward: dx = dy ⊙ f'(x).
//
//	relu      f = max(x, 0)            f' = [x > 0]
//	leakyrelu f = x (x>0), αx          f' = 1 or α
//	tanh      f = tanh x               f' = 1 − y²
//	sigmoid   f = 1/(1+e⁻ˣ)            f' = y(1 − y)
//	gelu      f = x·Φ(x)               f' = Φ(x) + x·φ(x)
//	gelu_tanh f = ½x(1+tanh(√(2/π)(x+0.044715x³)))
//	identity  f = x                    f' = 1
func (g *Graph) Activate(act device.Activation, alpha float32, x *Tensor) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Activate: nil input")
	}
	y, err := g.newValue(x.shape, x.requiresGrad)
	if err != nil {
		return nil, wrap("Activate", err)
	}
	if err := g.dev.Activate(act, alpha, x.val, y.val, x.n); err != nil {
		return nil, wrap("Activate "+act.String(), err)
	}
	if y.requiresGrad {
		g.record(op{kind: opActivate, x: x, out: y, act: act, alpha: alpha})
	}
	return y, nil
}

// Softmax is y[i,j] = exp(x[i,j]) / Σ_k exp(x[i,k]) over the last axis.
// Backward: dx = y ⊙ (dy − Σ_j dy⊙y), row by row.
func (g *Graph) Softmax(x *Tensor) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Softmax: nil input")
	}
	rows, cols := x.rowsCols()
	y, err := g.newValue(x.shape, x.requiresGrad)
	if err != nil {
		return nil, wrap("Softmax", err)
	}
	if err := g.dev.Softmax(x.val, y.val, rows, cols); err != nil {
		return nil, wrap("Softmax", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opSoftmax, x: x, out: y, rows: rows, cols: cols})
	}
	return y, nil
}

// Dropout is y = x ⊙ m with m[i] = 1/(1−p) where the uniform draw at
// stream position offset+i is ≥ p, else 0 (inverted dropout, as
// torch.nn.Dropout in training). The mask comes from the graph's (seed,
// offset), which then advances by len rounded up to a multiple of 4.
// Backward: dx = dy ⊙ m. When p is 0 it is the identity (no draw).
func (g *Graph) Dropout(x *Tensor, p float32) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Dropout: nil input")
	}
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("nn: Dropout: p = %v, expected 0 ≤ p < 1", p)
	}
	if p == 0 {
		return x, nil
	}
	mask, err := g.buffer(x.n)
	if err != nil {
		return nil, wrap("Dropout", err)
	}
	if err := g.dev.DropoutMask(mask, x.n, p, g.seed, g.offset); err != nil {
		return nil, wrap("Dropout", err)
	}
	g.offset += uint64(x.n+3) &^ 3
	y, err := g.newValue(x.shape, x.requiresGrad)
	if err != nil {
		return nil, wrap("Dropout", err)
	}
	if err := g.dev.Mul(x.val, mask, y.val, x.n); err != nil {
		return nil, wrap("Dropout", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opDropout, x: x, out: y, buf: mask})
	}
	return y, nil
}

func sameShape(name string, a, b *Tensor) error {
	if a == nil || b == nil {
		return fmt.Errorf("nn: %s: nil operand", name)
	}
	if a.n != b.n || len(a.shape) != len(b.shape) {
		return fmt.Errorf("nn: %s: shapes %v and %v differ, expected equal shapes", name, a.shape, b.shape)
	}
	for i := range a.shape {
		if a.shape[i] != b.shape[i] {
			return fmt.Errorf("nn: %s: shapes %v and %v differ, expected equal shapes", name, a.shape, b.shape)
		}
	}
	return nil
}

// Add is z = a + b elementwise (equal shapes). Backward: da = db = dz.
func (g *Graph) Add(a, b *Tensor) (*Tensor, error) {
	if err := sameShape("Add", a, b); err != nil {
		return nil, err
	}
	z, err := g.newValue(a.shape, a.requiresGrad || b.requiresGrad)
	if err != nil {
		return nil, wrap("Add", err)
	}
	if err := g.dev.Add(a.val, b.val, z.val, a.n); err != nil {
		return nil, wrap("Add", err)
	}
	if z.requiresGrad {
		g.record(op{kind: opAdd, x: a, y: b, out: z})
	}
	return z, nil
}

// Mul is z = a ⊙ b elementwise (equal shapes). Backward: da = dz ⊙ b,
// db = dz ⊙ a.
func (g *Graph) Mul(a, b *Tensor) (*Tensor, error) {
	if err := sameShape("Mul", a, b); err != nil {
		return nil, err
	}
	z, err := g.newValue(a.shape, a.requiresGrad || b.requiresGrad)
	if err != nil {
		return nil, wrap("Mul", err)
	}
	if err := g.dev.Mul(a.val, b.val, z.val, a.n); err != nil {
		return nil, wrap("Mul", err)
	}
	if z.requiresGrad {
		g.record(op{kind: opMul, x: a, y: b, out: z})
	}
	return z, nil
}

// Scale is y = c·x for a host constant c (a loss weight, say). Backward:
// dx = c·dy.
func (g *Graph) Scale(c float32, x *Tensor) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Scale: nil input")
	}
	y, err := g.newValue(x.shape, x.requiresGrad)
	if err != nil {
		return nil, wrap("Scale", err)
	}
	if err := g.dev.Scale(c, x.val, y.val, x.n); err != nil {
		return nil, wrap("Scale", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opScale, x: x, out: y, alpha: c})
	}
	return y, nil
}

// Loss computes a scalar loss of pred against target with PyTorch's
// definition and default reduction (see device.LossKind), as a [1] tensor.
// pred is viewed as rows×cols (last axis = cols; a vector is one column).
// target is float32 rows×cols, or int32 class labels of length rows for
// SoftmaxCrossEntropy. The device writes d loss/d pred in the same pass
// (fused); Backward hands it on, scaled by the upstream gradient only when
// that is not 1:
//
//	mse           L = mean (h−y)²                    ∂ = 2(h−y)/N
//	half_sse      L = 1/(2m) Σ (h−y)²                ∂ = (h−y)/m
//	bce           L = −mean y·log h + (1−y)·log(1−h)  (logs clamped at −100)
//	bce_logits    L = mean max(x,0) − x·y + log(1+e^−|x|)   ∂ = (σ(x)−y)/N
//	cross_entropy L = mean_rows −log softmax(x)[label]     ∂ = (softmax−onehot)/rows
func (g *Graph) Loss(kind device.LossKind, pred *Tensor, target device.Buffer) (*Tensor, error) {
	if pred == nil {
		return nil, fmt.Errorf("nn: Loss %s: nil prediction", kind)
	}
	rows, cols := pred.rowsCols()
	out, err := g.newValue([]int{1}, pred.requiresGrad)
	if err != nil {
		return nil, wrap("Loss", err)
	}
	var grad device.Buffer
	if out.requiresGrad {
		if grad, err = g.buffer(pred.n); err != nil {
			return nil, wrap("Loss", err)
		}
	}
	if err := g.dev.Loss(kind, pred.val, target, rows, cols, out.val, grad); err != nil {
		return nil, fmt.Errorf("nn: Loss %s of prediction %v: %w", kind, pred.shape, err)
	}
	if out.requiresGrad {
		g.record(op{kind: opLoss, x: pred, out: out, buf: grad, rows: rows, cols: cols})
	}
	return out, nil
}
