package data

import (
	"math/rand/v2"
	"testing"
)

// TestShift2D checks every pixel of a shifted 2-channel 3×4 image against
// the definition dst[c][y][x] = src[c][y−dy][x−dx] (0 outside).
func TestShift2D(t *testing.T) {
	const c, h, w = 2, 3, 4
	src := make([]float32, c*h*w)
	for i := range src {
		src[i] = float32(i + 1)
	}
	for _, d := range [][2]int{{0, 0}, {1, 0}, {0, -1}, {-2, 3}, {1, 1}, {3, 0}} {
		dst := make([]float32, len(src))
		Shift2D(dst, src, c, h, w, d[0], d[1])
		for ch := 0; ch < c; ch++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					sy, sx := y-d[0], x-d[1]
					want := float32(0)
					if sy >= 0 && sy < h && sx >= 0 && sx < w {
						want = src[ch*h*w+sy*w+sx]
					}
					if got := dst[ch*h*w+y*w+x]; got != want {
						t.Fatalf("shift %v: [%d][%d][%d] = %v, want %v", d, ch, y, x, got, want)
					}
				}
			}
		}
	}
}

// TestRandomShift checks that each image moves by one offset within the
// bound (the mass of a single bright pixel lands within ±max of where it
// was), that a seed repeats the shifts, that some image does move, that
// it does not allocate, and that bad arguments are errors.
func TestRandomShift(t *testing.T) {
	const rows, h, w, maxShift = 50, 9, 9, 2
	x := make([]float32, rows*h*w)
	for i := 0; i < rows; i++ {
		x[i*h*w+4*w+4] = 1 // the centre pixel
	}
	y := append([]float32(nil), x...)
	scratch := make([]float32, h*w)
	if err := RandomShift(x, rows, []int{1, h, w}, maxShift, rand.New(rand.NewPCG(3, 4)), scratch); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := 0; i < rows; i++ {
		img := x[i*h*w : (i+1)*h*w]
		found := -1
		for p, v := range img {
			if v == 1 {
				if found >= 0 {
					t.Fatalf("image %d: two bright pixels", i)
				}
				found = p
			}
		}
		py, px := found/w, found%w
		if found < 0 || py < 4-maxShift || py > 4+maxShift || px < 4-maxShift || px > 4+maxShift {
			t.Fatalf("image %d: pixel at (%d, %d), want within ±%d of (4, 4)", i, py, px, maxShift)
		}
		if found != 4*w+4 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no image moved")
	}
	if err := RandomShift(y, rows, []int{h, w}, maxShift, rand.New(rand.NewPCG(3, 4)), scratch); err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatal("the same seed gave other shifts")
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	shape := []int{1, h, w} // the caller's, as a Dataset's Shape
	if a := testing.AllocsPerRun(10, func() { _ = RandomShift(x, rows, shape, maxShift, r, scratch) }); a != 0 {
		t.Errorf("%v allocations per call, want 0", a)
	}
	for name, err := range map[string]error{
		"shape":   RandomShift(x, rows, []int{h * w}, 1, r, scratch),
		"short":   RandomShift(x[:10], rows, []int{h, w}, 1, r, scratch),
		"max":     RandomShift(x, rows, []int{h, w}, -1, r, scratch),
		"scratch": RandomShift(x, rows, []int{h, w}, 1, r, scratch[:3]),
		"rng":     RandomShift(x, rows, []int{h, w}, 1, nil, scratch),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
