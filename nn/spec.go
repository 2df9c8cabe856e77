package nn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
)

// LayerKind says what one layer of a Spec is.
type LayerKind uint8

// The layer kinds a spec can name.
const (
	// LinearLayer is y = x·Wᵀ + b with Units outputs.
	LinearLayer LayerKind = iota + 1
	// ActivationLayer applies Act (with Alpha for leakyrelu) elementwise.
	ActivationLayer
	// SoftmaxLayer is a row-wise softmax over the last axis.
	SoftmaxLayer
	// DropoutLayer zeroes inputs with probability P in training mode.
	DropoutLayer
	// Conv2dLayer is nn.Conv2d(channels, Units, Kernel, Stride, Padding,
	// Dilation) with a bias, on an image input.
	Conv2dLayer
	// BatchNormLayer is nn.BatchNorm2d on an image input, nn.BatchNorm1d
	// on a flat one.
	BatchNormLayer
	// MaxPoolLayer is nn.MaxPool2d(Kernel, Stride, Padding).
	MaxPoolLayer
	// AvgPoolLayer is nn.AvgPool2d(Kernel, Stride, Padding).
	AvgPoolLayer
	// GlobalAvgPoolLayer is nn.AdaptiveAvgPool2d(1).
	GlobalAvgPoolLayer
	// FlattenLayer is nn.Flatten(): an image becomes a flat input.
	FlattenLayer
)

// LayerSpec is one token of a model spec.
type LayerSpec struct {
	Kind  LayerKind
	Units int               // LinearLayer: output width
	Act   device.Activation // ActivationLayer
	Alpha float32           // ActivationLayer with LeakyReLU: negative slope; with ELU: alpha
	P     float32           // DropoutLayer: drop probability
	// Conv2dLayer, MaxPoolLayer and AvgPoolLayer: the square window
	// (Units is a convolution's output channels). Stride and Dilation are
	// at least 1; a pool's Dilation is unused (0).
	Kernel, Stride, Padding, Dilation int
}

// Spec is a model architecture written as a string of dash-separated
// tokens, so that it fits on a command line and in a checkpoint's metadata:
// the first token is the input width, every later number a Linear layer
// from the previous width, the others activations, softmax or dropout.
// "784-256-relu-128-relu-10" is Linear(784,256), ReLU, Linear(256,128),
// ReLU, Linear(128,10). An image model starts with its input shape
// CxHxW and uses the image tokens of spec_image.go:
// "1x28x28-conv32k3p1-bn-relu-maxpool2-flatten-10".
type Spec struct {
	In int // values per sample (C·H·W for an image input)
	// Shape is [C, H, W] for an image input (the first token CxHxW), nil
	// for a flat one. A model built from it takes inputs [N, In] or
	// [N, C, H, W].
	Shape  []int
	Layers []LayerSpec
}

// DefaultLeakySlope is the negative slope of "leakyrelu" without a number,
// PyTorch's default.
const DefaultLeakySlope = 0.01

// DefaultELUAlpha is the alpha of "elu" without a number, PyTorch's
// default.
const DefaultELUAlpha = 1.0

var activationTokens = map[string]device.Activation{
	"relu": device.ReLU, "tanh": device.Tanh, "sigmoid": device.Sigmoid,
	"gelu": device.GELU, "gelu_tanh": device.GELUTanh, "identity": device.Identity,
	"silu": device.SiLU,
}

const specHelp = "a width (positive integer), relu, leakyrelu, leakyrelu<slope>, tanh, sigmoid, gelu, gelu_tanh, silu, elu, elu<alpha>, identity, softmax, drop<p> with 0 ≤ p < 1, or an image layer: conv<out>k<k>[s<s>][p<p>][d<d>], bn, maxpool<k>[s<s>][p<p>], avgpool<k>[s<s>][p<p>], gap, flatten"

