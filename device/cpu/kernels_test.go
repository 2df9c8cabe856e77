package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
)

// sizes covers the serial path, a tail, and the parallel path (above
// ewGrain and trGrain).
var sizes = []int{1, 7, 1000, 3*ewGrain + 5}

func gemmRef(ta, tb bool, m, n, k int, alpha float64, a, b []float32, beta float64, c []float32) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if ta {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if tb {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = alpha * s
			if beta != 0 {
				out[i*n+j] += beta * float64(c[i*n+j])
			}
		}
	}
	return out
}

func TestGemm(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, dims := range [][3]int{{1, 1, 1}, {3, 5, 7}, {64, 33, 129}, {130, 70, 90}} {
		m, n, k := dims[0], dims[1], dims[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					a := randVec(r, m*k, -1, 1)
					b := randVec(r, k*n, -1, 1)
					c := randVec(r, m*n, -1, 1)
					want := gemmRef(ta, tb, m, n, k, float64(ab[0]), a, b, float64(ab[1]), c)
					A, B, C := upload(t, d, a), upload(t, d, b), upload(t, d, c)
					must(t, d.Gemm(ta, tb, m, n, k, ab[0], A, B, ab[1], C))
					got := download(t, d, C)
					// Float32 dot products of length k accumulate ≤ k·u
					// relative error (worst case, bound on the norm).
					if e := relErr(got, want); e > float64(k+2)*u {
						t.Errorf("Gemm(%v,%v,%d,%d,%d,α=%g,β=%g): rel err %.3g > %.3g", ta, tb, m, n, k, ab[0], ab[1], e, float64(k+2)*u)
					}
				}
			}
		}
	}
}

func TestGemmBetaZeroIgnoresNaN(t *testing.T) {
	d := newDev(t)
	m, n, k := 40, 50, 60
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randVec(r, m*k, -1, 1), randVec(r, k*n, -1, 1)
	nan := make([]float32, m*n)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	A, B, C := upload(t, d, a), upload(t, d, b), upload(t, d, nan)
	must(t, d.Gemm(false, false, m, n, k, 1, A, B, 0, C))
	want := gemmRef(false, false, m, n, k, 1, a, b, 0, nil)
	if e := relErr(download(t, d, C), want); e > float64(k)*u {
		t.Errorf("beta=0 with NaN in C (%s): rel err %v; NaN leaked or result wrong", BLAS(), e)
	}
	// alpha = 0: A and B are not read either.
	must(t, d.WriteF32(A, 0, nan[:1]))
	must(t, d.Fill(C, m*n, 2))
	must(t, d.Gemm(false, false, m, n, k, 0, A, B, 0.5, C))
	for i, v := range download(t, d, C) {
		if v != 1 {
			t.Fatalf("alpha=0, beta=0.5: C[%d] = %v, want exactly 1", i, v)
		}
	}
}

func TestElementwise(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range sizes {
		a, b := randVec(r, n, -3, 3), randVec(r, n, -3, 3)
		A, B := upload(t, d, a), upload(t, d, b)
		out, err := d.Alloc(device.Float32, n)
		must(t, err)
		type tc struct {
			name string
			run  func() error
			ref  func(i int) float64
			dst  device.Buffer
		}
		cases := []tc{
			{"Add", func() error { return d.Add(A, B, out, n) }, func(i int) float64 { return float64(a[i]) + float64(b[i]) }, out},
			{"Sub", func() error { return d.Sub(A, B, out, n) }, func(i int) float64 { return float64(a[i]) - float64(b[i]) }, out},
			{"Mul", func() error { return d.Mul(A, B, out, n) }, func(i int) float64 { return float64(a[i]) * float64(b[i]) }, out},
			{"Scale", func() error { return d.Scale(-1.5, A, out, n) }, func(i int) float64 { return -1.5 * float64(a[i]) }, out},
			{"Fill", func() error { return d.Fill(out, n, 0.25) }, func(int) float64 { return 0.25 }, out},
			{"Axpy", func() error { return d.Axpy(0.5, A, B, n) }, func(i int) float64 { return 0.5*float64(a[i]) + float64(b[i]) }, B},
		}
		for _, c := range cases {
			must(t, c.run())
			got := download(t, d, c.dst)
			for i := 0; i < n; i++ {
				want := c.ref(i)
				// One or two correctly rounded float32 operations.
				if math.Abs(float64(got[i])-want) > 2*u*math.Abs(want)+1e-30 {
					t.Fatalf("%s n=%d [%d]: got %v, want %v", c.name, n, i, got[i], want)
				}
			}
		}
	}
}

