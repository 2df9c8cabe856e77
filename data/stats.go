package data

import (
	"fmt"
	"math"
)

// Stats is a per-feature standardisation x' = (x − Mean) / Std. It is
// computed on the training split only and then applied unchanged to the
// validation and test splits and to new inputs at prediction time, so it is
// kept with the model (encoding/json round-trips it for checkpoint
// metadata). A Stats with one Mean and one Std applies them to every
// feature (MNIST-style normalisation).
type Stats struct {
	Mean []float32 `json:"mean"`
	Std  []float32 `json:"std"`
}

// FitStats computes the per-feature mean and population standard deviation
// of d (in float64). A constant feature gets Std 1 so standardising it
// yields zeros instead of NaN.
func FitStats(d *Dataset) (*Stats, error) {
	n, f := d.Len(), d.Features
	if n == 0 {
		return nil, fmt.Errorf("data: dataset %q: cannot compute statistics of an empty set", d.Name)
	}
	sum := make([]float64, f)
	sq := make([]float64, f)
	for i := 0; i < n; i++ {
		row := d.X[i*f : (i+1)*f]
		for j, v := range row {
			sum[j] += float64(v)
		}
	}
	mean := make([]float64, f)
	for j := range mean {
		mean[j] = sum[j] / float64(n)
	}
	for i := 0; i < n; i++ {
		row := d.X[i*f : (i+1)*f]
		for j, v := range row {
			e := float64(v) - mean[j]
			sq[j] += e * e
		}
	}
	s := &Stats{Mean: make([]float32, f), Std: make([]float32, f)}
	for j := range mean {
		sd := math.Sqrt(sq[j] / float64(n))
		if sd < 1e-12 {
			sd = 1
		}
		s.Mean[j] = float32(mean[j])
		s.Std[j] = float32(sd)
	}
	return s, nil
}

// Apply standardises d.X in place with s and records s in d.Stats.
func (s *Stats) Apply(d *Dataset) error {
	if s == nil {
		return fmt.Errorf("data: nil Stats")
	}
	f := d.Features
	if len(s.Mean) != len(s.Std) || (len(s.Mean) != 1 && len(s.Mean) != f) {
		return fmt.Errorf("data: dataset %q: statistics have %d means and %d stds, want 1 or %d (features)", d.Name, len(s.Mean), len(s.Std), f)
	}
	for j, sd := range s.Std {
		if !(sd > 0) || math.IsInf(float64(sd), 0) {
			return fmt.Errorf("data: dataset %q: std[%d] = %v, want a positive finite number", d.Name, j, sd)
		}
	}
	if d.Stats != nil {
		return fmt.Errorf("data: dataset %q: already standardised", d.Name)
	}
	if len(s.Mean) == 1 {
		m, sd := s.Mean[0], s.Std[0]
		for i, v := range d.X {
			d.X[i] = (v - m) / sd
		}
	} else {
		for i, v := range d.X {
			j := i % f
			d.X[i] = (v - s.Mean[j]) / s.Std[j]
		}
	}
	d.Stats = s.clone()
	return nil
}

// Standardize fits statistics on train only, then applies them to train
// and to every other set given (validation, test), and returns them so a
// checkpoint can store them. No information from the other sets leaks into
// the statistics.
func Standardize(train *Dataset, others ...*Dataset) (*Stats, error) {
	s, err := FitStats(train)
	if err != nil {
		return nil, err
	}
	if err := s.Apply(train); err != nil {
		return nil, err
	}
	for _, o := range others {
		if o == nil {
			continue
		}
		if o.Features != train.Features {
			return nil, fmt.Errorf("data: dataset %q has %d features, training set %q has %d", o.Name, o.Features, train.Name, train.Features)
		}
		if err := s.Apply(o); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stats) clone() *Stats {
	if s == nil {
		return nil
	}
	return &Stats{Mean: append([]float32(nil), s.Mean...), Std: append([]float32(nil), s.Std...)}
}
