package nn

import (
	"fmt"

	"github.com/kilnml/kiln/device"
)

// int32Buffer hands out an int32 scratch buffer of n elements for this
// step (max-pool indices). The graph's free lists hold float32 buffers by
// length; int32 ones live in the same map under the key −n, where buffer
// never looks and Free still finds them. They never enter the step's used
// list: a buffer is in use exactly while an op of the tape holds it, so
// the ones the tape does not name are free (after Reset, all of them).
func (g *Graph) int32Buffer(n int) (device.Buffer, error) {
	l := g.free[-n]
next:
	for _, b := range l {
		for i := range g.tape {
			if o := &g.tape[i]; o.kind == opMaxPool2d && o.ext.aux == b {
				continue next
			}
		}
		return b, nil
	}
	b, err := g.dev.Alloc(device.Int32, n)
	if err != nil {
		return nil, err
	}
	g.free[-n] = append(l, b)
	return b, nil
}

// conv2dShape checks Conv2d's arguments and returns the window geometry.
func conv2dShape(x, w, b *Tensor, stride, padding, dilation [2]int) (device.Window2D, error) {
	var win device.Window2D
	if x == nil || w == nil {
		return win, fmt.Errorf("nn: Conv2d: nil input or weight")
	}
	if len(x.shape) != 4 {
		return win, fmt.Errorf("nn: Conv2d: input has shape %v, expected [N, C, H, W]", x.shape)
	}
	if len(w.shape) != 4 || w.shape[1] != x.shape[1] {
		return win, fmt.Errorf("nn: Conv2d: weight has shape %v, expected [out, %d, kH, kW] for input %v", w.shape, x.shape[1], x.shape)
	}
	if b != nil && (len(b.shape) != 1 || b.shape[0] != w.shape[0]) {
		return win, fmt.Errorf("nn: Conv2d: bias has shape %v, expected [%d]", b.shape, w.shape[0])
	}
	win = device.Window2D{N: x.shape[0], C: x.shape[1], H: x.shape[2], W: x.shape[3], KH: w.shape[2], KW: w.shape[3],
		StrideH: stride[0], StrideW: stride[1], PadH: padding[0], PadW: padding[1], DilH: dilation[0], DilW: dilation[1]}
	if err := checkWindow("Conv2d", win, x); err != nil {
		return win, err
	}
	return win, nil
}

// checkWindow checks a window's stride, padding and dilation and that its
// output is not empty.
func checkWindow(name string, win device.Window2D, x *Tensor) error {
	if win.StrideH < 1 || win.StrideW < 1 || win.PadH < 0 || win.PadW < 0 || win.DilH < 1 || win.DilW < 1 {
		return fmt.Errorf("nn: %s: stride [%d %d], padding [%d %d], dilation [%d %d]: expected stride ≥ 1, padding ≥ 0, dilation ≥ 1",
			name, win.StrideH, win.StrideW, win.PadH, win.PadW, win.DilH, win.DilW)
	}
	if win.KH < 1 || win.KW < 1 {
		return fmt.Errorf("nn: %s: kernel [%d %d], expected ≥ 1", name, win.KH, win.KW)
	}
	// The dilated window must fit in the padded input (OutH alone does not
	// show it: Go's division truncates towards zero).
	if win.H+2*win.PadH < win.DilH*(win.KH-1)+1 || win.W+2*win.PadW < win.DilW*(win.KW-1)+1 {
		return fmt.Errorf("nn: %s: a [%d %d] window (stride [%d %d], padding [%d %d], dilation [%d %d]) does not fit input %v",
			name, win.KH, win.KW, win.StrideH, win.StrideW, win.PadH, win.PadW, win.DilH, win.DilW, x.shape)
	}
	return nil
}

