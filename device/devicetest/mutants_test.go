package devicetest_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/devicetest"
)

// The suite must be able to fail. Each mutant wraps the CPU backend and
// breaks one primitive the way a real kernel could be broken; the part of
// the suite that covers it must then fail. Mutants run in a child process
// (this test binary, selecting TestMutant through -test.run), because a
// failing subtest cannot be observed from its parent without failing it.

const mutantEnv = "DEVICETEST_MUTANT"

// mutant is one deliberately broken primitive and the subtests that must
// catch it (a -test.run pattern below TestMutant).
type mutant struct {
	name    string
	subtest string
}

var mutants = []mutant{
	{"gemm_ignores_transB", "Gemm/^7x13x29$"},
	{"gemm_reads_c_when_beta_0", "Gemm/^7x13x29$"},
	{"gemm_low_precision", "Gemm/^513x257x129$/^NN$"},
	{"activate_gelu_as_tanh_approx", "Activate/^gelu$"},
	{"activategrad_ignores_alpha", "ActivateGrad/^leakyrelu0.2$"},
	{"softmax_without_max", "Softmax"},
	{"sub_reversed", "Elementwise/^Sub$"},
	{"add_drops_tail", "Elementwise/^Add$"},
	{"mse_as_half_sse", "Loss/^mse$"},
	{"bce_unclamped", "Loss/^bce$"},
	{"sum_drops_last", "Sum"},
	{"sumsquares_ignores_beta", "SumSquares"},
	{"biasgrad_ignores_beta", "BiasGrad"},
	{"clip_never", "ClipByNorm"},
	{"argmax_last_on_ties", "ArgmaxRows"},
	{"sgd_reads_buffer_on_step1", "SGDStep/^momentum$"},
	{"sgd_ignores_nesterov", "SGDStep/^nesterov$"},
	{"adam_no_bias_correction", "AdamStep/^adam$"},
	{"adamw_coupled", "AdamStep/^adamw$"},
	{"dropout_offset_off_by_one", "Random/^DropoutMask$"},
	{"randnormal_pair_swapped", "Random/^RandNormal$"},
	{"fill_panics_on_nil", "Errors/^Fill$"},
	{"scale_ignores_freed", "Errors/^Scale$"},
}

// TestMutant runs the suite on the mutant named by $DEVICETEST_MUTANT
// ("none": the unbroken wrapper). It is a child of TestSuiteCatchesMutants
// and skips otherwise.
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	devicetest.RunWith(t, &mutantDev{Device: dev, name: name}, devicetest.Options{Short: true})
}

