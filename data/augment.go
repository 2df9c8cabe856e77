package data

import (
	"fmt"
	"math/rand/v2"
)

// RandomShift translates each of the rows images held in x (row-major,
// rows × C×H×W values, shape [C, H, W] or [H, W]) by its own offset (dy, dx)
// drawn uniformly from [−maxShift, maxShift]², in place, filling the pixels
// that enter the frame with 0 (the background of MNIST-style sets in
// [0, 1]). It is the light augmentation of the classic MNIST recipes
// (torchvision's RandomAffine(0, translate=…) with integer shifts).
//
// scratch holds one image (at least C×H×W values) and is reused, so a
// training loop that keeps it calls RandomShift without allocating. The
// offsets come from r, so a seeded generator repeats the same shifts.
func RandomShift(x []float32, rows int, shape []int, maxShift int, r *rand.Rand, scratch []float32) error {
	c, h, w := 1, 0, 0
	switch len(shape) {
	case 2:
		h, w = shape[0], shape[1]
	case 3:
		c, h, w = shape[0], shape[1], shape[2]
	default:
		return fmt.Errorf("data: RandomShift: shape %v, expected [C, H, W] or [H, W]", shape)
	}
	size := c * h * w
	switch {
	case rows < 0 || size < 1 || len(x) < rows*size:
		return fmt.Errorf("data: RandomShift: %d values for %d images of shape %v", len(x), rows, shape)
	case maxShift < 0:
		return fmt.Errorf("data: RandomShift: maxShift %d < 0", maxShift)
	case len(scratch) < size:
		return fmt.Errorf("data: RandomShift: scratch holds %d values, an image %d", len(scratch), size)
	case r == nil:
		return fmt.Errorf("data: RandomShift: nil random generator")
	}
	span := 2*maxShift + 1
	for i := 0; i < rows; i++ {
		dy := r.IntN(span) - maxShift
		dx := r.IntN(span) - maxShift
		if dy == 0 && dx == 0 {
			continue
		}
		img := x[i*size : (i+1)*size]
		copy(scratch, img)
		Shift2D(img, scratch[:size], c, h, w, dy, dx)
	}
	return nil
}

// Shift2D writes into dst the C images of H×W values in src moved down by
// dy and right by dx pixels (negative: up, left); pixels shifted in from
// outside are 0. dst and src must not overlap and both hold C·H·W values.
func Shift2D(dst, src []float32, c, h, w, dy, dx int) {
	for ch := 0; ch < c; ch++ {
		base := ch * h * w
		for y := 0; y < h; y++ {
			row := dst[base+y*w : base+(y+1)*w]
			sy := y - dy
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			srow := src[base+sy*w : base+(sy+1)*w]
			for x := 0; x < w; x++ {
				sx := x - dx
				if sx < 0 || sx >= w {
					row[x] = 0
				} else {
					row[x] = srow[sx]
				}
			}
		}
	}
}
