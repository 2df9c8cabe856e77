package data

import (
	"fmt"
	"math"
)

// Default parameters of the synthetic sets, chosen so that each one is
// learnable but not linearly separable.
const (
	DefaultMoonsNoise   = 0.1
	DefaultCirclesNoise = 0.05
	DefaultCirclesRatio = 0.5
	DefaultFlowerNoise  = 0.2
)

// synth builds a two-class, two-feature Dataset from a per-sample generator.
// Sample i has class i%2, so the classes are balanced and interleaved.
// Both Labels (Classes 2) and Y (0/1, Outputs 1) are filled, so the set
// trains a 2-output softmax network or a 1-output sigmoid network alike.
func synth(name string, n int, seed uint64, gen func(r *rng, class int) (x, y float64)) (*Dataset, error) {
	if n < 2 {
		return nil, fmt.Errorf("data: %s: %d samples, want at least 2", name, n)
	}
	r := newRNG(seed, streamSynthetic)
	d := &Dataset{
		Name:     name,
		X:        make([]float32, 2*n),
		Features: 2,
		Shape:    []int{2},
		Labels:   make([]int32, n),
		Classes:  2,
		Y:        make([]float32, n),
		Outputs:  1,
		Source:   "synthetic",
	}
	for i := 0; i < n; i++ {
		c := i % 2
		x, y := gen(r, c)
		d.X[2*i], d.X[2*i+1] = float32(x), float32(y)
		d.Labels[i] = int32(c)
		d.Y[i] = float32(c)
	}
	return d, nil
}

func checkNoise(name string, noise float64) error {
	if math.IsNaN(noise) || math.IsInf(noise, 0) || noise < 0 {
		return fmt.Errorf("data: %s: noise %v, want a finite number >= 0", name, noise)
	}
	return nil
}

// Moons generates the two interleaving half circles: class 0 on the upper
// arc (cos t, sin t), class 1 on the lower arc (1 − cos t, 0.5 − sin t),
// t uniform in [0, π], plus Gaussian noise of standard deviation noise on
// both coordinates. The same seed always gives the same set.
func Moons(n int, noise float64, seed uint64) (*Dataset, error) {
	if err := checkNoise("moons", noise); err != nil {
		return nil, err
	}
	return synth("moons", n, seed, func(r *rng, c int) (float64, float64) {
		t := math.Pi * r.float()
		var x, y float64
		if c == 0 {
			x, y = math.Cos(t), math.Sin(t)
		} else {
			x, y = 1-math.Cos(t), 0.5-math.Sin(t)
		}
		return x + noise*r.normal(), y + noise*r.normal()
	})
}

// Circles generates two concentric circles: class 0 on the unit circle,
// class 1 on a circle of radius factor (0 < factor < 1), angle uniform,
// plus Gaussian noise of standard deviation noise on both coordinates.
func Circles(n int, noise, factor float64, seed uint64) (*Dataset, error) {
	if err := checkNoise("circles", noise); err != nil {
		return nil, err
	}
	if !(factor > 0 && factor < 1) {
		return nil, fmt.Errorf("data: circles: factor %v, want 0 < factor < 1 (inner radius / outer radius)", factor)
	}
	return synth("circles", n, seed, func(r *rng, c int) (float64, float64) {
		t := 2 * math.Pi * r.float()
		rad := 1.0
		if c == 1 {
			rad = factor
		}
		return rad*math.Cos(t) + noise*r.normal(), rad*math.Sin(t) + noise*r.normal()
	})
}

// Flower generates the "planar flower" set of the classic 2-layer network
// exercise: points on a rose curve of radius 4·sin(4θ), the two classes
// taking alternate ranges of θ (class c has θ in [3.12c, 3.12(c+1)]), so
// the petals alternate colour. Noise is the standard deviation of the
// Gaussian jitter added to both θ and the radius (0.2 in the exercise).
func Flower(n int, noise float64, seed uint64) (*Dataset, error) {
	if err := checkNoise("flower", noise); err != nil {
		return nil, err
	}
	const petal, span = 4.0, 3.12
	return synth("flower", n, seed, func(r *rng, c int) (float64, float64) {
		t := span*(float64(c)+r.float()) + noise*r.normal()
		rad := petal*math.Sin(4*t) + noise*r.normal()
		return rad * math.Sin(t), rad * math.Cos(t)
	})
}
