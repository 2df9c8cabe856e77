package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
)

// Checkpoint metadata written by `kiln train --out` besides nn's "kiln.spec".
// `kiln eval` and `kiln predict` read them back, so that a checkpoint alone
// says how to feed the model and how to read its outputs.
const (
	metaLoss       = "kiln.loss"        // the loss it was trained with: decides how outputs become probabilities
	metaDataset    = "kiln.dataset"     // the --data it was trained on: eval's default
	metaLabel      = "kiln.label"       // the CSV label column, when the data was a CSV file
	metaClasses    = "kiln.classes"     // number of classes (0 for regression)
	metaClassNames = "kiln.class_names" // JSON array: class index → name, for CSV string labels
	metaStats      = "kiln.stats"       // JSON data.Stats: the standardisation the inputs need
	metaVersion    = "kiln.version"     // the kiln version that wrote it
	metaTestAcc    = "kiln.test_accuracy"
	// The data the model was trained on, so that eval sees the same test
	// split without the training flags: the seed of the split and of the
	// synthetic sets, their sample count and noise, the CSV test split.
	metaSeed      = "kiln.seed"
	metaSamples   = "kiln.samples"
	metaNoise     = "kiln.noise"
	metaTestSplit = "kiln.test_split"
	metaTestFile  = "kiln.test_file"
	metaDataClass = "kiln.data_classes" // --classes, when given
)

// lossNames maps the --loss values to the device's loss kinds; the names are
// the ones device.LossKind.String prints.
var lossNames = map[string]device.LossKind{
	"cross_entropy": device.SoftmaxCrossEntropy,
	"mse":           device.MSE,
	"half_sse":      device.HalfSSE,
	"bce":           device.BCE,
	"bce_logits":    device.BCEWithLogits,
}

const lossHelp = "cross_entropy, mse, half_sse, bce or bce_logits"

func parseLoss(flag, s string) (device.LossKind, error) {
	k, ok := lossNames[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return 0, fmt.Errorf("--%s %q: unknown loss; want %s", flag, s, lossHelp)
	}
	return k, nil
}

// defaultLoss picks the loss a user most likely means for a model and a
// dataset: cross-entropy for class labels on a multi-output model, binary
// cross-entropy for a one-output model on two classes (on probabilities when
// the model ends in a sigmoid, on logits otherwise, the stable form), and
// mean squared error for regression.
func defaultLoss(spec nn.Spec, ds *data.Dataset) device.LossKind {
	out := spec.Out()
	switch {
	case ds.Labels != nil && out > 1:
		return device.SoftmaxCrossEntropy
	case ds.Labels != nil && out == 1 && ds.Classes == 2:
		if endsWith(spec, device.Sigmoid) {
			return device.BCE
		}
		return device.BCEWithLogits
	}
	return device.MSE
}

// endsWith reports whether the model's last layer is activation act.
func endsWith(spec nn.Spec, act device.Activation) bool {
	n := len(spec.Layers)
	return n > 0 && spec.Layers[n-1].Kind == nn.ActivationLayer && spec.Layers[n-1].Act == act
}

func endsWithSoftmax(spec nn.Spec) bool {
	n := len(spec.Layers)
	return n > 0 && spec.Layers[n-1].Kind == nn.SoftmaxLayer
}

// defaultModel is the spec `kiln train` uses without --model: one hidden
// layer of 128 for inputs as wide as images (64-128-relu-10 on the embedded
// digits, 784-128-relu-10 on MNIST), two narrow hidden layers for the 2-D
// synthetic sets, whose class boundaries are curved.
func defaultModel(ds *data.Dataset) string {
	out := ds.Classes
	if ds.Labels == nil {
		out = max(ds.Outputs, 1)
	}
	if ds.Features >= 32 {
		return fmt.Sprintf("%d-128-relu-%d", ds.Features, out)
	}
	return fmt.Sprintf("%d-32-relu-32-relu-%d", ds.Features, out)
}

