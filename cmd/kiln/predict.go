package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/train"
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

	x, rows, err := readInputs(f.input, spec.In, ci)
	if err != nil {
		return err
	}
	if ci.stats != nil {
		ds := &data.Dataset{Name: f.input, X: x, Features: spec.In}
		if err := ci.stats.Apply(ds); err != nil {
			return fmt.Errorf("--input %s: applying the checkpoint's standardisation: %w", f.input, err)
		}
	}
	loss := ci.loss
	if !ci.hasLoss {
		loss = device.SoftmaxCrossEntropy
		if spec.Out() == 1 {
			loss = device.MSE
		}
	}
	classify := ci.classes > 0 || !ci.hasLoss && spec.Out() > 1
	m := train.SequentialModel(model)
	preds, err := train.Predict(dev, m, x, rows, f.batch, train.ModelReadout(m, loss, classify))
	if err != nil {
		return err
	}

	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	if !f.asJSON {
		switch {
		case classify:
			fmt.Fprintln(out, "row\tclass\tprob\tprobabilities")
		default:
			fmt.Fprintln(out, "row\toutputs")
		}
	}
	for i, tp := range preds {
		p := fromTrain(i, tp)
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

// fromTrain is the printed form of a library prediction.
func fromTrain(row int, tp train.Prediction) prediction {
	p := prediction{Row: row, Probabilities: tp.Probabilities, Scores: tp.Scores, Outputs: tp.Outputs}
	if tp.Class >= 0 {
		c := tp.Class
		p.Class = &c
	}
	return p
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
	score := vals[0]
	if *p.Class < len(vals) {
		score = vals[*p.Class]
	}
	fmt.Fprintf(w, "%d\t%s\t%.4f\t%s\n", p.Row, class, score, floats(vals))
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 4, 64)
	}
	return strings.Join(s, " ")
}

// readInputs reads --input as CSV rows or IDX images and checks that every
// sample has the model's input width.
func readInputs(path string, in int, ci checkpointInfo) ([]float32, int, error) {
	lower := strings.ToLower(path)
	if strings.HasSuffix(lower, ".csv") || strings.HasSuffix(lower, ".csv.gz") || strings.HasSuffix(lower, ".tsv") {
		return readCSVRows(path, in, ci)
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

// readCSVRows reads prediction inputs with the training CSV reader
// (data.ParseCSV: NaN and ±Inf are errors, a byte-order mark is
// stripped): a header row naming the columns, where the training label
// column may be present (it is then ignored) or absent; a file whose first
// row is all numbers has no header.
func readCSVRows(path string, in int, ci checkpointInfo) ([]float32, int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--input %s: %w", path, err)
	}
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, 0, fmt.Errorf("--input %s: %w", path, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, 0, fmt.Errorf("--input %s: %w", path, err)
		}
	}
	opt := data.CSVOptions{Label: ci.label, LabelOptional: true, Regression: ci.regression, ClassNames: ci.classNames}
	if opt.Label == "" {
		opt.Label = "label" // the CSV default, and the column name of the built-in sets' exports
	}
	if strings.HasSuffix(strings.ToLower(path), ".tsv") {
		opt.Comma = '\t'
	}
	if headerless(raw, opt.Comma) {
		opt.NoHeader, opt.Label, opt.Regression, opt.ClassNames = true, "", false, nil
	}
	ds, err := data.ParseCSV(bytes.NewReader(raw), path, opt)
	if err != nil {
		return nil, 0, fmt.Errorf("--input: %w", err)
	}
	if ds.Len() == 0 {
		return nil, 0, fmt.Errorf("--input %s: no data rows", path)
	}
	if ds.Features != in {
		return nil, 0, fmt.Errorf("--input %s: %d feature columns, the model takes %d", path, ds.Features, in)
	}
	return ds.X, ds.Len(), nil
}

// headerless says whether the first line of a CSV file is data: every
// field a number.
func headerless(raw []byte, comma rune) bool {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	if comma == 0 {
		comma = ','
	}
	for _, field := range strings.Split(strings.TrimSpace(string(line)), string(comma)) {
		if _, err := strconv.ParseFloat(strings.TrimSpace(field), 64); err != nil {
			return false
		}
	}
	return true
}
