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
	"github.com/kilnml/kiln/device/cpu/internal/simd"
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
		if g := &k.g; g.StrideH == 1 && g.StrideW == 1 && g.DilH == 1 && g.DilW == 1 && k.ow == g.W {
			k.im2colSame(lo, hi)
		} else {
			k.im2col(lo, hi)
		}
	case opCol2Im:
		if g := &k.g; useAVX2EW && g.KH == 3 && g.KW == 3 && g.PadH == 1 && g.PadW == 1 &&
			g.StrideH == 1 && g.StrideW == 1 && g.DilH == 1 && g.DilW == 1 && g.H <= maxSavedCol {
			k.col2im3x3(lo, hi)
		} else if g.StrideH == 1 && g.StrideW == 1 && g.DilH == 1 && g.DilW == 1 {
			k.col2imS1(lo, hi)
		} else {
			k.col2im(lo, hi)
		}
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
		if k.pool2x2() {
			k.maxPool2x2(lo, hi)
		} else {
			k.maxPool(lo, hi)
		}
	case opMaxPoolGrad:
		if k.pool2x2() {
			k.maxPoolGrad2x2(lo, hi)
		} else {
			k.maxPoolGrad(lo, hi)
		}
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
						if wlo < whi { // else w0+wlo may lie left of the row
							copy(out[wlo:whi], xr[w0+wlo:w0+whi])
						}
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

// im2colSame is im2col for stride 1 and dilation 1 with outputs as wide
// as the input (KW = 2·PadW + 1: the "same" 3×3, padding-1 convolution).
// Row (i, j) of a plane is then the input plane shifted by
// (i − PadH)·W + (j − PadW) elements: one contiguous copy per row instead
// of one per output row, then zeros where the window covers the padding
// (whole output rows above and below the input, one column band at the
// left or right edge where the shift wrapped around a row).
func (k *convKern) im2colSame(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow // ow == g.W
	l := oh * ow
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*g.W : (p+1)*g.H*g.W]
		rows := k.b[p*g.KH*g.KW*l : (p+1)*g.KH*g.KW*l]
		for i := 0; i < g.KH; i++ {
			// Output rows r read input row r − PadH + i: valid for r in [rlo, rhi).
			rlo, rhi := validRange(i-g.PadH, 1, g.H, oh)
			for j := 0; j < g.KW; j++ {
				row := rows[(i*g.KW+j)*l : (i*g.KW+j+1)*l]
				clear(row[:rlo*ow])
				clear(row[rhi*ow:])
				if rlo >= rhi {
					continue
				}
				dj := j - g.PadW // out[r·W + c] = x[(r − PadH + i)·W + c + dj]
				a, b := rlo*ow, rhi*ow
				off := (i-g.PadH)*g.W + dj
				// Clip the first and last elements whose source lies
				// outside the plane (a wrapped column at either end).
				a0 := min(max(a, -off), b)
				b0 := max(min(b, len(x)-off), a0)
				if a0 < b0 {
					copy(row[a0:b0], x[a0+off:b0+off])
				}
				clear(row[a:a0])
				clear(row[b0:b])
				switch {
				case dj < 0: // columns c < −dj read left of the input
					e := min(ow, -dj)
					for r := rlo; r < rhi; r++ {
						zero(row[r*ow : r*ow+e])
					}
				case dj > 0: // columns c ≥ W − dj read right of it
					e := max(0, ow-dj)
					for r := rlo; r < rhi; r++ {
						zero(row[r*ow+e : (r+1)*ow])
					}
				}
			}
		}
	}
}

