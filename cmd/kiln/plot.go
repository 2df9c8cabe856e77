package main

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/kilnml/kiln/train"
)

// palette is matplotlib's tab10, for runs and curves.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

// historyPlots builds the panels of one run's curves: the loss per epoch
// (training, and validation when there was a validation set), and the
// validation accuracy only when there is one to draw. title names the
// model and the dataset.
func historyPlots(title string, hist []train.EpochMetrics) ([]*plot.Plot, error) {
	if len(hist) == 0 {
		return nil, errors.New("no finished epoch to plot")
	}
	trainLoss := make(plotter.XYs, 0, len(hist))
	var valLoss, valAcc plotter.XYs
	for _, m := range hist {
		x := float64(m.Epoch + 1)
		trainLoss = append(trainLoss, plotter.XY{X: x, Y: m.TrainLoss})
		if m.Val != nil {
			valLoss = append(valLoss, plotter.XY{X: x, Y: m.Val.Loss})
			if m.Val.Classes > 0 {
				valAcc = append(valAcc, plotter.XY{X: x, Y: m.Val.Accuracy})
			}
		}
	}
	lossPlot := plot.New()
	lossPlot.Title.Text = title
	lossPlot.X.Label.Text = "epoch"
	lossPlot.Y.Label.Text = "loss"
	if err := addLine(lossPlot, "train", trainLoss, palette[0]); err != nil {
		return nil, err
	}
	curves := []plotter.XYs{trainLoss}
	if len(valLoss) > 0 {
		if err := addLine(lossPlot, "validation", valLoss, palette[1]); err != nil {
			return nil, err
		}
		curves = append(curves, valLoss)
	}
	legendRoom(lossPlot, len(curves), curves...)
	plots := []*plot.Plot{lossPlot}
	if len(valAcc) > 0 {
		accPlot := plot.New()
		accPlot.X.Label.Text = "epoch"
		accPlot.Y.Label.Text = "validation accuracy"
		if err := addLine(accPlot, "validation", valAcc, palette[2]); err != nil {
			return nil, err
		}
		legendRoom(accPlot, 1, valAcc)
		plots = append(plots, accPlot)
	}
	return plots, nil
}

// legendRoom keeps the curves out from under the legend, which sits in
// the top right corner: the y axis gets headroom above the highest point
// for one legend line per entry.
func legendRoom(p *plot.Plot, entries int, curves ...plotter.XYs) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range curves {
		for _, xy := range c {
			if !math.IsNaN(xy.Y) && !math.IsInf(xy.Y, 0) {
				lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
			}
		}
	}
	if lo > hi {
		return
	}
	span := hi - lo
	if span == 0 {
		span = math.Max(math.Abs(hi), 1) * 0.1
	}
	p.Y.Min = lo - 0.05*span
	p.Y.Max = hi + span*(0.08+0.07*float64(entries))
	p.Legend.Top = true
}

// plotHistory draws one run's panels (historyPlots) into a PNG.
func plotHistory(path, title string, hist []train.EpochMetrics) error {
	plots, err := historyPlots(title, hist)
	if err != nil {
		return err
	}
	return savePlots(path, plots)
}

// sweepPlot draws every run's validation loss curve in one chart.
func sweepPlot(title string, sums []train.RunSummary) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "validation loss"
	var curves []plotter.XYs
	for i, s := range sums {
		var xy plotter.XYs
		for _, m := range s.History {
			if m.Val != nil {
				xy = append(xy, plotter.XY{X: float64(m.Epoch + 1), Y: m.Val.Loss})
			}
		}
		if len(xy) == 0 {
			continue
		}
		if err := addLine(p, s.Run.Name, xy, palette[i%len(palette)]); err != nil {
			return nil, err
		}
		curves = append(curves, xy)
	}
	if len(curves) == 0 {
		return nil, errors.New("no run has a validation curve to plot")
	}
	legendRoom(p, len(curves), curves...)
	return p, nil
}

func plotSweep(path, title string, sums []train.RunSummary) error {
	p, err := sweepPlot(title, sums)
	if err != nil {
		return err
	}
	return savePlots(path, []*plot.Plot{p})
}

// savePlots stacks the panels in one PNG, written next to the target and
// renamed, so that a failed write never leaves half a PNG behind.
func savePlots(path string, plots []*plot.Plot) error {
	img := vgimg.New(8*vg.Inch, vg.Length(4*len(plots))*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kiln-plot-*.png")
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
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color) error {
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", name, err)
	}
	line.Color = c
	points.Color = c
	points.Radius = vg.Points(2)
	p.Add(line, points, plotter.NewGrid())
	p.Legend.Add(name, line)
	return nil
}
