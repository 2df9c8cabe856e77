//go:build cuda

package cuda

// The conv family on the GPU: the launch glue of kernels/conv.cu. Every
// kernel but channel_bias_grad_f32 is a grid-stride loop over its outputs
// (d.grid1D); the gradients gather per input element in a fixed order, so
// none uses atomics and results repeat bit for bit.

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// windowArgs checks the device and the geometry of a window primitive
// (device.Window2D.Check, plus the int32 range of the padded extent that
// the kernels' coordinate arithmetic needs) and returns the input and
// output element counts.
func (d *Device) windowArgs(op string, g device.Window2D) (in, out int, err error) {
	if d.closed {
		return 0, 0, d.errClosed(op)
	}
	if err := g.Check(op); err != nil {
		return 0, 0, err
	}
	if int64(g.H)+2*int64(g.PadH) > math.MaxInt32 || int64(g.W)+2*int64(g.PadW) > math.MaxInt32 {
		return 0, 0, device.Errorf(op, "g", device.ErrInvalid,
			"the padded input H+2·PadH = %d, W+2·PadW = %d must each fit in an int32 for the CUDA kernels",
			int64(g.H)+2*int64(g.PadH), int64(g.W)+2*int64(g.PadW))
	}
	// Check bounds both counts by 2⁴⁰: the products do not overflow.
	return g.N * g.C * g.H * g.W, g.N * g.C * g.OutH() * g.OutW(), nil
}

// launchWindow queues kernel k over work items (one thread each, grid
// d.grid1D) with the argument slots lead, then the geometry H, W, KH, KW,
// SH, SW, PH, PW, [DH, DW,] OH, OW (dilation only when dil), then trail.
// The slots live in an array on the stack: a launch allocates nothing.
func (d *Device) launchWindow(k kernelID, work int, g device.Window2D, dil bool, lead []uint64, trail ...uint64) error {
	var a [maxArgs]uint64
	n := copy(a[:], lead)
	for _, v := range [...]int{g.H, g.W, g.KH, g.KW, g.StrideH, g.StrideW, g.PadH, g.PadW} {
		a[n] = argI32(v)
		n++
	}
	if dil {
		a[n], a[n+1] = argI32(g.DilH), argI32(g.DilW)
		n += 2
	}
	a[n], a[n+1] = argI32(g.OutH()), argI32(g.OutW())
	n += 2
	n += copy(a[n:], trail)
	return d.run(func() error { return d.launch(k, d.grid1D(int64(work)), a[:n]...) })
}

// Im2Col unfolds the NCHW x into cols, laid out [N, C·KH·KW, OH·OW] (see
// device.Ops2): one thread per output position, writing its KH·KW entries.
func (d *Device) Im2Col(x, cols device.Buffer, g device.Window2D) error {
	const op = "Im2Col"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if out > math.MaxInt64/(g.KH*g.KW) || out*g.KH*g.KW > 1<<40 {
		return device.Errorf(op, "g", device.ErrSize, "N·C·KH·KW·OH·OW elements is more than any buffer holds")
	}
	xb, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	cb, err := d.f32(op, "cols", cols, out*g.KH*g.KW)
	if err != nil {
		return err
	}
	return d.launchWindow(kIm2Col, out, g, true, []uint64{p(xb), p(cb), argI64(out)})
}

// Col2Im sets dx = beta·dx + the adjoint of Im2Col applied to cols,
// gathered: one thread per dx element, adding its terms in ascending
// window offset. When beta is 0, dx is not read.
func (d *Device) Col2Im(cols, dx device.Buffer, g device.Window2D, beta float32) error {
	const op = "Col2Im"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if out > math.MaxInt64/(g.KH*g.KW) || out*g.KH*g.KW > 1<<40 {
		return device.Errorf(op, "g", device.ErrSize, "N·C·KH·KW·OH·OW elements is more than any buffer holds")
	}
	cb, err := d.f32(op, "cols", cols, out*g.KH*g.KW)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	return d.launchWindow(kCol2Im, in, g, true, []uint64{p(cb), p(dxb), argI64(in)}, argF32(beta))
}

// channelArgs checks the layout [outer, channels, inner] and returns its
// element count.
func (d *Device) channelArgs(op string, outer, channels, inner int) (int, error) {
	if d.closed {
		return 0, d.errClosed(op)
	}
	if outer < 1 || channels < 1 || inner < 1 {
		return 0, device.CheckDims(op, "outer", outer, "channels", channels, "inner", inner)
	}
	const lim = math.MaxInt32
	if outer > lim || channels > lim || inner > lim || outer > (1<<40)/channels || outer*channels > (1<<40)/inner {
		return 0, device.Errorf(op, "", device.ErrInvalid,
			"outer, channels and inner must each fit in an int32 and their product be at most 2⁴⁰, got %d, %d, %d",
			outer, channels, inner)
	}
	return outer * channels * inner, nil
}

// AddChannelBias adds bias[c] to x[o, c, i] in place for x laid out
// [outer, channels, inner].
func (d *Device) AddChannelBias(x, bias device.Buffer, outer, channels, inner int) error {
	const op = "AddChannelBias"
	n, err := d.channelArgs(op, outer, channels, inner)
	if err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	bb, err := d.f32(op, "bias", bias, channels)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kAddChannelBias, d.grid1D(int64(n)), p(xb), p(bb), argI64(n), argI32(channels), argI32(inner))
	})
}

