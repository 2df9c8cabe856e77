package nn

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// Gradient checks of the ops beyond MLPs. Unless a test says otherwise the
// tolerances are GradCheck's defaults (|a−n| ≤ 1e-5 + 1e-4·|n| for the
// float32 analytic gradient against central differences of a float64
// reference; loss within 1e-5·(1+|L|)): these shapes have at most a few
// hundred float32 terms per sum, so the device's rounding error stays
// near 1e-6, and a wrong index or a missing term moves a component by
// O(0.1).

// mseHead is the scalar head of the checks: MSE against a fixed target.
type mseHead struct {
	buf    device.Buffer
	target []float64
}

func newHead(t *testing.T, dev device.Device, r *rng, n int) mseHead {
	b, tg := mseTo(t, dev, r, n)
	return mseHead{b, tg}
}

// of returns the head on graph g, to be applied to an op's two results:
// head.of(g)(g.Op(...)).
func (h mseHead) of(g *Graph) func(y *Tensor, err error) (*Tensor, error) {
	return func(y *Tensor, err error) (*Tensor, error) {
		if err != nil {
			return nil, err
		}
		return g.Loss(device.MSE, y, h.buf)
	}
}

func (h mseHead) ref(y []float64) float64 {
	return refLoss(device.MSE, y, h.target, nil, len(y), 1)
}

// refConv2d is F.conv2d in float64 (groups 1).
func refConv2d(x, w, b []float64, win device.Window2D, oc int) []float64 {
	oh, ow := win.OutH(), win.OutW()
	y := make([]float64, win.N*oc*oh*ow)
	for n := 0; n < win.N; n++ {
		for o := 0; o < oc; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					s := 0.0
					if b != nil {
						s = b[o]
					}
					for c := 0; c < win.C; c++ {
						for ki := 0; ki < win.KH; ki++ {
							for kj := 0; kj < win.KW; kj++ {
								h := i*win.StrideH - win.PadH + ki*win.DilH
								v := j*win.StrideW - win.PadW + kj*win.DilW
								if h < 0 || h >= win.H || v < 0 || v >= win.W {
									continue
								}
								s += x[((n*win.C+c)*win.H+h)*win.W+v] * w[((o*win.C+c)*win.KH+ki)*win.KW+kj]
							}
						}
					}
					y[((n*oc+o)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

// refPool is max or average pooling (count_include_pad) in float64.
func refPool(x []float64, win device.Window2D, max bool) []float64 {
	oh, ow := win.OutH(), win.OutW()
	y := make([]float64, win.N*win.C*oh*ow)
	for p := 0; p < win.N*win.C; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				s, m := 0.0, math.Inf(-1)
				for ki := 0; ki < win.KH; ki++ {
					for kj := 0; kj < win.KW; kj++ {
						h, v := i*win.StrideH-win.PadH+ki, j*win.StrideW-win.PadW+kj
						if h < 0 || h >= win.H || v < 0 || v >= win.W {
							continue
						}
						e := x[(p*win.H+h)*win.W+v]
						s += e
						m = math.Max(m, e)
					}
				}
				if max {
					y[(p*oh+i)*ow+j] = m
				} else {
					y[(p*oh+i)*ow+j] = s / float64(win.KH*win.KW)
				}
			}
		}
	}
	return y
}

func refAdaptive(x []float64, nc, h, w, oh, ow int) []float64 {
	y := make([]float64, nc*oh*ow)
	for p := 0; p < nc; p++ {
		for i := 0; i < oh; i++ {
			h0, h1 := i*h/oh, ((i+1)*h+oh-1)/oh
			for j := 0; j < ow; j++ {
				w0, w1 := j*w/ow, ((j+1)*w+ow-1)/ow
				s := 0.0
				for a := h0; a < h1; a++ {
					for b := w0; b < w1; b++ {
						s += x[(p*h+a)*w+b]
					}
				}
				y[(p*oh+i)*ow+j] = s / float64((h1-h0)*(w1-w0))
			}
		}
	}
	return y
}

func TestGradConv2d(t *testing.T) {
	dev := openCPU(t)
	cases := []struct {
		name                    string
		n, c, h, w, oc, kh, kw  int
		stride, padding, dilate [2]int
		bias                    bool
	}{
		{"3x3pad1", 2, 3, 5, 4, 4, 3, 3, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}, true},
		{"stride2", 2, 2, 6, 5, 3, 3, 2, [2]int{2, 1}, [2]int{0, 1}, [2]int{1, 1}, false},
		{"dilated", 1, 2, 6, 6, 2, 2, 3, [2]int{1, 2}, [2]int{1, 0}, [2]int{2, 1}, true},
		{"1x1", 3, 4, 2, 3, 2, 1, 1, [2]int{1, 1}, [2]int{0, 0}, [2]int{1, 1}, true},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rng(100 + ci)
			win := device.Window2D{N: c.n, C: c.c, H: c.h, W: c.w, KH: c.kh, KW: c.kw, StrideH: c.stride[0], StrideW: c.stride[1],
				PadH: c.padding[0], PadW: c.padding[1], DilH: c.dilate[0], DilW: c.dilate[1]}
			head := newHead(t, dev, &r, c.n*c.oc*win.OutH()*win.OutW())
			inputs := []GradInput{
				{"x", []int{c.n, c.c, c.h, c.w}, r.uniform(c.n*c.c*c.h*c.w, -1, 1)},
				{"w", []int{c.oc, c.c, c.kh, c.kw}, r.uniform(c.oc*c.c*c.kh*c.kw, -1, 1)},
			}
			if c.bias {
				inputs = append(inputs, GradInput{"b", []int{c.oc}, r.uniform(c.oc, -1, 1)})
			}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				var b *Tensor
				if c.bias {
					b = xs[2]
				}
				y, err := g.Conv2d(xs[0], xs[1], b, c.stride, c.padding, c.dilate)
				if err == nil && (len(y.Shape()) != 4 || y.Shape()[1] != c.oc || y.Shape()[2] != win.OutH() || y.Shape()[3] != win.OutW()) {
					t.Errorf("Conv2d output shape %v, expected [%d %d %d %d]", y.Shape(), c.n, c.oc, win.OutH(), win.OutW())
				}
				return head.of(g)(y, err)
			}, func(xs [][]float64) float64 {
				var b []float64
				if c.bias {
					b = xs[2]
				}
				return head.ref(refConv2d(xs[0], xs[1], b, win, c.oc))
			})
		})
	}
}

