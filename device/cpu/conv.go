package cpu

// The conv family: im2col and its adjoint, the per-channel bias of a
// convolution and its gradient, and max, average and adaptive average
// pooling with their gradients, on NCHW planes. Each call is split across
// the workers by whole planes (one (image, channel) pair, or one channel
// for ChannelBiasGrad), so no two chunks write the same element and every
// sum runs in the same order whatever the split: results do not depend on
// the number of cores. Gradients gather per input element in the order the
// CUDA kernels use, so both backends round alike.

import (
	"math"
	"sync"

	"github.com/kilnml/kiln/device"
)

// convOp selects the loop convKern.run executes.
type convOp uint8

const (
	opIm2Col convOp = iota + 1
	opCol2Im
	opChannelBias
	opChannelBiasGrad
	opMaxPool
	opMaxPoolGrad
	opAvgPool
	opAvgPoolGrad
	opAdaptivePool
	opAdaptivePoolGrad
)

// convKern is the argument block of one conv-family call. Its items are
// planes: (image, channel) pairs for the window primitives, (outer,
// channel) planes for AddChannelBias, channels for ChannelBiasGrad.
type convKern struct {
	op   convOp
	g    device.Window2D
	oh   int // output height and width (the adaptive ones for adaptive pooling)
	ow   int
	a, b []float32 // input and output of the call (see each case of run)
	idx  []int32
	beta float32
	// AddChannelBias / ChannelBiasGrad layout [outer, channels, inner].
	outer, channels, inner int
}

// convKerns recycles argument blocks: the Device's own block (d.k) belongs
// to kernels.go, and a block made per call would be a heap allocation
// (the workers receive it as an interface). sync.Pool hands the same
// blocks back in steady state, and works for several devices at once.
var convKerns = sync.Pool{New: func() any { return new(convKern) }}

// runConv runs k over items planes of work elements each: serially when the
// whole call is below ewGrain elements, else in chunks of whole planes. It
// then drops the slices k holds and returns it to the pool.
func (d *Device) runConv(k *convKern, items, work int) {
	grain := max(1, ewGrain/max(work, 1))
	d.w.parallel(k, items, d.w.chunks(items, grain), 1)
	*k = convKern{}
	convKerns.Put(k)
}

func newConvKern() *convKern { return convKerns.Get().(*convKern) }

func (k *convKern) run(_, lo, hi int) {
	switch k.op {
	case opIm2Col:
		k.im2col(lo, hi)
	case opCol2Im:
		k.col2im(lo, hi)
	case opChannelBias:
		for p := lo; p < hi; p++ {
			v := k.b[p%k.channels]
			row := k.a[p*k.inner : (p+1)*k.inner]
			for i := range row {
				row[i] += v
			}
		}
	case opChannelBiasGrad:
		k.channelBiasGrad(lo, hi)
	case opMaxPool:
		k.maxPool(lo, hi)
	case opMaxPoolGrad:
		k.maxPoolGrad(lo, hi)
	case opAvgPool:
		k.avgPool(lo, hi)
	case opAvgPoolGrad:
		k.avgPoolGrad(lo, hi)
	case opAdaptivePool:
		k.adaptivePool(lo, hi)
	case opAdaptivePoolGrad:
		k.adaptivePoolGrad(lo, hi)
	}
}

// validRange returns the outputs [lo, hi) of a row of n outputs whose input
// coordinate start + o·stride lies in [0, size).
func validRange(start, stride, size, n int) (lo, hi int) {
	if start < 0 {
		lo = (-start + stride - 1) / stride
	}
	if rest := size - start; rest > 0 {
		hi = (rest + stride - 1) / stride
	}
	hi = min(hi, n)
	lo = min(lo, hi)
	return lo, hi
}