func runMutant(t *testing.T, name, pattern string) (string, error) {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		parts[i] = "^" + strings.TrimSuffix(strings.TrimPrefix(p, "^"), "$") + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/"+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), mutantEnv+"="+name)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("inside a mutant run")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	// Control: the unbroken wrapper passes every subtest the mutants target,
	// so each failure below is the mutation's doing.
	seen := map[string]bool{}
	for _, m := range mutants {
		p := m.subtest
		if seen[p] {
			continue
		}
		seen[p] = true
		out, err := runMutant(t, "none", p)
		if err != nil || !strings.Contains(out, "--- PASS: TestMutant/") {
			t.Fatalf("control run of %s failed: %v\n%s", p, err, tail(out))
		}
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			out, err := runMutant(t, m.name, m.subtest)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(out, "--- FAIL: TestMutant/") {
				t.Errorf("the suite did not catch mutant %s in %s (err %v):\n%s", m.name, m.subtest, err, tail(out))
			}
			if strings.Contains(out, "no tests to run") {
				t.Errorf("pattern %s selects no test", m.subtest)
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// mutantDev forwards to the CPU backend except for the one primitive its
// name breaks.
type mutantDev struct {
	device.Device
	name string
}

func (d *mutantDev) Gemm(ta, tb bool, m, n, k int, alpha float32, a, b device.Buffer, beta float32, c device.Buffer) error {
	switch d.name {
	case "gemm_ignores_transB":
		tb = false
	case "gemm_reads_c_when_beta_0":
		if beta == 0 {
			beta = 1e-30 // negligible, except that 1e-30·NaN is NaN
		}
	case "gemm_low_precision":
		if err := d.Device.Gemm(ta, tb, m, n, k, alpha, a, b, beta, c); err != nil {
			return err
		}
		x := make([]float32, m*n)
		if err := d.ReadF32(x, c, 0); err != nil {
			return err
		}
		for i, v := range x {
			// Keep 11 significant bits, like a TF32 or half accumulator.
			x[i] = math.Float32frombits(math.Float32bits(v) &^ 0xfff)
		}
		return d.WriteF32(c, 0, x)
	}
	return d.Device.Gemm(ta, tb, m, n, k, alpha, a, b, beta, c)
}

func (d *mutantDev) Activate(act device.Activation, alpha float32, x, y device.Buffer, n int) error {
	if d.name == "activate_gelu_as_tanh_approx" && act == device.GELU {
		act = device.GELUTanh
	}
	return d.Device.Activate(act, alpha, x, y, n)
}

func (d *mutantDev) ActivateGrad(act device.Activation, alpha float32, x, y, dy, dx device.Buffer, n int) error {
	if d.name == "activategrad_ignores_alpha" {
		alpha = 0.01
	}
	return d.Device.ActivateGrad(act, alpha, x, y, dy, dx, n)
}

func (d *mutantDev) Softmax(x, y device.Buffer, rows, cols int) error {
	if d.name != "softmax_without_max" {
		return d.Device.Softmax(x, y, rows, cols)
	}
	h := make([]float32, rows*cols)
	if err := d.ReadF32(h, x, 0); err != nil {
		return err
	}
	for i := 0; i < rows; i++ {
		var s float32
		for j := 0; j < cols; j++ {
			h[i*cols+j] = float32(math.Exp(float64(h[i*cols+j])))
			s += h[i*cols+j]
		}
		for j := 0; j < cols; j++ {
			h[i*cols+j] /= s
		}
	}
	return d.WriteF32(y, 0, h)
}

func (d *mutantDev) Sub(a, b, out device.Buffer, n int) error {
	if d.name == "sub_reversed" {
		a, b = b, a
	}
	return d.Device.Sub(a, b, out, n)
}

func (d *mutantDev) Add(a, b, out device.Buffer, n int) error {
	if d.name == "add_drops_tail" && n > 4096 {
		n--
	}
	return d.Device.Add(a, b, out, n)
}

func (d *mutantDev) Loss(kind device.LossKind, pred, target device.Buffer, rows, cols int, loss, grad device.Buffer) error {
	switch {
	case d.name == "mse_as_half_sse" && kind == device.MSE:
		kind = device.HalfSSE
	case d.name == "bce_unclamped" && kind == device.BCE:
		// Unclamped logs: write −mean(y·log p + (1−y)·log(1−p)) as is.
		if err := d.Device.Loss(kind, pred, target, rows, cols, loss, grad); err != nil {
			return err
		}
		p, y := make([]float32, rows*cols), make([]float32, rows*cols)
		if err := d.ReadF32(p, pred, 0); err != nil {
			return err
		}
		if err := d.ReadF32(y, target, 0); err != nil {
			return err
		}
		var s float32
		for i := range p {
			s -= y[i]*float32(math.Log(float64(p[i]))) + (1-y[i])*float32(math.Log(float64(1-p[i])))
		}
		return d.WriteF32(loss, 0, []float32{s / float32(len(p))})
	}
	return d.Device.Loss(kind, pred, target, rows, cols, loss, grad)
}

func (d *mutantDev) Sum(x device.Buffer, n int, out device.Buffer, beta float32) error {
	if d.name == "sum_drops_last" && n > 1 {
		n--
	}
	return d.Device.Sum(x, n, out, beta)
}

func (d *mutantDev) SumSquares(x device.Buffer, n int, out device.Buffer, beta float32) error {
	if d.name == "sumsquares_ignores_beta" {
		beta = 0
	}
	return d.Device.SumSquares(x, n, out, beta)
}

func (d *mutantDev) BiasGrad(db, dy device.Buffer, rows, cols int, beta float32) error {
	if d.name == "biasgrad_ignores_beta" {
		beta = 0
	}
	return d.Device.BiasGrad(db, dy, rows, cols, beta)
}

func (d *mutantDev) ClipByNorm(x device.Buffer, n int, sumSq device.Buffer, maxNorm float32) error {
	if d.name == "clip_never" {
		return nil
	}
	return d.Device.ClipByNorm(x, n, sumSq, maxNorm)
}

func (d *mutantDev) ArgmaxRows(x device.Buffer, rows, cols int, out device.Buffer) error {
	if d.name != "argmax_last_on_ties" {
		return d.Device.ArgmaxRows(x, rows, cols, out)
	}
	h := make([]float32, rows*cols)
	if err := d.ReadF32(h, x, 0); err != nil {
		return err
	}
	idx := make([]int32, rows)
	for i := 0; i < rows; i++ {
		for j := 1; j < cols; j++ {
			if h[i*cols+j] >= h[i*cols+int(idx[i])] {
				idx[i] = int32(j)
			}
		}
	}
	return d.WriteI32(out, 0, idx)
}

func (d *mutantDev) SGDStep(p, g, v device.Buffer, n int, cfg device.SGDConfig, step int) error {
	switch d.name {
	case "sgd_reads_buffer_on_step1":
		if step == 1 {
			step = 2
		}
	case "sgd_ignores_nesterov":
		cfg.Nesterov = false
	}
	return d.Device.SGDStep(p, g, v, n, cfg, step)
}

func (d *mutantDev) AdamStep(p, g, m, v device.Buffer, n int, cfg device.AdamConfig, step int) error {
	switch d.name {
	case "adam_no_bias_correction":
		step += 1000
	case "adamw_coupled":
		cfg.Decoupled = false
	}
	return d.Device.AdamStep(p, g, m, v, n, cfg, step)
}

func (d *mutantDev) DropoutMask(mask device.Buffer, n int, p float32, seed, offset uint64) error {
	if d.name == "dropout_offset_off_by_one" {
		offset++
	}
	return d.Device.DropoutMask(mask, n, p, seed, offset)
}

func (d *mutantDev) RandNormal(x device.Buffer, n int, mean, std float32, seed, offset uint64) error {
	if d.name != "randnormal_pair_swapped" {
		return d.Device.RandNormal(x, n, mean, std, seed, offset)
	}
	h := make([]float32, n)
	for i := range h {
		h[i] = device.NormalScaled(seed, (offset+uint64(i))^1, mean, std)
	}
	return d.WriteF32(x, 0, h)
}

func (d *mutantDev) Fill(x device.Buffer, n int, v float32) error {
	if d.name == "fill_panics_on_nil" && x == nil {
		panic("nil buffer")
	}
	return d.Device.Fill(x, n, v)
}

func (d *mutantDev) Scale(alpha float32, x, out device.Buffer, n int) error {
	if d.name == "scale_ignores_freed" && x != nil && x.Freed() {
		return nil
	}
	return d.Device.Scale(alpha, x, out, n)
}
