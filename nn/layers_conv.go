package nn

import "fmt"

// Conv2d is PyTorch's nn.Conv2d with groups 1: Weight [Out, In, KH, KW]
// and Bias [Out] (nil without bias) over [N, In, H, W] inputs.
type Conv2d struct {
	In, Out                   int
	Kernel                    [2]int // (KH, KW)
	Stride, Padding, Dilation [2]int
	Weight, Bias              *Param
}

// ConvOption sets an optional argument of NewConv2d.
type ConvOption func(*convOpts)

type convOpts struct {
	stride, padding, dilation [2]int
	kernel                    [2]int
	noBias                    bool
}

// WithStride sets the stride of a convolution (both axes).
func WithStride(s int) ConvOption { return func(o *convOpts) { o.stride = [2]int{s, s} } }

// WithPadding sets the zero padding of a convolution (both axes).
func WithPadding(p int) ConvOption { return func(o *convOpts) { o.padding = [2]int{p, p} } }

// WithDilation sets the dilation of a convolution (both axes).
func WithDilation(d int) ConvOption { return func(o *convOpts) { o.dilation = [2]int{d, d} } }

// WithKernelHW makes the kernel kh×kw instead of kernel×kernel.
func WithKernelHW(kh, kw int) ConvOption { return func(o *convOpts) { o.kernel = [2]int{kh, kw} } }

// WithoutBias drops a convolution's bias (bias=False).
func WithoutBias() ConvOption { return func(o *convOpts) { o.noBias = true } }

// NewConv2d declares nn.Conv2d(in, out, kernel) with stride 1, padding 0,
// dilation 1 and a bias unless opts say otherwise, initialised as PyTorch
// does: weight and bias U(−1/√fan_in, 1/√fan_in), fan_in = in·KH·KW (what
// kaiming_uniform_ with a = √5 gives). Parameters are placed by
// NewParamSet.
func NewConv2d(in, out, kernel int, opts ...ConvOption) *Conv2d {
	o := convOpts{stride: [2]int{1, 1}, dilation: [2]int{1, 1}, kernel: [2]int{kernel, kernel}}
	for _, f := range opts {
		f(&o)
	}
	fanIn := in * o.kernel[0] * o.kernel[1]
	c := &Conv2d{In: in, Out: out, Kernel: o.kernel, Stride: o.stride, Padding: o.padding, Dilation: o.dilation,
		Weight: NewParam("weight", DefaultInit(fanIn), out, in, o.kernel[0], o.kernel[1])}
	if !o.noBias {
		c.Bias = NewParam("bias", DefaultInit(fanIn), out)
	}
	return c
}

// Forward is g.Conv2d(x, Weight, Bias, Stride, Padding, Dilation).
func (c *Conv2d) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	w, err := g.Param(c.Weight)
	if err != nil {
		return nil, err
	}
	b, err := g.OptionalParam(c.Bias)
	if err != nil {
		return nil, err
	}
	return g.Conv2d(x, w, b, c.Stride, c.Padding, c.Dilation)
}

// Children is empty.
func (c *Conv2d) Children() []Child { return nil }

// OwnParams returns the weight and the bias (when there is one).
func (c *Conv2d) OwnParams() []*Param {
	if c.Bias == nil {
		return []*Param{c.Weight}
	}
	return []*Param{c.Weight, c.Bias}
}

// SetTraining does nothing: Conv2d behaves the same in both modes.
func (c *Conv2d) SetTraining(bool) {}

// String describes the layer as PyTorch prints it.
func (c *Conv2d) String() string {
	return fmt.Sprintf("Conv2d(%d, %d, kernel_size=%v, stride=%v, padding=%v, dilation=%v, bias=%v)",
		c.In, c.Out, c.Kernel, c.Stride, c.Padding, c.Dilation, c.Bias != nil)
}