// actRef returns f(x) and f'(x) in float64.
func actRef(act device.Activation, alpha, x float64) (float64, float64) {
	switch act {
	case device.Identity:
		return x, 1
	case device.ReLU:
		if x > 0 {
			return x, 1
		}
		return 0, 0
	case device.LeakyReLU:
		if x > 0 {
			return x, 1
		}
		return alpha * x, alpha
	case device.Tanh:
		t := math.Tanh(x)
		return t, 1 - t*t
	case device.Sigmoid:
		s := 1 / (1 + math.Exp(-x))
		return s, s * (1 - s)
	case device.GELU:
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		return x * cdf, cdf + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
	case device.GELUTanh:
		c := math.Sqrt(2 / math.Pi)
		in := c * (x + 0.044715*x*x*x)
		th := math.Tanh(in)
		f := 0.5 * x * (1 + th)
		// derivative by central difference of the float64 formula
		h := 1e-6
		fp := func(z float64) float64 { return 0.5 * z * (1 + math.Tanh(c*(z+0.044715*z*z*z))) }
		return f, (fp(x+h) - fp(x-h)) / (2 * h)
	case device.SiLU:
		s := 1 / (1 + math.Exp(-x))
		return x * s, s * (1 + x*(1-s))
	case device.ELU:
		if x > 0 {
			return x, 1
		}
		return alpha * math.Expm1(x), alpha * math.Exp(x)
	}
	panic("unknown activation")
}

func TestActivations(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(7, 8))
	const alpha = 0.1
	for act := device.Identity; act <= device.ELU; act++ {
		for _, n := range sizes {
			x := randVec(r, n, -6, 6)
			dy := randVec(r, n, -1, 1)
			X, DY := upload(t, d, x), upload(t, d, dy)
			Y, err := d.Alloc(device.Float32, n)
			must(t, err)
			DX, err := d.Alloc(device.Float32, n)
			must(t, err)
			must(t, d.Activate(act, alpha, X, Y, n))
			must(t, d.ActivateGrad(act, alpha, X, Y, DY, DX, n))
			y, dx := download(t, d, Y), download(t, d, DX)
			for i := 0; i < n; i++ {
				f, fp := actRef(act, alpha, float64(x[i]))
				g := float64(dy[i]) * fp
				// Forward: rounded once from float64 (tanh/sigmoid also
				// error-free in float64 to ~1e-16), so 1 ulp plus an
				// absolute floor for results near 0. Backward reads the
				// float32 y for tanh/sigmoid (error ~2u relative to f'),
				// and GELUTanh's reference derivative is a central
				// difference (error ~1e-9): 8u relative plus 1e-6 absolute.
				if math.Abs(float64(y[i])-f) > 2*u*math.Abs(f)+1e-7 {
					t.Fatalf("%v n=%d x=%v: f = %v, want %v", act, n, x[i], y[i], f)
				}
				if math.Abs(float64(dx[i])-g) > 8*u*math.Abs(g)+1e-6 {
					t.Fatalf("%v n=%d x=%v: dx = %v, want %v", act, n, x[i], dx[i], g)
				}
			}
			// In place (y = x) must give the same forward values.
			must(t, d.Activate(act, alpha, X, X, n))
			xy := download(t, d, X)
			for i := range xy {
				if xy[i] != y[i] {
					t.Fatalf("%v in place [%d]: %v, out of place %v", act, i, xy[i], y[i])
				}
			}
		}
	}
	X := upload(t, d, []float32{1})
	if err := d.Activate(device.Activation(99), 0, X, X, 1); err == nil {
		t.Errorf("Activate with an unknown activation: no error")
	}
}