// im2col unfolds planes [lo, hi): plane p = n·C + c writes the KH·KW rows
// (c·KH + i)·KW + j of image n's [C·KH·KW, OH·OW] matrix.
func (k *convKern) im2col(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	l := oh * ow
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*g.W : (p+1)*g.H*g.W]
		// Image n's matrix starts at n·C·KH·KW·L; channel c's rows at
		// c·KH·KW·L within it: together p·KH·KW·L.
		rows := k.b[p*g.KH*g.KW*l : (p+1)*g.KH*g.KW*l]
		for i := 0; i < g.KH; i++ {
			for j := 0; j < g.KW; j++ {
				row := rows[(i*g.KW+j)*l : (i*g.KW+j+1)*l]
				w0 := j*g.DilW - g.PadW
				wlo, whi := validRange(w0, g.StrideW, g.W, ow)
				for r := 0; r < oh; r++ {
					out := row[r*ow : (r+1)*ow]
					h := r*g.StrideH - g.PadH + i*g.DilH
					if h < 0 || h >= g.H {
						clear(out)
						continue
					}
					xr := x[h*g.W : (h+1)*g.W]
					clear(out[:wlo])
					if g.StrideW == 1 {
						copy(out[wlo:whi], xr[w0+wlo:w0+whi])
					} else {
						for c := wlo; c < whi; c++ {
							out[c] = xr[w0+c*g.StrideW]
						}
					}
					clear(out[whi:])
				}
			}
		}
	}
}

// col2im folds planes [lo, hi) back: dx = beta·dx, then each row (i, j) of
// the plane's KH·KW rows, in order, adds its entries to the positions they
// came from. Every dx element thus receives its terms in ascending (i, j),
// the order the CUDA kernel gathers them in.
func (k *convKern) col2im(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	l := oh * ow
	for p := lo; p < hi; p++ {
		dx := k.b[p*g.H*g.W : (p+1)*g.H*g.W]
		switch k.beta {
		case 0:
			clear(dx)
		case 1:
		default:
			for i := range dx {
				dx[i] = float32(k.beta * dx[i])
			}
		}
		rows := k.a[p*g.KH*g.KW*l : (p+1)*g.KH*g.KW*l]
		for i := 0; i < g.KH; i++ {
			for j := 0; j < g.KW; j++ {
				row := rows[(i*g.KW+j)*l : (i*g.KW+j+1)*l]
				w0 := j*g.DilW - g.PadW
				wlo, whi := validRange(w0, g.StrideW, g.W, ow)
				for r := 0; r < oh; r++ {
					h := r*g.StrideH - g.PadH + i*g.DilH
					if h < 0 || h >= g.H {
						continue
					}
					src := row[r*ow : (r+1)*ow]
					dr := dx[h*g.W : (h+1)*g.W]
					for c := wlo; c < whi; c++ {
						dr[w0+c*g.StrideW] += src[c]
					}
				}
			}
		}
	}
}

// channelBiasGrad sums channels [lo, hi) over outer then inner, in float64.
func (k *convKern) channelBiasGrad(lo, hi int) {
	for c := lo; c < hi; c++ {
		s := 0.0
		for o := 0; o < k.outer; o++ {
			p := o*k.channels + c
			for _, v := range k.a[p*k.inner : (p+1)*k.inner] {
				s += float64(v)
			}
		}
		if k.beta != 0 {
			s += float64(k.beta) * float64(k.b[c])
		}
		k.b[c] = float32(s)
	}
}

// maxPool writes planes [lo, hi): the largest input of each window and its
// position h·W + w, the first on ties in row-major window order. A NaN
// wins (the first one), as PyTorch propagates it; padding never does. A
// window without any input element (possible only with dilation) gives
// −Inf and −1.
func (k *convKern) maxPool(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	negInf := float32(math.Inf(-1))
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*g.W : (p+1)*g.H*g.W]
		y := k.b[p*oh*ow : (p+1)*oh*ow]
		idx := k.idx[p*oh*ow : (p+1)*oh*ow]
		for r := 0; r < oh; r++ {
			for c := 0; c < ow; c++ {
				best, bi := negInf, int32(-1)
				for i := 0; i < g.KH; i++ {
					h := r*g.StrideH - g.PadH + i*g.DilH
					if h < 0 || h >= g.H {
						continue
					}
					for j := 0; j < g.KW; j++ {
						w := c*g.StrideW - g.PadW + j*g.DilW
						if w < 0 || w >= g.W {
							continue
						}
						v := x[h*g.W+w]
						if bi < 0 || v > best || (v != v && best == best) {
							best, bi = v, int32(h*g.W+w)
						}
					}
				}
				y[r*ow+c], idx[r*ow+c] = best, bi
			}
		}
	}
}

