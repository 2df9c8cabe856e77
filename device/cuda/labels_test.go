//go:build cuda

package cuda

import "testing"

// TestLabelRangeIgnore checks the host-side summary that lets
// CrossEntropy skip reading labels back: padding with one negative ignore
// index is proved valid, a second negative value or a label ≥ cols is not.
// (Host logic only, but it lives in the cuda build, so it runs with the
// GPU check.)
func TestLabelRangeIgnore(t *testing.T) {
	const cols = 10
	cases := []struct {
		name   string
		writes [][]int32 // first write covers the allocation, later ones part of it
		ignore int32
		want   bool
	}{
		{"padded", [][]int32{{3, -100, 9, -100}}, -100, true},
		{"no padding", [][]int32{{0, 9}}, -100, true},
		{"other negative", [][]int32{{3, -100, -1}}, -100, false},
		{"label too large", [][]int32{{10, -100}}, -100, false},
		{"wrong ignore", [][]int32{{3, -100}}, -1, false},
		{"partial write adds a second negative", [][]int32{{3, -100}, {-7}}, -100, false},
		{"partial write keeps padding", [][]int32{{3, -100}, {-100, 4}}, -100, true},
	}
	for _, c := range cases {
		r := exactRange(c.writes[0])
		for _, w := range c.writes[1:] {
			r.merge(exactRange(w))
		}
		if got := r.validWithIgnore(cols, c.ignore); got != c.want {
			t.Errorf("%s: validWithIgnore = %v, want %v (summary %+v)", c.name, got, c.want, r)
		}
	}
	var z labelRange
	if z.validWithIgnore(cols, -100) {
		t.Error("an unknown range must prove nothing")
	}
	r := exactRange([]int32{1, -100})
	r.widen(-3, 5) // a copy of unknown negatives
	if r.validWithIgnore(cols, -100) {
		t.Error("widening by a negative interval must drop the proof")
	}
}