func TestSoftmaxAndArgmax(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, dims := range [][2]int{{1, 1}, {3, 10}, {600, 70}} {
		rows, cols := dims[0], dims[1]
		x := randVec(r, rows*cols, -20, 20)
		x[0] = 80 // exp(80) overflows float32: max-subtraction needed
		dy := randVec(r, rows*cols, -1, 1)
		X, DY := upload(t, d, x), upload(t, d, dy)
		Y, _ := d.Alloc(device.Float32, rows*cols)
		DX, _ := d.Alloc(device.Float32, rows*cols)
		AM, _ := d.Alloc(device.Int32, rows)
		must(t, d.Softmax(X, Y, rows, cols))
		y := download(t, d, Y)
		must(t, d.SoftmaxGrad(Y, DY, DX, rows, cols))
		dx := download(t, d, DX)
		must(t, d.ArgmaxRows(X, rows, cols, AM))
		am := make([]int32, rows)
		must(t, d.ReadI32(am, AM, 0))
		wantY := make([]float64, rows*cols)
		wantDX := make([]float64, rows*cols)
		for i := 0; i < rows; i++ {
			row := x[i*cols : (i+1)*cols]
			m, arg := math.Inf(-1), 0
			for j, v := range row {
				if float64(v) > m {
					m, arg = float64(v), j
				}
			}
			if int(am[i]) != arg {
				t.Errorf("ArgmaxRows row %d: %d, want %d", i, am[i], arg)
			}
			s := 0.0
			for _, v := range row {
				s += math.Exp(float64(v) - m)
			}
			dot := 0.0
			for j, v := range row {
				wantY[i*cols+j] = math.Exp(float64(v)-m) / s
				dot += wantY[i*cols+j] * float64(dy[i*cols+j])
			}
			for j := range row {
				wantDX[i*cols+j] = wantY[i*cols+j] * (float64(dy[i*cols+j]) - dot)
			}
		}
		// exp and the row sum in float64, one rounding: a few u.
		if e := relErr(y, wantY); e > 4*u {
			t.Errorf("Softmax %dx%d: rel err %v", rows, cols, e)
		}
		// The dot product is rounded to float32 before subtracting:
		// cancellation in dy−dot can amplify that to ~cols·u relative.
		if e := relErr(dx, wantDX); e > float64(cols+4)*u {
			t.Errorf("SoftmaxGrad %dx%d: rel err %v", rows, cols, e)
		}
	}
	// First index on ties.
	X := upload(t, d, []float32{1, 3, 3, 2, 2, 2})
	AM, _ := d.Alloc(device.Int32, 2)
	must(t, d.ArgmaxRows(X, 2, 3, AM))
	am := make([]int32, 2)
	must(t, d.ReadI32(am, AM, 0))
	if am[0] != 1 || am[1] != 0 {
		t.Errorf("ArgmaxRows ties: %v, want [1 0]", am)
	}
}

func TestBias(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, dims := range [][2]int{{1, 1}, {5, 3}, {300, 400}} {
		rows, cols := dims[0], dims[1]
		x := randVec(r, rows*cols, -1, 1)
		bias := randVec(r, cols, -1, 1)
		db0 := randVec(r, cols, -1, 1)
		X, Bb, DB := upload(t, d, x), upload(t, d, bias), upload(t, d, db0)
		must(t, d.AddBias(X, Bb, rows, cols))
		got := download(t, d, X)
		for i := range got {
			want := float32(float64(x[i]) + float64(bias[i%cols]))
			if got[i] != want {
				t.Fatalf("AddBias [%d]: %v, want %v (one rounding)", i, got[i], want)
			}
		}
		must(t, d.BiasGrad(DB, X, rows, cols, 0.5))
		gotDB := download(t, d, DB)
		want := make([]float64, cols)
		for j := range want {
			want[j] = 0.5 * float64(db0[j])
			for i := 0; i < rows; i++ {
				want[j] += float64(got[i*cols+j])
			}
		}
		// float64 accumulation, one rounding.
		if e := relErr(gotDB, want); e > 2*u {
			t.Errorf("BiasGrad %dx%d: rel err %v", rows, cols, e)
		}
	}
}

func TestReductions(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range sizes {
		x := randVec(r, n, -1, 1)
		X := upload(t, d, x)
		out := upload(t, d, []float32{2})
		var s, ss float64
		for _, v := range x {
			s += float64(v)
			ss += float64(v) * float64(v)
		}
		must(t, d.Sum(X, n, out, 1))
		got := download(t, d, out)[0]
		// float64 sums: only the final rounding (and float64 order effects ~n·1e-16).
		if math.Abs(float64(got)-(2+s)) > 2*u*math.Abs(2+s)+1e-12 {
			t.Errorf("Sum n=%d beta=1: %v, want %v", n, got, 2+s)
		}
		must(t, d.SumSquares(X, n, out, 0))
		got = download(t, d, out)[0]
		if math.Abs(float64(got)-ss) > 2*u*ss {
			t.Errorf("SumSquares n=%d: %v, want %v", n, got, ss)
		}
		// ClipByNorm to half the norm.
		maxNorm := float32(math.Sqrt(ss) / 2)
		must(t, d.ClipByNorm(X, n, out, maxNorm))
		c := float64(maxNorm) / (math.Sqrt(ss) + 1e-6)
		want := make([]float64, n)
		for i, v := range x {
			want[i] = c * float64(v)
		}
		// The coefficient is computed in float32 (as PyTorch does): ~3u.
		if e := relErr(download(t, d, X), want); e > 4*u {
			t.Errorf("ClipByNorm n=%d: rel err %v", n, e)
		}
	}
}