// tapOf returns the window tap t (0 ≤ t < k) of output o whose input
// coordinate start(o) + t·dil equals x, or −1 when x is not a tap of it.
func tapOf(x, o, stride, pad, dil, k int) int {
	d := x - (o*stride - pad)
	if d < 0 || d%dil != 0 || d/dil >= k {
		return -1
	}
	return d / dil
}

// maxPoolGrad routes planes [lo, hi) of dy to the positions idx names,
// visiting the outputs in row-major order, so each dx element receives its
// terms in ascending (oh, ow), the order the CUDA kernel gathers them in.
// An idx that is not a tap of its own window (MaxPool2D never writes one;
// −1 marks a window without inputs) routes nothing.
func (k *convKern) maxPoolGrad(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	hw := g.H * g.W
	for p := lo; p < hi; p++ {
		dy := k.a[p*oh*ow : (p+1)*oh*ow]
		idx := k.idx[p*oh*ow : (p+1)*oh*ow]
		dx := k.b[p*hw : (p+1)*hw]
		clear(dx)
		for r := 0; r < oh; r++ {
			for c := 0; c < ow; c++ {
				q := int(idx[r*ow+c])
				if q < 0 || q >= hw ||
					tapOf(q/g.W, r, g.StrideH, g.PadH, g.DilH, g.KH) < 0 ||
					tapOf(q%g.W, c, g.StrideW, g.PadW, g.DilW, g.KW) < 0 {
					continue
				}
				dx[q] += dy[r*ow+c]
			}
		}
	}
}

// avgPool writes planes [lo, hi): each window's sum in float64 (row-major
// window order, padding as zeros) divided by KH·KW, rounded once.
func (k *convKern) avgPool(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	div := float64(g.KH * g.KW)
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*g.W : (p+1)*g.H*g.W]
		y := k.b[p*oh*ow : (p+1)*oh*ow]
		for r := 0; r < oh; r++ {
			h0 := r*g.StrideH - g.PadH
			h1 := min(h0+g.KH, g.H)
			h0 = max(h0, 0)
			for c := 0; c < ow; c++ {
				w0 := c*g.StrideW - g.PadW
				w1 := min(w0+g.KW, g.W)
				w0 = max(w0, 0)
				w1 = max(w1, w0) // a window wholly in the padding sums nothing
				s := 0.0
				for h := h0; h < h1; h++ {
					for _, v := range x[h*g.W+w0 : h*g.W+w1] {
						s += float64(v)
					}
				}
				y[r*ow+c] = float32(s / div)
			}
		}
	}
}

// windowsOver returns the outputs [lo, hi) of a row of n whose windows
// (start o·stride − pad, span k, dilation 1) cover input coordinate x.
func windowsOver(x, stride, pad, k, n int) (lo, hi int) {
	if t := x + pad - k + 1; t > 0 {
		lo = (t + stride - 1) / stride
	}
	hi = min((x+pad)/stride+1, n)
	return lo, max(lo, hi)
}

// avgPoolGrad sets planes [lo, hi) of dx: for each input element, the
// float64 sum of the dy of the windows covering it, in ascending (oh, ow),
// divided by KH·KW and rounded once.
func (k *convKern) avgPoolGrad(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	div := float64(g.KH * g.KW)
	for p := lo; p < hi; p++ {
		dy := k.a[p*oh*ow : (p+1)*oh*ow]
		dx := k.b[p*g.H*g.W : (p+1)*g.H*g.W]
		for h := 0; h < g.H; h++ {
			rlo, rhi := windowsOver(h, g.StrideH, g.PadH, g.KH, oh)
			for w := 0; w < g.W; w++ {
				clo, chi := windowsOver(w, g.StrideW, g.PadW, g.KW, ow)
				s := 0.0
				for r := rlo; r < rhi; r++ {
					for _, v := range dy[r*ow+clo : r*ow+chi] {
						s += float64(v)
					}
				}
				dx[h*g.W+w] = float32(s / div)
			}
		}
	}
}