// Conv2d is PyTorch's F.conv2d(x, w, b, stride, padding, dilation) with
// groups 1: x is [N, C, H, W], w [OC, C, KH, KW], b [OC] or nil, and the
// result [N, OC, OH, OW]. On the device: Im2Col into columns
// [N, C·KH·KW, OH·OW] (scratch of the graph, kept for backward), one
// GemmBatched y_n = W·cols_n with W shared (stride 0), and AddChannelBias.
// Backward:
//
//	db = Σ_{n,p} dy[n, :, p]                         (ChannelBiasGrad)
//	dW = Σ_n dy_n · cols_nᵀ                           (see below)
//	dx = Col2Im(Wᵀ · dy_n for each n)                (GemmBatched, Col2Im)
//
// dW takes whichever of two forms needs less scratch and memory traffic:
// when N copies of dW are smaller than dy and the columns (the small
// kernels of a CNN on large maps), one GemmBatched writes the N partial
// products and BiasGrad sums them in image order; otherwise dy and the
// columns are permuted to [·, N, OH·OW] and one Gemm runs over
// K = N·OH·OW.
func (g *Graph) Conv2d(x, w, b *Tensor, stride, padding, dilation [2]int) (*Tensor, error) {
	win, err := conv2dShape(x, w, b, stride, padding, dilation)
	if err != nil {
		return nil, err
	}
	oc, ck, p := w.shape[0], win.ColRows(), win.OutH()*win.OutW()
	grad := x.requiresGrad || w.requiresGrad || (b != nil && b.requiresGrad)
	y, err := g.newValue([]int{win.N, oc, win.OutH(), win.OutW()}, grad)
	if err != nil {
		return nil, wrap("Conv2d", err)
	}
	group := convGroup(g.dev, win.N, oc, ck, p)
	cols, err := g.buffer(group * ck * p)
	if err != nil {
		return nil, wrap("Conv2d", err)
	}
	for n0 := 0; n0 < win.N; n0 += group {
		gn := min(group, win.N-n0)
		xv, yv, err := g.convViews(x.val, n0, gn, win.C*win.H*win.W, y.val, oc*p)
		if err != nil {
			return nil, wrap("Conv2d", err)
		}
		wg := win
		wg.N = gn
		if err := g.dev.Im2Col(xv, cols, wg); err != nil {
			return nil, wrap("Conv2d", err)
		}
		if err := g.dev.GemmBatched(false, false, oc, p, ck, 1, w.val, 0, cols, ck*p, 0, yv, oc*p, gn); err != nil {
			return nil, wrap("Conv2d", err)
		}
	}
	if b != nil {
		if err := g.dev.AddChannelBias(y.val, b.val, win.N, oc, p); err != nil {
			return nil, wrap("Conv2d", err)
		}
	}
	if y.requiresGrad {
		g.record(op{kind: opConv2d, x: x, w: w, b: b, out: y, ext: opExt{win: win, aux: cols}})
	}
	return y, nil
}

// convGroupFloats, when not 0, replaces the value of the device's cache
// hint (its presence still decides whether to split) as the column scratch
// Conv2d aims for when it works through the batch in groups of images;
// tests set it to force either path (never changed between a
// forward and its backward: both derive the grouping from it).
var convGroupFloats = 0

// convGroup is how many images Conv2d unfolds at a time: all of them when
// their columns fit in the budget (or N is 1), else at most as many as fit
// (at least one), in as few groups as that allows and as equal as they
// can be — on a device that gives a cache hint (device.CacheHinter:
// the CPU backend's is 2 MiB; BenchmarkConv2dStep, the CNN's second
// convolution: groups of 2 images, 1.8 MB of columns, were 1.7–2.5× faster
// than the whole batch, groups of 1 and 4 in between), and only when the
// weight gradient can be taken from per-image partial products
// (oc·ck ≤ (oc+ck)·p, see conv2dBackward), which a group-at-a-time
// backward needs; otherwise all.
//
// In groups, each group's columns are still in the cache when the GEMM
// reads them (Im2Col then GemmBatched forward; Im2Col, the dW partials,
// Wᵀ·dy into the same scratch and Col2Im backward), instead of a
// batch-sized buffer that is written and read back through main memory;
// the columns are recomputed in backward rather than kept. The results
// are the same bits either way: every primitive computes each image's
// values alike whatever the batch it is given.
//
// Groups are for a CPU's caches; on a GPU (no hint) the whole batch keeps
// the GEMMs large and the launches few.
func convGroup(dev device.Device, n, oc, ck, p int) int {
	h, ok := dev.(device.CacheHinter)
	if !ok {
		return n
	}
	budget := convGroupFloats
	if budget == 0 {
		budget = h.CacheBlockBytes() / 4
	}
	per := ck * p
	if budget <= 0 || n == 1 || n*per <= budget || oc*ck > (oc+ck)*p {
		return n
	}
	// At most maxConvGroups groups: each costs the graph's view cache five
	// entries (x, y, dy, dx and the dW partials of the group), kept across
	// steps; with many, a deep network would overflow it every step.
	g := min(n, max(1, budget/per, (n+maxConvGroups-1)/maxConvGroups))
	// As many groups as g needs, with the images shared out evenly: the
	// CNN's third convolution (9 images fit) runs 8 groups of 8, not 7 of
	// 9 and a lone image whose Im2Col and Col2Im are too small to split
	// across cores and whose GEMMs split by tiles instead of by image.
	// Never more images than fit, never more groups.
	groups := (n + g - 1) / g
	return (n + groups - 1) / groups
}

