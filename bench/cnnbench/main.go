// Command cnnbench measures the training throughput of the small MNIST CNN
// of examples/mnist-cnn on one device, for the side-by-side comparison with
// PyTorch in bench/cnn.sh (bench/torch_cnn.py is the same model, batch and
// optimiser in torch.nn).
//
// The model is examples/mnist-cnn's newModel at its default width 32:
//
//	conv3x3(1→32, pad 1, no bias)-bn-relu-conv3x3(32→32)-bn-relu-maxpool2
//	conv3x3(32→64)-bn-relu-conv3x3(64→64)-bn-relu-maxpool2
//	flatten-linear(3136→128)-relu-dropout(0.3)-linear(128→10)
//
// trained with softmax cross-entropy and AdamW (lr 3e-3, weight decay 5e-4
// on matrices and kernels only, train.DecayGroups). A step is what the
// example's training loop does per batch minus the host-side augmentation
// and the schedule: gather the batch on the host (a fixed pool of
// synthetic images, pixels uniform in [0, 1), labels uniform in 0..9),
// copy it to the device, zero the gradients, forward, loss, backward,
// optimiser step, then Sync. The median of the timed steps is reported
// on a last line
//
//	result: median_step_ms=… samples_per_s=…
//
// which bench/cnn.sh reads.
//
//	go run ./bench/cnnbench [-batch 64] [-steps 20] [-warmup 3] [-cpuprofile FILE] [-ops] [-checksum]
//
// -checksum prints a hash of the parameters' bits after the steps, which
// must not change with GOMAXPROCS or between builds that keep the bits.
//
// -ops wraps the device and times each primitive call of the timed steps
// (wall time, by primitive and shape), for finding the serial parts of a
// step (compare GOMAXPROCS=1 and 2).
//
//	go run -tags openblas ./bench/cnnbench …   # the OpenBLAS GEMM
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/kilnml/kiln/bench/internal/opstats"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // the CPU backend
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cnnbench:", err)
		os.Exit(1)
	}
}

// newModel is examples/mnist-cnn's network (see the package comment).
func newModel(width int) *nn.Sequential {
	conv := func(in, out int) []nn.Module {
		return []nn.Module{
			nn.NewConv2d(in, out, 3, nn.WithPadding(1), nn.WithoutBias()),
			nn.NewBatchNorm2d(out),
			&nn.Activation{Act: device.ReLU},
		}
	}
	var layers []nn.Module
	c1, c2 := width, 2*width
	layers = append(layers, conv(1, c1)...)
	layers = append(layers, conv(c1, c1)...)
	layers = append(layers, nn.NewMaxPool2d(2, 2, 0))
	layers = append(layers, conv(c1, c2)...)
	layers = append(layers, conv(c2, c2)...)
	layers = append(layers, nn.NewMaxPool2d(2, 2, 0))
	layers = append(layers,
		nn.NewFlatten(),
		nn.NewLinear(c2*7*7, 128, true),
		&nn.Activation{Act: device.ReLU},
		&nn.Dropout{P: 0.3},
		nn.NewLinear(128, 10, true),
	)
	return nn.NewSequential(layers...)
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("cnnbench", flag.ContinueOnError)
	batch := fs.Int("batch", 64, "batch size")
	steps := fs.Int("steps", 20, "timed steps")
	warmup := fs.Int("warmup", 3, "untimed steps first")
	width := fs.Int("width", 32, "channels of the first block (the second has twice as many)")
	pool := fs.Int("pool", 4096, "synthetic images to draw batches from")
	devName := fs.String("device", "cpu", "device")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed steps here")
	checksum := fs.Bool("checksum", false, "print a hash of the parameters' bits after the steps (to compare builds and core counts)")
	ops := fs.Bool("ops", false, "time every primitive call of the timed steps and list them by shape, the largest first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 || *steps < 1 || *warmup < 0 || *width < 1 || *pool < *batch {
		return fmt.Errorf("need -batch ≥ 1, -steps ≥ 1, -warmup ≥ 0, -width ≥ 1, -pool ≥ -batch")
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

	model := newModel(*width)
	nn.SetTraining(model, true) // batch statistics, dropout on
	params, err := nn.NewParamSet(dev, model, 1)
	if err != nil {
		return err
	}
	defer params.Free()
	opt, err := train.NewAdamW(params, train.DefaultAdamW(3e-3), train.DecayGroups(params, 5e-4)...)
	if err != nil {
		return err
	}
	defer opt.Free()
	fmt.Fprintf(w, "kiln %s: CNN width %d, %d parameters, batch %d, AdamW\n", dev.Name(), *width, params.NumParams(), *batch)

	const feat, classes = 28 * 28, 10
	r := rand.New(rand.NewPCG(1, 2))
	hostX := make([]float32, *pool*feat)
	for i := range hostX {
		hostX[i] = r.Float32()
	}
	hostY := make([]int32, *pool)
	for i := range hostY {
		hostY[i] = int32(r.IntN(classes))
	}
	order := r.Perm(*pool)

	bs := *batch
	hx := make([]float32, bs*feat)
	hl := make([]int32, bs)
	x, err := dev.Alloc(device.Float32, bs*feat)
	if err != nil {
		return err
	}
	defer dev.Free(x)
	y, err := dev.Alloc(device.Int32, bs)
	if err != nil {
		return err
	}
	defer dev.Free(y)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetRNG(7, 0)

	pos := 0
	step := func() error {
		// Gather the next batch by index, as a data loader does.
		for i := 0; i < bs; i++ {
			if pos == *pool {
				pos = 0
			}
			k := order[pos]
			pos++
			copy(hx[i*feat:(i+1)*feat], hostX[k*feat:(k+1)*feat])
			hl[i] = hostY[k]
		}
		if err := dev.WriteF32(x, 0, hx); err != nil {
			return err
		}
		if err := dev.WriteI32(y, 0, hl); err != nil {
			return err
		}
		if err := params.ZeroGrad(); err != nil {
			return err
		}
		in, err := g.Input(x, bs, 1, 28, 28)
		if err != nil {
			return err
		}
		logits, err := model.Forward(g, in)
		if err != nil {
			return err
		}
		loss, err := g.Loss(device.SoftmaxCrossEntropy, logits, y)
		if err != nil {
			return err
		}
		if err := g.Backward(loss); err != nil {
			return err
		}
		if err := opt.Step(); err != nil {
			return err
		}
		g.Reset()
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
	if *checksum {
		vals, _ := params.Flat()
		host := make([]float32, vals.Len())
		if err := dev.ReadF32(host, vals, 0); err != nil {
			return err
		}
		h := fnv.New64a()
		var b [4]byte
		for _, v := range host {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
		fmt.Fprintf(w, "checksum: %016x over %d parameters after %d steps\n", h.Sum64(), len(host), *warmup+*steps)
	}
	slices.Sort(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	fmt.Fprintf(w, "steps %d after %d warm-up: min %.1f ms, median %.1f ms, max %.1f ms\n",
		*steps, *warmup, times[0]*1e3, med*1e3, times[len(times)-1]*1e3)
	fmt.Fprintf(w, "result: median_step_ms=%.3f samples_per_s=%.1f\n", med*1e3, float64(bs)/med)
	return nil
}
