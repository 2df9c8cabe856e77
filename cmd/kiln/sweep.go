package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kilnml/kiln/train"
)

// sweepOwn are the train flags a sweep does not pass on: its own outputs
// replace them.
var sweepOwn = map[string]bool{"out": true, "metrics": true, "plot": true, "progress": true, "resume": true, "save-every": true}

// noSplit are the train flags whose value is a comma-separated list in
// itself, never a list of values to sweep.
var noSplit = map[string]bool{"freeze": true, "label": true}

type sweepFlags struct {
	parallel int
	sort     string
	csv      string
	json     string
	plot     string
	runsFile string
}

func newSweepCmd() *cobra.Command {
	sf := &sweepFlags{}
	proto := &cobra.Command{}
	(&trainFlags{}).register(proto)
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Train several configurations and compare them",
		Long: `Train several configurations that differ in one or more flags and compare
them on the same seed-controlled validation split.

Every 'kiln train' flag is accepted. A value with commas is a list to sweep:
--lr 0.1,0.03,0.01 --model 784-128-relu-10,784-128-tanh-10 trains the 6
combinations (the grid). --runs FILE lists runs instead, one per line as
train flags (--lr 0.1 --model 64-32-relu-10); the command line's flags apply
to every run. All runs use the same --seed, hence the same validation split
(--val-split, default 0.2 here) and batch order.

The table (final and best validation loss and accuracy, epochs, time) is
sorted by --sort; --csv and --json write it, --plot draws every run's
validation loss curve in one chart. --parallel runs that many at a time (up
to the number of CPUs).`,
		Example: `  kiln sweep --lr 0.1,0.03,0.01 --epochs 10
  kiln sweep --data mnist --model 784-128-relu-10,784-128-tanh-10,784-128-gelu-10 --lr 1e-3,3e-4 --parallel 2 --csv sweep.csv --plot sweep.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSweep(cmd, sf, proto)
		},
	}
	fl := cmd.Flags()
	proto.Flags().VisitAll(func(p *pflag.Flag) {
		if sweepOwn[p.Name] {
			return
		}
		usage := p.Usage
		if !noSplit[p.Name] {
			usage += " (comma-separated values: one run each)"
		}
		f := fl.VarPF(newListValue(p.DefValue), p.Name, p.Shorthand, usage)
		f.NoOptDefVal = p.NoOptDefVal
		f.DefValue = p.DefValue
	})
	fl.Lookup("val-split").DefValue = "0.2"
	fl.IntVar(&sf.parallel, "parallel", 1, fmt.Sprintf("runs trained at the same time (at most the %d CPUs)", runtime.NumCPU()))
	fl.StringVar(&sf.sort, "sort", "val_loss", "sort the table by: "+strings.Join(train.SweepMetrics, ", "))
	fl.StringVar(&sf.csv, "csv", "", "write the table to this CSV file")
	fl.StringVar(&sf.json, "json", "", "write the runs (with their validation curves) to this JSON file")
	fl.StringVar(&sf.plot, "plot", "", "draw every run's validation loss curve into this PNG file")
	fl.StringVar(&sf.runsFile, "runs", "", "a file of runs, one per line as train flags (# comments); instead of comma-separated lists")
	return cmd
}

// listValue holds a flag's text as given, for a sweep to split.
type listValue struct{ s string }

func newListValue(def string) *listValue { return &listValue{s: def} }
func (v *listValue) String() string      { return v.s }
func (v *listValue) Set(s string) error  { v.s = s; return nil }
func (v *listValue) Type() string        { return "values" }
func (v *listValue) IsBoolFlag() bool    { return false }
func (v *listValue) values(split bool) []string {
	if !split {
		return []string{v.s}
	}
	var out []string
	for _, p := range strings.Split(v.s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// sweepPlan turns the command line into the runs and the flags common to
// them.
func sweepPlan(cmd *cobra.Command, sf *sweepFlags) (base []string, runs []train.SweepRun, err error) {
	var axes []train.SweepAxis
	cmd.Flags().Visit(func(p *pflag.Flag) {
		lv, ok := p.Value.(*listValue)
		if !ok {
			return
		}
		vals := lv.values(!noSplit[p.Name])
		if len(vals) > 1 {
			axes = append(axes, train.SweepAxis{Name: p.Name, Values: vals})
			return
		}
		if len(vals) == 1 {
			base = append(base, "--"+p.Name+"="+vals[0])
		}
	})
	if !cmd.Flags().Changed("val-split") {
		base = append(base, "--val-split=0.2")
	}
	if sf.runsFile != "" {
		if len(axes) > 0 {
			return nil, nil, fmt.Errorf("--runs %s lists the runs; give comma-separated values (--%s) or --runs, not both", sf.runsFile, axes[0].Name)
		}
		runs, err = readRuns(sf.runsFile)
		return base, runs, err
	}
	if len(axes) == 0 {
		return nil, nil, errors.New("nothing to sweep: give a flag several comma-separated values (--lr 0.1,0.01) or --runs FILE")
	}
	runs, err = train.Grid(axes)
	return base, runs, err
}

// readRuns reads a runs file: each line the train flags of one run.
func readRuns(path string) ([]train.SweepRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--runs: %w", err)
	}
	defer f.Close()
	var runs []train.SweepRun
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var set []train.Setting
		fields := strings.Fields(text)
		for i := 0; i < len(fields); i++ {
			name, ok := strings.CutPrefix(fields[i], "--")
			if !ok {
				return nil, fmt.Errorf("--runs %s:%d: %q is not a flag (want --name value)", path, line, fields[i])
			}
			n, v, hasValue := strings.Cut(name, "=")
			if !hasValue && i+1 < len(fields) && !strings.HasPrefix(fields[i+1], "--") {
				v, hasValue = fields[i+1], true
				i++
			}
			if !hasValue {
				v = "true"
			}
			if sweepOwn[n] {
				return nil, fmt.Errorf("--runs %s:%d: --%s is not for a sweep's runs", path, line, n)
			}
			set = append(set, train.Setting{Name: n, Value: v})
		}
		runs = append(runs, train.NewSweepRun(len(runs), set...))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--runs %s: %w", path, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("--runs %s: no runs", path)
	}
	return runs, nil
}

// trainFlagsFor parses one run's command line as `kiln train` would.
func trainFlagsFor(args []string) (*cobra.Command, *trainFlags, error) {
	c := &cobra.Command{Use: "train"}
	tf := &trainFlags{}
	tf.register(c)
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	if err := c.Flags().Parse(args); err != nil {
		return nil, nil, err
	}
	tf.progressMode = "none"
	if err := tf.validate(c); err != nil {
		return nil, nil, err
	}
	return c, tf, nil
}

// fitArgs trains one configuration given as train flags, quietly, and
// returns its result.
func fitArgs(args []string) (train.Result, error) {
	c, tf, err := trainFlagsFor(args)
	if err != nil {
		return train.Result{}, err
	}
	s, err := tf.loadSplits()
	if err != nil {
		return train.Result{}, err
	}
	dev, err := openDevice(tf.device, tf.tf32, io.Discard)
	if err != nil {
		return train.Result{}, err
	}
	defer dev.Close()
	ft, err := tf.fit(c, dev, s, runOptions{out: io.Discard, errOut: io.Discard, quiet: true})
	if err != nil {
		return train.Result{}, err
	}
	ft.model.Free()
	return ft.res, nil
}

func runSweep(cmd *cobra.Command, sf *sweepFlags, _ *cobra.Command) error {
	if sf.parallel < 1 {
		return fmt.Errorf("--parallel %d: want at least 1", sf.parallel)
	}
	if err := train.SortSummaries(nil, sf.sort); err != nil {
		return fmt.Errorf("--sort %s: want one of %s", sf.sort, strings.Join(train.SweepMetrics, ", "))
	}
	for _, p := range []struct{ flag, path string }{{"csv", sf.csv}, {"json", sf.json}, {"plot", sf.plot}} {
		if p.path != "" {
			if err := checkWritable(p.path); err != nil {
				return fmt.Errorf("--%s %s: %w", p.flag, p.path, err)
			}
		}
	}
	base, runs, err := sweepPlan(cmd, sf)
	if err != nil {
		return err
	}
	argsOf := func(r train.SweepRun) []string {
		args := append([]string(nil), base...)
		for _, s := range r.Settings {
			args = append(args, "--"+s.Name+"="+s.Value)
		}
		return args
	}
	// Check every run's flags before training any.
	for _, r := range runs {
		if _, _, err := trainFlagsFor(argsOf(r)); err != nil {
			return fmt.Errorf("run %q: %w", r.Name, err)
		}
	}
	out := cmd.OutOrStdout()
	par := min(sf.parallel, runtime.NumCPU())
	fmt.Fprintf(out, "sweep: %d runs, %d at a time, same seed and split\n", len(runs), par)
	var mu sync.Mutex
	done := 0
	sums := train.Sweep(runs, par, func(i int, r train.SweepRun) (train.Result, error) {
		res, err := fitArgs(argsOf(r))
		mu.Lock()
		defer mu.Unlock()
		done++
		status := fmt.Sprintf("%d epochs", res.Epochs)
		if err != nil {
			status = "failed: " + err.Error()
		}
		// One line on stderr as each run finishes, for long sweeps.
		fmt.Fprintf(cmd.ErrOrStderr(), "run %d/%d (%s): %s\n", done, len(runs), r.Name, status)
		return res, err
	})
	_ = train.SortSummaries(sums, sf.sort)
	writeSweepTable(out, sums, sf.sort)
	if sf.csv != "" {
		if err := writeFileWith(sf.csv, func(w io.Writer) error { return train.WriteSummariesCSV(w, sums) }); err != nil {
			return fmt.Errorf("--csv %s: %w", sf.csv, err)
		}
	}
	if sf.json != "" {
		if err := writeFileWith(sf.json, func(w io.Writer) error { return train.WriteSummariesJSON(w, sums) }); err != nil {
			return fmt.Errorf("--json %s: %w", sf.json, err)
		}
	}
	if sf.plot != "" {
		if err := plotSweep(sf.plot, "validation loss of "+fmt.Sprint(len(runs))+" runs", sums); err != nil {
			return fmt.Errorf("--plot %s: %w", sf.plot, err)
		}
		fmt.Fprintf(out, "plot: %s\n", sf.plot)
	}
	failed := 0
	for _, s := range sums {
		if s.Err != "" {
			failed++
		}
	}
	if failed == len(sums) {
		return fmt.Errorf("all %d runs failed (first: %s)", failed, sums[0].Err)
	}
	return nil
}

func writeSweepTable(w io.Writer, sums []train.RunSummary, metric string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "rank\trun\tval_loss\tbest_val_loss\tval_acc\tbest_val_acc\tepochs\tseconds\t(sorted by %s)\n", metric)
	for i, s := range sums {
		row := train.SummaryRow(s)
		for j := 1; j <= 4; j++ {
			if row[j] == "" {
				row[j] = "-"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, row[0], row[1], row[2], row[3], row[4], row[6], row[7], s.Err)
	}
	tw.Flush()
}

func writeFileWith(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