func TestGradPooling(t *testing.T) {
	dev := openCPU(t)
	const n, c, h, w = 2, 3, 5, 6
	for _, tc := range []struct {
		name                    string
		kernel, stride, padding [2]int
	}{
		{"2x2", [2]int{2, 2}, [2]int{2, 2}, [2]int{0, 0}},
		{"3x3s2p1", [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}},
		{"overlap", [2]int{3, 2}, [2]int{1, 1}, [2]int{1, 0}},
	} {
		win := device.Window2D{N: n, C: c, H: h, W: w, KH: tc.kernel[0], KW: tc.kernel[1], StrideH: tc.stride[0], StrideW: tc.stride[1],
			PadH: tc.padding[0], PadW: tc.padding[1], DilH: 1, DilW: 1}
		for _, max := range []bool{true, false} {
			name := tc.name + "/avg"
			if max {
				name = tc.name + "/max"
			}
			t.Run(name, func(t *testing.T) {
				r := rng(200)
				head := newHead(t, dev, &r, n*c*win.OutH()*win.OutW())
				// Distinct values far apart (a permutation of a grid with step
				// 0.01 ≫ h) keep every max unique under the difference steps.
				x := make([]float64, n*c*h*w)
				for i := range x {
					x[i] = -1 + 0.01*float64((i*37)%len(x))
				}
				inputs := []GradInput{{"x", []int{n, c, h, w}, x}}
				mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
					if max {
						return head.of(g)(g.MaxPool2d(xs[0], tc.kernel, tc.stride, tc.padding))
					}
					return head.of(g)(g.AvgPool2d(xs[0], tc.kernel, tc.stride, tc.padding))
				}, func(xs [][]float64) float64 { return head.ref(refPool(xs[0], win, max)) })
			})
		}
	}
	for _, o := range [][2]int{{1, 1}, {2, 3}, {4, 4}} {
		t.Run(fmt.Sprintf("adaptive%dx%d", o[0], o[1]), func(t *testing.T) {
			r := rng(201)
			head := newHead(t, dev, &r, n*c*o[0]*o[1])
			inputs := []GradInput{{"x", []int{n, c, h, w}, r.uniform(n*c*h*w, -1, 1)}}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				return head.of(g)(g.AdaptiveAvgPool2d(xs[0], o[0], o[1]))
			}, func(xs [][]float64) float64 { return head.ref(refAdaptive(xs[0], n*c, h, w, o[0], o[1])) })
		})
	}
}

