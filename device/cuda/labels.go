//go:build cuda

package cuda

// Loss with SoftmaxCrossEntropy must refuse labels outside [0, cols) with
// an ErrInvalid error, as the CPU backend does. Reading the labels back
// from the GPU for every call would make each training step wait for the
// device. Instead each int32 allocation carries what the host knows of its
// values: a range [min, max] that contains every value in it, kept up to
// date by the only calls that write int32 memory (Alloc: zeros; WriteI32:
// the written values, exact when a write covers the whole allocation;
// ArgmaxRows: [0, cols); Copy: the source's range). When the range proves
// the labels valid, Loss launches at once; otherwise (range unknown or too
// wide) it reads the labels back and checks them exactly, so the answer is
// always the CPU backend's.

// Beside the range it keeps whether every negative value is one and the
// same value neg (or there is none), and the largest non-negative value:
// sequence labels padded with PyTorch's ignore index −100 are then proved
// valid for CrossEntropy without a read-back, although their range
// [−100, cols) is too wide to prove anything.
type labelRange struct {
	known    bool
	min, max int32
	// oneNeg: every negative value equals neg (none when !hasNeg). nnMax
	// is the largest value ≥ 0 (−1 when there is none). Both meaningful
	// only when known.
	oneNeg bool
	hasNeg bool
	neg    int32
	nnMax  int32
}

// exactRange is the summary of exactly the values of vals (len ≥ 1).
func exactRange(vals []int32) labelRange {
	r := labelRange{known: true, min: vals[0], max: vals[0], oneNeg: true, nnMax: -1}
	for _, v := range vals {
		r.min = min(r.min, v)
		r.max = max(r.max, v)
		r.addValue(v)
	}
	return r
}

// addValue records one value in the negative/non-negative summary.
func (r *labelRange) addValue(v int32) {
	if v >= 0 {
		r.nnMax = max(r.nnMax, v)
		return
	}
	if r.hasNeg && r.neg != v {
		r.oneNeg = false
	}
	r.hasNeg, r.neg = true, v
}

// merge adds the summary o of values written into part of the allocation.
func (r *labelRange) merge(o labelRange) {
	if !r.known {
		return
	}
	if !o.known {
		r.known = false
		return
	}
	r.min = min(r.min, o.min)
	r.max = max(r.max, o.max)
	r.nnMax = max(r.nnMax, o.nnMax)
	if !o.oneNeg {
		r.oneNeg = false
	}
	if o.hasNeg {
		r.addValue(o.neg)
	}
}

// widen merges [lo, hi] into the range (no-op when unknown).
func (r *labelRange) widen(lo, hi int32) {
	if !r.known {
		return
	}
	r.min = min(r.min, lo)
	r.max = max(r.max, hi)
	if hi >= 0 {
		r.nnMax = max(r.nnMax, hi)
	}
	switch {
	case lo >= 0:
	case lo == hi:
		r.addValue(lo)
	default:
		r.oneNeg = false // several negative values may be there
	}
}

// validWithIgnore reports whether every value is proved to be ignore or in
// [0, cols) by the negative/non-negative summary.
func (r labelRange) validWithIgnore(cols int, ignore int32) bool {
	if !r.known || !r.oneNeg || int64(r.nnMax) >= int64(cols) {
		return false
	}
	return !r.hasNeg || r.neg == ignore
}

// noteWrite records that src was written at element off of b.
func (b *buffer) noteWrite(off int, src []int32) {
	if len(src) == 0 {
		return
	}
	r := exactRange(src)
	a := b.a
	if b.off+off == 0 && len(src) >= a.n {
		a.lbl = r
		return
	}
	a.lbl.merge(r)
}

// labelsValid reports whether the host knows that every value of b lies
// in [0, cols).
func (b *buffer) labelsValid(cols int) bool {
	r := b.a.lbl
	return r.known && r.min >= 0 && int64(r.max) < int64(cols)
}