// adaptiveWindow is PyTorch's adaptive window o of n over size inputs:
// [floor(o·size/n), ceil((o+1)·size/n)).
func adaptiveWindow(o, size, n int) (lo, hi int) {
	return o * size / n, ((o+1)*size + n - 1) / n
}

// adaptivePool writes planes [lo, hi) of y (g.H, g.W are the input's
// height and width; k.oh, k.ow the output's): each window's float64 sum,
// row-major, divided by its element count, rounded once.
func (k *convKern) adaptivePool(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*g.W : (p+1)*g.H*g.W]
		y := k.b[p*oh*ow : (p+1)*oh*ow]
		for r := 0; r < oh; r++ {
			h0, h1 := adaptiveWindow(r, g.H, oh)
			for c := 0; c < ow; c++ {
				w0, w1 := adaptiveWindow(c, g.W, ow)
				s := 0.0
				for h := h0; h < h1; h++ {
					for _, v := range x[h*g.W+w0 : h*g.W+w1] {
						s += float64(v)
					}
				}
				y[r*ow+c] = float32(s / float64((h1-h0)*(w1-w0)))
			}
		}
	}
}

// adaptivePoolGrad sets planes [lo, hi) of dx: for each input element, the
// float64 sum over the windows covering it, in ascending (oh, ow), of dy
// divided by the window's element count, rounded once. The windows that
// can cover row h are oh in [floor(h·outH/H), ceil((h+1)·outH/H)); each is
// still tested, so the range only has to hold them all.
func (k *convKern) adaptivePoolGrad(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	for p := lo; p < hi; p++ {
		dy := k.a[p*oh*ow : (p+1)*oh*ow]
		dx := k.b[p*g.H*g.W : (p+1)*g.H*g.W]
		for h := 0; h < g.H; h++ {
			rlo, rhi := adaptiveWindow(h, oh, g.H)
			for w := 0; w < g.W; w++ {
				clo, chi := adaptiveWindow(w, ow, g.W)
				s := 0.0
				for r := rlo; r < rhi; r++ {
					h0, h1 := adaptiveWindow(r, g.H, oh)
					if h < h0 || h >= h1 {
						continue
					}
					for c := clo; c < chi; c++ {
						w0, w1 := adaptiveWindow(c, g.W, ow)
						if w < w0 || w >= w1 {
							continue
						}
						s += float64(dy[r*ow+c]) / float64((h1-h0)*(w1-w0))
					}
				}
				dx[h*g.W+w] = float32(s)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// The primitives: argument checks, then one runConv.

// windowArgs checks the device, the geometry and the element counts of a
// window primitive, returning the input and output counts.
func (d *Device) windowArgs(op string, g device.Window2D) (in, out int, err error) {
	if d.closed {
		return 0, 0, errClosed(op)
	}
	if err := g.Check(op); err != nil {
		return 0, 0, err
	}
	// Check bounds both counts by 2⁴⁰: the products do not overflow.
	return g.N * g.C * g.H * g.W, g.N * g.C * g.OutH() * g.OutW(), nil
}

// Im2Col unfolds the NCHW x into cols, laid out [N, C·KH·KW, OH·OW]
// (see device.Ops2), zeros where a window covers the padding.
func (d *Device) Im2Col(x, cols device.Buffer, g device.Window2D) error {
	const op = "Im2Col"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	nc, err := area(op, "N·C·KH·KW·OH·OW", out, g.KH*g.KW)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	cf, err := d.f32(op, "cols", cols, nc)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opIm2Col, g: g, oh: g.OutH(), ow: g.OutW(), a: xf, b: cf}
	d.runConv(k, g.N*g.C, nc/(g.N*g.C))
	return nil
}

// Col2Im sets dx = beta·dx + the adjoint of Im2Col applied to cols, each
// dx element summing its terms in ascending window offset (i, j). When
// beta is 0, dx is not read.
func (d *Device) Col2Im(cols, dx device.Buffer, g device.Window2D, beta float32) error {
	const op = "Col2Im"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	nc, err := area(op, "N·C·KH·KW·OH·OW", out, g.KH*g.KW)
	if err != nil {
		return err
	}
	cf, err := d.f32(op, "cols", cols, nc)
	if err != nil {
		return err
	}
	df, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opCol2Im, g: g, oh: g.OutH(), ow: g.OutW(), a: cf, b: df, beta: beta}
	d.runConv(k, g.N*g.C, nc/(g.N*g.C))
	return nil
}

// channelArgs checks the layout [outer, channels, inner] and returns its
// element count.
func (d *Device) channelArgs(op string, outer, channels, inner int) (int, error) {
	if d.closed {
		return 0, errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return 0, device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	planes, err := area(op, "outer×channels", outer, channels)
	if err != nil {
		return 0, err
	}
	return area(op, "outer×channels×inner", planes, inner)
}

// AddChannelBias adds bias[c] to x[o, c, i] in place for x laid out
// [outer, channels, inner].
func (d *Device) AddChannelBias(x, bias device.Buffer, outer, channels, inner int) error {
	const op = "AddChannelBias"
	n, err := d.channelArgs(op, outer, channels, inner)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	bf, err := d.f32(op, "bias", bias, channels)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opChannelBias, a: xf, b: bf, outer: outer, channels: channels, inner: inner}
	d.runConv(k, outer*channels, inner)
	return nil
}

// ChannelBiasGrad sets db[c] = beta·db[c] + Σ_{o,i} dy[o, c, i], summed in
// float64 over o then i. When beta is 0, db is not read.
func (d *Device) ChannelBiasGrad(db, dy device.Buffer, outer, channels, inner int, beta float32) error {
	const op = "ChannelBiasGrad"
	n, err := d.channelArgs(op, outer, channels, inner)
	if err != nil {
		return err
	}
	dbf, err := d.f32(op, "db", db, channels)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, n)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opChannelBiasGrad, a: dyf, b: dbf, beta: beta, outer: outer, channels: channels, inner: inner}
	d.runConv(k, channels, outer*inner)
	return nil
}