// refBatchNorm normalises [outer, c, inner] x per channel with the batch
// statistics (mean, var == nil) or the given ones.
func refBatchNorm(x, gamma, beta, mean, vr []float64, outer, c, inner int, eps float64) []float64 {
	y := make([]float64, len(x))
	for ch := 0; ch < c; ch++ {
		var mu, v float64
		if mean == nil {
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					mu += x[(o*c+ch)*inner+i]
				}
			}
			mu /= float64(outer * inner)
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					d := x[(o*c+ch)*inner+i] - mu
					v += d * d
				}
			}
			v /= float64(outer * inner)
		} else {
			mu, v = mean[ch], vr[ch]
		}
		s := 1 / math.Sqrt(v+eps)
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				k := (o*c+ch)*inner + i
				y[k] = (x[k] - mu) * s
				if gamma != nil {
					y[k] = y[k]*gamma[ch] + beta[ch]
				}
			}
		}
	}
	return y
}

func TestGradBatchNorm(t *testing.T) {
	dev := openCPU(t)
	cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
	for _, tc := range []struct {
		name     string
		shape    []int
		training bool
		affine   bool
	}{
		{"1d", []int{6, 3}, true, true},
		{"1dL", []int{3, 2, 4}, true, true},
		{"2d", []int{2, 3, 2, 3}, true, true},
		{"2dNoAffine", []int{2, 3, 2, 3}, true, false},
		{"2dEval", []int{2, 3, 2, 3}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(300)
			n := 1
			for _, d := range tc.shape {
				n *= d
			}
			outer, c := tc.shape[0], tc.shape[1]
			inner := n / (outer * c)
			head := newHead(t, dev, &r, n)
			rm, rv := rounded(r.uniform(c, -0.5, 0.5)), rounded(r.uniform(c, 0.5, 2))
			rmT, err := NewTensor(upload(t, dev, f32s(rm)), c)
			if err != nil {
				t.Fatal(err)
			}
			rvT, err := NewTensor(upload(t, dev, f32s(rv)), c)
			if err != nil {
				t.Fatal(err)
			}
			inputs := []GradInput{{"x", tc.shape, r.uniform(n, -2, 2)}}
			if tc.affine {
				inputs = append(inputs, GradInput{"gamma", []int{c}, r.uniform(c, 0.5, 1.5)}, GradInput{"beta", []int{c}, r.uniform(c, -1, 1)})
			}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				var gm, bt *Tensor
				if tc.affine {
					gm, bt = xs[1], xs[2]
				}
				return head.of(g)(g.BatchNorm(xs[0], gm, bt, rmT, rvT, tc.training, cfg))
			}, func(xs [][]float64) float64 {
				var gm, bt, m, v []float64
				if tc.affine {
					gm, bt = xs[1], xs[2]
				}
				if !tc.training {
					m, v = rm, rv
				}
				return head.ref(refBatchNorm(xs[0], gm, bt, m, v, outer, c, inner, 1e-5))
			})
		})
	}
}

// TestBatchNormRunningStats: one training forward moves the running
// statistics as PyTorch does (unbiased variance, momentum 0.1). Tolerance
// 1e-6: float32 sums of 12 values of size ≤ 2.
func TestBatchNormRunningStats(t *testing.T) {
	dev := openCPU(t)
	r := rng(301)
	const outer, c, inner = 3, 2, 2
	x := rounded(r.uniform(outer*c*inner, -2, 2))
	rm, rv := []float64{0.1, -0.2}, []float64{1, 0.5}
	g := NewGraph(dev)
	defer g.Free()
	xt, _ := g.Input(upload(t, dev, f32s(x)), outer, c, inner)
	rmT, _ := NewTensor(upload(t, dev, f32s(rm)), c)
	rvT, _ := NewTensor(upload(t, dev, f32s(rv)), c)
	if _, err := g.BatchNorm(xt, nil, nil, rmT, rvT, true, device.NormConfig{Eps: 1e-5, Momentum: 0.1}); err != nil {
		t.Fatal(err)
	}
	gotM, _ := rmT.Values()
	gotV, _ := rvT.Values()
	for ch := 0; ch < c; ch++ {
		var s, ss float64
		cnt := float64(outer * inner)
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				s += x[(o*c+ch)*inner+i]
			}
		}
		mu := s / cnt
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				d := x[(o*c+ch)*inner+i] - mu
				ss += d * d
			}
		}
		wantM, wantV := 0.9*rm[ch]+0.1*mu, 0.9*rv[ch]+0.1*ss/(cnt-1)
		if math.Abs(float64(gotM[ch])-wantM) > 1e-6 || math.Abs(float64(gotV[ch])-wantV) > 1e-6 {
			t.Errorf("channel %d: running mean %v var %v, expected %v %v", ch, gotM[ch], gotV[ch], wantM, wantV)
		}
	}
}