// checkModelFits says, in terms of the flags, why a model cannot train on a
// dataset: the input width must be the number of features, and the output
// width what the loss needs.
func checkModelFits(spec nn.Spec, ds *data.Dataset, loss device.LossKind) error {
	if spec.In != ds.Features {
		start := strconv.Itoa(ds.Features)
		if len(spec.Shape) == 3 {
			start = "an image shape CxHxW of that many values"
			if len(ds.Shape) == 3 {
				start = fmt.Sprintf("%dx%dx%d", ds.Shape[0], ds.Shape[1], ds.Shape[2])
			}
		}
		return fmt.Errorf("--model %s: the input width is %d but dataset %q has %d features per sample; start the spec with %s",
			spec, spec.In, ds.Name, ds.Features, start)
	}
	if len(spec.Shape) == 3 && len(ds.Shape) == 3 && !slices.Equal(spec.Shape, ds.Shape) {
		return fmt.Errorf("--model %s: the input shape is %dx%dx%d but dataset %q has images of %dx%dx%d (channels × height × width); start the spec with %dx%dx%d",
			spec, spec.Shape[0], spec.Shape[1], spec.Shape[2], ds.Name, ds.Shape[0], ds.Shape[1], ds.Shape[2], ds.Shape[0], ds.Shape[1], ds.Shape[2])
	}
	out := spec.Out()
	switch loss {
	case device.SoftmaxCrossEntropy:
		if ds.Labels == nil {
			return fmt.Errorf("--loss cross_entropy needs class labels, but dataset %q is a regression set; use --loss mse", ds.Name)
		}
		if out != ds.Classes {
			return fmt.Errorf("--model %s: %d outputs, but dataset %q has %d classes; end the spec with %d",
				spec, out, ds.Name, ds.Classes, ds.Classes)
		}
	case device.BCE, device.BCEWithLogits:
		if ds.Labels != nil && ds.Classes != 2 && out != ds.Classes {
			return fmt.Errorf("--loss %s is for two classes (or one 0/1 output per class); dataset %q has %d classes: use --loss cross_entropy",
				loss, ds.Name, ds.Classes)
		}
	default:
		if ds.Labels == nil && out != ds.Outputs {
			return fmt.Errorf("--model %s: %d outputs, but dataset %q has %d targets per sample", spec, out, ds.Name, ds.Outputs)
		}
		if ds.Labels != nil && out != ds.Classes && !(out == 1 && ds.Classes == 2) {
			return fmt.Errorf("--model %s: %d outputs; with --loss %s on %d classes the model needs %d (one-hot targets)",
				spec, out, loss, ds.Classes, ds.Classes)
		}
	}
	return nil
}

// openDevice opens --device and applies --tf32. A CPU-only binary asked for
// cuda gets the device package's error, which says how to build one with
// CUDA.
func openDevice(spec string, tf32 bool, warn io.Writer) (device.Device, error) {
	dev, err := device.Open(spec)
	if err != nil {
		if errors.Is(err, device.ErrUnknownDevice) || errors.Is(err, device.ErrUnavailable) {
			return nil, fmt.Errorf("--device: %w", err)
		}
		return nil, fmt.Errorf("--device %s: %w", spec, err)
	}
	if _, ok := dev.(*cpu.Device); ok {
		if a := cpu.BLASAdvice(); a != "" {
			fmt.Fprintf(warn, "kiln: %s\n", a)
		}
	}
	if tf32 {
		if s, ok := dev.(device.TF32Setter); ok {
			s.SetAllowTF32(true)
		} else {
			fmt.Fprintf(warn, "kiln: --tf32: device %s has no TensorFloat-32 matrix units; computing in full float32\n", dev.Name())
		}
	}
	return dev, nil
}

// dataFlags are the dataset flags train and eval share.
type dataFlags struct {
	name        string
	dir         string
	label       string
	regression  bool
	testFile    string
	standardize bool
	normalize   bool
	samples     int
	noise       float64
	classes     int
	testSplit   float64
}

