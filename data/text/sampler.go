package text

import (
	"fmt"
	"math/bits"
)

// Sampler draws training windows at random offsets of a Span: each row of
// a batch is `context` consecutive tokens at a uniformly drawn offset (x)
// and the same window one token further on (y, the next-token targets),
// as nanoGPT's get_batch does.
//
// The offsets come from a counter-based generator (SplitMix64 of the seed
// and a counter), so the same seed gives the same batches, and the counter,
// Position, is the generator's whole state: save it with a checkpoint and
// Seek to it to resume exactly. Batch allocates nothing.
type Sampler struct {
	span    Span
	context int
	seed    uint64
	key     uint64 // the seed, mixed
	pos     uint64 // draws made
	offsets uint64 // number of valid offsets: Len - context
}

// NewSampler returns a Sampler of windows of `context` tokens over span,
// drawing from seed. The span must hold at least context+1 tokens.
func NewSampler(span Span, context int, seed uint64) (*Sampler, error) {
	if span.t == nil {
		return nil, fmt.Errorf("text: NewSampler: empty span (no tokens)")
	}
	if context < 1 {
		return nil, fmt.Errorf("text: NewSampler on %v: context %d, want >= 1", span, context)
	}
	if span.Len() < context+1 {
		return nil, fmt.Errorf("text: %v has %d tokens; a context of %d needs at least %d (context+1, for the shifted targets)", span, span.Len(), context, context+1)
	}
	return &Sampler{span: span, context: context, seed: seed, key: mix64(seed ^ 0x6b696c6e74657874), offsets: uint64(span.Len() - context)}, nil
}

// Context returns the number of tokens in a window.
func (s *Sampler) Context() int { return s.context }

// Seed returns the seed the sampler draws from.
func (s *Sampler) Seed() uint64 { return s.seed }

// Span returns the span the windows come from.
func (s *Sampler) Span() Span { return s.span }

// Position returns the generator's counter: the number of random numbers
// drawn so far (one per window, rarely more). With the seed it is the
// sampler's whole state.
func (s *Sampler) Position() uint64 { return s.pos }

// Seek sets the generator's counter, as Position returned it, so that the
// next batch is the one that followed when Position was read.
func (s *Sampler) Seek(pos uint64) { s.pos = pos }

// Batch fills x and y, each of batch×context tokens (row-major [batch,
// context], batch = len(x)/context), with windows at fresh random offsets:
// row b is x[b*context+j] = token[o_b+j], y[...] = token[o_b+j+1].
func (s *Sampler) Batch(x, y []int32) error {
	c := s.context
	if len(x) != len(y) || len(x) == 0 || len(x)%c != 0 {
		return fmt.Errorf("text: Sampler.Batch: len(x) = %d, len(y) = %d, want equal, non-zero multiples of the context %d", len(x), len(y), c)
	}
	t := s.span.t
	if t.data == nil {
		return fmt.Errorf("text: Sampler.Batch: the tokens of %s are closed", t.name)
	}
	for b := 0; b < len(x); b += c {
		off := s.span.lo + int(s.next())
		t.copyTo(off, x[b:b+c])
		t.copyTo(off+1, y[b:b+c])
	}
	return nil
}

// Offset returns the offset (within the span) the next window would be
// drawn at, without drawing it.
func (s *Sampler) Offset() int {
	pos := s.pos
	o := s.next()
	s.pos = pos
	return int(o)
}

// next draws a uniform offset in [0, offsets): Lemire's multiply-shift
// with rejection, so no offset is favoured.
func (s *Sampler) next() uint64 {
	n := s.offsets
	for {
		s.pos++
		hi, lo := bits.Mul64(mix64(s.key+s.pos*0x9e3779b97f4a7c15), n)
		if lo >= n || lo >= -n%n {
			return hi
		}
	}
}

// mix64 is SplitMix64's finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