func refLayerNorm(x, gamma, beta []float64, rows, cols int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		mu, v := 0.0, 0.0
		for _, e := range row {
			mu += e
		}
		mu /= float64(cols)
		for _, e := range row {
			v += (e - mu) * (e - mu)
		}
		v /= float64(cols)
		s := 1 / math.Sqrt(v+eps)
		for j, e := range row {
			y[r*cols+j] = (e - mu) * s
			if gamma != nil {
				y[r*cols+j] = y[r*cols+j]*gamma[j] + beta[j]
			}
		}
	}
	return y
}

func TestGradLayerNorm(t *testing.T) {
	dev := openCPU(t)
	for _, affine := range []bool{true, false} {
		t.Run(map[bool]string{true: "affine", false: "plain"}[affine], func(t *testing.T) {
			r := rng(400)
			const rows, cols = 6, 5
			head := newHead(t, dev, &r, rows*cols)
			inputs := []GradInput{{"x", []int{2, 3, cols}, r.uniform(rows*cols, -2, 2)}}
			if affine {
				inputs = append(inputs, GradInput{"gamma", []int{cols}, r.uniform(cols, 0.5, 1.5)}, GradInput{"beta", []int{cols}, r.uniform(cols, -1, 1)})
			}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				var gm, bt *Tensor
				if affine {
					gm, bt = xs[1], xs[2]
				}
				return head.of(g)(g.LayerNorm(xs[0], gm, bt, 1e-5))
			}, func(xs [][]float64) float64 {
				var gm, bt []float64
				if affine {
					gm, bt = xs[1], xs[2]
				}
				return head.ref(refLayerNorm(xs[0], gm, bt, rows, cols, 1e-5))
			})
		})
	}
}

// TestGradNormMixedBeta: gamma is a Variable (accumulates) and beta an
// intermediate (its first contribution overwrites), so the backward of
// each norm needs two primitive calls; and x is used twice, so its
// gradient is added through scratch.
func TestGradNormMixedBeta(t *testing.T) {
	dev := openCPU(t)
	r := rng(401)
	const rows, cols = 4, 3
	head := newHead(t, dev, &r, rows*cols)
	inputs := []GradInput{
		{"x", []int{rows, cols}, r.uniform(rows*cols, -2, 2)},
		{"gamma", []int{cols}, r.uniform(cols, 0.5, 1.5)},
		{"beta", []int{cols}, r.uniform(cols, -1, 1)},
	}
	for _, kind := range []string{"layer", "batch"} {
		t.Run(kind, func(t *testing.T) {
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				bt, err := g.Scale(2, xs[2])
				if err != nil {
					return nil, err
				}
				var y *Tensor
				if kind == "layer" {
					y, err = g.LayerNorm(xs[0], xs[1], bt, 1e-5)
				} else {
					y, err = g.BatchNorm(xs[0], xs[1], bt, nil, nil, true, device.NormConfig{Eps: 1e-5, Momentum: 0.1})
				}
				if err != nil {
					return nil, err
				}
				return head.of(g)(g.Add(y, xs[0]))
			}, func(xs [][]float64) float64 {
				bt := make([]float64, cols)
				for i, v := range xs[2] {
					bt[i] = 2 * v
				}
				var y []float64
				if kind == "layer" {
					y = refLayerNorm(xs[0], xs[1], bt, rows, cols, 1e-5)
				} else {
					y = refBatchNorm(xs[0], xs[1], bt, nil, nil, rows, cols, 1, 1e-5)
				}
				for i := range y {
					y[i] += xs[0][i]
				}
				return head.ref(y)
			})
		})
	}
}

