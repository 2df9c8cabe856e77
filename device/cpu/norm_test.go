package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

// The norm family's CPU-specific properties; the numerics against float64
// references are device/devicetest's (TestCPU/Norm).

// normBufs uploads each host slice (nil stays nil).
func normBufs(t *testing.T, d *Device, xs ...[]float32) []device.Buffer {
	t.Helper()
	bs := make([]device.Buffer, len(xs))
	for i, x := range xs {
		if x == nil {
			continue
		}
		b, err := d.Alloc(device.Float32, len(x))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteF32(b, 0, x); err != nil {
			t.Fatal(err)
		}
		bs[i] = b
	}
	return bs
}

func normRand(n int, seed uint64, lo, hi float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// normRun runs the four primitives on d over a [outer, channels, inner]
// input (LayerNorm on it as outer·channels rows of inner) and returns
// every output, in order.
func normRun(t *testing.T, d *Device, outer, channels, inner int) [][]float32 {
	t.Helper()
	n := outer * channels * inner
	rows, cols := outer*channels, inner
	host := [][]float32{
		normRand(n, 1, -1, 3), normRand(n, 2, -1, 1), // x, dy
		normRand(channels, 3, -1.5, 1.5), normRand(channels, 4, -1, 1), // gamma, beta
		make([]float32, channels), make([]float32, channels), // mean, invstd
		normRand(channels, 5, -0.5, 0.5), normRand(channels, 6, 0.5, 2), // runMean, runVar
		make([]float32, n), make([]float32, n), // y, dx
		normRand(channels, 7, -1, 1), normRand(channels, 8, -1, 1), // dgamma, dbeta
		normRand(cols, 9, -1.5, 1.5), normRand(cols, 10, -1, 1), // ln gamma, beta
		make([]float32, rows), make([]float32, rows), // ln mean, rstd
		normRand(cols, 11, -1, 1), normRand(cols, 12, -1, 1), // ln dgamma, dbeta
	}
	b := normBufs(t, d, host...)
	cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.BatchNorm(b[0], b[8], b[2], b[3], b[4], b[5], b[6], b[7], outer, channels, inner, true, cfg))
	must(d.BatchNormGrad(b[0], b[1], b[2], b[4], b[5], b[9], b[10], b[11], outer, channels, inner, 1))
	var out [][]float32
	for _, k := range []int{8, 4, 5, 6, 7, 9, 10, 11} {
		v := make([]float32, len(host[k]))
		must(d.ReadF32(v, b[k], 0))
		out = append(out, v)
	}
	must(d.LayerNorm(b[0], b[8], b[12], b[13], b[14], b[15], rows, cols, 1e-5))
	must(d.LayerNormGrad(b[0], b[1], b[12], b[14], b[15], b[9], b[16], b[17], rows, cols, 1))
	for _, k := range []int{8, 14, 15, 9, 16, 17} {
		v := make([]float32, len(host[k]))
		must(d.ReadF32(v, b[k], 0))
		out = append(out, v)
	}
	return out
}

// TestNormSplitIndependent: the results do not depend on how the work is
// split across goroutines (each sum is taken in one fixed order), so one
// worker and four give the same bits, on shapes large enough to split.
func TestNormSplitIndependent(t *testing.T) {
	for _, sh := range [][3]int{{512, 260, 1}, {8, 6, 8191}} {
		one := &Device{w: newWorkers(1)}
		one.pool.init()
		four := &Device{w: newWorkers(4)}
		four.pool.init()
		a, b := normRun(t, one, sh[0], sh[1], sh[2]), normRun(t, four, sh[0], sh[1], sh[2])
		one.Close()
		four.Close()
		for i := range a {
			for j := range a[i] {
				if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
					t.Fatalf("shape %v, output %d [%d]: one worker %v, four workers %v", sh, i, j, a[i][j], b[i][j])
				}
			}
		}
	}
}

