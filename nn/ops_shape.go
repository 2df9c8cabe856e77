package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// opExt holds the fields of the ops beyond MLPs (convolution, pooling,
// normalisation, embeddings, attention, shapes). It is part of op by value,
// so recording stays an append to a reused slice.
type opExt struct {
	win    device.Window2D
	aux    device.Buffer // a second saved buffer: max-pool indices, norm invstd/rstd, im2col columns
	aux2   device.Buffer // a third: eval batch norm's x̂
	z      *Tensor       // a third tensor input (the norms' beta)
	dims   [4]int        // Permute: input dims; BatchedMatMul: m, n, k, batch; norms: outer, channels, inner
	perm   [4]int        // Permute: the permutation
	off    int           // Narrow: element offset
	transA bool          // BatchedMatMul flags
	transB bool
	train  bool // BatchNorm: training statistics
	scale  float32
}

// backwardExt dispatches the backward passes of the ops of the files
// ops_conv.go, ops_norm.go, ops_attn.go, ops_embed.go and ops_shape.go.
func (o *op) backwardExt(g *Graph) error {
	switch o.kind {
	case opView:
		return o.viewBackward(g)
	case opNarrow:
		return o.narrowBackward(g)
	case opPermute:
		return o.permuteBackward(g)
	case opAddBroadcast:
		return o.addBroadcastBackward(g)
	case opConv2d:
		return o.conv2dBackward(g)
	case opMaxPool2d, opAvgPool2d, opAdaptiveAvgPool2d:
		return o.poolBackward(g)
	case opBatchNorm:
		return o.batchNormBackward(g)
	case opLayerNorm:
		return o.layerNormBackward(g)
	case opEmbedding:
		return o.embeddingBackward(g)
	case opBatchedMatMul:
		return o.batchedMatMulBackward(g)
	case opSoftmaxMasked:
		return o.softmaxMaskedBackward(g)
	}
	return fmt.Errorf("no backward for op %s", o.kind)
}

// passGrad gives t the gradient dy of an op whose input-to-output map is
// the identity (a view). A first contribution to an intermediate takes the
// buffer itself (no copy: dy's owner is complete by now, since every
// consumer of an op's output precedes the op in the reverse walk); a later
// one, or a parameter's, is added.
func (g *Graph) passGrad(t *Tensor, dy device.Buffer, one bool) error {
	if !t.accumulate && !t.gradSet {
		t.grad, t.gradSet, t.gradOne = dy, true, one
		return nil
	}
	dst, _, err := g.gradDst(t) // beta is 1 here
	if err != nil {
		return err
	}
	return g.dev.Axpy(1, dy, dst, t.n)
}

// view returns a tensor of the given shape sharing x's values (and
// recording a view op whose backward passes the gradient on).
func (g *Graph) view(x *Tensor, shape []int) (*Tensor, error) {
	y, err := g.tensor(shape)
	if err != nil {
		return nil, err
	}
	y.val = x.val
	y.requiresGrad = x.requiresGrad && !g.noGrad
	if y.requiresGrad {
		g.record(op{kind: opView, x: x, out: y})
	}
	return y, nil
}

func (o *op) viewBackward(g *Graph) error {
	if !o.x.requiresGrad {
		return nil
	}
	return g.passGrad(o.x, o.out.grad, o.out.gradOne)
}

// ints copies a variadic argument for an error message, so that the
// caller's slice does not escape (and its call allocate) on the fast path.
func ints(v []int) []int { return append([]int(nil), v...) }

// Reshape returns x with a new shape of the same number of elements; one
// dimension may be −1 (inferred). It is a view: the result shares x's
// values, and its gradient is handed back to x without a copy when it is
// x's first (otherwise added to x's).
func (g *Graph) Reshape(x *Tensor, shape ...int) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Reshape: nil input")
	}
	var buf [8]int
	s := buf[:0]
	if len(shape) > len(buf) {
		s = make([]int, 0, len(shape))
	}
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d >= 1:
			known *= d
		default:
			return nil, fmt.Errorf("nn: Reshape: shape %v: dimension %d is %d, expected ≥ 1 or a single −1", ints(shape), i, d)
		}
		s = append(s, d)
	}
	if infer >= 0 {
		if known == 0 || x.n%known != 0 {
			return nil, fmt.Errorf("nn: Reshape: cannot reshape %v (%d elements) to %v", x.shape, x.n, ints(shape))
		}
		s[infer] = x.n / known
		known = x.n
	}
	if known != x.n || len(s) == 0 {
		return nil, fmt.Errorf("nn: Reshape: cannot reshape %v (%d elements) to %v", x.shape, x.n, ints(shape))
	}
	y, err := g.view(x, s)
	if err != nil {
		return nil, wrap("Reshape", err)
	}
	return y, nil
}