func (f *dataFlags) register(cmd *cobra.Command, defaultName string) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "data", defaultName, "dataset: "+strings.Join(data.Names, ", ")+", or the path of a CSV file (digits is embedded; mnist and fashion-mnist are looked for in --data-dir, $KILN_DATA/<name> and the system locations)")
	fl.StringVar(&f.dir, "data-dir", "", "folder holding the MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...) for --data mnist|fashion-mnist")
	fl.StringVar(&f.label, "label", "label", "CSV: the name of the target column (several, comma-separated, for multi-output regression or multi-label bce: y1,y2,y3)")
	fl.IntVar(&f.classes, "classes", 0, "CSV: the number of classes of integer labels (a label outside [0, N) is an error; default: the largest label + 1)")
	fl.Float64Var(&f.testSplit, "test-split", 0.2, "CSV without --test-file: fraction of the rows held out for testing (0: none, every row trains)")
	fl.BoolVar(&f.regression, "regression", false, "CSV: the target is a real number (regression), not a class")
	fl.StringVar(&f.testFile, "test-file", "", "CSV: a separate test file (default: hold out 20% of --data)")
	fl.BoolVar(&f.standardize, "standardize", false, "z-score every feature with the training set's mean and std (stored in the checkpoint)")
	fl.BoolVar(&f.normalize, "normalize", false, "MNIST/Fashion-MNIST: apply the published mean/std after scaling pixels to [0,1]")
	fl.IntVar(&f.samples, "samples", 0, "synthetic sets (moons, circles, flower): training samples (default 1000)")
	fl.Float64Var(&f.noise, "noise", 0, "synthetic sets: noise level (default: the set's own)")
}

func (f *dataFlags) validate() error {
	if f.samples < 0 {
		return fmt.Errorf("--samples %d: want a positive number of samples", f.samples)
	}
	if f.noise < 0 {
		return fmt.Errorf("--noise %g: want a standard deviation ≥ 0", f.noise)
	}
	if f.label == "" {
		return errors.New("--label: want the name of the CSV target column")
	}
	if f.classes < 0 {
		return fmt.Errorf("--classes %d: want a number of classes ≥ 2, or 0 for the largest label + 1", f.classes)
	}
	if f.testSplit < 0 || f.testSplit >= 1 {
		return fmt.Errorf("--test-split %g: want a fraction with 0 ≤ f < 1", f.testSplit)
	}
	return nil
}

// options is the data.Options the flags ask for, with seed.
func (f *dataFlags) options(seed uint64) data.Options {
	opt := data.Options{
		Dir:        f.dir,
		Seed:       seed,
		Samples:    f.samples,
		Noise:      f.noise,
		Label:      f.label,
		Regression: f.regression,
		Classes:    f.classes,
		TestFile:   f.testFile,
		Normalize:  f.normalize,
	}
	if f.testFile == "" && isCSVName(f.name) {
		if f.testSplit == 0 {
			opt.NoTest = true
		} else {
			opt.TestFrac = f.testSplit
		}
	}
	return opt
}

// isCSVName says whether --data names a file rather than a built-in set.
func isCSVName(name string) bool {
	return name != "" && !contains(data.Names, strings.ToLower(name)) && !strings.Contains(strings.ToLower(name), "fashion")
}

// load reads the training and test sets. Standardisation is left to the
// caller, which fits it on the training part only (after any validation
// split).
func (f *dataFlags) load(seed uint64) (train, test *data.Dataset, err error) {
	train, test, err = data.Load(f.name, f.options(seed))
	if err != nil {
		if strings.Contains(err.Error(), "needs Regression") && !f.regression {
			return nil, nil, fmt.Errorf("--data %s: %w; add --regression to predict a number", f.name, err)
		}
		return nil, nil, fmt.Errorf("--data %s: %w", f.name, err)
	}
	return train, test, nil
}