// TestGradEmbedding: repeated indices sum their rows' gradients; the
// table is used twice (two lookups), so the second ScatterAdd adds.
func TestGradEmbedding(t *testing.T) {
	dev := openCPU(t)
	r := rng(500)
	const num, dim = 5, 3
	idx := []int32{4, 0, 2, 4, 4, 1}
	ib := uploadI32(t, dev, idx)
	head := newHead(t, dev, &r, 2*len(idx)*dim)
	inputs := []GradInput{{"table", []int{num, dim}, r.uniform(num*dim, -1, 1)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		it, err := g.InputIndices(ib, 2, 3)
		if err != nil {
			return nil, err
		}
		a, err := g.Embedding(it, xs[0])
		if err != nil {
			return nil, err
		}
		if s := a.Shape(); len(s) != 3 || s[0] != 2 || s[1] != 3 || s[2] != dim {
			t.Errorf("Embedding shape %v, expected [2 3 %d]", s, dim)
		}
		b, err := g.Embedding(it, xs[0])
		if err != nil {
			return nil, err
		}
		sq, err := g.Mul(b, b)
		if err != nil {
			return nil, err
		}
		both, err := g.Reshape(a, -1)
		if err != nil {
			return nil, err
		}
		sq2, err := g.Reshape(sq, -1)
		if err != nil {
			return nil, err
		}
		// Two MSE heads, over a and over b², added.
		l1, err := g.Loss(device.MSE, both, headHalf(t, dev, head, 0, len(idx)*dim))
		if err != nil {
			return nil, err
		}
		l2, err := g.Loss(device.MSE, sq2, headHalf(t, dev, head, len(idx)*dim, len(idx)*dim))
		if err != nil {
			return nil, err
		}
		return g.Add(l1, l2)
	}, func(xs [][]float64) float64 {
		m := len(idx) * dim
		a := make([]float64, m)
		for i, k := range idx {
			copy(a[i*dim:(i+1)*dim], xs[0][int(k)*dim:(int(k)+1)*dim])
		}
		sq := make([]float64, m)
		for i, v := range a {
			sq[i] = v * v
		}
		return refLoss(device.MSE, a, head.target[:m], nil, m, 1) + refLoss(device.MSE, sq, head.target[m:], nil, m, 1)
	})
}

// headHalf uploads target values [off, off+n) of a head.
func headHalf(t *testing.T, dev device.Device, h mseHead, off, n int) device.Buffer {
	return upload(t, dev, f32s(h.target[off:off+n]))
}

func TestEmbeddingErrors(t *testing.T) {
	dev := openCPU(t)
	g := NewGraph(dev)
	defer g.Free()
	table, _ := g.Variable(upload(t, dev, make([]float32, 6)), 3, 2)
	if _, err := g.InputIndices(upload(t, dev, []float32{1}), 1); err == nil {
		t.Error("InputIndices accepted a float32 buffer")
	}
	it, err := g.InputIndices(uploadI32(t, dev, []int32{0, 3}), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Embedding(it, table); err == nil || !strings.Contains(err.Error(), "Embedding") {
		t.Errorf("index 3 of a 3-row table: err = %v, expected an Embedding error", err)
	}
	if _, err := g.Embedding(table, table); err == nil || !strings.Contains(err.Error(), "int32") {
		t.Errorf("float indices: err = %v, expected an int32 error", err)
	}
}

// refCE is F.cross_entropy with ignore_index in float64.
func refCE(x []float64, labels []int32, rows, cols int, ignore int32) float64 {
	s, cnt := 0.0, 0
	for r := 0; r < rows; r++ {
		if labels[r] == ignore {
			continue
		}
		row := x[r*cols : (r+1)*cols]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		z := 0.0
		for _, v := range row {
			z += math.Exp(v - m)
		}
		s += m + math.Log(z) - row[labels[r]]
		cnt++
	}
	return s / float64(cnt)
}

func TestGradCrossEntropy(t *testing.T) {
	dev := openCPU(t)
	r := rng(600)
	const rows, cols = 6, 4
	labels := []int32{1, -100, 3, 0, -100, 2}
	lb := uploadI32(t, dev, labels)
	inputs := []GradInput{{"logits", []int{2, 3, cols}, r.uniform(rows*cols, -2, 2)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		l, err := g.CrossEntropy(xs[0], lb, -100)
		if err != nil {
			return nil, err
		}
		return g.Scale(3, l) // an upstream gradient other than 1
	}, func(xs [][]float64) float64 { return 3 * refCE(xs[0], labels, rows, cols, -100) })
}

func refBMM(a, b []float64, batch, m, n, k int, transA, transB bool) []float64 {
	c := make([]float64, batch*m*n)
	for p := 0; p < batch; p++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				s := 0.0
				for q := 0; q < k; q++ {
					av := a[p*m*k+i*k+q]
					if transA {
						av = a[p*m*k+q*m+i]
					}
					bv := b[p*k*n+q*n+j]
					if transB {
						bv = b[p*k*n+j*k+q]
					}
					s += av * bv
				}
				c[p*m*n+i*n+j] = s
			}
		}
	}
	return c
}

