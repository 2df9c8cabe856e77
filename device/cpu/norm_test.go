package cpu

import (
	"encoding/binary"
	"fmt"
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

// BenchmarkBatchNorm2d is the training-mode forward (statistics, running
// update, y) and the backward (dx, dgamma, dbeta) of the CNN's two
// BatchNorm2d layers (examples/mnist-cnn, batch 64): 32 channels of 28·28
// and 64 channels of 14·14.
func BenchmarkBatchNorm2d(b *testing.B) {
	for _, sh := range [][3]int{{64, 32, 28 * 28}, {64, 64, 14 * 14}} {
		b.Run(fmt.Sprintf("%dx%dx%d", sh[0], sh[1], sh[2]), func(b *testing.B) {
			benchBatchNorm(b, sh[0], sh[1], sh[2])
		})
	}
}

// BenchmarkBatchNorm1d is BatchNorm1d over [N, C] (inner 1, the
// outer-major path): a batch of 512 MLP rows of 260 features.
func BenchmarkBatchNorm1d(b *testing.B) { benchBatchNorm(b, 512, 260, 1) }

func benchBatchNorm(b *testing.B, outer, channels, inner int) {
	d := New()
	defer d.Close()
	n := outer * channels * inner
	alloc := func(m int, v float32) device.Buffer {
		buf, err := d.Alloc(device.Float32, m)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Fill(buf, m, v); err != nil {
			b.Fatal(err)
		}
		return buf
	}
	x, dy, y, dx := alloc(n, 0), alloc(n, 0), alloc(n, 0), alloc(n, 0)
	if err := d.RandNormal(x, n, 0.3, 1, 1, 0); err != nil {
		b.Fatal(err)
	}
	if err := d.RandNormal(dy, n, 0, 1, 2, 0); err != nil {
		b.Fatal(err)
	}
	gamma, beta, mean, invstd := alloc(channels, 1), alloc(channels, 0), alloc(channels, 0), alloc(channels, 0)
	rm, rv, dg, db := alloc(channels, 0), alloc(channels, 1), alloc(channels, 0), alloc(channels, 0)
	cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
	b.Run("forward", func(b *testing.B) {
		b.SetBytes(int64(4 * 3 * n)) // x twice, y once
		for i := 0; i < b.N; i++ {
			if err := d.BatchNorm(x, y, gamma, beta, mean, invstd, rm, rv, outer, channels, inner, true, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("backward", func(b *testing.B) {
		b.SetBytes(int64(4 * 5 * n)) // x, dy twice, dx once
		for i := 0; i < b.N; i++ {
			if err := d.BatchNormGrad(x, dy, gamma, mean, invstd, dx, dg, db, outer, channels, inner, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBatchNormLargeMean checks the training forward and backward of the
// channel-blocked path (inner ≥ bnFuseInner, lengths with every kind of
// vector tail) on x = 1000 + U(−1, 1), where σ² ≈ 1/3 is 3·10⁶ times
// smaller than μ², against a float64 two-pass evaluation. The kernels sum
// in float64 (two passes), so μ, invstd, y, dx, dgamma and dbeta are each
// within an ulp or two of the reference: 4·2⁻²⁴ relative plus 1e-6
// absolute (y and dx are O(1) values computed from terms of size 1000 in
// float64, about 1e-13 of error before the one float32 rounding). Summing
// in float32, or a one-pass float32 variance, misses by orders of
// magnitude more.
func TestBatchNormLargeMean(t *testing.T) {
	for _, sh := range [][3]int{{5, 3, 64}, {4, 7, 196}, {3, 2, 203}, {2, 3, 784}} {
		outer, C, inner := sh[0], sh[1], sh[2]
		n := outer * C * inner
		x := normRand(n, 31, 999, 1001)
		dy := normRand(n, 32, -1, 1)
		gamma, beta := normRand(C, 33, 0.5, 1.5), normRand(C, 34, -1, 1)
		d := New()
		b := normBufs(t, d, x, dy, gamma, beta, make([]float32, n), make([]float32, C), make([]float32, C),
			make([]float32, n), make([]float32, C), make([]float32, C))
		cfg := device.NormConfig{Eps: 1e-5, Momentum: 0.1}
		if err := d.BatchNorm(b[0], b[4], b[2], b[3], b[5], b[6], nil, nil, outer, C, inner, true, cfg); err != nil {
			t.Fatal(err)
		}
		if err := d.BatchNormGrad(b[0], b[1], b[2], b[5], b[6], b[7], b[8], b[9], outer, C, inner, 0); err != nil {
			t.Fatal(err)
		}
		get := func(buf device.Buffer, m int) []float32 {
			v := make([]float32, m)
			if err := d.ReadF32(v, buf, 0); err != nil {
				t.Fatal(err)
			}
			return v
		}
		y, mean, invstd, dx, dg, db := get(b[4], n), get(b[5], C), get(b[6], C), get(b[7], n), get(b[8], C), get(b[9], C)
		d.Close()
		check := func(what string, i int, got float32, want float64) {
			t.Helper()
			if math.Abs(float64(got)-want) > 4*0x1p-24*math.Abs(want)+1e-6 {
				t.Fatalf("shape %v: %s[%d] = %v, float64 reference %v", sh, what, i, got, want)
			}
		}
		cnt := float64(outer * inner)
		at := func(o, c, i int) int { return (o*C+c)*inner + i }
		for c := 0; c < C; c++ {
			var s, q, sg, sgx float64
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					s += float64(x[at(o, c, i)])
				}
			}
			mu := s / cnt
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					v := float64(x[at(o, c, i)]) - mu
					q += v * v
				}
			}
			is := 1 / math.Sqrt(q/cnt+1e-5)
			check("mean", c, mean[c], mu)
			check("invstd", c, invstd[c], is)
			// The backward works from the saved (float32) statistics.
			m32, is32 := float64(mean[c]), float64(invstd[c])
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					j := at(o, c, i)
					check("y", j, y[j], (float64(x[j])-mu)*is*float64(gamma[c])+float64(beta[c]))
					g, xh := float64(dy[j]), (float64(x[j])-m32)*is32
					sg += g
					sgx += g * xh
				}
			}
			check("dbeta", c, db[c], sg)
			check("dgamma", c, dg[c], sgx)
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					j := at(o, c, i)
					xh := (float64(x[j]) - m32) * is32
					check("dx", j, dx[j], float64(gamma[c])*is32*(float64(dy[j])-sg/cnt-xh*sgx/cnt))
				}
			}
		}
	}
}

// BenchmarkLayerNorm is the forward and the backward (dx, dgamma, dbeta)
// of the nanoGPT recipe's LayerNorm ([batch·context, width] = [768, 128])
// and the transformer block's ([2048, 384]).
func BenchmarkLayerNorm(b *testing.B) {
	for _, sh := range [][2]int{{768, 128}, {2048, 384}} {
		b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
			rows, cols := sh[0], sh[1]
			d := New()
			defer d.Close()
			n := rows * cols
			alloc := func(m int, v float32) device.Buffer {
				buf, err := d.Alloc(device.Float32, m)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Fill(buf, m, v); err != nil {
					b.Fatal(err)
				}
				return buf
			}
			x, dy, y, dx := alloc(n, 0), alloc(n, 0), alloc(n, 0), alloc(n, 0)
			if err := d.RandNormal(x, n, 0.3, 1, 1, 0); err != nil {
				b.Fatal(err)
			}
			if err := d.RandNormal(dy, n, 0, 1, 2, 0); err != nil {
				b.Fatal(err)
			}
			gamma, beta, dg, db := alloc(cols, 1.1), alloc(cols, 0.1), alloc(cols, 0), alloc(cols, 0)
			mean, rstd := alloc(rows, 0), alloc(rows, 0)
			b.Run("forward", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := d.LayerNorm(x, y, gamma, beta, mean, rstd, rows, cols, 1e-5); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("backward", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := d.LayerNormGrad(x, dy, gamma, mean, rstd, dx, dg, db, rows, cols, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestLayerNormAgainstFloat64 checks LayerNorm and LayerNormGrad's y, mean,
// rstd and dx, with and without gamma and beta, at widths with every kind
// of vector tail and on x = 100 + U(−1, 1) (σ² ≈ 1/3, 3·10⁴ times smaller
// than μ²), against a float64 two-pass evaluation of the definitions. The
// kernels sum in float64 (two passes) and round each output once, so each
// is within an ulp or two of the reference: 4·2⁻²⁴ relative plus 1e-6
// absolute (y and dx are O(1) values from float64 terms of size 100,
// about 1e-14 of error before the float32 rounding). A lost element,
// chain, tail or gamma, or a float32 sum, misses by far more.
func TestLayerNormAgainstFloat64(t *testing.T) {
	d := New()
	defer d.Close()
	for _, cols := range []int{1, 5, 8, 13, 16, 31, 40, 128, 203, 384} {
		for gb := 0; gb < 4; gb++ {
			rows := 7
			n := rows * cols
			x, dy := normRand(n, 21, 99, 101), normRand(n, 22, -1, 1)
			var gm, bt []float32
			if gb&1 != 0 {
				gm = normRand(cols, 23, 0.5, 1.5)
			}
			if gb&2 != 0 {
				bt = normRand(cols, 24, -0.5, 0.5)
			}
			b := normBufs(t, d, x, dy, gm, bt, make([]float32, n), make([]float32, n), make([]float32, rows), make([]float32, rows))
			if err := d.LayerNorm(b[0], b[4], b[2], b[3], b[6], b[7], rows, cols, 1e-5); err != nil {
				t.Fatal(err)
			}
			if err := d.LayerNormGrad(b[0], b[1], b[2], b[6], b[7], b[5], nil, nil, rows, cols, 0); err != nil {
				t.Fatal(err)
			}
			read := func(buf device.Buffer, m int) []float32 {
				v := make([]float32, m)
				if err := d.ReadF32(v, buf, 0); err != nil {
					t.Fatal(err)
				}
				return v
			}
			y, dx, mf, rf := read(b[4], n), read(b[5], n), read(b[6], rows), read(b[7], rows)
			near := func(what string, i int, got float32, want float64) {
				t.Helper()
				if math.Abs(float64(got)-want) > 4*0x1p-24*math.Abs(want)+1e-6 {
					t.Fatalf("cols=%d gb=%d %s[%d]: got %v, want %v", cols, gb, what, i, got, want)
				}
			}
			for r := 0; r < rows; r++ {
				xr, gr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
				m := 0.0
				for _, v := range xr {
					m += float64(v)
				}
				m /= float64(cols)
				q := 0.0
				for _, v := range xr {
					q += (float64(v) - m) * (float64(v) - m)
				}
				rs := 1 / math.Sqrt(q/float64(cols)+1e-5)
				near("mean", r, mf[r], m)
				near("rstd", r, rf[r], rs)
				// dx from the saved (float32) statistics, as the contract says.
				ms, rss := float64(mf[r]), float64(rf[r])
				s, sx := 0.0, 0.0
				for j, v := range xr {
					g := float64(gr[j])
					if gm != nil {
						g *= float64(gm[j])
					}
					s += g
					sx += g * (float64(v) - ms) * rss
				}
				for j, v := range xr {
					xh := (float64(v) - m) * rs
					wy := xh
					if gm != nil {
						wy *= float64(gm[j])
					}
					if bt != nil {
						wy += float64(bt[j])
					}
					near("y", r*cols+j, y[r*cols+j], wy)
					g := float64(gr[j])
					if gm != nil {
						g *= float64(gm[j])
					}
					wd := rss * (g - s/float64(cols) - (float64(v)-ms)*rss*sx/float64(cols))
					near("dx", r*cols+j, dx[r*cols+j], wd)
				}
			}
		}
	}
}