// zero clears a slice, the one or two elements of a 3×3 or 5×5 padding
// column with plain stores (clear, and the loop the compiler turns into
// it, call memclr, which costs more than those stores).
func zero(s []float32) {
	switch len(s) {
	case 0:
	case 1:
		s[0] = 0
	case 2:
		s[0], s[1] = 0, 0
	default:
		clear(s)
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

// col2imS1 is col2im for stride 1 and dilation 1 (the common 3×3,
// padding-1 convolution): the same sums in the same order, ascending
// (i, j) for every dx element, but built one dx row at a time, so that the
// row stays in registers and L1 while its KH·KW source rows stream past,
// with the KW source rows of one i added in a single pass when KW is 3.
func (k *convKern) col2imS1(lo, hi int) {
	g := k.g
	oh, ow := k.oh, k.ow
	l := oh * ow
	for p := lo; p < hi; p++ {
		dx := k.b[p*g.H*g.W : (p+1)*g.H*g.W]
		rows := k.a[p*g.KH*g.KW*l : (p+1)*g.KH*g.KW*l]
		for h := 0; h < g.H; h++ {
			d := dx[h*g.W : (h+1)*g.W]
			switch k.beta {
			case 0:
				clear(d)
			case 1:
			default:
				for i := range d {
					d[i] = float32(k.beta * d[i])
				}
			}
			if g.KH == 3 && g.KW == 3 && h+g.PadH-2 >= 0 && h+g.PadH < oh {
				// All three window rows see input row h: one pass.
				base := (h + g.PadH) * ow // tap i reads output row h + PadH − i
				var src [9][]float32
				for t := range src {
					i, j := t/3, t%3
					o := (i*3+j)*l + base - i*ow
					src[t] = rows[o : o+ow]
				}
				addRows9(d, &src, g.PadW)
				continue
			}
			for i := 0; i < g.KH; i++ {
				r := h + g.PadH - i // the output row whose tap i reads input row h
				if r < 0 || r >= oh {
					continue
				}
				base := i*g.KW*l + r*ow
				if g.KW == 3 {
					addRows3(d, rows[base:base+ow], rows[base+l:base+l+ow], rows[base+2*l:base+2*l+ow], g.PadW)
					continue
				}
				for j := 0; j < g.KW; j++ {
					addShifted(d, rows[base+j*l:base+j*l+ow], j-g.PadW)
				}
			}
		}
	}
}

// maxSavedCol bounds the map height col2im3x3 takes: the column it saves
// lives in a stack array.
const maxSavedCol = 512

// col2im3x3 is col2im for the 3×3, stride-1, padding-1 window ("same"
// output: OH = H, OW = W) with the AVX2 adds of internal/simd. Tap (i, j)
// adds its row of columns to the dx plane shifted by (1−i)·W + (1−j)
// elements: one flat vector add over the rows the tap reaches, in
// ascending (i, j) as col2im. The flat add also touches the one column
// whose shift wrapped around a row (the last for j = 0, the first for
// j = 2), which the tap does not reach: that column is saved before the
// add and put back after, so every dx element receives exactly col2im's
// terms in col2im's order, each rounded alike (simd.Add is bit for bit
// the scalar float32 add).
func (k *convKern) col2im3x3(lo, hi int) {
	g := k.g
	H, W := g.H, g.W
	hw := H * W
	var saved [maxSavedCol]float32
	for p := lo; p < hi; p++ {
		dx := k.b[p*hw : (p+1)*hw]
		switch k.beta {
		case 0:
			clear(dx)
		case 1:
		default:
			for i := range dx {
				dx[i] = float32(k.beta * dx[i])
			}
		}
		rows := k.a[p*9*hw : (p+1)*9*hw]
		for i := 0; i < 3; i++ {
			// Tap i reaches dx rows h with output row h + 1 − i in [0, H).
			h0, h1 := max(0, i-1), min(H, H+i-1)
			if h0 >= h1 {
				continue
			}
			for j := 0; j < 3; j++ {
				src := rows[(i*3+j)*hw : (i*3+j+1)*hw]
				off := (1-i)*W + (1 - j) // dx[q] += src[q + off]
				wc := -1                 // the wrapped column, if any
				switch j {
				case 0:
					wc = W - 1
				case 2:
					wc = 0
				}
				if wc >= 0 {
					for h := h0; h < h1; h++ {
						saved[h] = dx[h*W+wc]
					}
				}
				a, b := max(h0*W, -off), min(h1*W, hw-off)
				if a < b {
					addFlat(dx[a:b], src[a+off:b+off])
				}
				if wc >= 0 {
					for h := h0; h < h1; h++ {
						dx[h*W+wc] = saved[h]
					}
				}
			}
		}
	}
}

// addFlat sets d += s, the vector kernel over the largest multiple of 8
// elements and the scalar add over the rest.
func addFlat(d, s []float32) {
	_, m, _ := simd.Span(d, false)
	if m > 0 {
		simd.Add(d[:m], d, s, false)
	}
	tail, st := d[m:], s[m:]
	st = st[:len(tail)]
	for i := range tail {
		tail[i] += st[i]
	}
}

// addShifted adds src[c] to d[c+off] wherever 0 ≤ c+off < len(d).
func addShifted(d, src []float32, off int) {
	lo, hi := max(0, -off), min(len(src), len(d)-off)
	if lo >= hi {
		return
	}
	dd, s := d[lo+off:hi+off], src[lo:hi]
	s = s[:len(dd)]
	for c, v := range s {
		dd[c] += v
	}
}

// addRows3 adds the three source rows of window offsets j = 0, 1, 2 (input
// column w = c + j − pad) to the dx row d, in ascending j for every element:
// d[w] = ((d[w] + s0[w+pad]) + s1[w+pad−1]) + s2[w+pad−2], each term only
// where its index lies in [0, len(s)). The interior, where all three do,
// is one bounds-check-free loop; the few edge columns take the checks.
func addRows3(d, s0, s1, s2 []float32, pad int) {
	n := len(s0)
	lo := max(0, 2-pad)      // w ≥ 2 − pad: s2's index ≥ 0
	hi := min(len(d), n-pad) // w < n − pad: s0's index < n
	edge := func(w int) {
		v := d[w]
		if c := w + pad; c >= 0 && c < n {
			v += s0[c]
		}
		if c := w + pad - 1; c >= 0 && c < n {
			v += s1[c]
		}
		if c := w + pad - 2; c >= 0 && c < n {
			v += s2[c]
		}
		d[w] = v
	}
	if lo >= hi {
		for w := range d {
			edge(w)
		}
		return
	}
	for w := 0; w < lo; w++ {
		edge(w)
	}
	m := hi - lo
	dd := d[lo:hi]
	a, b, c := s0[lo+pad:lo+pad+m], s1[lo+pad-1:lo+pad-1+m], s2[lo+pad-2:lo+pad-2+m]
	a, b, c = a[:len(dd)], b[:len(dd)], c[:len(dd)]
	for w := range dd {
		dd[w] = dd[w] + a[w] + b[w] + c[w]
	}
	for w := hi; w < len(d); w++ {
		edge(w)
	}
}

// addRows9 adds the nine source rows of a 3×3 window, src[3i+j] for
// offset (i, j) (input column w = c + j − pad), to the dx row d in
// ascending (i, j) for every element: addRows3 for i = 0, 1, 2 fused into
// one pass, so that d is loaded and stored once.
func addRows9(d []float32, src *[9][]float32, pad int) {
	n := len(src[0])
	lo := max(0, 2-pad)
	hi := min(len(d), n-pad)
	if lo >= hi {
		for w := range d {
			edge9(d, src, pad, w)
		}
		return
	}
	for w := 0; w < lo; w++ {
		edge9(d, src, pad, w)
	}
	dd := d[lo:hi]
	m := len(dd)
	sh := func(t int) []float32 { o := lo + pad - t%3; return src[t][o : o+m : o+m] }
	s0, s1, s2, s3, s4, s5, s6, s7, s8 := sh(0), sh(1), sh(2), sh(3), sh(4), sh(5), sh(6), sh(7), sh(8)
	s0, s1, s2, s3, s4, s5, s6, s7, s8 = s0[:m], s1[:m], s2[:m], s3[:m], s4[:m], s5[:m], s6[:m], s7[:m], s8[:m]
	for w := range dd {
		dd[w] = dd[w] + s0[w] + s1[w] + s2[w] + s3[w] + s4[w] + s5[w] + s6[w] + s7[w] + s8[w]
	}
	for w := hi; w < len(d); w++ {
		edge9(d, src, pad, w)
	}
}

// edge9 is addRows9 for the one element d[w] whose taps may fall outside
// the source rows: each tap in (i, j) order, where its index is valid.
func edge9(d []float32, src *[9][]float32, pad, w int) {
	v := d[w]
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			s := src[3*i+j]
			if c := w + pad - j; uint(c) < uint(len(s)) {
				v += s[c]
			}
		}
	}
	d[w] = v
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

// pool2x2 reports whether k is the common 2×2, stride-2 pooling without
// padding or dilation: windows that tile the input without overlap, every
// tap inside it.
func (k *convKern) pool2x2() bool {
	g := &k.g
	return g.KH == 2 && g.KW == 2 && g.StrideH == 2 && g.StrideW == 2 &&
		g.PadH == 0 && g.PadW == 0 && g.DilH == 1 && g.DilW == 1
}

// maxPool2x2 is maxPool for pool2x2 windows: the same winner (the first of
// the taps (0,0), (0,1), (1,0), (1,1) that is largest, or the first NaN),
// without bounds tests and, for windows without NaN, without branches:
// the taps are compared as orderKey integers, a tournament of conditional
// moves ((0,0) against (0,1), (1,0) against (1,1), then the two winners,
// ties to the earlier tap each time, so the first largest wins). Random
// activations make the taps' comparisons unpredictable, and branches on
// them cost more than the loads. With AVX-512 the rows go through
// simd.MaxPool2x2Row, the same comparisons as float compares (ordered,
// −0 equal to +0: the orderKey order) sixteen windows at a time.
func (k *convKern) maxPool2x2(lo, hi int) {
	g := k.g
	oh, ow, w := k.oh, k.ow, g.W
	for p := lo; p < hi; p++ {
		x := k.a[p*g.H*w : (p+1)*g.H*w]
		y := k.b[p*oh*ow : (p+1)*oh*ow]
		idx := k.idx[p*oh*ow : (p+1)*oh*ow]
		for r := 0; r < oh; r++ {
			x0 := x[2*r*w : 2*r*w+2*ow]
			x1 := x[(2*r+1)*w : (2*r+1)*w+2*ow]
			yr, ir := y[r*ow:r*ow+ow], idx[r*ow:r*ow+ow]
			x1 = x1[:len(x0)]
			ir = ir[:len(yr)]
			base := int32(2 * r * w)
			c0 := 0
			if simd.HasAVX512 {
				// The same comparisons 16 windows at a time, up to a
				// step with a NaN, which the loop below takes on from.
				c0 = simd.MaxPool2x2Row(x0, x1, yr, ir, base, int32(w))
			}
			for c := c0; c < len(yr); c++ {
				a, b, cc, d := x0[2*c], x0[2*c+1], x1[2*c], x1[2*c+1]
				if a != a || b != b || cc != cc || d != d {
					yr[c], ir[c] = maxPoolNaN(a, b, cc, d, base+int32(2*c), int32(w))
					continue
				}
				ka, kb, kc, kd := orderKey(a), orderKey(b), orderKey(cc), orderKey(d)
				s1, s2 := b01(kb > ka), b01(kd > kc)
				s3 := b01(max(kc, kd) > max(ka, kb))
				// The winner's offset in the window: s1 without the second
				// pair, w + s2 with it.
				q := base + int32(2*c) + s1 + s3*(int32(w)+s2-s1)
				yr[c], ir[c] = x[q], q
			}
		}
	}
}

// mask32 is all ones for true and 0 for false, without a branch.
func mask32(c bool) uint32 { return -uint32(b01(c)) }

// b01 is 1 for true and 0 for false (compiled to a SETcc, not a branch).
func b01(c bool) int32 {
	if c {
		return 1
	}
	return 0
}

// orderKey maps a float32 that is not NaN to an int32 with the same order
// as the floats' < and ==: the sign-magnitude bits made two's complement,
// with −0 and +0 both 0.
func orderKey(v float32) int32 {
	b := math.Float32bits(v)
	s := b >> 31 // 1 for negative
	return int32(b^(s*0x7fffffff)) + int32(s)
}

// maxPoolNaN is the winner of a 2×2 window that holds a NaN, by the
// general rule: the first NaN in tap order (q0 is tap (0,0)'s position,
// w the row stride).
func maxPoolNaN(a, b, c, d float32, q0, w int32) (float32, int32) {
	best, bi := a, q0
	for _, t := range [3]struct {
		v float32
		q int32
	}{{b, q0 + 1}, {c, q0 + w}, {d, q0 + w + 1}} {
		if t.v > best || (t.v != t.v && best == best) {
			best, bi = t.v, t.q
		}
	}
	return best, bi
}

// maxPoolGrad2x2 is maxPoolGrad for pool2x2 windows. The windows tile the
// input without overlap, so each dx element receives at most one dy: each
// window writes its four dx elements at once, the one its index names
// (when it is one of the four, tested without division) 0 + dy as the
// general loop's cleared-then-added value, the others 0; the row and
// column no window covers (odd sizes) are cleared.
func (k *convKern) maxPoolGrad2x2(lo, hi int) {
	g := k.g
	oh, ow, w := k.oh, k.ow, g.W
	hw := g.H * w
	for p := lo; p < hi; p++ {
		dy := k.a[p*oh*ow : (p+1)*oh*ow]
		idx := k.idx[p*oh*ow : (p+1)*oh*ow]
		dx := k.b[p*hw : (p+1)*hw]
		for r := 0; r < oh; r++ {
			dyr, ir := dy[r*ow:r*ow+ow], idx[r*ow:r*ow+ow]
			ir = ir[:len(dyr)]
			d0 := dx[2*r*w : 2*r*w+2*ow]
			d1 := dx[(2*r+1)*w : (2*r+1)*w+2*ow]
			d1 = d1[:len(d0)]
			base := 2 * r * w
			if simd.HasAVX512 {
				// The same masks and + 0, 16 windows at a time.
				simd.MaxPoolGrad2x2Row(dyr, ir, d0, d1, int32(base), int32(w))
				dyr = nil
			}
			for c, v := range dyr {
				// Branch-free (which tap won is unpredictable): each of the
				// four gets dy's bits under a mask, then + 0, the general
				// loop's cleared-then-added value (−0 becomes +0).
				q, vb := int(ir[c])-(base+2*c), math.Float32bits(v)
				var zero float32
				d0[2*c] = math.Float32frombits(vb&mask32(q == 0)) + zero
				d0[2*c+1] = math.Float32frombits(vb&mask32(q == 1)) + zero
				d1[2*c] = math.Float32frombits(vb&mask32(q == w)) + zero
				d1[2*c+1] = math.Float32frombits(vb&mask32(q == w+1)) + zero
			}
			if w > 2*ow { // an odd width: the last column is in no window
				dx[2*r*w+2*ow] = 0
				dx[(2*r+1)*w+2*ow] = 0
			}
		}
		clear(dx[2*oh*w:]) // an odd height: the last row
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
