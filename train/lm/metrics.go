package lm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Record is one line of metrics.jsonl: a training step (Loss, LR, …) or
// an evaluation (ValLoss set, Eval true).
type Record struct {
	Iter     int      `json:"iter"`
	Eval     bool     `json:"eval,omitempty"`
	Loss     *float64 `json:"loss,omitempty"`
	ValLoss  *float64 `json:"val_loss,omitempty"`
	LR       float64  `json:"lr,omitempty"`
	GradNorm float64  `json:"grad_norm,omitempty"`
	Ms       float64  `json:"ms,omitempty"`
	TokensPS float64  `json:"tokens_per_s,omitempty"`
	MFU      float64  `json:"mfu,omitempty"`
	Tokens   int64    `json:"tokens"`
}

// writeJSONLine appends the record of s to w (nothing when w is nil).
func writeJSONLine(w io.Writer, s StepInfo) error {
	if w == nil {
		return nil
	}
	r := Record{Iter: s.Iter, Tokens: s.Tokens}
	if s.IsEval {
		v := s.ValLoss
		r.Eval, r.ValLoss = true, &v
	} else {
		v := s.Loss
		r.Loss, r.LR, r.GradNorm, r.Ms, r.TokensPS, r.MFU = &v, s.LR, s.GradNorm, s.Seconds*1e3, s.TokensPS, s.MFU
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("lm: metrics: %w", err)
	}
	return nil
}

// ReadMetrics reads a metrics.jsonl file. A resumed run appends to it, so
// an iteration may appear more than once (a crash after a checkpoint):
// the last record of each iteration and kind wins; the result is sorted by
// iteration.
func ReadMetrics(path string) (steps, evals []Record, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, ev := map[int]Record{}, map[int]Record{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, nil, fmt.Errorf("lm: %s:%d: %w", path, line, err)
		}
		switch {
		case r.Eval && r.ValLoss != nil:
			ev[r.Iter] = r
		case r.Loss != nil:
			st[r.Iter] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	sorted := func(m map[int]Record) []Record {
		out := make([]Record, 0, len(m))
		for _, r := range m {
			out = append(out, r)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Iter < out[j].Iter })
		return out
	}
	return sorted(st), sorted(ev), nil
}

// PlotMetrics draws the training loss of every step and the validation
// losses of metrics.jsonl against the iteration into a PNG (written
// beside png and renamed, so no half image is left behind).
func PlotMetrics(metricsPath, png string) error {
	steps, evals, err := ReadMetrics(metricsPath)
	if err != nil {
		return err
	}
	if len(steps) == 0 && len(evals) == 0 {
		return errors.New("no metrics to plot")
	}
	p := plot.New()
	p.Title.Text = "GPT training"
	p.X.Label.Text = "iteration"
	p.Y.Label.Text = "cross-entropy (nats/token)"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	add := func(name string, rs []Record, val bool, c color.Color, points bool) error {
		if len(rs) == 0 {
			return nil
		}
		xys := make(plotter.XYs, len(rs))
		for i, r := range rs {
			y := r.Loss
			if val {
				y = r.ValLoss
			}
			xys[i] = plotter.XY{X: float64(r.Iter), Y: *y}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", name, err)
		}
		l.Color = c
		p.Add(l)
		p.Legend.Add(name, l)
		if points {
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			s.Color = c
			p.Add(s)
		}
		return nil
	}
	if err := add("train", steps, false, color.RGBA{R: 31, G: 119, B: 180, A: 255}, false); err != nil {
		return err
	}
	if err := add("validation", evals, true, color.RGBA{R: 214, G: 39, B: 40, A: 255}, true); err != nil {
		return err
	}
	img := vgimg.New(8*vg.Inch, 5*vg.Inch)
	p.Draw(draw.New(img))
	tmp, err := os.CreateTemp(filepath.Dir(png), ".kiln-plot-*.png")
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("encoding PNG: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), png); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
