package train

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SweepAxis is one setting swept over several values (a flag of `kiln
// sweep`: --lr 0.1,0.03,0.01).
type SweepAxis struct {
	Name   string
	Values []string
}

// Setting is one name = value of a run.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SweepRun is one configuration of a sweep.
type SweepRun struct {
	// Name identifies the run in tables and plots: its settings joined,
	// "lr=0.1 model=784-128-relu-10", or "run N" when it has none.
	Name     string    `json:"name"`
	Settings []Setting `json:"settings"`
}

// runName is the name of a run with settings s.
func runName(s []Setting, i int) string {
	if len(s) == 0 {
		return fmt.Sprintf("run %d", i+1)
	}
	parts := make([]string, len(s))
	for j, x := range s {
		parts[j] = x.Name + "=" + x.Value
	}
	return strings.Join(parts, " ")
}

// NewSweepRun is a run with settings, named after them (i numbers a run
// without settings).
func NewSweepRun(i int, settings ...Setting) SweepRun {
	return SweepRun{Name: runName(settings, i), Settings: settings}
}

// Grid is the Cartesian product of the axes: every combination of one
// value per axis, the first axis varying slowest. An axis without values
// is an error, and so is a name given twice.
func Grid(axes []SweepAxis) ([]SweepRun, error) {
	seen := map[string]bool{}
	total := 1
	for _, a := range axes {
		if len(a.Values) == 0 {
			return nil, fmt.Errorf("train: sweep: axis %q has no values", a.Name)
		}
		if seen[a.Name] {
			return nil, fmt.Errorf("train: sweep: axis %q is given twice", a.Name)
		}
		seen[a.Name] = true
		total *= len(a.Values)
		if total > 10000 {
			return nil, fmt.Errorf("train: sweep: the grid has more than 10000 runs")
		}
	}
	runs := make([]SweepRun, 0, total)
	idx := make([]int, len(axes))
	for i := 0; i < total; i++ {
		s := make([]Setting, len(axes))
		for j, a := range axes {
			s[j] = Setting{Name: a.Name, Value: a.Values[idx[j]]}
		}
		runs = append(runs, NewSweepRun(i, s...))
		for j := len(axes) - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < len(axes[j].Values) {
				break
			}
			idx[j] = 0
		}
	}
	return runs, nil
}

// RunSummary is one finished run of a sweep: the row of its comparison
// table. Figures that do not exist (no validation set, no classes, a
// failed run) are NaN.
type RunSummary struct {
	Run          SweepRun
	FinalValLoss float64
	BestValLoss  float64
	FinalValAcc  float64
	BestValAcc   float64
	TrainLoss    float64
	Epochs       int
	Seconds      float64
	History      []EpochMetrics
	// Err is why the run failed, "" when it did not.
	Err string
}

// Summarize reads a run's table row from its Fit result.
func Summarize(run SweepRun, res Result, seconds float64, err error) RunSummary {
	s := RunSummary{Run: run, FinalValLoss: math.NaN(), BestValLoss: math.NaN(), FinalValAcc: math.NaN(), BestValAcc: math.NaN(),
		TrainLoss: res.TrainLoss, Epochs: res.Epochs, Seconds: seconds, History: res.History}
	if err != nil {
		s.Err = err.Error()
	}
	for _, m := range res.History {
		if m.Val == nil {
			continue
		}
		s.FinalValLoss = m.Val.Loss
		if math.IsNaN(s.BestValLoss) || m.Val.Loss < s.BestValLoss {
			s.BestValLoss = m.Val.Loss
		}
		if m.Val.Classes > 0 {
			s.FinalValAcc = m.Val.Accuracy
			if math.IsNaN(s.BestValAcc) || m.Val.Accuracy > s.BestValAcc {
				s.BestValAcc = m.Val.Accuracy
			}
		}
	}
	return s
}

// Sweep trains every run with fit, up to parallel at a time (≤ 0: one;
// capped at the number of CPUs), and returns their summaries in run
// order. A run that fails is reported in its summary (Err), not as an
// error of the sweep. fit must be safe to call from several goroutines
// when parallel > 1 (each run its own model, optimiser and device
// buffers).
func Sweep(runs []SweepRun, parallel int, fit func(i int, run SweepRun) (Result, error)) []RunSummary {
	parallel = max(1, min(parallel, runtime.NumCPU(), len(runs)))
	out := make([]RunSummary, len(runs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				began := time.Now()
				res, err := fit(i, runs[i])
				out[i] = Summarize(runs[i], res, time.Since(began).Seconds(), err)
			}
		}()
	}
	for i := range runs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// SweepMetrics are the names SortSummaries takes.
