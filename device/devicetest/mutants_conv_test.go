package devicetest_test

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// Mutants of the conv family: each breaks one primitive the way a real
// kernel could be broken, and the named subtest of the suite must fail.
func init() {
	mutants = append(mutants,
		mutant{"im2col_clamps_padding", "Conv/Im2Col"},
		mutant{"col2im_drops_beta", "Conv/Col2Im"},
		mutant{"channelbiasgrad_ignores_beta", "Conv/ChannelBiasGrad"},
		mutant{"maxpool_last_on_ties", "Conv/MaxPool2D"},
		mutant{"maxpoolgrad_overwrites", "Conv/MaxPool2DGrad"},
		mutant{"avgpool_excludes_padding", "Conv/AvgPool2D"},
		mutant{"adaptive_floor_end", "Conv/AdaptiveAvgPool2D"},
		mutant{"maxpool_accepts_float_idx", "Conv/Errors/MaxPool2D"},
	)
}

// readAll copies n float32 elements of b to the host.
func (d *mutantDev) readAll(b device.Buffer, n int) ([]float32, error) {
	h := make([]float32, n)
	return h, d.ReadF32(h, b, 0)
}

func (d *mutantDev) Im2Col(x, cols device.Buffer, g device.Window2D) error {
	if d.name != "im2col_clamps_padding" {
		return d.Device.Im2Col(x, cols, g)
	}
	// Positions in the padding read the nearest edge element instead of 0.
	if err := d.Device.Im2Col(x, cols, g); err != nil {
		return err
	}
	hx, err := d.readAll(x, g.N*g.C*g.H*g.W)
	if err != nil {
		return err
	}
	oh, ow := g.OutH(), g.OutW()
	out := make([]float32, g.N*g.ColRows()*oh*ow)
	clamp := func(v, n int) int { return min(max(v, 0), n-1) }
	for p := 0; p < g.N*g.C; p++ {
		for i := 0; i < g.KH; i++ {
			for j := 0; j < g.KW; j++ {
				for r := 0; r < oh; r++ {
					for q := 0; q < ow; q++ {
						h := clamp(r*g.StrideH-g.PadH+i*g.DilH, g.H)
						w := clamp(q*g.StrideW-g.PadW+j*g.DilW, g.W)
						out[((p*g.KH+i)*g.KW+j)*oh*ow+r*ow+q] = hx[(p*g.H+h)*g.W+w]
					}
				}
			}
		}
	}
	return d.WriteF32(cols, 0, out)
}

func (d *mutantDev) Col2Im(cols, dx device.Buffer, g device.Window2D, beta float32) error {
	if d.name == "col2im_drops_beta" {
		beta = 0
	}
	return d.Device.Col2Im(cols, dx, g, beta)
}

func (d *mutantDev) ChannelBiasGrad(db, dy device.Buffer, outer, channels, inner int, beta float32) error {
	if d.name == "channelbiasgrad_ignores_beta" {
		beta = 0
	}
	return d.Device.ChannelBiasGrad(db, dy, outer, channels, inner, beta)
}

func (d *mutantDev) MaxPool2D(x, y, idx device.Buffer, g device.Window2D) error {
	switch d.name {
	case "maxpool_accepts_float_idx":
		if idx != nil && idx.DType() == device.Float32 {
			return nil // the dtype check forgotten
		}
	case "maxpool_last_on_ties":
		if err := d.Device.MaxPool2D(x, y, idx, g); err != nil {
			return err
		}
		hx, err := d.readAll(x, g.N*g.C*g.H*g.W)
		if err != nil {
			return err
		}
		oh, ow := g.OutH(), g.OutW()
		hy, hi := make([]float32, g.N*g.C*oh*ow), make([]int32, g.N*g.C*oh*ow)
		for p := 0; p < g.N*g.C; p++ {
			for o := 0; o < oh*ow; o++ {
				best, bi := float32(math.Inf(-1)), int32(-1)
				for i := 0; i < g.KH; i++ {
					for j := 0; j < g.KW; j++ {
						h := o/ow*g.StrideH - g.PadH + i*g.DilH
						w := o%ow*g.StrideW - g.PadW + j*g.DilW
						if h >= 0 && h < g.H && w >= 0 && w < g.W {
							if v := hx[(p*g.H+h)*g.W+w]; v >= best {
								best, bi = v, int32(h*g.W+w)
							}
						}
					}
				}
				hy[p*oh*ow+o], hi[p*oh*ow+o] = best, bi
			}
		}
		if err := d.WriteF32(y, 0, hy); err != nil {
			return err
		}
		return d.WriteI32(idx, 0, hi)
	}
	return d.Device.MaxPool2D(x, y, idx, g)
}