// MaxPool2D sets y to the largest x of each window and idx to its
// position h·W + w in the input plane (see device.Ops2; a NaN wins, the
// first on ties, and a window holding no input element gives −Inf, −1).
func (d *Device) MaxPool2D(x, y, idx device.Buffer, g device.Window2D) error {
	const op = "MaxPool2D"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if err := g.CheckPlaneIndices(op); err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	ix, err := d.i32(op, "idx", idx, out)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opMaxPool, g: g, oh: g.OutH(), ow: g.OutW(), a: xf, b: yf, idx: ix}
	d.runConv(k, g.N*g.C, (out/(g.N*g.C))*g.KH*g.KW)
	return nil
}

// MaxPool2DGrad sets dx to dy routed to the positions idx names, summed in
// ascending output order where windows overlap.
func (d *Device) MaxPool2DGrad(dy, idx, dx device.Buffer, g device.Window2D) error {
	const op = "MaxPool2DGrad"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if err := g.CheckPlaneIndices(op); err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	ix, err := d.i32(op, "idx", idx, out)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opMaxPoolGrad, g: g, oh: g.OutH(), ow: g.OutW(), a: dyf, b: dxf, idx: ix}
	d.runConv(k, g.N*g.C, in/(g.N*g.C)+out/(g.N*g.C))
	return nil
}

// avgArgs adds AvgPool2D's own restriction to windowArgs: no dilation.
func (d *Device) avgArgs(op string, g device.Window2D) (in, out int, err error) {
	in, out, err = d.windowArgs(op, g)
	if err == nil && (g.DilH != 1 || g.DilW != 1) {
		err = device.Errorf(op, "g.DilH", device.ErrInvalid,
			"average pooling has no dilation: expected DilH = DilW = 1, got %d and %d", g.DilH, g.DilW)
	}
	return in, out, err
}

