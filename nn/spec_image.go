package nn

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The image tokens of a model spec (ParseSpec):
//
//	CxHxW                  first token: the input is C channels of H×W (NCHW); In = C·H·W
//	conv<out>k<k>[s<s>][p<p>][d<d>]
//	                       nn.Conv2d(C, out, k, stride s (1), padding p (0), dilation d (1)), with bias
//	bn                     nn.BatchNorm2d(C) on images, nn.BatchNorm1d(width) on flat inputs
//	maxpool<k>[s<s>][p<p>] nn.MaxPool2d(k, stride s (k), padding p (0))
//	avgpool<k>[s<s>][p<p>] nn.AvgPool2d(k, stride s (k), padding p (0))
//	gap                    nn.AdaptiveAvgPool2d(1): global average pooling to C×1×1
//	flatten                nn.Flatten(): C×H×W → C·H·W
//
// A width (a Linear layer) or softmax needs a flat input, so an image model
// flattens (or pools and flattens) before its classifier, as in torch.nn:
// 1x28x28-conv32k3p1-bn-relu-maxpool2-conv64k3p1-bn-relu-maxpool2-flatten-128-relu-10.

// specShape is the per-sample shape between a spec's layers: a flat width
// (image false, width c) or an image c×h×w.
type specShape struct {
	image   bool
	c, h, w int
}

func (s specShape) String() string {
	if s.image {
		return fmt.Sprintf("%dx%dx%d", s.c, s.h, s.w)
	}
	return strconv.Itoa(s.c)
}

// width is the number of values per sample.
func (s specShape) width() int {
	if s.image {
		return s.c * s.h * s.w
	}
	return s.c
}

// maxSpecDim bounds every number of an image token (channels, sizes,
// kernel, stride, padding, dilation) and maxSpecWidth the values per sample
// of any shape and the values of a convolution's weight, so that the shape
// arithmetic of image layers cannot overflow and a typo such as
// conv320000 fails here rather than in an allocation. (A Linear layer's
// weight is not bounded, as it never was for MLP specs: the device's
// allocation refuses what does not fit.)
const (
	maxSpecDim   = 1 << 16
	maxSpecWidth = 1 << 30
)

// parseShapeToken parses the first token's CxHxW form.
func parseShapeToken(tok string) ([]int, error) {
	parts := strings.Split(tok, "x")
	if len(parts) != 3 {
		return nil, fmt.Errorf("expected an input width or an image shape CxHxW such as 1x28x28")
	}
	shape := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > maxSpecDim {
			return nil, fmt.Errorf("expected an image shape CxHxW of positive integers ≤ %d, such as 1x28x28", maxSpecDim)
		}
		shape[i] = n
	}
	if shape[0]*shape[1]*shape[2] > maxSpecWidth {
		return nil, fmt.Errorf("image shape %s has more than %d values", tok, maxSpecWidth)
	}
	return shape, nil
}

// parseWindow reads "<first>[k<k>][s<s>][p<p>][d<d>]" after a token's
// name: the leading number and the lettered options, each at most once and
// only those in allowed. Unset options are 0.
func parseWindow(rest string, allowed string) (first int, opts map[byte]int, err error) {
	num := func() (int, error) {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("missing number")
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > maxSpecDim {
			return 0, fmt.Errorf("number %q out of range (at most %d)", rest[:i], maxSpecDim)
		}
		rest = rest[i:]
		return n, nil
	}
	if first, err = num(); err != nil {
		return 0, nil, err
	}
	opts = map[byte]int{}
	for rest != "" {
		c := rest[0]
		if !strings.ContainsRune(allowed, rune(c)) {
			return 0, nil, fmt.Errorf("unexpected %q", rest)
		}
		if _, dup := opts[c]; dup {
			return 0, nil, fmt.Errorf("%c given twice", c)
		}
		rest = rest[1:]
		n, err := num()
		if err != nil {
			return 0, nil, fmt.Errorf("%c: %w", c, err)
		}
		opts[c] = n
	}
	return first, opts, nil
}