func TestGradBatchedMatMul(t *testing.T) {
	dev := openCPU(t)
	const b0, b1, m, n, k = 2, 3, 4, 2, 3
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		t.Run(map[bool]string{false: "N", true: "T"}[tr[0]]+map[bool]string{false: "N", true: "T"}[tr[1]], func(t *testing.T) {
			r := rng(700)
			head := newHead(t, dev, &r, b0*b1*m*n)
			as, bs := []int{b0, b1, m, k}, []int{b0, b1, k, n}
			if tr[0] {
				as = []int{b0, b1, k, m}
			}
			if tr[1] {
				bs = []int{b0, b1, n, k}
			}
			inputs := []GradInput{{"a", as, r.uniform(b0*b1*m*k, -1, 1)}, {"b", bs, r.uniform(b0*b1*k*n, -1, 1)}}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				return head.of(g)(g.BatchedMatMul(xs[0], xs[1], tr[0], tr[1]))
			}, func(xs [][]float64) float64 { return head.ref(refBMM(xs[0], xs[1], b0*b1, m, n, k, tr[0], tr[1])) })
		})
	}
}

func refSoftmaxMasked(x []float64, rows, cols int, scale float64, causal bool, qLen int) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		last := cols - 1
		if causal {
			last = r%qLen + cols - qLen
		}
		m := math.Inf(-1)
		for j := 0; j <= last; j++ {
			m = math.Max(m, scale*x[r*cols+j])
		}
		z := 0.0
		for j := 0; j <= last; j++ {
			z += math.Exp(scale*x[r*cols+j] - m)
		}
		for j := 0; j <= last; j++ {
			y[r*cols+j] = math.Exp(scale*x[r*cols+j]-m) / z
		}
	}
	return y
}

func TestGradSoftmaxMasked(t *testing.T) {
	dev := openCPU(t)
	for _, tc := range []struct {
		name   string
		shape  []int
		causal bool
	}{{"causal", []int{2, 4, 4}, true}, {"kvcache", []int{3, 2, 5}, true}, {"full", []int{2, 3, 5}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rng(800)
			n := tc.shape[0] * tc.shape[1] * tc.shape[2]
			rows, cols, qLen := tc.shape[0]*tc.shape[1], tc.shape[2], tc.shape[1]
			head := newHead(t, dev, &r, n)
			inputs := []GradInput{{"x", tc.shape, r.uniform(n, -2, 2)}}
			mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
				return head.of(g)(g.SoftmaxMasked(xs[0], 0.7, tc.causal))
			}, func(xs [][]float64) float64 {
				return head.ref(refSoftmaxMasked(xs[0], rows, cols, float64(float32(0.7)), tc.causal, qLen))
			})
		})
	}
}