func TestLoss(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(15, 16))
	for _, dims := range [][2]int{{1, 1}, {4, 3}, {500, 100}} {
		rows, cols := dims[0], dims[1]
		n := rows * cols
		for kind := device.MSE; kind <= device.SoftmaxCrossEntropy; kind++ {
			var pred, tgt []float32
			var lab []int32
			switch kind {
			case device.BCE:
				pred = randVec(r, n, 0.001, 0.999)
				tgt = randVec(r, n, 0, 1)
			case device.SoftmaxCrossEntropy:
				pred = randVec(r, n, -10, 10)
				lab = make([]int32, rows)
				for i := range lab {
					lab[i] = int32(r.IntN(cols))
				}
			default:
				pred = randVec(r, n, -10, 10)
				tgt = randVec(r, n, 0, 1)
			}
			P := upload(t, d, pred)
			var T device.Buffer
			if lab != nil {
				T, _ = d.Alloc(device.Int32, rows)
				must(t, d.WriteI32(T, 0, lab))
			} else {
				T = upload(t, d, tgt)
			}
			L, _ := d.Alloc(device.Float32, 1)
			G, _ := d.Alloc(device.Float32, n)
			must(t, d.Loss(kind, P, T, rows, cols, L, G))
			wantL, wantG := lossRef(kind, pred, tgt, lab, rows, cols)
			gotL := download(t, d, L)[0]
			// float64 throughout, one final rounding.
			if math.Abs(float64(gotL)-wantL) > 2*u*math.Abs(wantL)+1e-12 {
				t.Errorf("%v %dx%d: loss %v, want %v", kind, rows, cols, gotL, wantL)
			}
			if e := relErr(download(t, d, G), wantG); e > 4*u {
				t.Errorf("%v %dx%d: grad rel err %v", kind, rows, cols, e)
			}
			// Without grad the loss is the same.
			must(t, d.Loss(kind, P, T, rows, cols, L, nil))
			if g2 := download(t, d, L)[0]; g2 != gotL {
				t.Errorf("%v: loss without grad %v, with grad %v", kind, g2, gotL)
			}
		}
	}
	// Bad label.
	P := upload(t, d, []float32{1, 2})
	T, _ := d.Alloc(device.Int32, 1)
	must(t, d.WriteI32(T, 0, []int32{2}))
	L, _ := d.Alloc(device.Float32, 1)
	if err := d.Loss(device.SoftmaxCrossEntropy, P, T, 1, 2, L, nil); err == nil {
		t.Errorf("label 2 with 2 classes: no error")
	}
}

// lossRef is PyTorch's definition of each loss, in float64.
func lossRef(kind device.LossKind, pred, tgt []float32, lab []int32, rows, cols int) (float64, []float64) {
	n := rows * cols
	g := make([]float64, n)
	s := 0.0
	switch kind {
	case device.MSE, device.HalfSSE:
		den := float64(n)
		if kind == device.HalfSSE {
			den = 2 * float64(rows)
		}
		for i := range pred {
			e := float64(pred[i]) - float64(tgt[i])
			s += e * e / den
			g[i] = 2 * e / den
		}
	case device.BCE:
		for i := range pred {
			h, y := float64(pred[i]), float64(tgt[i])
			s -= (y*math.Max(math.Log(h), -100) + (1-y)*math.Max(math.Log(1-h), -100)) / float64(n)
			g[i] = (h - y) / (h * (1 - h)) / float64(n)
		}
	case device.BCEWithLogits:
		for i := range pred {
			x, y := float64(pred[i]), float64(tgt[i])
			sg := 1 / (1 + math.Exp(-x))
			s -= (y*math.Log(sg) + (1-y)*math.Log(1-sg)) / float64(n)
			g[i] = (sg - y) / float64(n)
		}
	case device.SoftmaxCrossEntropy:
		for i := 0; i < rows; i++ {
			row := pred[i*cols : (i+1)*cols]
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, float64(v))
			}
			z := 0.0
			for _, v := range row {
				z += math.Exp(float64(v) - m)
			}
			s += (m + math.Log(z) - float64(row[lab[i]])) / float64(rows)
			for j, v := range row {
				p := math.Exp(float64(v)-m) / z
				if j == int(lab[i]) {
					p--
				}
				g[i*cols+j] = p / float64(rows)
			}
		}
	}
	return s, g
}

