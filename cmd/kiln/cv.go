package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/train"
)

type cvFlags struct {
	folds    int
	parallel int
	asJSON   bool
}

func newCVCmd() *cobra.Command {
	f := &trainFlags{}
	cf := &cvFlags{}
	cmd := &cobra.Command{
		Use:   "cv",
		Short: "Cross-validate one configuration (stratified K-fold)",
		Long: `Estimate how well one training configuration generalises by stratified
K-fold cross-validation: the training set (the dataset's test split stays
untouched) is cut into --folds folds holding every class in proportion,
chosen by --seed; each fold in turn validates a fresh model trained on the
others with the given 'kiln train' flags. Prints each fold's validation loss
and accuracy, and their mean ± standard deviation (population).`,
		Example: `  kiln cv --folds 5
  kiln cv --data iris.csv --label species --standardize --folds 10 --epochs 100 --parallel 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCV(cmd, f, cf)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	for _, name := range []string{"out", "metrics", "plot", "resume", "save-every", "val-split"} {
		_ = fl.MarkHidden(name)
	}
	fl.IntVar(&cf.folds, "folds", 5, "number of folds K (≥ 2)")
	fl.IntVar(&cf.parallel, "parallel", 1, fmt.Sprintf("folds trained at the same time (at most the %d CPUs)", runtime.NumCPU()))
	fl.BoolVar(&cf.asJSON, "json", false, "print the folds and the summary as JSON")
	return cmd
}

func runCV(cmd *cobra.Command, f *trainFlags, cf *cvFlags) error {
	for _, name := range []string{"out", "metrics", "plot", "resume", "save-every", "val-split"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s does not apply to kiln cv: each fold validates on its own part of the data", name)
		}
	}
	if cf.folds < 2 {
		return fmt.Errorf("--folds %d: want at least 2", cf.folds)
	}
	if cf.parallel < 1 {
		return errors.New("--parallel: want at least 1")
	}
	f.progressMode = "none"
	if f.patience > 0 {
		// Early stopping watches each fold's validation part; validate's
		// rule that --patience needs --val-split is met by the folds.
		f.valSplit = 1.0 / float64(cf.folds)
	}
	if err := f.validate(cmd); err != nil {
		return err
	}
	all, _, err := f.data.load(f.seed)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if !cf.asJSON {
		fmt.Fprintf(out, "cross-validating on %s (%d samples, %d folds, seed %d)\n", all.Name, all.Len(), cf.folds, f.seed)
	}
	sum, err := train.CrossValidate(all, cf.folds, f.seed, min(cf.parallel, runtime.NumCPU()), func(fold int, tr, va *data.Dataset) (train.Metrics, train.Result, error) {
		s := splits{train: tr, val: va}
		if err := f.standardize(&s); err != nil {
			return train.Metrics{}, train.Result{}, err
		}
		dev, err := openDevice(f.device, f.tf32, io.Discard)
		if err != nil {
			return train.Metrics{}, train.Result{}, err
		}
		defer dev.Close()
		ft, err := f.fit(cmd, dev, s, runOptions{out: io.Discard, errOut: io.Discard, quiet: true})
		if err != nil {
			return train.Metrics{}, train.Result{}, err
		}
		defer ft.model.Free()
		m, err := train.Evaluate(dev, ft.model, va, ft.loss, f.evalBatch)
		return m, ft.res, err
	})
	if err != nil {
		return err
	}
	if cf.asJSON {
		return writeCVJSON(out, sum)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fold\ttrain\tval\tval_loss\tval_acc\tepochs\t")
	for _, r := range sum.Folds {
		acc := "-"
		if r.Metrics.Classes > 0 {
			acc = fmt.Sprintf("%.4f", r.Metrics.Accuracy)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.4f\t%s\t%d\t\n", r.Fold+1, r.Train, r.Val, r.Metrics.Loss, acc, r.Result.Epochs)
	}
	tw.Flush()
	fmt.Fprintf(out, "val loss: %.4f ± %.4f\n", sum.MeanLoss, sum.StdLoss)
	if !math.IsNaN(sum.MeanAcc) {
		fmt.Fprintf(out, "val accuracy: %.4f ± %.4f\n", sum.MeanAcc, sum.StdAcc)
	}
	return nil
}

// writeCVJSON prints the summary with missing figures as null.
func writeCVJSON(w io.Writer, s train.CVSummary) error {
	p := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	type fold struct {
		Fold     int      `json:"fold"`
		Train    int      `json:"train_samples"`
		Val      int      `json:"val_samples"`
		Loss     float64  `json:"val_loss"`
		Accuracy *float64 `json:"val_accuracy"`
		Epochs   int      `json:"epochs"`
	}
	v := struct {
		Folds    []fold   `json:"folds"`
		MeanLoss float64  `json:"mean_loss"`
		StdLoss  float64  `json:"std_loss"`
		MeanAcc  *float64 `json:"mean_accuracy"`
		StdAcc   *float64 `json:"std_accuracy"`
	}{MeanLoss: s.MeanLoss, StdLoss: s.StdLoss, MeanAcc: p(s.MeanAcc), StdAcc: p(s.StdAcc)}
	for _, r := range s.Folds {
		fo := fold{Fold: r.Fold + 1, Train: r.Train, Val: r.Val, Loss: r.Metrics.Loss, Epochs: r.Result.Epochs}
		if r.Metrics.Classes > 0 {
			fo.Accuracy = p(r.Metrics.Accuracy)
		}
		v.Folds = append(v.Folds, fo)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