var SweepMetrics = []string{"val_loss", "best_val_loss", "val_acc", "best_val_acc", "train_loss", "time"}

// SortSummaries orders the runs best first by metric (one of
// SweepMetrics: losses and time ascending, accuracies descending); runs
// without the figure and failed runs go last; ties keep run order.
func SortSummaries(s []RunSummary, metric string) error {
	var key func(r RunSummary) float64
	sign := 1.0
	switch metric {
	case "val_loss":
		key = func(r RunSummary) float64 { return r.FinalValLoss }
	case "best_val_loss":
		key = func(r RunSummary) float64 { return r.BestValLoss }
	case "val_acc":
		key, sign = func(r RunSummary) float64 { return r.FinalValAcc }, -1
	case "best_val_acc":
		key, sign = func(r RunSummary) float64 { return r.BestValAcc }, -1
	case "train_loss":
		key = func(r RunSummary) float64 { return r.TrainLoss }
	case "time":
		key = func(r RunSummary) float64 { return r.Seconds }
	default:
		return fmt.Errorf("train: sweep: metric %q, expected one of %s", metric, strings.Join(SweepMetrics, ", "))
	}
	rank := func(r RunSummary) (bool, float64) {
		v := key(r)
		return r.Err == "" && !math.IsNaN(v), sign * v
	}
	sort.SliceStable(s, func(i, j int) bool {
		oi, vi := rank(s[i])
		oj, vj := rank(s[j])
		if oi != oj {
			return oi
		}
		return oi && vi < vj
	})
	return nil
}

// summaryHeader is the comparison table's columns, in CSV and JSON.
var summaryHeader = []string{"run", "final_val_loss", "best_val_loss", "final_val_acc", "best_val_acc", "train_loss", "epochs", "seconds", "error"}

func fmtFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// SummaryRow is a run's table row as text (empty for a missing figure).
func SummaryRow(r RunSummary) []string {
	return []string{r.Run.Name, fmtFloat(r.FinalValLoss), fmtFloat(r.BestValLoss), fmtFloat(r.FinalValAcc), fmtFloat(r.BestValAcc),
		fmtFloat(r.TrainLoss), strconv.Itoa(r.Epochs), strconv.FormatFloat(r.Seconds, 'f', 2, 64), r.Err}
}

// WriteSummariesCSV writes the comparison table as CSV with a header row.
func WriteSummariesCSV(w io.Writer, s []RunSummary) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(summaryHeader); err != nil {
		return err
	}
	for _, r := range s {
		if err := cw.Write(SummaryRow(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteSummariesJSON writes the runs as a JSON array, settings and the
// validation curve included; missing figures are null.
func WriteSummariesJSON(w io.Writer, s []RunSummary) error {
	type row struct {
		Run          string     `json:"run"`
		Settings     []Setting  `json:"settings"`
		FinalValLoss *float64   `json:"final_val_loss"`
		BestValLoss  *float64   `json:"best_val_loss"`
		FinalValAcc  *float64   `json:"final_val_acc"`
		BestValAcc   *float64   `json:"best_val_acc"`
		TrainLoss    *float64   `json:"train_loss"`
		Epochs       int        `json:"epochs"`
		Seconds      float64    `json:"seconds"`
		ValLoss      []*float64 `json:"val_loss_curve"`
		Error        string     `json:"error,omitempty"`
	}
	p := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	rows := make([]row, len(s))
	for i, r := range s {
		rows[i] = row{Run: r.Run.Name, Settings: r.Run.Settings, FinalValLoss: p(r.FinalValLoss), BestValLoss: p(r.BestValLoss),
			FinalValAcc: p(r.FinalValAcc), BestValAcc: p(r.BestValAcc), TrainLoss: p(r.TrainLoss), Epochs: r.Epochs, Seconds: r.Seconds, Error: r.Err}
		for _, m := range r.History {
			if m.Val != nil {
				rows[i].ValLoss = append(rows[i].ValLoss, p(m.Val.Loss))
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}
