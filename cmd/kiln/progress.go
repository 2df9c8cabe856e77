package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kilnml/kiln/train"
)

// progress is the trainer's callback for `kiln train`: a progress bar per
// epoch (loss, samples/s and ETA) when a person watches a terminal, one line
// per epoch otherwise, so that logs and CI output stay readable. It also
// writes the --metrics JSON lines and keeps the history for --plot.
type progress struct {
	out     io.Writer
	bar     bool // draw progress bars (out is a terminal)
	epochs  int
	samples int // training samples per epoch, the bar's length

	metrics    io.Writer // --metrics, or nil
	metricsErr error     // the first write error, reported when Fit returns

	cur   *progressbar.ProgressBar
	epoch int
	lr    float64
	// The running mean of the epoch's loss over the batches read so far
	// (Config.LossEvery): Σ rows·loss and Σ rows.
	lossSum  float64
	lossRows int
}

func newProgress(out io.Writer, bar bool, epochs, samples int, metrics io.Writer) *progress {
	return &progress{out: out, bar: bar, epochs: epochs, samples: samples, metrics: metrics}
}

// barWidth keeps the whole bar line within 80 columns: "epoch 100/200 loss
// 0.1234" (25), " 100% " (6), the bar (16 + 2), " (60000/60000) " (15)
// and "[1m2s:3m4s]" (≈ 11). The rate is on the epoch's summary line.
const barWidth = 16

func (p *progress) OnEpochStart(epoch int, lr float64) {
	p.epoch, p.lr, p.lossSum, p.lossRows = epoch, lr, 0, 0
	if !p.bar {
		return
	}
	p.cur = progressbar.NewOptions(p.samples,
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetDescription(p.describe()),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(barWidth),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// meanLoss is the running mean of the epoch's loss so far, NaN before the
// first read.
func (p *progress) meanLoss() float64 {
	if p.lossRows == 0 {
		return math.NaN()
	}
	return p.lossSum / float64(p.lossRows)
}

func (p *progress) describe() string {
	s := fmt.Sprintf("epoch %d/%d", p.epoch+1, p.epochs)
	if m := p.meanLoss(); !math.IsNaN(m) {
		s += fmt.Sprintf(" loss %.4f", m)
	}
	return s
}

func (p *progress) OnBatch(b train.BatchInfo) {
	if !math.IsNaN(b.Loss) {
		p.lossSum += b.Loss * float64(b.Rows)
		p.lossRows += b.Rows
		if p.cur != nil {
			p.cur.Describe(p.describe())
		}
	}
	if p.cur != nil {
		_ = p.cur.Add(b.Rows)
	}
}

func (p *progress) OnEpochEnd(m train.EpochMetrics) {
	if p.cur != nil {
		_ = p.cur.Finish()
		_ = p.cur.Clear()
		p.cur = nil
	}
	fmt.Fprintln(p.out, epochLine(m, p.epochs))
	if p.metrics != nil && p.metricsErr == nil {
		b, err := json.Marshal(m)
		if err == nil {
			_, err = p.metrics.Write(append(b, '\n'))
		}
		p.metricsErr = err
	}
}

// epochLine is the one-line summary of an epoch, the same with and without
// progress bars.
func epochLine(m train.EpochMetrics, epochs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %*d/%d  loss %.4f", len(fmt.Sprint(epochs)), m.Epoch+1, epochs, m.TrainLoss)
	if m.Val != nil {
		fmt.Fprintf(&b, "  val_loss %.4f", m.Val.Loss)
		if m.Val.Classes > 0 {
			fmt.Fprintf(&b, "  val_acc %.4f", m.Val.Accuracy)
		}
		if m.Best {
			b.WriteString(" *")
		}
	}
	fmt.Fprintf(&b, "  lr %.3g  %s samples/s  %.2fs", m.LR, humanRate(m.SamplesPerSec), m.Seconds)
	return b.String()
}

// humanRate prints a rate with a k or M suffix.
func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
