package nn

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

// TestInitDraws checks every initialiser element by element against the
// generator's host reference (device.NormalScaled / UniformScaled) at the
// documented stream positions, with PyTorch's bounds and standard
// deviations. Uniform values must match exactly (one float64 rounding on
// every backend); normal values to 1 ulp-ish (4e-7 relative: the float64
// log/sin/cos of the backend may differ in the last bit, see rng.go).
func TestInitDraws(t *testing.T) {
	dev := openCPU(t)
	const in, out = 6, 5
	const seed = 1234
	s := MustParseSpec("6-5")
	cases := []struct {
		init       Init
		w, b       draw
		wantZeroB  bool
		biasNormal bool
	}{
		{init: Init{}, w: draw{a: -float32(1 / math.Sqrt(in)), b: float32(1 / math.Sqrt(in))}, b: draw{a: -float32(1 / math.Sqrt(in)), b: float32(1 / math.Sqrt(in))}},
		{init: Init{Weight: InitNormal, Std: 0.02}, w: draw{normal: true, b: 0.02}, b: draw{zero: true}},
		{init: Init{Weight: InitUniform, Range: 0.1}, w: draw{a: -0.1, b: 0.1}, b: draw{zero: true}},
		{init: Init{Weight: InitXavierNormal}, w: draw{normal: true, b: float32(math.Sqrt(2.0 / (in + out)))}, b: draw{zero: true}},
		{init: Init{Weight: InitXavierUniform, Gain: 2}, w: draw{a: -2 * float32(math.Sqrt(6.0/(in+out))), b: 2 * float32(math.Sqrt(6.0/(in+out)))}, b: draw{zero: true}},
		{init: Init{Weight: InitHeNormal}, w: draw{normal: true, b: float32(math.Sqrt(2.0 / in))}, b: draw{zero: true}},
		{init: Init{Weight: InitHeUniform}, w: draw{a: -float32(math.Sqrt(6.0 / in)), b: float32(math.Sqrt(6.0 / in))}, b: draw{zero: true}},
		{init: Init{Weight: InitHeUniform, Bias: BiasDefault}, w: draw{a: -float32(math.Sqrt(6.0 / in)), b: float32(math.Sqrt(6.0 / in))}, b: draw{a: -float32(1 / math.Sqrt(in)), b: float32(1 / math.Sqrt(in))}},
		{init: Init{Bias: BiasZeros}, w: draw{a: -float32(1 / math.Sqrt(in)), b: float32(1 / math.Sqrt(in))}, b: draw{zero: true}},
		{init: Init{Weight: InitZeros}, w: draw{zero: true}, b: draw{zero: true}},
	}
	for _, c := range cases {
		t.Run(c.init.String(), func(t *testing.T) {
			m, err := Build(dev, s, c.init, seed)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			// Positions: weight [0, 30), bias from 32 (30 rounded up to 4).
			for _, pc := range []struct {
				p   *Param
				d   draw
				pos uint64
			}{{m.Param("0.weight"), c.w, 0}, {m.Param("0.bias"), c.b, 32}} {
				got, err := pc.p.Values()
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range got {
					var want float32
					switch {
					case pc.d.zero:
					case pc.d.normal:
						want = device.NormalScaled(seed, pc.pos+uint64(i), 0, pc.d.b)
					default:
						want = device.UniformScaled(seed, pc.pos+uint64(i), pc.d.a, pc.d.b)
						if v < pc.d.a || v > pc.d.b {
							t.Fatalf("%s[%d] = %v outside [%v, %v]", pc.p.Name, i, v, pc.d.a, pc.d.b)
						}
					}
					tol := 0.0
					if pc.d.normal {
						tol = 4e-7 * math.Abs(float64(want))
					}
					if math.Abs(float64(v-want)) > tol {
						t.Fatalf("%s[%d] = %v, expected %v", pc.p.Name, i, v, want)
					}
				}
			}
		})
	}
}

// TestInitStatistics: a large He-normal weight has the std PyTorch's
// kaiming_normal_ gives (√(2/fan_in)) within sampling error (5σ of the
// sample std's spread, ≈ std/√(2n)), and the same seed gives the same
// weights while another seed does not.
func TestInitStatistics(t *testing.T) {
	dev := openCPU(t)
	s := MustParseSpec("200-300")
	m := buildModel(t, dev, "200-300", Init{Weight: InitHeNormal}, 9)
	w, _ := m.Param("0.weight").Values()
	var sum, sq float64
	for _, v := range w {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(w))
	std := math.Sqrt(sq/n - (sum/n)*(sum/n))
	want := math.Sqrt(2.0 / 200)
	if math.Abs(std-want) > 5*want/math.Sqrt(2*n) {
		t.Errorf("He normal std %v, expected %v", std, want)
	}
	m2, _ := Build(dev, s, Init{Weight: InitHeNormal}, 9)
	defer m2.Free()
	m3, _ := Build(dev, s, Init{Weight: InitHeNormal}, 10)
	defer m3.Free()
	w2, _ := m2.Param("0.weight").Values()
	w3, _ := m3.Param("0.weight").Values()
	same3 := 0
	for i := range w {
		if w[i] != w2[i] {
			t.Fatalf("same seed, different weight at %d: %v vs %v", i, w[i], w2[i])
		}
		if w[i] == w3[i] {
			same3++
		}
	}
	if same3 > len(w)/100 {
		t.Errorf("seeds 9 and 10 agree on %d of %d weights", same3, len(w))
	}
}

func TestParseInit(t *testing.T) {
	good := map[string]Init{
		"default":            {},
		"pytorch":            {},
		"normal0.01":         {Weight: InitNormal, Std: 0.01},
		"uniform0.5":         {Weight: InitUniform, Range: 0.5},
		"xavier_uniform":     {Weight: InitXavierUniform},
		"glorot_normal":      {Weight: InitXavierNormal},
		"kaiming_normal":     {Weight: InitHeNormal},
		"he_uniform:1.5":     {Weight: InitHeUniform, Gain: 1.5},
		"xavier_normal:0.75": {Weight: InitXavierNormal, Gain: 0.75},
		"zeros":              {Weight: InitZeros},
	}
	for s, want := range good {
		got, err := ParseInit(s)
		if err != nil || got != want {
			t.Errorf("ParseInit(%q) = %+v, %v; expected %+v", s, got, err, want)
		}
		back, err := ParseInit(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q via %q: %+v, %v", s, got.String(), back, err)
		}
	}
	for _, s := range []string{"normal", "normal-1", "uniformx", "he", "zeros:2", "xavier_uniform:0", "bogus"} {
		if _, err := ParseInit(s); err == nil {
			t.Errorf("ParseInit(%q) accepted", s)
		}
	}
}