// maxConvGroups bounds how many groups one Conv2d splits its batch into.
const maxConvGroups = 32

// convViews returns the views of images [n0, n0+gn) of x (in elements
// per image) and y (out per image), or x and y themselves when the group
// is the whole batch. The graph's view cache makes them once.
func (g *Graph) convViews(x device.Buffer, n0, gn, in int, y device.Buffer, out int) (xv, yv device.Buffer, err error) {
	if n0 == 0 && gn*in == x.Len() && gn*out == y.Len() {
		return x, y, nil
	}
	if xv, err = g.cachedView(x, n0*in, gn*in); err != nil {
		return nil, nil, err
	}
	if yv, err = g.cachedView(y, n0*out, gn*out); err != nil {
		return nil, nil, err
	}
	return xv, yv, nil
}

func (o *op) conv2dBackward(g *Graph) error {
	dev, win, dy, cols := g.dev, o.ext.win, o.out.grad, o.ext.aux
	n, oc, ck, p := win.N, o.w.shape[0], win.ColRows(), win.OutH()*win.OutW()
	if o.b != nil && o.b.requiresGrad {
		dst, beta, err := g.gradDst(o.b)
		if err != nil {
			return err
		}
		if err := dev.ChannelBiasGrad(dst, dy, n, oc, p, beta); err != nil {
			return err
		}
	}
	if group := convGroup(g.dev, n, oc, ck, p); group < n {
		return o.conv2dBackwardGroups(g, group)
	}
	var scratch device.Buffer // N·CK·P: permuted columns, then dcols
	if o.w.requiresGrad {
		dst, beta, err := g.gradDst(o.w)
		if err != nil {
			return err
		}
		switch {
		case n == 1:
			if err := dev.Gemm(false, true, oc, ck, p, 1, dy, cols, beta, dst); err != nil {
				return err
			}
		case oc*ck <= (oc+ck)*p:
			// One product per image into n partial gradients, then their
			// column sums in image order: the partials are smaller than the
			// permuted copies below, and nothing large is copied.
			part, err := g.buffer(n * oc * ck)
			if err != nil {
				return err
			}
			if err := dev.GemmBatched(false, true, oc, ck, p, 1, dy, oc*p, cols, ck*p, 0, part, oc*ck, n); err != nil {
				return err
			}
			if err := dev.BiasGrad(dst, part, n, oc*ck, beta); err != nil {
				return err
			}
		default:
			dyT, err := g.buffer(n * oc * p)
			if err != nil {
				return err
			}
			if scratch, err = g.buffer(n * ck * p); err != nil {
				return err
			}
			// [n, oc, p] → [oc, n, p] (and the columns alike), written with
			// the contiguous p-long rows last so that each copy moves a row,
			// not one element.
			if err := dev.Permute4(dy, dyT, [4]int{1, n, oc, p}, [4]int{0, 2, 1, 3}); err != nil {
				return err
			}
			if err := dev.Permute4(cols, scratch, [4]int{1, n, ck, p}, [4]int{0, 2, 1, 3}); err != nil {
				return err
			}
			if err := dev.Gemm(false, true, oc, ck, n*p, 1, dyT, scratch, beta, dst); err != nil {
				return err
			}
		}
	}
	if !o.x.requiresGrad {
		return nil
	}
	if scratch == nil {
		var err error
		if scratch, err = g.buffer(n * ck * p); err != nil {
			return err
		}
	}
	if err := dev.GemmBatched(true, false, ck, p, oc, 1, o.w.val, 0, dy, oc*p, 0, scratch, ck*p, n); err != nil {
		return err
	}
	dst, beta, err := g.gradDst(o.x)
	if err != nil {
		return err
	}
	return dev.Col2Im(scratch, dst, win, beta)
}