// TestGradShapes chains the view and copy ops: Permute, Reshape, Flatten,
// Chunk (Narrow views), AddBroadcast, with x also used directly, so that
// hand-over and accumulation both happen.
func TestGradShapes(t *testing.T) {
	dev := openCPU(t)
	r := rng(900)
	const a, b, c = 2, 3, 4          // x [a, b, c]
	head := newHead(t, dev, &r, 3*4) // result [3, 4]
	inputs := []GradInput{
		{"x", []int{a, b, c}, r.uniform(a*b*c, -1, 1)},
		{"pos", []int{4}, r.uniform(4, -1, 1)},
	}
	// p = permute(x, 2, 0, 1) → [c, a, b]; f = flatten(p, 1) → [c, a·b];
	// q0, q1 = chunk(f, 2) → [2, 6] each; s = reshape(q0, 3, 4) + pos
	// + reshape(q1 ⊙ q1, 3, 4) + reshape(x, 6, 4)[0:3].
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		p, err := g.Permute(xs[0], 2, 0, 1)
		if err != nil {
			return nil, err
		}
		if s := p.Shape(); s[0] != c || s[1] != a || s[2] != b {
			t.Errorf("Permute shape %v, expected [%d %d %d]", s, c, a, b)
		}
		f, err := g.Flatten(p, 1)
		if err != nil {
			return nil, err
		}
		qs, err := g.Chunk(f, 2)
		if err != nil {
			return nil, err
		}
		s0, err := g.Reshape(qs[0], 3, -1)
		if err != nil {
			return nil, err
		}
		s0, err = g.AddBroadcast(s0, xs[1])
		if err != nil {
			return nil, err
		}
		sq, err := g.Mul(qs[1], qs[1])
		if err != nil {
			return nil, err
		}
		s1, err := g.Reshape(sq, 3, 4)
		if err != nil {
			return nil, err
		}
		xr, err := g.Reshape(xs[0], 6, 4)
		if err != nil {
			return nil, err
		}
		xn, err := g.Narrow(xr, 0, 3)
		if err != nil {
			return nil, err
		}
		s, err := g.Add(s0, s1)
		if err != nil {
			return nil, err
		}
		return head.of(g)(g.Add(s, xn))
	}, func(xs [][]float64) float64 {
		x := xs[0]
		p := make([]float64, a*b*c) // [c, a, b]
		for i := 0; i < a; i++ {
			for j := 0; j < b; j++ {
				for k := 0; k < c; k++ {
					p[(k*a+i)*b+j] = x[(i*b+j)*c+k]
				}
			}
		}
		out := make([]float64, 12)
		for i := range out {
			q1 := p[12+i]
			out[i] = p[i] + xs[1][i%4] + q1*q1 + x[i]
		}
		return head.ref(out)
	})
}

// TestOpShapeErrors: every op names itself and the argument at fault.
func TestOpShapeErrors(t *testing.T) {
	dev := openCPU(t)
	g := NewGraph(dev)
	defer g.Free()
	v := func(shape ...int) *Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x, err := g.Variable(upload(t, dev, make([]float32, n)), shape...)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	x4 := v(2, 3, 5, 5)
	one, two := [2]int{1, 1}, [2]int{2, 2}
	cases := []struct {
		want string
		f    func() (*Tensor, error)
	}{
		{"Conv2d: input has shape", func() (*Tensor, error) { return g.Conv2d(v(3, 5, 5), v(4, 3, 3, 3), nil, one, one, one) }},
		{"Conv2d: weight has shape", func() (*Tensor, error) { return g.Conv2d(x4, v(4, 2, 3, 3), nil, one, one, one) }},
		{"Conv2d: bias has shape", func() (*Tensor, error) { return g.Conv2d(x4, v(4, 3, 3, 3), v(3), one, one, one) }},
		{"Conv2d: a [7 7] window", func() (*Tensor, error) { return g.Conv2d(x4, v(4, 3, 7, 7), nil, two, [2]int{0, 0}, one) }},
		{"Conv2d: stride", func() (*Tensor, error) { return g.Conv2d(x4, v(4, 3, 3, 3), nil, [2]int{0, 1}, one, one) }},
		{"MaxPool2d: padding", func() (*Tensor, error) { return g.MaxPool2d(x4, two, two, two) }},
		{"AvgPool2d: input has shape", func() (*Tensor, error) { return g.AvgPool2d(v(5, 5), two, two, one) }},
		{"AdaptiveAvgPool2d: output size", func() (*Tensor, error) { return g.AdaptiveAvgPool2d(x4, 0, 1) }},
		{"BatchNorm: gamma has shape", func() (*Tensor, error) {
			return g.BatchNorm(x4, v(2), nil, nil, nil, true, device.NormConfig{Eps: 1e-5})
		}},
		{"BatchNorm: evaluation mode needs", func() (*Tensor, error) {
			return g.BatchNorm(x4, nil, nil, nil, nil, false, device.NormConfig{Eps: 1e-5})
		}},
		{"LayerNorm: beta has shape", func() (*Tensor, error) { return g.LayerNorm(x4, v(5), v(4), 1e-5) }},
		{"Embedding: table has shape", func() (*Tensor, error) {
			it, err := g.InputIndices(uploadI32(t, dev, []int32{0}), 1)
			if err != nil {
				return nil, err
			}
			return g.Embedding(it, v(3))
		}},
		{"BatchedMatMul: inner dimensions", func() (*Tensor, error) { return g.BatchedMatMul(v(2, 3, 4), v(2, 3, 4), false, false) }},
		{"BatchedMatMul: batch axes", func() (*Tensor, error) { return g.BatchedMatMul(v(2, 3, 4), v(3, 4, 4), false, false) }},
		{"SoftmaxMasked: causal scores", func() (*Tensor, error) { return g.SoftmaxMasked(v(5, 3), 1, true) }},
		{"Permute: [0 0 1] is not a permutation", func() (*Tensor, error) { return g.Permute(v(2, 3, 4), 0, 0, 1) }},
		{"Reshape: cannot reshape", func() (*Tensor, error) { return g.Reshape(x4, 7, -1) }},
		{"Flatten: startDim 4", func() (*Tensor, error) { return g.Flatten(x4, 4) }},
		{"Narrow: rows [1, 3)", func() (*Tensor, error) { return g.Narrow(x4, 1, 2) }},
		{"AddBroadcast: y has shape", func() (*Tensor, error) { return g.AddBroadcast(x4, v(4, 5)) }},
		{"CrossEntropy: logits have shape", func() (*Tensor, error) { return g.CrossEntropy(v(4), nil, -100) }},
	}
	for _, c := range cases {
		if _, err := c.f(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, expected it to contain %q", err, c.want)
		}
	}
}