// Flatten merges the axes from startDim to the last into one, as
// torch.flatten(x, startDim) (nn.Flatten uses startDim 1: [N, C, H, W] →
// [N, C·H·W]). A view, as Reshape.
func (g *Graph) Flatten(x *Tensor, startDim int) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Flatten: nil input")
	}
	if startDim < 0 || startDim >= len(x.shape) {
		return nil, fmt.Errorf("nn: Flatten: startDim %d for input %v, expected 0 ≤ startDim < %d", startDim, x.shape, len(x.shape))
	}
	var buf [8]int
	s := buf[:0]
	if startDim+1 > len(buf) {
		s = make([]int, 0, startDim+1)
	}
	s = append(s, x.shape[:startDim]...)
	inner := 1
	for _, d := range x.shape[startDim:] {
		inner *= d
	}
	s = append(s, inner)
	y, err := g.view(x, s)
	if err != nil {
		return nil, wrap("Flatten", err)
	}
	return y, nil
}

// Narrow returns rows [start, start+length) of x along its first axis, as
// x.narrow(0, start, length). It is a view of that contiguous range (no
// copy). Backward adds dy into the same range of x's gradient (zeroing the
// rest first when it is x's first contribution).
func (g *Graph) Narrow(x *Tensor, start, length int) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Narrow: nil input")
	}
	if len(x.shape) == 0 || start < 0 || length < 1 || start+length > x.shape[0] {
		return nil, fmt.Errorf("nn: Narrow: rows [%d, %d) of input %v, expected 0 ≤ start < start+length ≤ %d",
			start, start+length, x.shape, firstDim(x))
	}
	inner := x.n / x.shape[0]
	var buf [8]int
	s := append(buf[:0], x.shape...)
	s[0] = length
	y, err := g.tensor(s)
	if err != nil {
		return nil, wrap("Narrow", err)
	}
	if y.val, err = g.cachedView(x.val, start*inner, length*inner); err != nil {
		return nil, wrap("Narrow", err)
	}
	y.requiresGrad = x.requiresGrad && !g.noGrad
	if y.requiresGrad {
		g.record(op{kind: opNarrow, x: x, out: y, ext: opExt{off: start * inner}})
	}
	return y, nil
}

func firstDim(x *Tensor) int {
	if len(x.shape) == 0 {
		return 0
	}
	return x.shape[0]
}

func (o *op) narrowBackward(g *Graph) error {
	x := o.x
	if !x.requiresGrad {
		return nil
	}
	dst, beta, err := g.gradDst(x)
	if err != nil {
		return err
	}
	if beta == 0 {
		if err := g.dev.Fill(dst, x.n, 0); err != nil {
			return err
		}
	}
	v, err := g.cachedView(dst, o.ext.off, o.out.n)
	if err != nil {
		return err
	}
	return g.dev.Axpy(1, o.out.grad, v, o.out.n)
}

