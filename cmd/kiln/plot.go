package main

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/kilnml/kiln/train"
)

// plotHistory draws the training curves of one run into a PNG: the loss per
// epoch (training, and validation when there was a validation set) on top,
// the validation accuracy below. Without a validation set there is no
// accuracy per epoch to draw (the trainer measures the training loss only),
// and the lower panel says so.
func plotHistory(path, title string, hist []train.EpochMetrics) error {
	if len(hist) == 0 {
		return errors.New("no finished epoch to plot")
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
	if err := addLine(lossPlot, "train", trainLoss, color.RGBA{R: 31, G: 119, B: 180, A: 255}); err != nil {
		return err
	}
	if len(valLoss) > 0 {
		if err := addLine(lossPlot, "validation", valLoss, color.RGBA{R: 255, G: 127, B: 14, A: 255}); err != nil {
			return err
		}
	}
	lossPlot.Legend.Top = true

	accPlot := plot.New()
	accPlot.X.Label.Text = "epoch"
	accPlot.Y.Label.Text = "validation accuracy"
	if len(valAcc) > 0 {
		if err := addLine(accPlot, "validation", valAcc, color.RGBA{R: 44, G: 160, B: 44, A: 255}); err != nil {
			return err
		}
		accPlot.Y.Max = 1
	} else {
		accPlot.Title.Text = "no validation accuracy: train with --val-split to draw it"
	}

	img := vgimg.New(8*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{lossPlot}, {accPlot}}
	canvases := plot.Align(plots, tiles, dc)
	lossPlot.Draw(canvases[0][0])
	accPlot.Draw(canvases[1][0])

	// Write next to the target and rename, so that a failed write never
	// leaves half a PNG behind.
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