// AvgPool2D sets y to the mean of each window, the padding counted as
// zeros (count_include_pad=True): float64 sums divided by KH·KW.
func (d *Device) AvgPool2D(x, y device.Buffer, g device.Window2D) error {
	const op = "AvgPool2D"
	in, out, err := d.avgArgs(op, g)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opAvgPool, g: g, oh: g.OutH(), ow: g.OutW(), a: xf, b: yf}
	d.runConv(k, g.N*g.C, (out/(g.N*g.C))*g.KH*g.KW)
	return nil
}

// AvgPool2DGrad sets dx to the gradient of AvgPool2D: each element gets
// the sum of the dy of the windows covering it, divided by KH·KW.
func (d *Device) AvgPool2DGrad(dy, dx device.Buffer, g device.Window2D) error {
	const op = "AvgPool2DGrad"
	in, out, err := d.avgArgs(op, g)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opAvgPoolGrad, g: g, oh: g.OutH(), ow: g.OutW(), a: dyf, b: dxf}
	d.runConv(k, g.N*g.C, in/(g.N*g.C)*g.KH*g.KW)
	return nil
}

// adaptiveArgs checks the dimensions of adaptive pooling and returns the
// input and output element counts and the geometry the loops use.
func (d *Device) adaptiveArgs(op string, n, c, h, w, outH, outW int) (in, out int, err error) {
	if d.closed {
		return 0, 0, errClosed(op)
	}
	if n < 1 || c < 1 || h < 1 || w < 1 || outH < 1 || outW < 1 {
		return 0, 0, device.CheckDims(op, "n", n, "c", c, "h", h, "w", w, "outH", outH, "outW", outW)
	}
	for _, f := range [...]struct {
		name string
		v    int
	}{{"n", n}, {"c", c}, {"h", h}, {"w", w}, {"outH", outH}, {"outW", outW}} {
		if f.v > math.MaxInt32 {
			return 0, 0, device.Errorf(op, f.name, device.ErrInvalid, "expected %s ≤ 2³¹−1, got %d", f.name, f.v)
		}
	}
	planes, err := area(op, "n×c", n, c)
	if err != nil {
		return 0, 0, err
	}
	hw, err := area(op, "h×w", h, w)
	if err != nil {
		return 0, 0, err
	}
	ohw, err := area(op, "outH×outW", outH, outW)
	if err != nil {
		return 0, 0, err
	}
	if in, err = area(op, "n×c×h×w", planes, hw); err != nil {
		return 0, 0, err
	}
	if out, err = area(op, "n×c×outH×outW", planes, ohw); err != nil {
		return 0, 0, err
	}
	return in, out, nil
}

// AdaptiveAvgPool2D averages x over PyTorch's adaptive windows into y,
// laid out [n·c, outH, outW] (float64 sums, rounded once).
func (d *Device) AdaptiveAvgPool2D(x, y device.Buffer, n, c, h, w, outH, outW int) error {
	const op = "AdaptiveAvgPool2D"
	in, out, err := d.adaptiveArgs(op, n, c, h, w, outH, outW)
	if err != nil {
		return err
	}
	xf, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yf, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opAdaptivePool, g: device.Window2D{N: n, C: c, H: h, W: w}, oh: outH, ow: outW, a: xf, b: yf}
	d.runConv(k, n*c, h*w+outH*outW)
	return nil
}

// AdaptiveAvgPool2DGrad sets dx to the gradient of AdaptiveAvgPool2D.
func (d *Device) AdaptiveAvgPool2DGrad(dy, dx device.Buffer, n, c, h, w, outH, outW int) error {
	const op = "AdaptiveAvgPool2DGrad"
	in, out, err := d.adaptiveArgs(op, n, c, h, w, outH, outW)
	if err != nil {
		return err
	}
	dyf, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	dxf, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	k := newConvKern()
	*k = convKern{op: opAdaptivePoolGrad, g: device.Window2D{N: n, C: c, H: h, W: w}, oh: outH, ow: outW, a: dyf, b: dxf}
	d.runConv(k, n*c, 4*h*w)
	return nil
}