// conv2dBackwardGroups is the backward of a Conv2d that ran in groups of
// images: per group, the columns again (Im2Col into the forward's scratch,
// o.ext.aux), the dW partial products of its images, Wᵀ·dy into the same
// scratch and Col2Im into dx; after the last group, BiasGrad sums the
// partials in image order, as the whole-batch path does.
func (o *op) conv2dBackwardGroups(g *Graph, group int) error {
	dev, win, dy, scr := g.dev, o.ext.win, o.out.grad, o.ext.aux
	n, oc, ck, p := win.N, o.w.shape[0], win.ColRows(), win.OutH()*win.OutW()
	in := win.C * win.H * win.W
	var part, dxDst device.Buffer
	var dxBeta float32
	if o.w.requiresGrad {
		var err error
		if part, err = g.buffer(n * oc * ck); err != nil {
			return err
		}
	}
	if o.x.requiresGrad {
		var err error
		if dxDst, dxBeta, err = g.gradDst(o.x); err != nil {
			return err
		}
	}
	for n0 := 0; n0 < n; n0 += group {
		gn := min(group, n-n0)
		wg := win
		wg.N = gn
		dyv, err := g.cachedView(dy, n0*oc*p, gn*oc*p)
		if err != nil {
			return err
		}
		if part != nil {
			xv, partv, err := g.convViews(o.x.val, n0, gn, in, part, oc*ck)
			if err != nil {
				return err
			}
			if err := dev.Im2Col(xv, scr, wg); err != nil {
				return err
			}
			if err := dev.GemmBatched(false, true, oc, ck, p, 1, dyv, oc*p, scr, ck*p, 0, partv, oc*ck, gn); err != nil {
				return err
			}
		}
		if dxDst != nil {
			dxv, err := g.cachedView(dxDst, n0*in, gn*in)
			if err != nil {
				return err
			}
			if err := dev.GemmBatched(true, false, ck, p, oc, 1, o.w.val, 0, dyv, oc*p, 0, scr, ck*p, gn); err != nil {
				return err
			}
			if err := dev.Col2Im(scr, dxv, wg, dxBeta); err != nil {
				return err
			}
		}
	}
	if part == nil {
		return nil
	}
	dst, beta, err := g.gradDst(o.w)
	if err != nil {
		return err
	}
	return dev.BiasGrad(dst, part, n, oc*ck, beta)
}

// poolWindow checks a pooling call and returns its geometry. Padding may
// be at most half the window, as PyTorch requires.
func poolWindow(name string, x *Tensor, kernel, stride, padding [2]int) (device.Window2D, error) {
	var win device.Window2D
	if x == nil {
		return win, fmt.Errorf("nn: %s: nil input", name)
	}
	if len(x.shape) != 4 {
		return win, fmt.Errorf("nn: %s: input has shape %v, expected [N, C, H, W]", name, x.shape)
	}
	win = device.Window2D{N: x.shape[0], C: x.shape[1], H: x.shape[2], W: x.shape[3], KH: kernel[0], KW: kernel[1],
		StrideH: stride[0], StrideW: stride[1], PadH: padding[0], PadW: padding[1], DilH: 1, DilW: 1}
	if err := checkWindow(name, win, x); err != nil {
		return win, err
	}
	if 2*win.PadH > win.KH || 2*win.PadW > win.KW {
		return win, fmt.Errorf("nn: %s: padding [%d %d] for kernel [%d %d], expected at most half the kernel", name, win.PadH, win.PadW, win.KH, win.KW)
	}
	return win, nil
}

