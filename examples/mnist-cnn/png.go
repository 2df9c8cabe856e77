package main

import (
	"image"
	"image/color"
	"image/png"
	"os"

	"github.com/kilnml/kiln/data"
)

// writeMisclassified writes up to max misclassified images of ds as a grid
// PNG, each tile scaled ×2 and captioned "true>predicted" in a small
// built-in digit font (red). It returns how many images it drew; with none
// misclassified it writes nothing.
func writeMisclassified(path string, ds *data.Dataset, pred []int32, max int) (int, error) {
	var wrong []int
	for i, p := range pred {
		if p != ds.Labels[i] && len(wrong) < max {
			wrong = append(wrong, i)
		}
	}
	if len(wrong) == 0 {
		return 0, nil
	}
	h, w := ds.Shape[len(ds.Shape)-2], ds.Shape[len(ds.Shape)-1]
	const scale, caption, pad = 2, 8, 2
	tileW, tileH := w*scale+pad, h*scale+caption+pad
	cols := 8
	rows := (len(wrong) + cols - 1) / cols
	img := image.NewGray(image.Rect(0, 0, cols*tileW, rows*tileH))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	out := image.NewRGBA(img.Bounds())
	for k, s := range wrong {
		ox, oy := (k%cols)*tileW, (k/cols)*tileH
		x := ds.X[s*ds.Features : (s+1)*ds.Features]
		for y := 0; y < h*scale; y++ {
			for xx := 0; xx < w*scale; xx++ {
				v := x[(y/scale)*w+xx/scale]
				img.SetGray(ox+xx, oy+y, color.Gray{Y: uint8(255 - clamp01(v)*255)})
			}
		}
	}
	for y := 0; y < out.Bounds().Dy(); y++ {
		for x := 0; x < out.Bounds().Dx(); x++ {
			out.Set(x, y, img.GrayAt(x, y))
		}
	}
	red := color.RGBA{R: 200, A: 255}
	for k, s := range wrong {
		ox, oy := (k%cols)*tileW, (k/cols)*tileH+h*scale+1
		drawGlyph(out, ox+2, oy, int(ds.Labels[s]), red)
		drawGlyph(out, ox+6, oy, 10, red) // ">"
		drawGlyph(out, ox+10, oy, int(pred[s]), red)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	if err := png.Encode(f, out); err != nil {
		f.Close()
		return 0, err
	}
	return len(wrong), f.Close()
}

func clamp01(v float32) float32 {
	return min(max(v, 0), 1)
}

// glyphs is a 3×5 font for the digits 0–9 and ">" (index 10): each glyph
// is five rows of three bits, the high bit leftmost.
var glyphs = [11][5]uint8{
	{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
	{7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
	{4, 2, 1, 2, 4},
}

func drawGlyph(img *image.RGBA, x, y, g int, c color.Color) {
	for r, bits := range glyphs[g] {
		for b := 0; b < 3; b++ {
			if bits&(4>>b) != 0 {
				img.Set(x+b, y+r, c)
			}
		}
	}
}