// poolArgs fills PyTorch's defaults: stride 0 means the kernel size.
func poolArgs(kernel, stride, padding int) (k, s, p [2]int) {
	if stride == 0 {
		stride = kernel
	}
	return [2]int{kernel, kernel}, [2]int{stride, stride}, [2]int{padding, padding}
}

// MaxPool2d is nn.MaxPool2d (dilation 1, ceil_mode False).
type MaxPool2d struct{ Kernel, Stride, Padding [2]int }

// NewMaxPool2d is nn.MaxPool2d(kernel, stride, padding); stride 0 is
// PyTorch's default, the kernel size.
func NewMaxPool2d(kernel, stride, padding int) *MaxPool2d {
	k, s, p := poolArgs(kernel, stride, padding)
	return &MaxPool2d{k, s, p}
}

// Forward is g.MaxPool2d.
func (m *MaxPool2d) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	return g.MaxPool2d(x, m.Kernel, m.Stride, m.Padding)
}

// Children is empty.
func (m *MaxPool2d) Children() []Child { return nil }

// OwnParams is empty.
func (m *MaxPool2d) OwnParams() []*Param { return nil }

// SetTraining does nothing.
func (m *MaxPool2d) SetTraining(bool) {}

// AvgPool2d is nn.AvgPool2d (count_include_pad True, ceil_mode False).
type AvgPool2d struct{ Kernel, Stride, Padding [2]int }

// NewAvgPool2d is nn.AvgPool2d(kernel, stride, padding); stride 0 is the
// kernel size.
func NewAvgPool2d(kernel, stride, padding int) *AvgPool2d {
	k, s, p := poolArgs(kernel, stride, padding)
	return &AvgPool2d{k, s, p}
}

// Forward is g.AvgPool2d.
func (m *AvgPool2d) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	return g.AvgPool2d(x, m.Kernel, m.Stride, m.Padding)
}

// Children is empty.
func (m *AvgPool2d) Children() []Child { return nil }

// OwnParams is empty.
func (m *AvgPool2d) OwnParams() []*Param { return nil }

// SetTraining does nothing.
func (m *AvgPool2d) SetTraining(bool) {}

// AdaptiveAvgPool2d is nn.AdaptiveAvgPool2d((OutH, OutW)).
type AdaptiveAvgPool2d struct{ OutH, OutW int }

// NewAdaptiveAvgPool2d is nn.AdaptiveAvgPool2d((outH, outW)); (1, 1) is
// global average pooling.
func NewAdaptiveAvgPool2d(outH, outW int) *AdaptiveAvgPool2d {
	return &AdaptiveAvgPool2d{outH, outW}
}

// Forward is g.AdaptiveAvgPool2d.
func (m *AdaptiveAvgPool2d) Forward(g *Graph, x *Tensor) (*Tensor, error) {
	return g.AdaptiveAvgPool2d(x, m.OutH, m.OutW)
}

// Children is empty.
func (m *AdaptiveAvgPool2d) Children() []Child { return nil }

// OwnParams is empty.
func (m *AdaptiveAvgPool2d) OwnParams() []*Param { return nil }

// SetTraining does nothing.
func (m *AdaptiveAvgPool2d) SetTraining(bool) {}

// Flatten is nn.Flatten(start_dim=StartDim) (end_dim −1): a view.
type Flatten struct{ StartDim int }

// NewFlatten is nn.Flatten(): StartDim 1, keeping the batch axis.
func NewFlatten() *Flatten { return &Flatten{StartDim: 1} }

// Forward is g.Flatten(x, StartDim).
func (f *Flatten) Forward(g *Graph, x *Tensor) (*Tensor, error) { return g.Flatten(x, f.StartDim) }

// Children is empty.
func (f *Flatten) Children() []Child { return nil }

// OwnParams is empty.
func (f *Flatten) OwnParams() []*Param { return nil }

// SetTraining does nothing.
func (f *Flatten) SetTraining(bool) {}
