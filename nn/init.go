package nn

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kilnml/kiln/device"
)

// InitKind names a way to draw a parameter tensor's initial values.
type InitKind uint8

// The initialisers, with PyTorch's definitions (torch.nn.init). fan_in and
// fan_out of a Linear weight [out, in] are in and out.
const (
	// InitDefault is PyTorch's default nn.Linear init: weight and bias
	// U(−1/√in, 1/√in) (kaiming_uniform_ with a=√5 gives that bound).
	InitDefault InitKind = iota
	// InitNormal is N(0, Std²).
	InitNormal
	// InitUniform is U(−Range, Range).
	InitUniform
	// InitXavierNormal is N(0, σ²), σ = gain·√(2/(fan_in+fan_out)).
	InitXavierNormal
	// InitXavierUniform is U(−a, a), a = gain·√(6/(fan_in+fan_out)).
	InitXavierUniform
	// InitHeNormal is N(0, σ²), σ = gain/√fan_in (kaiming_normal_, fan_in).
	InitHeNormal
	// InitHeUniform is U(−a, a), a = gain·√(3/fan_in) (kaiming_uniform_).
	InitHeUniform
	// InitZeros sets every value to 0.
	InitZeros
)

var initNames = [...]string{
	InitDefault: "default", InitNormal: "normal", InitUniform: "uniform",
	InitXavierNormal: "xavier_normal", InitXavierUniform: "xavier_uniform",
	InitHeNormal: "he_normal", InitHeUniform: "he_uniform", InitZeros: "zeros",
}

func (k InitKind) String() string {
	if int(k) < len(initNames) {
		return initNames[k]
	}
	return fmt.Sprintf("InitKind(%d)", uint8(k))
}

// Init says how Build draws weights and biases. The zero value is
// PyTorch's default Linear init.
//
// Weights use Weight with Std (normal), Range (uniform) or Gain (Xavier: 1
// when 0; He: √2 when 0, the gain of relu). Biases: with Weight
// InitDefault, PyTorch's U(−1/√in, 1/√in); otherwise zeros, unless Bias
// names InitDefault-style uniform (BiasDefault) or InitZeros explicitly.
type Init struct {
	Weight InitKind
	Std    float32 // InitNormal: standard deviation
	Range  float32 // InitUniform: half-width
	Gain   float32 // Xavier and He: gain; 0 means the default
	Bias   BiasInit
}

// BiasInit chooses the bias initialiser.
type BiasInit uint8

const (
	// BiasAuto is PyTorch's default bias when Weight is InitDefault, zeros
	// otherwise.
	BiasAuto BiasInit = iota
	// BiasZeros sets biases to 0.
	BiasZeros
	// BiasDefault is PyTorch's default U(−1/√in, 1/√in).
	BiasDefault
)

// ParseInit reads an initialiser name as the command line writes it:
// "default" (or "pytorch"), "normal<std>" (normal0.01), "uniform<range>",
// "xavier_normal", "xavier_uniform", "he_normal", "he_uniform" (also
// "kaiming_*", "glorot_*"), "zeros". Xavier and He take an optional gain
// suffix after a colon: "xavier_uniform:1.5".
func ParseInit(s string) (Init, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	var in Init
	gain := ""
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name, gain = name[:i], name[i+1:]
	}
	name = strings.NewReplacer("kaiming", "he", "glorot", "xavier").Replace(name)
	num := func(prefix string) (float32, error) {
		v, err := strconv.ParseFloat(strings.TrimPrefix(name, prefix), 32)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("init %q: expected %s<positive number>, e.g. %s0.01", s, prefix, prefix)
		}
		return float32(v), nil
	}
	var err error
	switch {
	case name == "default" || name == "pytorch" || name == "":
		in.Weight = InitDefault
	case name == "zeros":
		in.Weight = InitZeros
	case name == "xavier_normal":
		in.Weight = InitXavierNormal
	case name == "xavier_uniform":
		in.Weight = InitXavierUniform
	case name == "he_normal":
		in.Weight = InitHeNormal
	case name == "he_uniform":
		in.Weight = InitHeUniform
	case strings.HasPrefix(name, "normal"):
		in.Weight = InitNormal
		in.Std, err = num("normal")
	case strings.HasPrefix(name, "uniform"):
		in.Weight = InitUniform
		in.Range, err = num("uniform")
	default:
		return in, fmt.Errorf("init %q: unknown initialiser; expected default, normal<std>, uniform<range>, xavier_normal, xavier_uniform, he_normal, he_uniform or zeros", s)
	}
	if err != nil {
		return in, err
	}
	if gain != "" {
		switch in.Weight {
		case InitXavierNormal, InitXavierUniform, InitHeNormal, InitHeUniform:
		default:
			return in, fmt.Errorf("init %q: only xavier_* and he_* take a gain", s)
		}
		v, err := strconv.ParseFloat(gain, 32)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return in, fmt.Errorf("init %q: gain %q, expected a positive number", s, gain)
		}
		in.Gain = float32(v)
	}
	return in, nil
}