// TestNormNoAllocs: in steady state the norm primitives allocate nothing
// (scratch is the Device's, argument blocks are pooled), serial or split.
func TestNormNoAllocs(t *testing.T) {
	d := New()
	defer d.Close()
	for _, sh := range [][3]int{{4, 3, 5}, {512, 260, 1}} {
		outer, channels, inner := sh[0], sh[1], sh[2]
		n := outer * channels * inner
		b := normBufs(t, d, normRand(n, 1, -1, 3), normRand(n, 2, -1, 1), make([]float32, n), make([]float32, n),
			normRand(channels, 3, 0.5, 1), make([]float32, channels), make([]float32, channels),
			make([]float32, channels), normRand(channels, 4, 0.5, 1),
			normRand(inner, 5, 0.5, 1), make([]float32, outer*channels), make([]float32, outer*channels), make([]float32, inner))
		cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
		rows := outer * channels
		calls := map[string]func() error{
			"BatchNorm": func() error {
				return d.BatchNorm(b[0], b[2], b[4], nil, b[5], b[6], b[7], b[8], outer, channels, inner, true, cfg)
			},
			"BatchNormGrad": func() error {
				return d.BatchNormGrad(b[0], b[1], b[4], b[5], b[6], b[3], b[7], b[8], outer, channels, inner, 1)
			},
			"LayerNorm": func() error { return d.LayerNorm(b[0], b[2], b[9], nil, b[10], b[11], rows, inner, 1e-5) },
			"LayerNormGrad": func() error {
				return d.LayerNormGrad(b[0], b[1], b[9], b[10], b[11], b[3], b[12], nil, rows, inner, 1)
			},
		}
		for name, call := range calls {
			if err := call(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if a := testing.AllocsPerRun(20, func() { _ = call() }); a != 0 {
				t.Errorf("%s %v: %v allocations per call, want 0", name, sh, a)
			}
		}
	}
}

// normTorchScript computes what TestNormTorchParity compares, with
// PyTorch's own modules and autograd.
const normTorchScript = `
import sys, torch
d = sys.argv[1]
def rd(name, *shape):
    with open(d + "/" + name, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape).clone()
def wr(name, *ts):
    with open(d + "/" + name, "wb") as f:
        for t in ts:
            f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())
N, C, H, W = 4, 3, 5, 6
bn = torch.nn.BatchNorm2d(C, eps=1e-5, momentum=0.1)
with torch.no_grad():
    bn.weight.copy_(rd("bn_gamma", C)); bn.bias.copy_(rd("bn_beta", C))
    bn.running_mean.copy_(rd("bn_rm", C)); bn.running_var.copy_(rd("bn_rv", C))
x = rd("bn_x", N, C, H, W).requires_grad_()
y = bn(x)
(y * rd("bn_dy", N, C, H, W)).sum().backward()
bn.eval()
ye = bn(x)
wr("bn_out", y, bn.running_mean, bn.running_var, x.grad, bn.weight.grad, bn.bias.grad, ye)
R, K = 6, 10
ln = torch.nn.LayerNorm(K, eps=1e-5)
with torch.no_grad():
    ln.weight.copy_(rd("ln_gamma", K)); ln.bias.copy_(rd("ln_beta", K))
xl = rd("ln_x", R, K).requires_grad_()
yl = ln(xl)
(yl * rd("ln_dy", R, K)).sum().backward()
wr("ln_out", yl, xl.grad, ln.weight.grad, ln.bias.grad)
`

// TestNormTorchParity checks BatchNorm2d (training with running
// statistics, then evaluation) and LayerNorm, forward and backward,
// against PyTorch 1.13 through /usr/bin/python3. It skips when torch is
// not installed, except under CI=true, where that is a failure.
func TestNormTorchParity(t *testing.T) {
	if testing.Short() {
		t.Skip("starting torch takes seconds")
	}
	const python = "/usr/bin/python3"
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PyTorch parity needs torch under CI=true: %s", why)
		}
		t.Skip(why)
	}
	if _, err := os.Stat(python); err != nil {
		skip(python + " not found")
	}
	dir := t.TempDir()
	write := func(name string, v []float32) {
		buf := make([]byte, 0, 4*len(v))
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string, n int) []float32 {
		buf, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(buf) != 4*n {
			t.Fatalf("reading %s: %v (%d bytes, want %d)", name, err, len(buf), 4*n)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		return v
	}
	const N, C, HW = 4, 3, 30
	const R, K = 6, 10
	in := map[string][]float32{
		"bn_x": normRand(N*C*HW, 21, -1, 3), "bn_dy": normRand(N*C*HW, 22, -1, 1),
		"bn_gamma": normRand(C, 23, -1.5, 1.5), "bn_beta": normRand(C, 24, -1, 1),
		"bn_rm": normRand(C, 25, -0.5, 0.5), "bn_rv": normRand(C, 26, 0.5, 2),
		"ln_x": normRand(R*K, 27, -1, 3), "ln_dy": normRand(R*K, 28, -1, 1),
		"ln_gamma": normRand(K, 29, -1.5, 1.5), "ln_beta": normRand(K, 30, -1, 1),
	}
	for name, v := range in {
		write(name, v)
	}
	script := filepath.Join(dir, "norm.py")
	if err := os.WriteFile(script, []byte(normTorchScript), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, script, dir).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "No module named 'torch'") {
			skip(python + " cannot import torch (install Debian's python3-torch)")
		}
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	tb := read("bn_out", N*C*HW*3+C*4)
	tl := read("ln_out", R*K*2+K*2)

	d := New()
	defer d.Close()
	b := normBufs(t, d, in["bn_x"], in["bn_dy"], in["bn_gamma"], in["bn_beta"], in["bn_rm"], in["bn_rv"],
		make([]float32, N*C*HW), make([]float32, C), make([]float32, C), make([]float32, N*C*HW),
		make([]float32, C), make([]float32, C), make([]float32, N*C*HW))
	cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	get := func(b device.Buffer, n int) []float32 {
		v := make([]float32, n)
		must(d.ReadF32(v, b, 0))
		return v
	}
	must(d.BatchNorm(b[0], b[6], b[2], b[3], b[7], b[8], b[4], b[5], N, C, HW, true, cfg))
	must(d.BatchNormGrad(b[0], b[1], b[2], b[7], b[8], b[9], b[10], b[11], N, C, HW, 0))
	must(d.BatchNorm(b[0], b[12], b[2], b[3], nil, nil, b[4], b[5], N, C, HW, false, cfg))
	var got []float32
	for _, k := range []struct {
		b device.Buffer
		n int
	}{{b[6], N * C * HW}, {b[4], C}, {b[5], C}, {b[9], N * C * HW}, {b[10], C}, {b[11], C}, {b[12], N * C * HW}} {
		got = append(got, get(k.b, k.n)...)
	}
	// PyTorch computes in float32 (sums of up to 120 values, a few ulps of
	// error scaled by the normalisation's conditioning, about 1e-6 here);
	// 1e-5·(1 + |torch|) leaves room for that and still fails on any
	// difference of convention (biased running variance: 1/119 relative,
	// the momentum the wrong way round, gradients of another definition).
	cmp := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i])-float64(want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
				t.Errorf("%s[%d]: kiln %v, torch %v", what, i, got[i], want[i])
				return
			}
		}
	}
	cmp("BatchNorm2d (y, running_mean, running_var, dx, dgamma, dbeta, eval y)", got, tb)

	l := normBufs(t, d, in["ln_x"], in["ln_dy"], in["ln_gamma"], in["ln_beta"],
		make([]float32, R*K), make([]float32, R), make([]float32, R), make([]float32, R*K),
		make([]float32, K), make([]float32, K))
	must(d.LayerNorm(l[0], l[4], l[2], l[3], l[5], l[6], R, K, 1e-5))
	must(d.LayerNormGrad(l[0], l[1], l[2], l[5], l[6], l[7], l[8], l[9], R, K, 0))
	got = append(append(append(get(l[4], R*K), get(l[7], R*K)...), get(l[8], K)...), get(l[9], K)...)
	cmp("LayerNorm (y, dx, dgamma, dbeta)", got, tl)
}