// TestGradSharedInputs: one intermediate h feeds Conv2d, MaxPool2d,
// AvgPool2d, AdaptiveAvgPool2d, Permute and both operands of a
// BatchedMatMul, so every backward after the first must add to h's
// gradient (beta 1) rather than overwrite it.
func TestGradSharedInputs(t *testing.T) {
	dev := openCPU(t)
	r := rng(1000)
	const n, c, h, w, oc = 1, 2, 4, 4, 3
	win := device.Window2D{N: n, C: c, H: h, W: w, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}
	pw := device.Window2D{N: n, C: c, H: h, W: w, KH: 2, KW: 2, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1}
	m := n * c * h * w
	heads := []mseHead{newHead(t, dev, &r, n*oc*h*w), newHead(t, dev, &r, m/4), newHead(t, dev, &r, m/4),
		newHead(t, dev, &r, n*c), newHead(t, dev, &r, m), newHead(t, dev, &r, n*c*h*h)}
	x := make([]float64, m)
	for i := range x {
		x[i] = -1 + 0.06*float64((i*7)%m) // distinct, so every max is unique
	}
	inputs := []GradInput{{"x", []int{n, c, h, w}, x}, {"w", []int{oc, c, 3, 3}, r.uniform(oc*c*9, -1, 1)}}
	mustCheck(t, dev, inputs, func(g *Graph, xs []*Tensor) (*Tensor, error) {
		hv, err := g.Scale(1.5, xs[0])
		if err != nil {
			return nil, err
		}
		hr, err := g.Reshape(hv, n*c, h, w)
		if err != nil {
			return nil, err
		}
		outs := make([]*Tensor, 6)
		steps := []func() (*Tensor, error){
			func() (*Tensor, error) { return g.Conv2d(hv, xs[1], nil, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}) },
			func() (*Tensor, error) { return g.MaxPool2d(hv, [2]int{2, 2}, [2]int{2, 2}, [2]int{}) },
			func() (*Tensor, error) { return g.AvgPool2d(hv, [2]int{2, 2}, [2]int{2, 2}, [2]int{}) },
			func() (*Tensor, error) { return g.AdaptiveAvgPool2d(hv, 1, 1) },
			func() (*Tensor, error) { return g.Permute(hv, 0, 2, 3, 1) },
			func() (*Tensor, error) { return g.BatchedMatMul(hr, hr, false, true) },
		}
		var total *Tensor
		for i, f := range steps {
			if outs[i], err = heads[i].of(g)(f()); err != nil {
				return nil, err
			}
			if total == nil {
				total = outs[i]
			} else if total, err = g.Add(total, outs[i]); err != nil {
				return nil, err
			}
		}
		return total, nil
	}, func(xs [][]float64) float64 {
		hv := make([]float64, m)
		for i, v := range xs[0] {
			hv[i] = 1.5 * v
		}
		perm := make([]float64, m) // [n, h, w, c]
		for ci := 0; ci < c; ci++ {
			for i := 0; i < h*w; i++ {
				perm[i*c+ci] = hv[ci*h*w+i]
			}
		}
		return heads[0].ref(refConv2d(hv, xs[1], nil, win, oc)) + heads[1].ref(refPool(hv, pw, true)) +
			heads[2].ref(refPool(hv, pw, false)) + heads[3].ref(refAdaptive(hv, n*c, h, w, 1, 1)) +
			heads[4].ref(perm) + heads[5].ref(refBMM(hv, hv, n*c, h, h, w, false, true))
	})
}
