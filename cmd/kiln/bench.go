package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

type benchFlags struct {
	model     string
	batches   string
	device    string
	optimizer string
	loss      string
	warmup    int
	steps     int
	repeats   int
	seed      uint64
	tf32      bool
	asJSON    bool
}

// benchResult is one batch size's figures, also its JSON form. Throughput
// is the median over the repeats, so that one slow repeat (a page-fault
// storm, another process) does not move it.
type benchResult struct {
	Device         string    `json:"device"`
	DeviceName     string    `json:"device_name"`
	Model          string    `json:"model"`
	Params         int       `json:"params"`
	Optimizer      string    `json:"optimizer"`
	Loss           string    `json:"loss"`
	TF32           bool      `json:"tf32"`
	Batch          int       `json:"batch"`
	Steps          int       `json:"steps_per_repeat"`
	Repeats        int       `json:"repeats"`
	MsPerStep      float64   `json:"ms_per_step"`            // median
	SamplesPerSec  float64   `json:"samples_per_sec"`        // median
	TFLOPS         float64   `json:"tflops"`                 // from the median, counting 6·params·batch FLOPs per step (6·MACs·batch for an image spec)
	RepeatSamplesS []float64 `json:"repeat_samples_per_sec"` // every repeat, in order
}

func newBenchCmd() *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training throughput of a model on a device",
		Long: `Measure training steps per second of a model at one or more batch sizes.

Each batch size gets synthetic data (normal inputs and random class labels)
that stays on the device, so the figure is the device's: forward, loss,
backward and optimiser update, no host transfer. After --warmup-steps steps, --repeats
runs of --repeat-steps steps each are timed (the device is synchronised before the
clock stops), and the median is reported as ms/step and samples/s, with the
arithmetic rate at 6·params·batch FLOPs per step (2 forward, 4 backward), the
usual count for dense layers; for an image spec, 6·MACs·batch, with MACs the
multiply-adds per sample of its convolutions and linear layers.`,
		Example: `  kiln bench
  kiln bench --device cuda --model 784-4096-relu-4096-relu-10 --batch-size 1024 --optimizer adam
  kiln bench --device cpu --batch-size 64,256,1024 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "784-256-relu-128-relu-10", "model spec")
	fl.StringVar(&f.batches, "batch-size", "64,256,1024", "batch sizes, comma-separated (as train's --batch-size)")
	fl.StringVar(&f.batches, "batch", "64,256,1024", "old name of --batch-size")
	_ = fl.MarkDeprecated("batch", "use --batch-size, the name train and eval use")
	fl.StringVar(&f.device, "device", "auto", "device: auto, cpu, cuda or cuda:N")
	fl.StringVar(&f.optimizer, "optimizer", "adam", "optimizer: sgd, adam or adamw")
	fl.StringVar(&f.loss, "loss", "", "loss: "+lossHelp+" (default: cross_entropy, or bce_logits for one output)")
	fl.IntVar(&f.warmup, "warmup-steps", 5, "untimed steps before measuring (JIT compilation, pool warm-up)")
	fl.IntVar(&f.steps, "repeat-steps", 20, "steps per timed repeat")
	// train's --warmup is warm-up epochs of the learning rate and --steps
	// the total step limit; bench's old names for other things stay as
	// deprecated aliases.
	fl.IntVar(&f.warmup, "warmup", 5, "old name of --warmup-steps")
	fl.IntVar(&f.steps, "steps", 20, "old name of --repeat-steps")
	_ = fl.MarkDeprecated("warmup", "use --warmup-steps (train's --warmup is the learning-rate warm-up)")
	_ = fl.MarkDeprecated("steps", "use --repeat-steps (train's --steps is the total step limit)")
	fl.IntVar(&f.repeats, "repeats", 5, "timed repeats; the median is reported")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the weights and the synthetic data")
	fl.BoolVar(&f.tf32, "tf32", false, "allow TensorFloat-32 matrix products")
	fl.BoolVar(&f.asJSON, "json", false, "print the results as a JSON array")
	return cmd
}

func parseBatches(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--batch-size %q: %q is not a positive integer; want sizes such as 64,256,1024", s, part)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--batch-size %q: want at least one batch size", s)
	}
	return out, nil
}

func runBench(cmd *cobra.Command, f *benchFlags) error {
	spec, err := nn.ParseSpec(f.model)
	if err != nil {
		return fmt.Errorf("--model %q: %w", f.model, err)
	}
	batches, err := parseBatches(f.batches)
	if err != nil {
		return err
	}
	if err := nonNegative("warmup-steps", f.warmup); err != nil {
		return err
	}
	if err := positive("repeat-steps", f.steps); err != nil {
		return err
	}
	if err := positive("repeats", f.repeats); err != nil {
		return err
	}
	opt := strings.ToLower(f.optimizer)
	if opt != "sgd" && opt != "adam" && opt != "adamw" {
		return fmt.Errorf("--optimizer %q: want sgd, adam or adamw", f.optimizer)
	}
	loss := device.SoftmaxCrossEntropy
	if spec.Out() == 1 {
		loss = device.BCEWithLogits
	}
	if f.loss != "" {
		if loss, err = parseLoss("loss", f.loss); err != nil {
			return err
		}
	}
	if loss == device.SoftmaxCrossEntropy && spec.Out() < 2 {
		return fmt.Errorf("--loss cross_entropy needs at least 2 outputs; --model %s has %d", spec, spec.Out())
	}
	dev, err := openDevice(f.device, f.tf32, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer dev.Close()

	var results []benchResult
	for _, b := range batches {
		r, err := benchOne(dev, spec, opt, loss, b, f)
		if err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		results = append(results, r)
		if !f.asJSON {
			// One line as each batch size finishes, for long runs.
			fmt.Fprintf(cmd.ErrOrStderr(), "batch %d: %.3f ms/step\n", b, r.MsPerStep)
		}
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	info := dev.Info()
	fmt.Fprintf(out, "model %s (%d parameters), %s, %s loss, on %s (%s)%s\n", spec, results[0].Params, opt, loss, dev.Name(), info.Name, map[bool]string{true: ", tf32", false: ""}[f.tf32])
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batch\tms/step\tsamples/s\tTFLOP/s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%.3f\t%.0f\t%.3f\t\n", r.Batch, r.MsPerStep, r.SamplesPerSec, r.TFLOPS)
	}
	return tw.Flush()
}

// benchOne times training steps at one batch size. The inputs and targets
// are filled on the device by its own generator, so no host data moves
// during the run.
func benchOne(dev device.Device, spec nn.Spec, opt string, loss device.LossKind, batch int, f *benchFlags) (benchResult, error) {
	model, err := nn.Build(dev, spec, nn.Init{}, f.seed)
	if err != nil {
		return benchResult{}, err
	}
	defer model.Free()
	var o train.Optimizer
	switch opt {
	case "sgd":
		o, err = train.NewSGD(model, device.SGDConfig{LR: 0.01, Momentum: 0.9})
	case "adamw":
		o, err = train.NewAdam(model, train.DefaultAdamW(1e-3))
	default:
		o, err = train.NewAdam(model, train.DefaultAdam(1e-3))
	}
	if err != nil {
		return benchResult{}, err
	}
	defer o.Free()

	in, out := spec.In, spec.Out()
	x, err := dev.Alloc(device.Float32, batch*in)
	if err != nil {
		return benchResult{}, err
	}
	defer dev.Free(x)
	if err := dev.RandNormal(x, batch*in, 0, 1, f.seed+1, 0); err != nil {
		return benchResult{}, err
	}
	var target device.Buffer
	if loss == device.SoftmaxCrossEntropy {
		labels := make([]int32, batch)
		for i := range labels {
			labels[i] = int32(device.UniformAt(f.seed+2, uint64(i)) * float32(out))
			labels[i] = min(labels[i], int32(out-1))
		}
		if target, err = dev.Alloc(device.Int32, batch); err == nil {
			err = dev.WriteI32(target, 0, labels)
		}
	} else if target, err = dev.Alloc(device.Float32, batch*out); err == nil {
		// Soft targets in (0, 1): valid for the binary losses and for mse.
		err = dev.RandUniform(target, batch*out, 0, 1, f.seed+2, 0)
	}
	if err != nil {
		return benchResult{}, err
	}
	defer dev.Free(target)

	g := nn.NewGraph(dev)
	defer g.Free()
	model.SetTraining(true)
	step := func() error {
		defer g.Reset()
		if err := model.ZeroGrad(); err != nil {
			return err
		}
		xt, err := g.Input(x, batch, in)
		if err != nil {
			return err
		}
		y, err := model.Forward(g, xt)
		if err != nil {
			return err
		}
		l, err := g.Loss(loss, y, target)
		if err != nil {
			return err
		}
		if err := g.Backward(l); err != nil {
			return err
		}
		return o.Step()
	}
	for i := 0; i < f.warmup; i++ {
		if err := step(); err != nil {
			return benchResult{}, err
		}
	}
	if err := dev.Sync(); err != nil {
		return benchResult{}, err
	}
	secs := make([]float64, f.repeats)
	rates := make([]float64, f.repeats)
	for r := range secs {
		t0 := time.Now()
		for i := 0; i < f.steps; i++ {
			if err := step(); err != nil {
				return benchResult{}, err
			}
		}
		if err := dev.Sync(); err != nil {
			return benchResult{}, err
		}
		secs[r] = time.Since(t0).Seconds()
		rates[r] = float64(batch*f.steps) / secs[r]
	}
	med := median(secs)
	params := model.NumParams()
	work := float64(params)
	if len(spec.Shape) == 3 { // a convolution's weights are used at every position
		work = float64(spec.MACs())
	}
	return benchResult{
		Device: dev.Name(), DeviceName: dev.Info().Name, Model: spec.String(), Params: params,
		Optimizer: opt, Loss: loss.String(), TF32: f.tf32, Batch: batch, Steps: f.steps, Repeats: f.repeats,
		MsPerStep:      med / float64(f.steps) * 1e3,
		SamplesPerSec:  float64(batch*f.steps) / med,
		TFLOPS:         6 * work * float64(batch) * float64(f.steps) / med / 1e12,
		RepeatSamplesS: rates,
	}, nil
}

// median of a copy of v (mean of the middle two for an even count).
func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