// isTerminal reports whether w is a terminal, so that progress bars are drawn
// only for a person watching and logs get one line per epoch.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// checkpointInfo is what a checkpoint's metadata says about its model.
type checkpointInfo struct {
	loss       device.LossKind
	hasLoss    bool
	dataset    string
	label      string
	classes    int
	regression bool // the metadata says 0 classes: the targets are real numbers
	classNames []string
	stats      *data.Stats
	// dataMeta holds the data flags the training run used (metaSeed, …),
	// by flag name, for eval to apply where the flag is not given.
	dataMeta map[string]string
}

// dataMetaFlags maps checkpoint metadata keys to the data flag they
// restore.
var dataMetaFlags = []struct{ key, flag string }{
	{metaSeed, "seed"}, {metaSamples, "samples"}, {metaNoise, "noise"},
	{metaTestSplit, "test-split"}, {metaTestFile, "test-file"}, {metaDataClass, "classes"},
}

func readCheckpointInfo(path string, meta map[string]string) (checkpointInfo, error) {
	var ci checkpointInfo
	if s, ok := meta[metaLoss]; ok {
		k, ok := lossNames[s]
		if !ok {
			return ci, fmt.Errorf("--checkpoint %s: metadata %s=%q is not a known loss (%s)", path, metaLoss, s, lossHelp)
		}
		ci.loss, ci.hasLoss = k, true
	}
	ci.dataset = meta[metaDataset]
	ci.label = meta[metaLabel]
	if s, ok := meta[metaClasses]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return ci, fmt.Errorf("--checkpoint %s: metadata %s=%q: want a number of classes", path, metaClasses, s)
		}
		ci.classes = n
		ci.regression = n == 0
	}
	if s, ok := meta[metaClassNames]; ok && s != "" {
		if err := json.Unmarshal([]byte(s), &ci.classNames); err != nil {
			return ci, fmt.Errorf("--checkpoint %s: metadata %s: want a JSON array of names: %v", path, metaClassNames, err)
		}
	}
	for _, d := range dataMetaFlags {
		if v, ok := meta[d.key]; ok {
			if ci.dataMeta == nil {
				ci.dataMeta = map[string]string{}
			}
			ci.dataMeta[d.flag] = v
		}
	}
	if s, ok := meta[metaStats]; ok && s != "" {
		ci.stats = new(data.Stats)
		if err := json.Unmarshal([]byte(s), ci.stats); err != nil {
			return ci, fmt.Errorf("--checkpoint %s: metadata %s: want JSON {\"mean\":[...],\"std\":[...]}: %v", path, metaStats, err)
		}
	}
	return ci, nil
}

// loadCheckpoint opens a checkpoint written by `kiln train --out` (or any
// safetensors file with a "kiln.spec" entry) on dev.
func loadCheckpoint(dev device.Device, path string) (*nn.Sequential, checkpointInfo, error) {
	if path == "" {
		return nil, checkpointInfo{}, errors.New("--checkpoint: want the path of a .safetensors file written by `kiln train --out`")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, checkpointInfo{}, fmt.Errorf("--checkpoint %s: %w", path, err)
	}
	m, sd, err := nn.Load(dev, path)
	if err != nil {
		return nil, checkpointInfo{}, fmt.Errorf("--checkpoint %s: %w", path, err)
	}
	ci, err := readCheckpointInfo(path, sd.Metadata)
	if err != nil {
		m.Free()
		return nil, ci, err
	}
	return m, ci, nil
}

// positive checks an integer flag that must be at least 1.
func positive(flag string, v int) error {
	if v < 1 {
		return fmt.Errorf("--%s %d: want a positive integer", flag, v)
	}
	return nil
}

// nonNegative checks an integer flag that may be 0 (off).
func nonNegative(flag string, v int) error {
	if v < 0 {
		return fmt.Errorf("--%s %d: want 0 (off) or a positive integer", flag, v)
	}
	return nil
}
