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

type labelRange struct {
	known    bool
	min, max int32
}

// widen merges [lo, hi] into the range (no-op when unknown).
func (r *labelRange) widen(lo, hi int32) {
	if !r.known {
		return
	}
	r.min = min(r.min, lo)
	r.max = max(r.max, hi)
}

// noteWrite records that src was written at element off of b.
func (b *buffer) noteWrite(off int, src []int32) {
	if len(src) == 0 {
		return
	}
	lo, hi := src[0], src[0]
	for _, v := range src {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	a := b.a
	if b.off+off == 0 && len(src) >= a.n {
		a.lbl = labelRange{known: true, min: lo, max: hi}
		return
	}
	a.lbl.widen(lo, hi)
}

// labelsValid reports whether the host knows that every value of b lies
// in [0, cols).
func (b *buffer) labelsValid(cols int) bool {
	r := b.a.lbl
	return r.known && r.min >= 0 && int64(r.max) < int64(cols)
}
