package gpt

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
)

// This file holds the test helpers and an independent float64 reference
// of GPT-2 written from the paper's equations (and transformers'
// modeling_gpt2.py), reading the parameters by their Hugging Face names.

func openCPU(t testing.TB) device.Device {
	t.Helper()
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatalf("open cpu: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev
}

func newModel(t testing.TB, dev device.Device, cfg Config, seed uint64) *Model {
	t.Helper()
	m, err := New(dev, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Free() })
	return m
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

// tokens returns n pseudo-random ids in [0, vocab).
func tokens(n, vocab int, seed uint32) []int32 {
	out := make([]int32, n)
	s := seed*2654435761 + 1
	for i := range out {
		s ^= s << 13
		s ^= s >> 17
		s ^= s << 5
		out[i] = int32(s % uint32(vocab))
	}
	return out
}

// logitsOf runs the model in evaluation mode on idx [b, t] and returns the
// logits on the host.
func logitsOf(t testing.TB, m *Model, idx []int32, b, tt int) []float32 {
	t.Helper()
	dev := m.Device()
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	nn.SetTraining(m, false)
	y, err := m.Logits(g, uploadI32(t, dev, idx), b, tt)
	if err != nil {
		t.Fatal(err)
	}
	if s := y.Shape(); len(s) != 3 || s[0] != b || s[1] != tt || s[2] != m.Config.VocabSize {
		t.Fatalf("logits shape %v, expected [%d %d %d]", s, b, tt, m.Config.VocabSize)
	}
	v, err := y.Values()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hostParams is a state dict as float64 slices by name.
type hostParams map[string][]float64

func paramsOf(t testing.TB, m *Model) hostParams {
	t.Helper()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	hp := hostParams{}
	for n, ten := range sd.Tensors {
		v := make([]float64, len(ten.Data))
		for i, x := range ten.Data {
			v[i] = float64(x)
		}
		hp[n] = v
	}
	return hp
}

func refLayerNorm(x []float64, w, b []float64) []float64 {
	C := len(w)
	y := make([]float64, len(x))
	for r := 0; r < len(x)/C; r++ {
		row := x[r*C : (r+1)*C]
		mean, v := 0.0, 0.0
		for _, a := range row {
			mean += a
		}
		mean /= float64(C)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		v /= float64(C)
		rstd := 1 / math.Sqrt(v+1e-5)
		for j, a := range row {
			y[r*C+j] = (a-mean)*rstd*w[j] + at(b, j)
		}
	}
	return y
}

func at(b []float64, j int) float64 {
	if b == nil {
		return 0
	}
	return b[j]
}

// refConv1D is y = x·W + b with W [in, out].
func refConv1D(x, w, b []float64, in, out int) []float64 {
	rows := len(x) / in
	y := make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for o := 0; o < out; o++ {
			s := at(b, o)
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[i*out+o]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func refGELUTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// refLogits is GPT-2 in float64: logits [b·t, V] for idx [b, t].
func refLogits(cfg Config, p hostParams, idx []int32, b, t int) []float64 {
	C, H, V := cfg.Width, cfg.Heads, cfg.VocabSize
	d := C / H
	out := make([]float64, 0, b*t*V)
	pre := "transformer."
	for bi := 0; bi < b; bi++ {
		x := make([]float64, t*C)
		for ti := 0; ti < t; ti++ {
			tok := int(idx[bi*t+ti])
			for j := 0; j < C; j++ {
				x[ti*C+j] = p[pre+"wte.weight"][tok*C+j] + p[pre+"wpe.weight"][ti*C+j]
			}
		}
		for l := 0; l < cfg.Layers; l++ {
			h := "transformer.h." + itoa(l) + "."
			a := refLayerNorm(x, p[h+"ln_1.weight"], p[h+"ln_1.bias"])
			qkv := refConv1D(a, p[h+"attn.c_attn.weight"], p[h+"attn.c_attn.bias"], C, 3*C)
			y := make([]float64, t*C)
			for hh := 0; hh < H; hh++ {
				for i := 0; i < t; i++ {
					w := make([]float64, i+1)
					mx := math.Inf(-1)
					for j := 0; j <= i; j++ {
						s := 0.0
						for k := 0; k < d; k++ {
							s += qkv[i*3*C+hh*d+k] * qkv[j*3*C+C+hh*d+k]
						}
						w[j] = s / math.Sqrt(float64(d))
						mx = math.Max(mx, w[j])
					}
					sum := 0.0
					for j := range w {
						w[j] = math.Exp(w[j] - mx)
						sum += w[j]
					}
					for j := range w {
						for k := 0; k < d; k++ {
							y[i*C+hh*d+k] += w[j] / sum * qkv[j*3*C+2*C+hh*d+k]
						}
					}
				}
			}
			y = refConv1D(y, p[h+"attn.c_proj.weight"], p[h+"attn.c_proj.bias"], C, C)
			for i := range x {
				x[i] += y[i]
			}
			a = refLayerNorm(x, p[h+"ln_2.weight"], p[h+"ln_2.bias"])
			f := refConv1D(a, p[h+"mlp.c_fc.weight"], p[h+"mlp.c_fc.bias"], C, 4*C)
			for i := range f {
				f[i] = refGELUTanh(f[i])
			}
			y = refConv1D(f, p[h+"mlp.c_proj.weight"], p[h+"mlp.c_proj.bias"], 4*C, C)
			for i := range x {
				x[i] += y[i]
			}
		}
		x = refLayerNorm(x, p[pre+"ln_f.weight"], p[pre+"ln_f.bias"])
		wte := p["lm_head.weight"]
		for ti := 0; ti < t; ti++ {
			for v := 0; v < V; v++ {
				s := 0.0
				for j := 0; j < C; j++ {
					s += x[ti*C+j] * wte[v*C+j]
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// refLoss is the mean cross-entropy of refLogits against targets,
// skipping IgnoreIndex.
func refLoss(cfg Config, p hostParams, idx, targets []int32, b, t int) float64 {
	lg := refLogits(cfg, p, idx, b, t)
	V := cfg.VocabSize
	sum, n := 0.0, 0
	for r, y := range targets {
		if y == IgnoreIndex {
			continue
		}
		row := lg[r*V : (r+1)*V]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		z := 0.0
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		sum += mx + math.Log(z) - row[y]
		n++
	}
	return sum / float64(n)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// closeRel fails when |got−want| > tol·max(1, |want|) for any element.
func closeRel(t testing.TB, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		e := math.Abs(float64(got[i])-want[i]) / math.Max(1, math.Abs(want[i]))
		if !(e <= worst) {
			worst, at = e, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Fatalf("%s: element %d is %v, want %v (relative error %.3g > %.g)", what, at, got[at], want[at], worst, tol)
	}
}

// closeNorm fails when max|got−want| > tol·max(1, max|want|): a relative
// error against the scale of the whole output, for comparisons where
// both sides are float32 (so an element near zero carries the absolute
// rounding of the large terms that cancelled in it).
func closeNorm(t testing.TB, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	worst, at := 0.0, 0
	for i := range got {
		e := math.Abs(float64(got[i]) - want[i])
		if !(e <= worst) {
			worst, at = e, i
		}
	}
	if worst > tol*scale || math.IsNaN(worst) {
		t.Fatalf("%s: element %d is %v, want %v (error %.3g > %g × max|want| %.3g)", what, at, got[at], want[at], worst, tol, scale)
	}
}