// Chunk splits x into k equal views along its first axis (torch.chunk
// with a first dimension divisible by k), as k Narrows.
func (g *Graph) Chunk(x *Tensor, k int) ([]*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Chunk: nil input")
	}
	if k < 1 || len(x.shape) == 0 || x.shape[0]%k != 0 {
		return nil, fmt.Errorf("nn: Chunk: %d chunks of input %v, expected a first dimension divisible by k ≥ 1", k, x.shape)
	}
	step := x.shape[0] / k
	out := make([]*Tensor, k)
	for i := range out {
		var err error
		if out[i], err = g.Narrow(x, i*step, step); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Permute reorders the axes of x (rank ≤ 4): the result has dimensions
// x.shape[perm[0]], x.shape[perm[1]], … and is contiguous (x.permute(perm)
// .contiguous()), one Permute4 launch. Backward is the inverse permutation.
func (g *Graph) Permute(x *Tensor, perm ...int) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: Permute: nil input")
	}
	r := len(x.shape)
	if r > 4 || len(perm) != r {
		return nil, fmt.Errorf("nn: Permute: permutation %v of input %v, expected one axis per dimension of a rank ≤ 4 tensor", ints(perm), x.shape)
	}
	// A lower rank is padded with leading axes of size 1, so the last axis
	// stays last: the backends copy whole rows of it when it is not moved.
	k := 4 - r
	dims := [4]int{1, 1, 1, 1}
	p4 := [4]int{0, 1, 2, 3}
	var seen [4]bool
	for i, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("nn: Permute: %v is not a permutation of the %d axes of input %v", ints(perm), r, x.shape)
		}
		seen[p] = true
		p4[k+i] = p + k
		dims[k+i] = x.shape[i]
	}
	var buf [4]int
	s := buf[:r]
	for i := range s {
		s[i] = dims[p4[k+i]]
	}
	y, err := g.newValue(s, x.requiresGrad)
	if err != nil {
		return nil, wrap("Permute", err)
	}
	if err := g.dev.Permute4(x.val, y.val, dims, p4); err != nil {
		return nil, wrap("Permute", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opPermute, x: x, out: y, ext: opExt{dims: dims, perm: p4}})
	}
	return y, nil
}

func (o *op) permuteBackward(g *Graph) error {
	if !o.x.requiresGrad {
		return nil
	}
	var outDims, inv [4]int
	for k, p := range o.ext.perm {
		outDims[k] = o.ext.dims[p]
		inv[p] = k
	}
	return g.contribute(o.x, func(dst device.Buffer) error {
		return g.dev.Permute4(o.out.grad, dst, outDims, inv)
	})
}

// AddBroadcast is z = x + y with y broadcast over x's leading axes: y's
// shape must equal x's trailing dimensions (a position embedding [T, C]
// added to [B, T, C], a bias [n] to [..., n]). One Copy and one AddBias.
// Backward: dx = dz (handed over as a view's), dy = Σ over the leading
// axes of dz (BiasGrad).
func (g *Graph) AddBroadcast(x, y *Tensor) (*Tensor, error) {
	if x == nil || y == nil {
		return nil, fmt.Errorf("nn: AddBroadcast: nil operand")
	}
	if len(y.shape) > len(x.shape) || x.n%y.n != 0 {
		return nil, fmt.Errorf("nn: AddBroadcast: y has shape %v, expected the trailing dimensions of x %v", y.shape, x.shape)
	}
	lead := len(x.shape) - len(y.shape)
	for i, d := range y.shape {
		if x.shape[lead+i] != d {
			return nil, fmt.Errorf("nn: AddBroadcast: y has shape %v, expected the trailing dimensions of x %v", y.shape, x.shape)
		}
	}
	z, err := g.newValue(x.shape, x.requiresGrad || y.requiresGrad)
	if err != nil {
		return nil, wrap("AddBroadcast", err)
	}
	if err := g.dev.Copy(z.val, x.val, x.n); err != nil {
		return nil, wrap("AddBroadcast", err)
	}
	if err := g.dev.AddBias(z.val, y.val, x.n/y.n, y.n); err != nil {
		return nil, wrap("AddBroadcast", err)
	}
	if z.requiresGrad {
		g.record(op{kind: opAddBroadcast, x: x, y: y, out: z})
	}
	return z, nil
}

func (o *op) addBroadcastBackward(g *Graph) error {
	dz := o.out.grad
	if o.y.requiresGrad {
		dst, beta, err := g.gradDst(o.y)
		if err != nil {
			return err
		}
		if err := g.dev.BiasGrad(dst, dz, o.x.n/o.y.n, o.y.n, beta); err != nil {
			return err
		}
	}
	if o.x.requiresGrad {
		return g.passGrad(o.x, dz, o.out.gradOne)
	}
	return nil
}