// parseImageToken parses the layer tokens of the table above; ok is false
// when tok is none of them.
func parseImageToken(tok string) (l LayerSpec, ok bool, err error) {
	switch {
	case tok == "bn":
		return LayerSpec{Kind: BatchNormLayer}, true, nil
	case tok == "gap":
		return LayerSpec{Kind: GlobalAvgPoolLayer}, true, nil
	case tok == "flatten":
		return LayerSpec{Kind: FlattenLayer}, true, nil
	case strings.HasPrefix(tok, "conv"):
		out, o, err := parseWindow(tok[len("conv"):], "kspd")
		if err != nil {
			return l, true, fmt.Errorf("%v; expected conv<out>k<kernel>[s<stride>][p<padding>][d<dilation>], such as conv32k3p1", err)
		}
		if _, has := o['k']; !has {
			return l, true, fmt.Errorf("no kernel size; expected conv<out>k<kernel>[s<stride>][p<padding>][d<dilation>], such as conv32k3p1")
		}
		l = LayerSpec{Kind: Conv2dLayer, Units: out, Kernel: o['k'], Stride: 1, Padding: o['p'], Dilation: 1}
		if s, has := o['s']; has {
			l.Stride = s
		}
		if d, has := o['d']; has {
			l.Dilation = d
		}
		return l, true, nil
	case strings.HasPrefix(tok, "maxpool"), strings.HasPrefix(tok, "avgpool"):
		kind, name := MaxPoolLayer, "maxpool"
		if strings.HasPrefix(tok, "avgpool") {
			kind, name = AvgPoolLayer, "avgpool"
		}
		k, o, err := parseWindow(tok[len(name):], "sp")
		if err != nil {
			return l, true, fmt.Errorf("%v; expected %s<kernel>[s<stride>][p<padding>], such as %s2", err, name, name)
		}
		l = LayerSpec{Kind: kind, Kernel: k, Stride: k, Padding: o['p']}
		if s, has := o['s']; has {
			l.Stride = s
		}
		return l, true, nil
	}
	return l, false, nil
}

// imageToken is the spec token of an image layer.
func (l LayerSpec) imageToken() string {
	var b strings.Builder
	opt := func(c byte, v, def int) {
		if v != def {
			b.WriteByte(c)
			b.WriteString(strconv.Itoa(v))
		}
	}
	switch l.Kind {
	case Conv2dLayer:
		fmt.Fprintf(&b, "conv%dk%d", l.Units, l.Kernel)
		opt('s', l.Stride, 1)
		opt('p', l.Padding, 0)
		opt('d', l.Dilation, 1)
	case MaxPoolLayer, AvgPoolLayer:
		name := "maxpool"
		if l.Kind == AvgPoolLayer {
			name = "avgpool"
		}
		fmt.Fprintf(&b, "%s%d", name, l.Kernel)
		opt('s', l.Stride, l.Kernel)
		opt('p', l.Padding, 0)
	case BatchNormLayer:
		return "bn"
	case GlobalAvgPoolLayer:
		return "gap"
	case FlattenLayer:
		return "flatten"
	}
	return b.String()
}