func TestOptimizers(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(17, 18))
	n := 3*ewGrain + 3
	sgdCfgs := []device.SGDConfig{
		{LR: 0.1},
		{LR: 0.1, WeightDecay: 0.01},
		{LR: 0.05, Momentum: 0.9},
		{LR: 0.05, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.001},
		{LR: 0.05, Momentum: 0.9, Nesterov: true},
	}
	for ci, cfg := range sgdCfgs {
		p := randVec(r, n, -1, 1)
		P, V := upload(t, d, p), upload(t, d, make([]float32, n))
		pr, vr := f64s(p), make([]float64, n)
		for step := 1; step <= 3; step++ {
			g := randVec(r, n, -1, 1)
			must(t, d.SGDStep(P, upload(t, d, g), V, n, cfg, step))
			lr, mu, damp, wd := float64(cfg.LR), float64(cfg.Momentum), float64(cfg.Dampening), float64(cfg.WeightDecay)
			for i := range pr {
				gi := float64(g[i]) + wd*pr[i]
				if mu != 0 {
					if step == 1 {
						vr[i] = gi
					} else {
						vr[i] = mu*vr[i] + (1-damp)*gi
					}
					if cfg.Nesterov {
						gi += mu * vr[i]
					} else {
						gi = vr[i]
					}
				}
				pr[i] -= lr * gi
			}
		}
		// A handful of float32 roundings per step, three steps.
		if e := relErr(download(t, d, P), pr); e > 20*u {
			t.Errorf("SGD config %d: rel err %v", ci, e)
		}
	}
	adamCfgs := []device.AdamConfig{
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1},
		{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1, Decoupled: true},
	}
	for ci, cfg := range adamCfgs {
		for _, vec := range []bool{false, true} {
			if vec && !useAVX2 {
				continue
			}
			testAdamAgainstRef(t, d, r, n, ci, cfg, vec)
		}
	}
}

// testAdamAgainstRef runs three Adam steps with the vector kernel on or
// off and compares with the float64 reference.
func testAdamAgainstRef(t *testing.T, d *Device, r *rand.Rand, n, ci int, cfg device.AdamConfig, vec bool) {
	saved := useAVX2
	useAVX2 = vec
	defer func() { useAVX2 = saved }()
	{
		p := randVec(r, n, -1, 1)
		P, M, V := upload(t, d, p), upload(t, d, make([]float32, n)), upload(t, d, make([]float32, n))
		pr, mr, vr := f64s(p), make([]float64, n), make([]float64, n)
		for step := 1; step <= 3; step++ {
			g := randVec(r, n, -1, 1)
			must(t, d.AdamStep(P, upload(t, d, g), M, V, n, cfg, step))
			lr, b1, b2, eps, wd := float64(cfg.LR), float64(cfg.Beta1), float64(cfg.Beta2), float64(cfg.Eps), float64(cfg.WeightDecay)
			for i := range pr {
				gi := float64(g[i])
				if cfg.Decoupled {
					pr[i] *= 1 - lr*wd
				} else {
					gi += wd * pr[i]
				}
				mr[i] = b1*mr[i] + (1-b1)*gi
				vr[i] = b2*vr[i] + (1-b2)*gi*gi
				bc1 := 1 - math.Pow(b1, float64(step))
				bc2 := 1 - math.Pow(b2, float64(step))
				pr[i] -= lr / bc1 * mr[i] / (math.Sqrt(vr[i])/math.Sqrt(bc2) + eps)
			}
		}
		// Compare the updates (p − p0), not p: they are lr-sized and a
		// handful of float32 roundings each (≈30u relative).
		got := download(t, d, P)
		du := make([]float32, n)
		dw := make([]float64, n)
		for i := range got {
			du[i] = float32(float64(got[i]) - float64(p[i]))
			dw[i] = pr[i] - float64(p[i])
		}
		// p is rounded to float32 after every step: relative to the
		// update size that is up to |p|/|Δp|·u ≈ 1/lr·u, so the bound is
		// stated relative to p.
		if e := relErr(got, pr); e > 20*u {
			t.Errorf("Adam config %d (vector kernel %v): rel err in p %v", ci, vec, e)
		}
		if e := relErr(du, dw); e > 30*u/float64(cfg.LR) {
			t.Errorf("Adam config %d (vector kernel %v): rel err in the update %v", ci, vec, e)
		}
	}
}

