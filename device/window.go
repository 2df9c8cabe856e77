package device

import "math"

// Check returns an ErrInvalid error naming the first field of g that is out
// of range, for the primitive op: every dimension, window size, stride and
// dilation must be ≥ 1 and the padding ≥ 0; each field must fit in an int32
// (the CUDA kernels take them as int); the dilated window must fit in the
// padded input (H + 2·PadH ≥ DilH·(KH−1) + 1, and likewise the width), so
// that the output has at least one row and column; and the input and output
// element counts, N·C·H·W and N·C·OutH·OutW, must each be at most 2⁴⁰ (no
// buffer is larger), so backends may multiply the fields without overflow.
//
// OutH and OutW alone do not show an empty output: Go's division truncates
// towards zero, so a window one row too tall with stride 2 gives
// (−1)/2 + 1 = 1. Check tests the window against the padded input instead.
func (g Window2D) Check(op string) error {
	fields := [...]struct {
		name string
		v    int
		min  int
	}{
		{"g.N", g.N, 1}, {"g.C", g.C, 1}, {"g.H", g.H, 1}, {"g.W", g.W, 1},
		{"g.KH", g.KH, 1}, {"g.KW", g.KW, 1},
		{"g.StrideH", g.StrideH, 1}, {"g.StrideW", g.StrideW, 1},
		{"g.PadH", g.PadH, 0}, {"g.PadW", g.PadW, 0},
		{"g.DilH", g.DilH, 1}, {"g.DilW", g.DilW, 1},
	}
	for _, f := range fields {
		if f.v < f.min {
			return Errorf(op, f.name, ErrInvalid, "expected %s ≥ %d, got %d", f.name[2:], f.min, f.v)
		}
		if f.v > math.MaxInt32 {
			return Errorf(op, f.name, ErrInvalid, "expected %s ≤ 2³¹−1, got %d", f.name[2:], f.v)
		}
	}
	// Every field is below 2³¹, so these stay far from overflowing int64.
	if span := int64(g.DilH)*int64(g.KH-1) + 1; int64(g.H)+2*int64(g.PadH) < span {
		return Errorf(op, "g.KH", ErrInvalid,
			"the window spans %d rows (DilH·(KH−1)+1 with KH %d, DilH %d), more than the %d rows of the padded input (H %d + 2·PadH %d): the output would be empty",
			span, g.KH, g.DilH, int64(g.H)+2*int64(g.PadH), g.H, g.PadH)
	}
	if span := int64(g.DilW)*int64(g.KW-1) + 1; int64(g.W)+2*int64(g.PadW) < span {
		return Errorf(op, "g.KW", ErrInvalid,
			"the window spans %d columns (DilW·(KW−1)+1 with KW %d, DilW %d), more than the %d columns of the padded input (W %d + 2·PadW %d): the output would be empty",
			span, g.KW, g.DilW, int64(g.W)+2*int64(g.PadW), g.W, g.PadW)
	}
	const limit = 1 << 40
	if !mulWithin(limit, g.N, g.C, g.H, g.W) {
		return Errorf(op, "g", ErrInvalid, "the input has N·C·H·W = %d·%d·%d·%d elements, more than 2⁴⁰", g.N, g.C, g.H, g.W)
	}
	if !mulWithin(limit, g.N, g.C, g.OutH(), g.OutW()) {
		return Errorf(op, "g", ErrInvalid, "the output has N·C·OutH·OutW = %d·%d·%d·%d elements, more than 2⁴⁰", g.N, g.C, g.OutH(), g.OutW())
	}
	return nil
}

// mulWithin multiplies the positive factors and reports whether the product
// stays at most limit (checked before each step, so it never overflows).
func mulWithin(limit int64, factors ...int) bool {
	p := int64(1)
	for _, f := range factors {
		if int64(f) > limit/p {
			return false
		}
		p *= int64(f)
	}
	return true
}

// CheckPlaneIndices checks that every position h·W + w of one input plane
// fits the int32 indices max pooling saves (MaxPool2D, MaxPool2DGrad).
func (g Window2D) CheckPlaneIndices(op string) error {
	if int64(g.H)*int64(g.W) > math.MaxInt32 {
		return Errorf(op, "g", ErrInvalid,
			"an input plane of H·W = %d·%d positions does not fit the int32 indices", g.H, g.W)
	}
	return nil
}
