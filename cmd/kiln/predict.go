package main

import (
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
)

type predictFlags struct {
	checkpoint string
	input      string
	device     string
	batch      int
	asJSON     bool
}

func newPredictCmd() *cobra.Command {
	f := &predictFlags{}
	cmd := &cobra.Command{
		Use:   "predict",
		Short: "Predict the class of each input row with a checkpoint",
		Long: `Run a checkpoint written by 'kiln train --out' on new inputs and print, for
every row, the predicted class and the class probabilities (the raw outputs for
a regression model).

--input is either a CSV file (one sample per row; a header row is detected and
a column named like the training label column is ignored) or an MNIST-style IDX
images file, gzipped or not (pixels are scaled to [0,1] as in training). The
checkpoint's standardisation, if any, is applied.

With --json, each row is printed as one JSON object per line (JSON Lines).`,
		Example: `  kiln predict --checkpoint digits.safetensors --input rows.csv
  kiln predict --checkpoint mnist.safetensors --input t10k-images-idx3-ubyte.gz --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPredict(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkpoint, "checkpoint", "", "safetensors checkpoint written by `kiln train --out` (required)")
	fl.StringVar(&f.input, "input", "", "inputs: a CSV file (.csv, .csv.gz) or an IDX images file (required)")
	fl.StringVar(&f.device, "device", "auto", "device: auto, cpu, cuda or cuda:N")
	fl.IntVar(&f.batch, "batch-size", 1024, "samples per batch")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object per row")
	return cmd
}

// prediction is one row's result, also its JSON form.
type prediction struct {
	Row           int       `json:"row"`
	Class         *int      `json:"class,omitempty"`
	Label         string    `json:"label,omitempty"`
	Probabilities []float64 `json:"probabilities,omitempty"`
	Scores        []float64 `json:"scores,omitempty"` // outputs that are not probabilities (a classifier trained with mse)
	Outputs       []float64 `json:"outputs,omitempty"`
}

func runPredict(cmd *cobra.Command, f *predictFlags) error {
	if f.checkpoint == "" {
		return errors.New("--checkpoint is required: the safetensors file written by `kiln train --out`")
	}
	if f.input == "" {
		return errors.New("--input is required: a CSV file of feature rows or an IDX images file")
	}
	if err := positive("batch-size", f.batch); err != nil {
		return err
	}
	if _, err := os.Stat(f.input); err != nil {
		return fmt.Errorf("--input %s: %w", f.input, err)
	}
	dev, err := openDevice(f.device, false, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer dev.Close()
	model, ci, err := loadCheckpoint(dev, f.checkpoint)
	if err != nil {
		return err
	}
	defer model.Free()
	spec := model.Spec()

	label := ci.label
	if label == "" {
		label = "label" // the CSV default, and the column name of the built-in sets' exports
	}
	x, rows, err := readInputs(f.input, spec.In, label)
	if err != nil {
		return err
	}
	if ci.stats != nil {
		ds := &data.Dataset{Name: f.input, X: x, Features: spec.In}
		if err := ci.stats.Apply(ds); err != nil {
			return fmt.Errorf("--input %s: applying the checkpoint's standardisation: %w", f.input, err)
		}
	}
	outs, err := forward(dev, model, x, rows, f.batch)
	if err != nil {
		return err
	}

	loss := ci.loss
	if !ci.hasLoss {
		loss = device.SoftmaxCrossEntropy
		if spec.Out() == 1 {
			loss = device.MSE
		}
	}
	classify := ci.classes > 0 || !ci.hasLoss && spec.Out() > 1
	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	width := spec.Out()
	if !f.asJSON {
		switch {
		case classify:
			fmt.Fprintln(out, "row\tclass\tprob\tprobabilities")
		default:
			fmt.Fprintln(out, "row\toutputs")
		}
	}
	for i := 0; i < rows; i++ {
		p := interpret(outs[i*width:(i+1)*width], spec, loss, classify)
		p.Row = i
		if p.Class != nil && *p.Class < len(ci.classNames) {
			p.Label = ci.classNames[*p.Class]
		}
		if f.asJSON {
			if err := enc.Encode(p); err != nil {
				return err
			}
			continue
		}
		writePredictionLine(out, p)
	}
	return nil
}

func writePredictionLine(w io.Writer, p prediction) {
	if p.Class == nil {
		fmt.Fprintf(w, "%d\t%s\n", p.Row, floats(p.Outputs))
		return
	}
	class := strconv.Itoa(*p.Class)
	if p.Label != "" {
		class = p.Label
	}
	vals := p.Probabilities
	if vals == nil {
		vals = p.Scores
	}
	fmt.Fprintf(w, "%d\t%s\t%.4f\t%s\n", p.Row, class, vals[*p.Class], floats(vals))
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 4, 64)
	}
	return strings.Join(s, " ")
}

// interpret turns one row of model outputs into a prediction following the
// loss the model was trained with: softmax of logits for cross-entropy (the
// loss applies softmax itself, so the model outputs logits), a sigmoid of
// the logit for bce_logits, the outputs as they are for bce (the model ends
// in a sigmoid) and for regression.
func interpret(raw []float32, spec nn.Spec, loss device.LossKind, classify bool) prediction {
	v := make([]float64, len(raw))
	for i, r := range raw {
		v[i] = float64(r)
	}
	var p prediction
	if !classify {
		p.Outputs = v
		return p
	}
	switch {
	case loss == device.SoftmaxCrossEntropy && !endsWithSoftmax(spec):
		p.Probabilities = softmax(v)
	case loss == device.BCEWithLogits:
		for i := range v {
			v[i] = 1 / (1 + math.Exp(-v[i]))
		}
		p.Probabilities = v
	case loss == device.BCE || endsWithSoftmax(spec):
		p.Probabilities = v
	default:
		p.Scores = v
	}
	// One output on two classes: the output is P(class 1).
	if len(v) == 1 && p.Probabilities != nil {
		p.Probabilities = []float64{1 - v[0], v[0]}
	}
	vals := p.Probabilities
	if vals == nil {
		vals = p.Scores
	}
	best := 0
	for i, x := range vals {
		if x > vals[best] {
			best = i
		}
	}
	p.Class = &best
	return p
}

func softmax(v []float64) []float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		out[i] = math.Exp(x - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// forward runs the model over x in batches, in evaluation mode, and returns
// its outputs on the host.
func forward(dev device.Device, m *nn.Sequential, x []float32, rows, batch int) ([]float32, error) {
	spec := m.Spec()
	in, width := spec.In, spec.Out()
	m.SetTraining(false)
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	batch = min(batch, rows)
	buf, err := dev.Alloc(device.Float32, batch*in)
	if err != nil {
		return nil, err
	}
	defer dev.Free(buf)
	out := make([]float32, rows*width)
	for start := 0; start < rows; start += batch {
		n := min(batch, rows-start)
		if err := dev.WriteF32(buf, 0, x[start*in:(start+n)*in]); err != nil {
			return nil, err
		}
		xt, err := g.Input(buf, n, in)
		if err != nil {
			return nil, err
		}
		y, err := m.Forward(g, xt)
		if err != nil {
			return nil, fmt.Errorf("forward: %w", err)
		}
		if err := dev.ReadF32(out[start*width:(start+n)*width], y.Value(), 0); err != nil {
			return nil, err
		}
		g.Reset()
	}
	return out, nil
}

// readInputs reads --input as CSV rows or IDX images and checks that every
// sample has the model's input width.
func readInputs(path string, in int, label string) ([]float32, int, error) {
	lower := strings.ToLower(path)
	if strings.HasSuffix(lower, ".csv") || strings.HasSuffix(lower, ".csv.gz") || strings.HasSuffix(lower, ".tsv") {
		return readCSVRows(path, in, label)
	}
	idx, err := data.ReadIDXFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--input %s: %w (want a CSV file named *.csv or an IDX images file)", path, err)
	}
	if len(idx.Dims) < 2 {
		return nil, 0, fmt.Errorf("--input %s: an IDX file of dimensions %v holds no images (a labels file?); want [n, height, width]", path, idx.Dims)
	}
	features := 1
	for _, d := range idx.Dims[1:] {
		features *= d
	}
	if features != in {
		return nil, 0, fmt.Errorf("--input %s: images of %v = %d pixels, but the model takes %d inputs", path, idx.Dims[1:], features, in)
	}
	x := make([]float32, len(idx.Data))
	for i, b := range idx.Data {
		x[i] = float32(b) / 255
	}
	return x, idx.Dims[0], nil
}

func readCSVRows(path string, in int, label string) ([]float32, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--input %s: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, 0, fmt.Errorf("--input %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	cr := csv.NewReader(r)
	if strings.HasSuffix(strings.ToLower(path), ".tsv") {
		cr.Comma = '\t'
	}
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	records, err := cr.ReadAll()
	if err != nil {
		return nil, 0, fmt.Errorf("--input %s: %w", path, err)
	}
	if len(records) == 0 {
		return nil, 0, fmt.Errorf("--input %s: no rows", path)
	}
	skip := -1 // a column to leave out: the label column of a training-style file
	start := 0
	if isHeader(records[0]) {
		start = 1
		for j, name := range records[0] {
			if strings.TrimSpace(name) == label && len(records[0]) == in+1 {
				skip = j
			}
		}
	}
	rows := len(records) - start
	if rows == 0 {
		return nil, 0, fmt.Errorf("--input %s: a header row but no data rows", path)
	}
	x := make([]float32, 0, rows*in)
	for i, rec := range records[start:] {
		line := i + start + 1
		n := len(rec)
		if skip >= 0 {
			n--
		}
		if n != in {
			return nil, 0, fmt.Errorf("--input %s: line %d has %d feature columns, the model takes %d", path, line, n, in)
		}
		for j, field := range rec {
			if j == skip {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(field), 32)
			if err != nil {
				return nil, 0, fmt.Errorf("--input %s: line %d, column %d: %q is not a number", path, line, j+1, field)
			}
			x = append(x, float32(v))
		}
	}
	return x, rows, nil
}

// isHeader says whether a CSV record is a header: some field is not a number.
func isHeader(rec []string) bool {
	for _, field := range rec {
		if _, err := strconv.ParseFloat(strings.TrimSpace(field), 64); err != nil {
			return true
		}
	}
	return false
}
