// Command blockbench times one forward and backward pass of a pre-norm
// transformer block on one device, for the side-by-side comparison with
// PyTorch in bench/block.sh (bench/torch_block.py is the same block in
// torch.nn).
//
// It is nn's BenchmarkBlockStep (nn/block_bench_test.go) on the public
// API: nanoGPT's Block — x + attn(ln_1(x)), then + mlp(ln_2(·)), the
// attention causal with a fused c_attn (Linear width → 3·width) and c_proj,
// the MLP c_fc (width → 4·width), GELU (tanh form), c_proj — at
// [batch 8, context 256, width 384, 6 heads] by default. A step is
// ZeroGrad, forward with the input as a Variable (so its gradient is
// computed too), an MSE loss against a fixed target, Backward, Sync; no
// optimiser step. The median of the timed steps is reported on a last line
//
//	result: median_step_ms=… samples_per_s=…
//
// (samples are sequences of the context length), which bench/block.sh
// reads.
//
//	go run ./bench/blockbench [-batch 8] [-ctx 256] [-width 384] [-heads 6] [-steps 10] [-cpuprofile FILE] [-ops]
//
// -ops wraps the device and times each primitive call of the timed steps
// (bench/internal/opstats), listed by shape, the largest first.
//
//	go run -tags openblas ./bench/blockbench …   # the OpenBLAS GEMM
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/kilnml/kiln/bench/internal/opstats"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // the CPU backend
	"github.com/kilnml/kiln/nn"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "blockbench:", err)
		os.Exit(1)
	}
}

// mlp is nanoGPT's MLP: c_fc, GELU (tanh form), c_proj.
type mlp struct {
	fc, proj *nn.Linear
	children []nn.Child
}

func newMLP(width int) *mlp {
	m := &mlp{fc: nn.NewLinear(width, 4*width, true), proj: nn.NewLinear(4*width, width, true)}
	m.children = []nn.Child{{Name: "c_fc", Module: m.fc}, {Name: "c_proj", Module: m.proj}}
	return m
}

func (m *mlp) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := m.fc.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = g.Activate(device.GELUTanh, 0, h); err != nil {
		return nil, err
	}
	return m.proj.Forward(g, h)
}
func (m *mlp) Children() []nn.Child   { return m.children }
func (m *mlp) OwnParams() []*nn.Param { return nil }
func (m *mlp) SetTraining(bool)       {}

// block is nanoGPT's pre-norm Block.
type block struct {
	ln1, ln2 *nn.LayerNorm
	attn     *nn.MultiHeadAttention
	mlp      *mlp
	children []nn.Child
}

func newBlock(width, heads int) *block {
	b := &block{ln1: nn.NewLayerNorm(width), ln2: nn.NewLayerNorm(width),
		attn: nn.NewCausalSelfAttention(width, heads), mlp: newMLP(width)}
	b.children = []nn.Child{{Name: "ln_1", Module: b.ln1}, {Name: "attn", Module: b.attn},
		{Name: "ln_2", Module: b.ln2}, {Name: "mlp", Module: b.mlp}}
	return b
}

func (b *block) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := b.ln1.Forward(g, x)
	if err != nil {
		return nil, err
	}
	if h, err = b.attn.Forward(g, h); err != nil {
		return nil, err
	}
	if x, err = g.Add(x, h); err != nil {
		return nil, err
	}
	if h, err = b.ln2.Forward(g, x); err != nil {
		return nil, err
	}
	if h, err = b.mlp.Forward(g, h); err != nil {
		return nil, err
	}
	return g.Add(x, h)
}
func (b *block) Children() []nn.Child   { return b.children }
func (b *block) OwnParams() []*nn.Param { return nil }
func (b *block) SetTraining(bool)       {}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("blockbench", flag.ContinueOnError)
	batch := fs.Int("batch", 8, "sequences per batch")
	ctx := fs.Int("ctx", 256, "context length")
	width := fs.Int("width", 384, "model width")
	heads := fs.Int("heads", 6, "attention heads")
	steps := fs.Int("steps", 10, "timed steps")
	warmup := fs.Int("warmup", 2, "untimed steps first")
	devName := fs.String("device", "cpu", "device")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed steps here")
	ops := fs.Bool("ops", false, "time every primitive call of the timed steps and list them by shape, the largest first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 || *ctx < 1 || *width < 1 || *heads < 1 || *steps < 1 || *warmup < 0 {
		return fmt.Errorf("need -batch, -ctx, -width, -heads, -steps ≥ 1 and -warmup ≥ 0")
	}
	dev, err := device.Open(*devName)
	if err != nil {
		return err
	}
	defer dev.Close()
	var timed *opstats.Device
	if *ops {
		timed = opstats.New(dev)
		dev = timed
	}
	m := newBlock(*width, *heads)
	ps, err := nn.NewParamSet(dev, m, 1)
	if err != nil {
		return err
	}
	defer ps.Free()
	fmt.Fprintf(w, "kiln %s: block [batch %d, ctx %d, width %d, heads %d], %d parameters, forward+backward\n",
		dev.Name(), *batch, *ctx, *width, *heads, ps.NumParams())

	n := *batch * *ctx * *width
	r := rand.New(rand.NewPCG(7, 8))
	host := make([]float32, n)
	upload := func() (device.Buffer, error) {
		for i := range host {
			host[i] = 2*r.Float32() - 1
		}
		b, err := dev.Alloc(device.Float32, n)
		if err != nil {
			return nil, err
		}
		return b, dev.WriteF32(b, 0, host)
	}
	x, err := upload()
	if err != nil {
		return err
	}
	defer dev.Free(x)
	tgt, err := upload()
	if err != nil {
		return err
	}
	defer dev.Free(tgt)

	g := nn.NewGraph(dev)
	defer g.Free()
	step := func() error {
		g.Reset()
		if err := ps.ZeroGrad(); err != nil {
			return err
		}
		xv, err := g.Variable(x, *batch, *ctx, *width)
		if err != nil {
			return err
		}
		y, err := m.Forward(g, xv)
		if err != nil {
			return err
		}
		loss, err := g.Loss(device.MSE, y, tgt)
		if err != nil {
			return err
		}
		if err := g.Backward(loss); err != nil {
			return err
		}
		return dev.Sync()
	}
	for i := 0; i < *warmup; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if timed != nil {
		timed.On = true
	}
	times := make([]float64, *steps)
	for i := range times {
		t0 := time.Now()
		if err := step(); err != nil {
			return err
		}
		times[i] = time.Since(t0).Seconds()
	}
	if timed != nil {
		timed.On = false
		timed.Report(w, *steps)
	}
	slices.Sort(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	fmt.Fprintf(w, "steps %d after %d warm-up: min %.1f ms, median %.1f ms, max %.1f ms\n",
		*steps, *warmup, times[0]*1e3, med*1e3, times[len(times)-1]*1e3)
	fmt.Fprintf(w, "result: median_step_ms=%.3f samples_per_s=%.2f\n", med*1e3, float64(*batch)/med)
	return nil
}