func f64s(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func TestRandomMatchesReference(t *testing.T) {
	d := newDev(t)
	for _, n := range []int{1, 5, 3*trGrain + 3} {
		for _, off := range []uint64{0, 1, 2, 3, 1<<32 + 5} {
			const seed = 0x1234_5678_9abc
			X, _ := d.Alloc(device.Float32, n)
			check := func(name string, ref func(pos uint64) float32) {
				got := download(t, d, X)
				for i, v := range got {
					if w := ref(off + uint64(i)); v != w {
						t.Fatalf("%s n=%d off=%d [%d]: %v, want %v (bit-exact)", name, n, off, i, v, w)
					}
				}
			}
			must(t, d.RandNormal(X, n, 0.5, 2, seed, off))
			check("RandNormal", func(p uint64) float32 { return device.NormalScaled(seed, p, 0.5, 2) })
			must(t, d.RandUniform(X, n, -1, 3, seed, off))
			check("RandUniform", func(p uint64) float32 { return device.UniformScaled(seed, p, -1, 3) })
			must(t, d.DropoutMask(X, n, 0.3, seed, off))
			check("DropoutMask", func(p uint64) float32 { return device.DropoutAt(seed, p, 0.3) })
		}
	}
	X, _ := d.Alloc(device.Float32, 4)
	for _, p := range []float32{-0.1, 1, float32(math.NaN())} {
		if err := d.DropoutMask(X, 4, p, 1, 0); err == nil {
			t.Errorf("DropoutMask p=%v: no error", p)
		}
	}
}

// TestNoAllocs checks that the hot primitives allocate nothing per call,
// on both the serial and the parallel path.
func TestNoAllocs(t *testing.T) {
	d := newDev(t)
	for _, n := range []int{1000, 4 * ewGrain} {
		a := upload(t, d, make([]float32, n))
		b := upload(t, d, make([]float32, n))
		c := upload(t, d, make([]float32, n))
		e := upload(t, d, make([]float32, n))
		s := upload(t, d, []float32{0})
		rows, cols := n/100, 100
		lab, _ := d.Alloc(device.Int32, rows)
		fns := map[string]func() error{
			"Add":          func() error { return d.Add(a, b, c, n) },
			"Axpy":         func() error { return d.Axpy(2, a, b, n) },
			"Fill":         func() error { return d.Fill(a, n, 0.5) },
			"Activate":     func() error { return d.Activate(device.ReLU, 0, a, b, n) },
			"ActivateGrad": func() error { return d.ActivateGrad(device.ReLU, 0, a, b, c, e, n) },
			"AddBias":      func() error { return d.AddBias(a, b, rows, cols) },
			"BiasGrad":     func() error { return d.BiasGrad(b, a, rows, cols, 0) },
			"Softmax":      func() error { return d.Softmax(a, b, rows, cols) },
			"SumSquares":   func() error { return d.SumSquares(a, n, s, 1) },
			"Loss":         func() error { return d.Loss(device.SoftmaxCrossEntropy, a, lab, rows, cols, s, b) },
			"SGDStep":      func() error { return d.SGDStep(a, b, c, n, device.SGDConfig{LR: 0.1, Momentum: 0.9}, 2) },
			"AdamStep": func() error {
				return d.AdamStep(a, b, c, e, n, device.AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, 3)
			},
			"DropoutMask": func() error { return d.DropoutMask(a, n, 0.5, 1, 0) },
			"RandNormal":  func() error { return d.RandNormal(a, n, 0, 1, 1, 3) },
			"Copy":        func() error { return d.Copy(a, b, n) },
			"Scale":       func() error { return d.Scale(0.5, a, b, n) },
			"Sum":         func() error { return d.Sum(a, n, s, 0) },
			"ClipByNorm":  func() error { return d.ClipByNorm(a, n, s, 1) },
			"SoftmaxGrad": func() error { return d.SoftmaxGrad(a, b, c, rows, cols) },
			"ArgmaxRows":  func() error { return d.ArgmaxRows(a, rows, cols, lab) },
			"LossMSE":     func() error { return d.Loss(device.MSE, a, b, rows, cols, s, c) },
			"View":        func() error { _, err := d.View(a, 1, 2); return err },
			"Gemm":        func() error { return d.Gemm(false, true, 10, 10, n/10, 1, a, b, 0, c) },
			"AllocFree": func() error {
				x, err := d.Alloc(device.Float32, n)
				if err != nil {
					return err
				}
				return d.Free(x)
			},
		}
		for name, fn := range fns {
			must(t, fn())
			allocs := testing.AllocsPerRun(20, func() { _ = fn() })
			// Alloc and View hand out a new small handle (one
			// allocation); every other primitive must allocate nothing.
			limit := 0.0
			if name == "AllocFree" || name == "View" {
				limit = 1
			}
			if allocs > limit {
				t.Errorf("%s n=%d: %v heap allocations per call, want ≤ %v", name, n, allocs, limit)
			}
		}
	}
}

var _ = fmt.Sprint

// rangeKernel records the ranges it is asked to run.
type rangeKernel struct {
	hits []int32 // per index: how many chunks covered it
	runs [maxChunks]int32
}

func (k *rangeKernel) run(chunk, lo, hi int) {
	k.runs[chunk]++
	for i := lo; i < hi; i++ {
		k.hits[i]++ // chunks are disjoint, so no two goroutines touch one index
	}
}

func TestParallelCoversRange(t *testing.T) {
	w := newWorkers(4)
	defer w.stop()
	for _, n := range []int{1, 15, 16, 17, 33, 100, 1000} {
		for _, c := range []int{1, 2, 3, 4} {
			k := &rangeKernel{hits: make([]int32, n)}
			got := w.parallel(k, n, c, 16)
			for i, h := range k.hits {
				if h != 1 {
					t.Fatalf("n=%d c=%d: index %d run %d times", n, c, i, h)
				}
			}
			ran := 0
			for i, r := range k.runs {
				if r > 1 {
					t.Fatalf("n=%d c=%d: chunk %d run %d times", n, c, i, r)
				}
				ran += int(r)
				if r == 1 && i >= got {
					t.Fatalf("n=%d c=%d: chunk %d ran but parallel reported %d chunks", n, c, i, got)
				}
			}
			if ran != got {
				t.Fatalf("n=%d c=%d: %d chunks ran, parallel reported %d", n, c, ran, got)
			}
		}
	}
}

// TestReLUEdges checks the branch-free ReLU at signed zeros, tiny and
// huge values: relu(±0) = +0 with gradient 0, leaky relu keeps alpha·x.
func TestReLUEdges(t *testing.T) {
	d := newDev(t)
	negZero := float32(math.Copysign(0, -1))
	x := []float32{negZero, 0, 1e-45, -1e-45, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), 2, -2}
	n := len(x)
	X, Y, DX := upload(t, d, x), upload(t, d, make([]float32, n)), upload(t, d, make([]float32, n))
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	DY := upload(t, d, ones)
	for _, act := range []device.Activation{device.ReLU, device.LeakyReLU} {
		const alpha = 0.25
		must(t, d.Activate(act, alpha, X, Y, n))
		must(t, d.ActivateGrad(act, alpha, X, Y, DY, DX, n))
		y, dx := download(t, d, Y), download(t, d, DX)
		for i, v := range x {
			wantY, wantD := v, float32(1)
			if !(v > 0) {
				wantD = 0
				wantY = 0
				if act == device.LeakyReLU {
					wantY, wantD = alpha*v, alpha
				}
			}
			if math.Float32bits(y[i]) != math.Float32bits(wantY) && !(y[i] == 0 && wantY == 0 && act == device.LeakyReLU) {
				t.Errorf("%v(%v) = %v, want %v", act, v, y[i], wantY)
			}
			if act == device.ReLU && math.Signbit(float64(y[i])) {
				t.Errorf("relu(%v) = %v has its sign bit set, want +0", v, y[i])
			}
			if dx[i] != wantD {
				t.Errorf("%v'(%v) = %v, want %v", act, v, dx[i], wantD)
			}
		}
	}
}