func (d *mutantDev) MaxPool2DGrad(dy, idx, dx device.Buffer, g device.Window2D) error {
	if d.name != "maxpoolgrad_overwrites" {
		return d.Device.MaxPool2DGrad(dy, idx, dx, g)
	}
	// Overlapping windows that picked one position: the last one's
	// gradient replaces the others' instead of adding to them.
	if err := d.Device.MaxPool2DGrad(dy, idx, dx, g); err != nil {
		return err
	}
	ohw, hw := g.OutH()*g.OutW(), g.H*g.W
	hdy, err := d.readAll(dy, g.N*g.C*ohw)
	if err != nil {
		return err
	}
	hi := make([]int32, g.N*g.C*ohw)
	if err := d.ReadI32(hi, idx, 0); err != nil {
		return err
	}
	hdx := make([]float32, g.N*g.C*hw)
	for o, q := range hi {
		if q >= 0 {
			hdx[o/ohw*hw+int(q)] = hdy[o]
		}
	}
	return d.WriteF32(dx, 0, hdx)
}

func (d *mutantDev) AvgPool2D(x, y device.Buffer, g device.Window2D) error {
	if d.name != "avgpool_excludes_padding" {
		return d.Device.AvgPool2D(x, y, g)
	}
	// count_include_pad=False: divide by the window's input elements only.
	if err := d.Device.AvgPool2D(x, y, g); err != nil {
		return err
	}
	hx, err := d.readAll(x, g.N*g.C*g.H*g.W)
	if err != nil {
		return err
	}
	oh, ow := g.OutH(), g.OutW()
	hy := make([]float32, g.N*g.C*oh*ow)
	for p := 0; p < g.N*g.C; p++ {
		for o := 0; o < oh*ow; o++ {
			s, cnt := 0.0, 0
			for i := 0; i < g.KH; i++ {
				for j := 0; j < g.KW; j++ {
					h, w := o/ow*g.StrideH-g.PadH+i, o%ow*g.StrideW-g.PadW+j
					if h >= 0 && h < g.H && w >= 0 && w < g.W {
						s += float64(hx[(p*g.H+h)*g.W+w])
						cnt++
					}
				}
			}
			hy[p*oh*ow+o] = float32(s / float64(max(cnt, 1)))
		}
	}
	return d.WriteF32(y, 0, hy)
}

func (d *mutantDev) AdaptiveAvgPool2D(x, y device.Buffer, n, c, h, w, outH, outW int) error {
	if d.name != "adaptive_floor_end" {
		return d.Device.AdaptiveAvgPool2D(x, y, n, c, h, w, outH, outW)
	}
	// Windows end at floor((o+1)·size/out) instead of the ceiling (at
	// least one element), so uneven windows lose their shared edge.
	if err := d.Device.AdaptiveAvgPool2D(x, y, n, c, h, w, outH, outW); err != nil {
		return err
	}
	hx, err := d.readAll(x, n*c*h*w)
	if err != nil {
		return err
	}
	win := func(o, size, out int) (int, int) { return o * size / out, max((o+1)*size/out, o*size/out+1) }
	hy := make([]float32, n*c*outH*outW)
	for p := 0; p < n*c; p++ {
		for r := 0; r < outH; r++ {
			h0, h1 := win(r, h, outH)
			for q := 0; q < outW; q++ {
				w0, w1 := win(q, w, outW)
				s := 0.0
				for i := h0; i < h1; i++ {
					for j := w0; j < w1; j++ {
						s += float64(hx[(p*h+i)*w+j])
					}
				}
				hy[(p*outH+r)*outW+q] = float32(s / float64((h1-h0)*(w1-w0)))
			}
		}
	}
	return d.WriteF32(y, 0, hy)
}