// shapes walks the spec: shapes[0] is the input's, shapes[i+1] the shape
// after layer i. It checks that every layer gets the kind of input it
// needs and that every window fits; the error names the layer (from 1, as
// ParseSpec's tokens count the input as token 1: layer i is token i+2).
func (s Spec) shapes() ([]specShape, error) {
	in := specShape{c: s.In}
	switch len(s.Shape) {
	case 0:
	case 3:
		if s.Shape[0] < 1 || s.Shape[1] < 1 || s.Shape[2] < 1 || s.Shape[0] > maxSpecDim || s.Shape[1] > maxSpecDim || s.Shape[2] > maxSpecDim {
			return nil, fmt.Errorf("model spec %s: input shape %v, expected three sizes from 1 to %d", s, s.Shape, maxSpecDim)
		}
		in = specShape{image: true, c: s.Shape[0], h: s.Shape[1], w: s.Shape[2]}
		if in.width() != s.In {
			return nil, fmt.Errorf("model spec %s: input shape %v has %d values, but the input width is %d", s, s.Shape, in.width(), s.In)
		}
	default:
		return nil, fmt.Errorf("model spec %s: input shape %v, expected [C, H, W] or none", s, s.Shape)
	}
	out := make([]specShape, 1, len(s.Layers)+1)
	out[0] = in
	cur := in
	for i, l := range s.Layers {
		fail := func(format string, a ...any) ([]specShape, error) {
			return nil, fmt.Errorf("model spec %s: token %d %q (input %s): %s", s, i+2, l.String(), cur, fmt.Sprintf(format, a...))
		}
		switch l.Kind {
		case LinearLayer:
			if cur.image {
				return fail("a width needs a flat input; put flatten (or gap-flatten) before it")
			}
			cur = specShape{c: l.Units}
		case SoftmaxLayer:
			if cur.image {
				return fail("softmax needs a flat input; put flatten before it")
			}
		case Conv2dLayer:
			if !cur.image {
				return fail("a convolution needs an image input; start the spec with CxHxW, such as 1x28x28")
			}
			if l.Units < 1 || l.Units > maxSpecDim || l.Kernel < 1 || l.Kernel > maxSpecDim || l.Stride < 1 || l.Stride > maxSpecDim ||
				l.Padding < 0 || l.Padding > maxSpecDim || l.Dilation < 1 || l.Dilation > maxSpecDim {
				return fail("expected out channels, kernel, stride and dilation from 1 to %d and padding from 0 to %d", maxSpecDim, maxSpecDim)
			}
			// All factors ≤ 2¹⁶, so the product fits in an int64.
			if w := int64(l.Units) * int64(cur.c) * int64(l.Kernel) * int64(l.Kernel); w > maxSpecWidth {
				return fail("its weight [%d, %d, %d, %d] has %d values, more than %d", l.Units, cur.c, l.Kernel, l.Kernel, w, maxSpecWidth)
			}
			span := l.Dilation*(l.Kernel-1) + 1
			if cur.h+2*l.Padding < span || cur.w+2*l.Padding < span {
				return fail("a kernel spanning %d (kernel %d, dilation %d) does not fit the %dx%d input with padding %d", span, l.Kernel, l.Dilation, cur.h, cur.w, l.Padding)
			}
			cur = specShape{image: true, c: l.Units, h: (cur.h+2*l.Padding-span)/l.Stride + 1, w: (cur.w+2*l.Padding-span)/l.Stride + 1}
		case MaxPoolLayer, AvgPoolLayer:
			if !cur.image {
				return fail("pooling needs an image input")
			}
			if l.Kernel < 1 || l.Kernel > maxSpecDim || l.Stride < 1 || l.Stride > maxSpecDim || l.Padding < 0 || l.Padding > maxSpecDim {
				return fail("expected kernel and stride from 1 to %d and padding from 0 to %d", maxSpecDim, maxSpecDim)
			}
			if 2*l.Padding > l.Kernel {
				return fail("padding %d is more than half the kernel %d (PyTorch's rule)", l.Padding, l.Kernel)
			}
			if cur.h+2*l.Padding < l.Kernel || cur.w+2*l.Padding < l.Kernel {
				return fail("a %d×%d window does not fit the %dx%d input with padding %d", l.Kernel, l.Kernel, cur.h, cur.w, l.Padding)
			}
			cur = specShape{image: true, c: cur.c, h: (cur.h+2*l.Padding-l.Kernel)/l.Stride + 1, w: (cur.w+2*l.Padding-l.Kernel)/l.Stride + 1}
		case GlobalAvgPoolLayer:
			if !cur.image {
				return fail("global average pooling needs an image input")
			}
			cur = specShape{image: true, c: cur.c, h: 1, w: 1}
		case FlattenLayer:
			cur = specShape{c: cur.width()}
		case BatchNormLayer, ActivationLayer, DropoutLayer:
		}
		if cur.width() > maxSpecWidth {
			return fail("its output, %s, has more than %d values", cur, maxSpecWidth)
		}
		out = append(out, cur)
	}
	if cur.image {
		return nil, fmt.Errorf("model spec %s: the output is an image (%s); end the spec flat, e.g. with flatten-10 or gap-flatten-10", s, cur)
	}
	return out, nil
}

// MACs is the number of multiply-adds per sample in the forward pass of
// the spec's Linear and Conv2d layers (weights × output positions; biases,
// normalisation and pooling not counted), or 0 for a spec Validate
// refuses; math.MaxInt64 when the count does not fit. A training step
// costs about 6·MACs·batch FLOPs: 2 forward, 4 backward.
func (s Spec) MACs() int64 {
	sh, err := s.shapes()
	if err != nil {
		return 0
	}
	// mul and add saturate at math.MaxInt64 (all terms are ≥ 0).
	mul := func(a, b int64) int64 {
		if a != 0 && b > math.MaxInt64/a {
			return math.MaxInt64
		}
		return a * b
	}
	add := func(a, b int64) int64 {
		if a > math.MaxInt64-b {
			return math.MaxInt64
		}
		return a + b
	}
	var n int64
	for i, l := range s.Layers {
		in, out := sh[i], sh[i+1]
		switch l.Kind {
		case LinearLayer:
			n = add(n, mul(int64(in.width()), int64(l.Units)))
		case Conv2dLayer:
			// Weights ≤ 2³⁰ and positions ≤ 2³⁰ (shapes bounds both).
			n = add(n, mul(int64(l.Units)*int64(in.c)*int64(l.Kernel)*int64(l.Kernel), int64(out.h)*int64(out.w)))
		}
	}
	return n
}