// String writes the init back in ParseInit's form.
func (in Init) String() string {
	s := in.Weight.String()
	switch in.Weight {
	case InitNormal:
		s += strconv.FormatFloat(float64(in.Std), 'g', -1, 32)
	case InitUniform:
		s += strconv.FormatFloat(float64(in.Range), 'g', -1, 32)
	case InitXavierNormal, InitXavierUniform, InitHeNormal, InitHeUniform:
		if in.Gain != 0 {
			s += ":" + strconv.FormatFloat(float64(in.Gain), 'g', -1, 32)
		}
	}
	return s
}

// draw describes one parameter tensor's distribution.
type draw struct {
	normal bool
	a, b   float32 // normal: mean, std; uniform: lo, hi
	zero   bool
}

// weightDraw is the distribution of a Linear weight [out, in].
func (in Init) weightDraw(fanIn, fanOut int) (draw, error) {
	fi, fo := float64(fanIn), float64(fanOut)
	gain := float64(in.Gain)
	switch in.Weight {
	case InitDefault:
		b := float32(1 / math.Sqrt(fi))
		return draw{a: -b, b: b}, nil
	case InitNormal:
		if !(in.Std > 0) {
			return draw{}, fmt.Errorf("init normal: Std = %v, expected > 0", in.Std)
		}
		return draw{normal: true, b: in.Std}, nil
	case InitUniform:
		if !(in.Range > 0) {
			return draw{}, fmt.Errorf("init uniform: Range = %v, expected > 0", in.Range)
		}
		return draw{a: -in.Range, b: in.Range}, nil
	case InitXavierNormal, InitXavierUniform:
		if gain == 0 {
			gain = 1
		}
		if in.Weight == InitXavierNormal {
			return draw{normal: true, b: float32(gain * math.Sqrt(2/(fi+fo)))}, nil
		}
		a := float32(gain * math.Sqrt(6/(fi+fo)))
		return draw{a: -a, b: a}, nil
	case InitHeNormal, InitHeUniform:
		if gain == 0 {
			gain = math.Sqrt2
		}
		if in.Weight == InitHeNormal {
			return draw{normal: true, b: float32(gain / math.Sqrt(fi))}, nil
		}
		a := float32(gain * math.Sqrt(3/fi))
		return draw{a: -a, b: a}, nil
	case InitZeros:
		return draw{zero: true}, nil
	}
	return draw{}, fmt.Errorf("init: unknown weight initialiser %d", in.Weight)
}

// biasDraw is the distribution of a Linear bias [out].
func (in Init) biasDraw(fanIn int) (draw, error) {
	switch in.Bias {
	case BiasAuto:
		if in.Weight == InitDefault {
			return in.weightDraw(fanIn, 0)
		}
		return draw{zero: true}, nil
	case BiasZeros:
		return draw{zero: true}, nil
	case BiasDefault:
		b := float32(1 / math.Sqrt(float64(fanIn)))
		return draw{a: -b, b: b}, nil
	}
	return draw{}, fmt.Errorf("init: unknown bias initialiser %d", in.Bias)
}

// apply fills n elements of x from the seed's stream starting at position
// pos.
func (d draw) apply(dev device.Device, x device.Buffer, n int, seed, pos uint64) error {
	switch {
	case d.zero:
		return dev.Fill(x, n, 0)
	case d.normal:
		return dev.RandNormal(x, n, d.a, d.b, seed, pos)
	}
	return dev.RandUniform(x, n, d.a, d.b, seed, pos)
}
