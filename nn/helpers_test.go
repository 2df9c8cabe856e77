package nn

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
)

// openCPU opens the CPU backend, closed when the test ends.
func openCPU(t testing.TB) device.Device {
	t.Helper()
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatalf("open cpu: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev
}

// upload copies host values into a new device buffer freed at cleanup.
func upload(t testing.TB, dev device.Device, v []float32) device.Buffer {
	t.Helper()
	b, err := dev.Alloc(device.Float32, len(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteF32(b, 0, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Free(b) })
	return b
}

func uploadI32(t testing.TB, dev device.Device, v []int32) device.Buffer {
	t.Helper()
	b, err := dev.Alloc(device.Int32, len(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteI32(b, 0, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Free(b) })
	return b
}

// rng is a tiny deterministic generator for test data (splitmix64).
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9E3779B97F4A7C15
	z := uint64(*r)
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// uniform returns n values in [lo, hi).
func (r *rng) uniform(n int, lo, hi float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*float64(r.next()>>11)/(1<<53)
	}
	return v
}

// awayFromZero returns n values with lo ≤ |v| < hi and random sign, so
// that kinks at 0 (relu, leakyrelu) are never within a difference step.
func (r *rng) awayFromZero(n int, lo, hi float64) []float64 {
	v := r.uniform(n, lo, hi)
	for i := range v {
		if r.next()&1 == 1 {
			v[i] = -v[i]
		}
	}
	return v
}

func f32s(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

// rounded is v rounded to float32 and back: the values the device sees.
func rounded(v []float64) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(float32(x))
	}
	return o
}

// Float64 references of the activations, from PyTorch's definitions.
func refAct(act device.Activation, alpha, x float64) float64 {
	switch act {
	case device.Identity:
		return x
	case device.ReLU:
		return math.Max(x, 0)
	case device.LeakyReLU:
		if x > 0 {
			return x
		}
		return alpha * x
	case device.Tanh:
		return math.Tanh(x)
	case device.Sigmoid:
		return 1 / (1 + math.Exp(-x))
	case device.GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case device.GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	panic("unknown activation")
}

// refSoftmax is the row-wise softmax of a rows×cols matrix.
func refSoftmax(x []float64, rows, cols int) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < rows; i++ {
		r := x[i*cols : (i+1)*cols]
		m := math.Inf(-1)
		for _, v := range r {
			m = math.Max(m, v)
		}
		var s float64
		for j, v := range r {
			y[i*cols+j] = math.Exp(v - m)
			s += y[i*cols+j]
		}
		for j := range r {
			y[i*cols+j] /= s
		}
	}
	return y
}

// refLoss is the float64 loss with PyTorch's definitions; labels is used
// by cross-entropy, target by the others.
func refLoss(kind device.LossKind, h, target []float64, labels []int32, rows, cols int) float64 {
	var s float64
	switch kind {
	case device.MSE:
		for i := range h {
			s += (h[i] - target[i]) * (h[i] - target[i])
		}
		return s / float64(len(h))
	case device.HalfSSE:
		for i := range h {
			s += (h[i] - target[i]) * (h[i] - target[i])
		}
		return s / (2 * float64(rows))
	case device.BCE:
		for i := range h {
			lh := math.Max(math.Log(h[i]), -100)
			l1 := math.Max(math.Log(1-h[i]), -100)
			s -= target[i]*lh + (1-target[i])*l1
		}
		return s / float64(len(h))
	case device.BCEWithLogits:
		for i, x := range h {
			s += math.Max(x, 0) - x*target[i] + math.Log1p(math.Exp(-math.Abs(x)))
		}
		return s / float64(len(h))
	case device.SoftmaxCrossEntropy:
		for i := 0; i < rows; i++ {
			r := h[i*cols : (i+1)*cols]
			m := math.Inf(-1)
			for _, v := range r {
				m = math.Max(m, v)
			}
			var z float64
			for _, v := range r {
				z += math.Exp(v - m)
			}
			s += m + math.Log(z) - r[labels[i]]
		}
		return s / float64(rows)
	}
	panic("unknown loss")
}

// refLinear is y = x·Wᵀ + b for x rows×in, W out×in.
func refLinear(x, w, b []float64, rows, in, out int) []float64 {
	y := make([]float64, rows*out)
	for i := 0; i < rows; i++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}