// MaxPool2d is nn.MaxPool2d(kernel, stride, padding) (dilation 1,
// ceil_mode False) on [N, C, H, W]: each output is its window's largest
// input. The winners' positions are kept (int32 scratch) for backward,
// which routes dy to them (MaxPool2DGrad).
func (g *Graph) MaxPool2d(x *Tensor, kernel, stride, padding [2]int) (*Tensor, error) {
	win, err := poolWindow("MaxPool2d", x, kernel, stride, padding)
	if err != nil {
		return nil, err
	}
	y, err := g.newValue([]int{win.N, win.C, win.OutH(), win.OutW()}, x.requiresGrad)
	if err != nil {
		return nil, wrap("MaxPool2d", err)
	}
	idx, err := g.int32Buffer(y.n)
	if err != nil {
		return nil, wrap("MaxPool2d", err)
	}
	if err := g.dev.MaxPool2D(x.val, y.val, idx, win); err != nil {
		return nil, wrap("MaxPool2d", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opMaxPool2d, x: x, out: y, ext: opExt{win: win, aux: idx}})
	}
	return y, nil
}

// AvgPool2d is nn.AvgPool2d(kernel, stride, padding) with PyTorch's
// defaults (count_include_pad True, ceil_mode False) on [N, C, H, W].
// Backward spreads each dy evenly over its window (AvgPool2DGrad).
func (g *Graph) AvgPool2d(x *Tensor, kernel, stride, padding [2]int) (*Tensor, error) {
	win, err := poolWindow("AvgPool2d", x, kernel, stride, padding)
	if err != nil {
		return nil, err
	}
	y, err := g.newValue([]int{win.N, win.C, win.OutH(), win.OutW()}, x.requiresGrad)
	if err != nil {
		return nil, wrap("AvgPool2d", err)
	}
	if err := g.dev.AvgPool2D(x.val, y.val, win); err != nil {
		return nil, wrap("AvgPool2d", err)
	}
	if y.requiresGrad {
		g.record(op{kind: opAvgPool2d, x: x, out: y, ext: opExt{win: win}})
	}
	return y, nil
}

// AdaptiveAvgPool2d is nn.AdaptiveAvgPool2d((outH, outW)) on
// [N, C, H, W]: PyTorch's adaptive windows (see device
// AdaptiveAvgPool2D); (1, 1) is global average pooling.
func (g *Graph) AdaptiveAvgPool2d(x *Tensor, outH, outW int) (*Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("nn: AdaptiveAvgPool2d: nil input")
	}
	if len(x.shape) != 4 {
		return nil, fmt.Errorf("nn: AdaptiveAvgPool2d: input has shape %v, expected [N, C, H, W]", x.shape)
	}
	if outH < 1 || outW < 1 {
		return nil, fmt.Errorf("nn: AdaptiveAvgPool2d: output size [%d %d], expected ≥ 1", outH, outW)
	}
	win := device.Window2D{N: x.shape[0], C: x.shape[1], H: x.shape[2], W: x.shape[3], KH: outH, KW: outW}
	y, err := g.newValue([]int{win.N, win.C, outH, outW}, x.requiresGrad)
	if err != nil {
		return nil, wrap("AdaptiveAvgPool2d", err)
	}
	if err := g.dev.AdaptiveAvgPool2D(x.val, y.val, win.N, win.C, win.H, win.W, outH, outW); err != nil {
		return nil, wrap("AdaptiveAvgPool2d", err)
	}
	if y.requiresGrad {
		// win.KH, win.KW carry the output size.
		g.record(op{kind: opAdaptiveAvgPool2d, x: x, out: y, ext: opExt{win: win}})
	}
	return y, nil
}

func (o *op) poolBackward(g *Graph) error {
	if !o.x.requiresGrad {
		return nil
	}
	dev, win, dy := g.dev, o.ext.win, o.out.grad
	return g.contribute(o.x, func(dst device.Buffer) error {
		switch o.kind {
		case opMaxPool2d:
			return dev.MaxPool2DGrad(dy, o.ext.aux, dst, win)
		case opAvgPool2d:
			return dev.AvgPool2DGrad(dy, dst, win)
		}
		return dev.AdaptiveAvgPool2DGrad(dy, dst, win.N, win.C, win.H, win.W, win.KH, win.KW)
	})
}
