package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/train"
)

type evalFlags struct {
	data       dataFlags
	checkpoint string
	device     string
	tf32       bool
	loss       string
	split      string
	batch      int
	seed       uint64
	asJSON     bool
}

func newEvalCmd() *cobra.Command {
	f := &evalFlags{}
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a checkpoint: loss, accuracy and confusion matrix",
		Long: `Evaluate a checkpoint written by 'kiln train --out' on a dataset's test split
(or --split train). The model comes from the checkpoint's metadata, and so do
the loss, the dataset (when --data is not given) and the input
standardisation the model was trained with.`,
		Example: `  kiln eval --checkpoint digits.safetensors
  kiln eval --checkpoint mnist.safetensors --data mnist --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd, f)
		},
	}
	f.data.register(cmd, "")
	fl := cmd.Flags()
	fl.Lookup("data").Usage = "dataset (default: the one the checkpoint was trained on): " + strings.Join(data.Names, ", ") + ", or the path of a CSV file"
	fl.Lookup("standardize").Usage = "ignored: the checkpoint's own standardisation is applied"
	fl.StringVar(&f.checkpoint, "checkpoint", "", "safetensors checkpoint written by `kiln train --out` (required)")
	fl.StringVar(&f.device, "device", "auto", "device: auto, cpu, cuda or cuda:N")
	fl.BoolVar(&f.tf32, "tf32", false, "allow TensorFloat-32 matrix products")
	fl.StringVar(&f.loss, "loss", "", "loss to report: "+lossHelp+" (default: the checkpoint's)")
	fl.StringVar(&f.split, "split", "test", "which part of the dataset: test or train")
	fl.IntVar(&f.batch, "batch-size", 1024, "samples per batch")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the synthetic sets and of a CSV file's held-out split (default: the training run's, from the checkpoint)")
	fl.BoolVar(&f.asJSON, "json", false, "print the metrics as a JSON object")
	return cmd
}

func runEval(cmd *cobra.Command, f *evalFlags) error {
	if f.checkpoint == "" {
		return fmt.Errorf("--checkpoint is required: the safetensors file written by `kiln train --out`")
	}
	if err := f.data.validate(); err != nil {
		return err
	}
	if err := positive("batch-size", f.batch); err != nil {
		return err
	}
	if f.split != "test" && f.split != "train" {
		return fmt.Errorf("--split %q: want test or train", f.split)
	}
	if f.loss != "" {
		if _, err := parseLoss("loss", f.loss); err != nil {
			return err
		}
	}
	dev, err := openDevice(f.device, f.tf32, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer dev.Close()
	model, ci, err := loadCheckpoint(dev, f.checkpoint)
	if err != nil {
		return err
	}
	defer model.Free()

	if !cmd.Flags().Changed("data") {
		f.data.name = ci.dataset
		if ci.label != "" && !cmd.Flags().Changed("label") {
			f.data.label = ci.label
		}
	}
	if f.data.name == ci.dataset {
		// The same data as the training run: the same seed, sample count,
		// noise and test split, unless a flag says otherwise, so that the
		// test split holds no row the model trained on.
		for _, d := range dataMetaFlags {
			if v, ok := ci.dataMeta[d.flag]; ok && !cmd.Flags().Changed(d.flag) {
				if err := cmd.Flags().Set(d.flag, v); err != nil {
					return fmt.Errorf("--checkpoint %s: metadata for --%s: %w", f.checkpoint, d.flag, err)
				}
			}
		}
	}
	if ci.regression && !cmd.Flags().Changed("regression") {
		f.data.regression = true
	}
	// The checkpoint's statistics are applied below; standardising or
	// normalising here as well would apply them twice.
	f.data.standardize = false
	if ci.stats != nil {
		f.data.normalize = false
	}
	trainSet, testSet, err := f.data.load(f.seed)
	if err != nil {
		return err
	}
	ds := testSet
	if f.split == "train" {
		ds = trainSet
	}
	if ds.Len() == 0 {
		return fmt.Errorf("--data %s has no %s split (trained with --test-split 0?): use --split train, --test-file or --test-split", f.data.name, f.split)
	}
	if ci.stats != nil {
		if err := ci.stats.Apply(ds); err != nil {
			return fmt.Errorf("--checkpoint %s: applying its standardisation to --data %s: %w", f.checkpoint, f.data.name, err)
		}
	}
	spec := model.Spec()
	var loss device.LossKind
	switch {
	case f.loss != "":
		loss, _ = parseLoss("loss", f.loss)
	case ci.hasLoss:
		loss = ci.loss
	default:
		loss = defaultLoss(spec, ds)
	}
	if err := checkModelFits(spec, ds, loss); err != nil {
		return fmt.Errorf("--checkpoint %s on --data %s: %w", f.checkpoint, f.data.name, err)
	}
	met, err := train.Evaluate(dev, model, ds, loss, f.batch)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Checkpoint string `json:"checkpoint"`
			Model      string `json:"model"`
			Data       string `json:"data"`
			Split      string `json:"split"`
			LossKind   string `json:"loss_kind"`
			train.Metrics
		}{f.checkpoint, spec.String(), ds.Name, f.split, loss.String(), met})
	}
	fmt.Fprintf(out, "model: %s\ndata: %s (%s split, %d samples)\n", spec, ds.Name, f.split, met.Samples)
	fmt.Fprintf(out, "loss (%s): %.4f\n", loss, met.Loss)
	if r := met.Regression; r != nil {
		fmt.Fprintf(out, "rmse: %.4g\nmae: %.4g\nr2: %.4f\n", r.RMSE, r.MAE, r.R2)
	}
	if met.Classes > 0 {
		fmt.Fprintf(out, "accuracy: %.4f\n", met.Accuracy)
		if met.TopK > 0 {
			fmt.Fprintf(out, "top-%d accuracy: %.4f\n", met.TopK, met.TopKAccuracy)
		}
		if met.Classes == 2 {
			fmt.Fprintf(out, "precision: %.4f  recall: %.4f  f1: %.4f (class 1)\n", met.Precision, met.Recall, met.F1)
		}
		fmt.Fprintf(out, "macro precision: %.4f  recall: %.4f  f1: %.4f\n", met.MacroPrecision, met.MacroRecall, met.MacroF1)
		fmt.Fprintln(out, "confusion matrix (rows: true class, columns: predicted):")
		names := ds.ClassNames
		if len(names) == 0 {
			names = ci.classNames
		}
		writeConfusion(out, met.Confusion, names)
		writeClassScores(out, met.PerClass, names)
	}
	return nil
}

// writeClassScores prints precision, recall, F1 and support per class.
func writeClassScores(w io.Writer, per []train.ClassScore, names []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "class\tprecision\trecall\tf1\tsupport\t\n")
	for i, c := range per {
		name := fmt.Sprint(i)
		if i < len(names) {
			name = names[i]
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%d\t\n", name, c.Precision, c.Recall, c.F1, c.Support)
	}
	tw.Flush()
}

// writeConfusion prints the matrix with class names (or indices) on both
// axes and each row's recall at its end.
func writeConfusion(w io.Writer, conf [][]int, names []string) {
	name := func(i int) string {
		if i < len(names) {
			return names[i]
		}
		return fmt.Sprint(i)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for j := range conf {
		fmt.Fprintf(tw, "%s\t", name(j))
	}
	fmt.Fprint(tw, "recall\t\n")
	for i, row := range conf {
		fmt.Fprintf(tw, "%s\t", name(i))
		total := 0
		for _, v := range row {
			fmt.Fprintf(tw, "%d\t", v)
			total += v
		}
		if total > 0 {
			fmt.Fprintf(tw, "%.3f\t\n", float64(row[i])/float64(total))
		} else {
			fmt.Fprint(tw, "-\t\n")
		}
	}
	tw.Flush()
}