// ChannelBiasGrad sets db[c] = beta·db[c] + Σ_{o,i} dy[o, c, i] in double:
// one block per channel, a fixed tree inside it. When beta is 0, db is not
// read.
func (d *Device) ChannelBiasGrad(db, dy device.Buffer, outer, channels, inner int, beta float32) error {
	const op = "ChannelBiasGrad"
	n, err := d.channelArgs(op, outer, channels, inner)
	if err != nil {
		return err
	}
	dbb, err := d.f32(op, "db", db, channels)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, n)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kChannelBiasGrad, uint32(channels), p(dyb), p(dbb), argI32(outer), argI32(channels), argI32(inner), argF32(beta))
	})
}

// MaxPool2D sets y to the largest x of each window and idx to its
// position h·W + w in the input plane (a NaN wins, the first on ties; a
// window holding no input element gives −Inf, −1).
func (d *Device) MaxPool2D(x, y, idx device.Buffer, g device.Window2D) error {
	const op = "MaxPool2D"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if err := g.CheckPlaneIndices(op); err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	ib, err := d.i32(op, "idx", idx, out)
	if err != nil {
		return err
	}
	return d.launchWindow(kMaxPool2D, out, g, true, []uint64{p(xb), p(yb), p(ib), argI64(out)})
}

// MaxPool2DGrad sets dx to dy routed to the positions idx names: one
// thread per input element gathers from the windows that hold it, in
// ascending output order.
func (d *Device) MaxPool2DGrad(dy, idx, dx device.Buffer, g device.Window2D) error {
	const op = "MaxPool2DGrad"
	in, out, err := d.windowArgs(op, g)
	if err != nil {
		return err
	}
	if err := g.CheckPlaneIndices(op); err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	ib, err := d.i32(op, "idx", idx, out)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	return d.launchWindow(kMaxPool2DGrad, in, g, true, []uint64{p(dyb), p(ib), p(dxb), argI64(in)})
}

// avgArgs adds average pooling's own restriction to windowArgs: no
// dilation.
func (d *Device) avgArgs(op string, g device.Window2D) (in, out int, err error) {
	in, out, err = d.windowArgs(op, g)
	if err == nil && (g.DilH != 1 || g.DilW != 1) {
		err = device.Errorf(op, "g.DilH", device.ErrInvalid,
			"average pooling has no dilation: expected DilH = DilW = 1, got %d and %d", g.DilH, g.DilW)
	}
	return in, out, err
}

// AvgPool2D sets y to the mean of each window, the padding counted as
// zeros (count_include_pad=True).
func (d *Device) AvgPool2D(x, y device.Buffer, g device.Window2D) error {
	const op = "AvgPool2D"
	in, out, err := d.avgArgs(op, g)
	if err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	return d.launchWindow(kAvgPool2D, out, g, false, []uint64{p(xb), p(yb), argI64(out)})
}

// AvgPool2DGrad sets dx to the gradient of AvgPool2D, gathered per input
// element.
func (d *Device) AvgPool2DGrad(dy, dx device.Buffer, g device.Window2D) error {
	const op = "AvgPool2DGrad"
	in, out, err := d.avgArgs(op, g)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	return d.launchWindow(kAvgPool2DGrad, in, g, false, []uint64{p(dyb), p(dxb), argI64(in)})
}

// adaptiveArgs checks the dimensions of adaptive pooling and returns the
// input and output element counts.
func (d *Device) adaptiveArgs(op string, n, c, h, w, outH, outW int) (in, out int, err error) {
	if d.closed {
		return 0, 0, d.errClosed(op)
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
	const lim = 1 << 40
	planes := n * c // both below 2³¹: no overflow
	if planes > lim/h || planes*h > lim/w || planes > lim/outH || planes*outH > lim/outW {
		return 0, 0, device.Errorf(op, "", device.ErrSize, "n·c·h·w or n·c·outH·outW elements is more than any buffer holds")
	}
	return planes * h * w, planes * outH * outW, nil
}

// AdaptiveAvgPool2D averages x over PyTorch's adaptive windows into y,
// laid out [n·c, outH, outW].
func (d *Device) AdaptiveAvgPool2D(x, y device.Buffer, n, c, h, w, outH, outW int) error {
	const op = "AdaptiveAvgPool2D"
	in, out, err := d.adaptiveArgs(op, n, c, h, w, outH, outW)
	if err != nil {
		return err
	}
	xb, err := d.f32(op, "x", x, in)
	if err != nil {
		return err
	}
	yb, err := d.f32(op, "y", y, out)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kAdaptiveAvgPool2D, d.grid1D(int64(out)), p(xb), p(yb), argI64(out),
			argI32(h), argI32(w), argI32(outH), argI32(outW))
	})
}

// AdaptiveAvgPool2DGrad sets dx to the gradient of AdaptiveAvgPool2D,
// gathered per input element.
func (d *Device) AdaptiveAvgPool2DGrad(dy, dx device.Buffer, n, c, h, w, outH, outW int) error {
	const op = "AdaptiveAvgPool2DGrad"
	in, out, err := d.adaptiveArgs(op, n, c, h, w, outH, outW)
	if err != nil {
		return err
	}
	dyb, err := d.f32(op, "dy", dy, out)
	if err != nil {
		return err
	}
	dxb, err := d.f32(op, "dx", dx, in)
	if err != nil {
		return err
	}
	return d.run(func() error {
		return d.launch(kAdaptiveAvgPool2DGrad, d.grid1D(int64(in)), p(dyb), p(dxb), argI64(in),
			argI32(h), argI32(w), argI32(outH), argI32(outW))
	})
}