// ParseSpec parses a model spec such as "784-256-relu-128-relu-10",
// "2-4-tanh-1-sigmoid", "784-512-relu-drop0.2-10" or an image model,
// "1x28x28-conv32k3p1-bn-relu-maxpool2-flatten-128-relu-10" (spec_image.go
// has the image tokens). Tokens are case-insensitive. A bad spec gives an
// error naming the token, its position and what was expected there; the
// shapes are checked as Validate does.
func ParseSpec(spec string) (Spec, error) {
	var s Spec
	src := strings.TrimSpace(spec)
	if src == "" {
		return s, fmt.Errorf("model spec is empty: expected the input width followed by layers, e.g. \"784-256-relu-10\"")
	}
	toks := strings.Split(strings.ToLower(src), "-")
	bad := func(i int, format string, a ...any) error {
		return fmt.Errorf("model spec %q: token %d %q: %s", spec, i+1, toks[i], fmt.Sprintf(format, a...))
	}
	for i, raw := range toks {
		tok := strings.TrimSpace(raw)
		toks[i] = tok
		if tok == "" {
			return s, bad(i, "empty token (two dashes in a row, or a dash at an end); expected %s", specHelp)
		}
		if i == 0 && strings.Contains(tok, "x") {
			shape, err := parseShapeToken(tok)
			if err != nil {
				return s, bad(i, "%v", err)
			}
			s.Shape, s.In = shape, shape[0]*shape[1]*shape[2]
			continue
		}
		if tok[0] >= '0' && tok[0] <= '9' {
			n, err := strconv.Atoi(tok)
			if err != nil || n < 1 {
				return s, bad(i, "expected a width, a positive integer")
			}
			if i == 0 {
				s.In = n
			} else {
				s.Layers = append(s.Layers, LayerSpec{Kind: LinearLayer, Units: n})
			}
			continue
		}
		if i == 0 {
			return s, bad(i, "expected the input width (a positive integer) first")
		}
		if a, ok := activationTokens[tok]; ok {
			s.Layers = append(s.Layers, LayerSpec{Kind: ActivationLayer, Act: a})
			continue
		}
		if l, ok, err := parseImageToken(tok); ok {
			if err != nil {
				return s, bad(i, "%v", err)
			}
			s.Layers = append(s.Layers, l)
			continue
		}
		switch {
		case tok == "softmax":
			s.Layers = append(s.Layers, LayerSpec{Kind: SoftmaxLayer})
		case strings.HasPrefix(tok, "leakyrelu"):
			alpha := float32(DefaultLeakySlope)
			if rest := tok[len("leakyrelu"):]; rest != "" {
				v, err := strconv.ParseFloat(rest, 32)
				if err != nil || v < 0 || v != v {
					return s, bad(i, "expected leakyrelu or leakyrelu<slope> with a non-negative slope such as leakyrelu0.2")
				}
				alpha = float32(v)
			}
			s.Layers = append(s.Layers, LayerSpec{Kind: ActivationLayer, Act: device.LeakyReLU, Alpha: alpha})
		case strings.HasPrefix(tok, "elu"):
			alpha := float32(DefaultELUAlpha)
			if rest := tok[len("elu"):]; rest != "" {
				v, err := strconv.ParseFloat(rest, 32)
				if err != nil || v < 0 || v != v {
					return s, bad(i, "expected elu or elu<alpha> with a non-negative alpha such as elu0.5")
				}
				alpha = float32(v)
			}
			s.Layers = append(s.Layers, LayerSpec{Kind: ActivationLayer, Act: device.ELU, Alpha: alpha})
		case strings.HasPrefix(tok, "drop"):
			rest := strings.TrimPrefix(strings.TrimPrefix(tok, "dropout"), "drop")
			v, err := strconv.ParseFloat(rest, 32)
			if rest == "" || err != nil || !(v >= 0 && v < 1) {
				return s, bad(i, "expected drop<p> with a probability 0 ≤ p < 1, such as drop0.2")
			}
			s.Layers = append(s.Layers, LayerSpec{Kind: DropoutLayer, P: float32(v)})
		default:
			return s, bad(i, "unknown layer; expected %s", specHelp)
		}
	}
	if len(s.Layers) == 0 {
		if len(s.Shape) == 3 {
			return s, fmt.Errorf("model spec %q: no layers after the input shape %s; expected e.g. %q", spec, toks[0], src+"-flatten-10")
		}
		return s, fmt.Errorf("model spec %q: no layers after the input width %d; expected e.g. %q", spec, s.In, src+"-10")
	}
	if _, err := s.shapes(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// MustParseSpec is ParseSpec for specs fixed in source code (tests,
// examples); it panics on a bad spec, as regexp.MustCompile does.
func MustParseSpec(spec string) Spec {
	s, err := ParseSpec(spec)
	if err != nil {
		panic(err)
	}
	return s
}

// String writes the spec back in the form ParseSpec reads; parsing the
// result gives the same Spec.
func (s Spec) String() string {
	var b strings.Builder
	if len(s.Shape) == 3 {
		fmt.Fprintf(&b, "%dx%dx%d", s.Shape[0], s.Shape[1], s.Shape[2])
	} else {
		b.WriteString(strconv.Itoa(s.In))
	}
	for _, l := range s.Layers {
		b.WriteByte('-')
		b.WriteString(l.String())
	}
	return b.String()
}

// String is the layer's spec token.
func (l LayerSpec) String() string {
	switch l.Kind {
	case LinearLayer:
		return strconv.Itoa(l.Units)
	case ActivationLayer:
		if l.Act == device.LeakyReLU && l.Alpha != DefaultLeakySlope {
			return "leakyrelu" + strconv.FormatFloat(float64(l.Alpha), 'g', -1, 32)
		}
		if l.Act == device.ELU && l.Alpha != DefaultELUAlpha {
			return "elu" + strconv.FormatFloat(float64(l.Alpha), 'g', -1, 32)
		}
		return l.Act.String()
	case SoftmaxLayer:
		return "softmax"
	case DropoutLayer:
		return "drop" + strconv.FormatFloat(float64(l.P), 'g', -1, 32)
	case Conv2dLayer, BatchNormLayer, MaxPoolLayer, AvgPoolLayer, GlobalAvgPoolLayer, FlattenLayer:
		return l.imageToken()
	}
	return fmt.Sprintf("LayerKind(%d)", uint8(l.Kind))
}

// Validate checks a Spec built in code rather than parsed: widths ≥ 1,
// known activations, dropout 0 ≤ p < 1, and for image layers the shapes.
func (s Spec) Validate() error {
	_, err := s.validate()
	return err
}

// validate is Validate, returning the shapes between the layers (shapes).
func (s Spec) validate() ([]specShape, error) {
	if s.In < 1 {
		return nil, fmt.Errorf("model spec %s: input width %d, expected ≥ 1", s, s.In)
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("model spec %s: no layers", s)
	}
	for i, l := range s.Layers {
		switch l.Kind {
		case LinearLayer:
			if l.Units < 1 {
				return nil, fmt.Errorf("model spec %s: layer %d: width %d, expected ≥ 1", s, i, l.Units)
			}
		case ActivationLayer:
			if l.Act < device.Identity || l.Act > device.ELU {
				return nil, fmt.Errorf("model spec %s: layer %d: unknown activation %d", s, i, l.Act)
			}
		case SoftmaxLayer:
		case DropoutLayer:
			if !(l.P >= 0 && l.P < 1) {
				return nil, fmt.Errorf("model spec %s: layer %d: dropout p = %v, expected 0 ≤ p < 1", s, i, l.P)
			}
		case Conv2dLayer, BatchNormLayer, MaxPoolLayer, AvgPoolLayer, GlobalAvgPoolLayer, FlattenLayer:
			// shapes checks them below.
		default:
			return nil, fmt.Errorf("model spec %s: layer %d: unknown kind %d", s, i, l.Kind)
		}
	}
	return s.shapes()
}

// Out is the width of the model's output: the last Linear's units, or the
// input width when there is no Linear layer (for an image model, the
// width its last layer leaves).
func (s Spec) Out() int {
	if sh, err := s.shapes(); err == nil && len(s.Shape) == 3 {
		return sh[len(sh)-1].width()
	}
	w := s.In
	for _, l := range s.Layers {
		if l.Kind == LinearLayer {
			w = l.Units
		}
	}
	return w
}
