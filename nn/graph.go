package nn

import (
	"errors"
	"fmt"

	"github.com/kilnml/kiln/device"
)

// Graph records one step's operations (the tape) and owns the step's
// intermediate buffers. Ops append themselves to the tape during the
// forward pass; Backward walks it in reverse. Reset recycles every buffer
// and Tensor the step used, so that the next step of the same shapes takes
// them from the graph's free lists: a steady training step makes no device
// allocation at all (not even from the device's pool) and few Go heap
// allocations.
//
// The graph also carries the random stream of dropout: a (seed, offset)
// pair of the device's counter-based generator. Each dropout mask of n
// elements draws positions [offset, offset+n) and then advances offset by
// n rounded up to a multiple of 4, so saving RNG() and restoring it with
// SetRNG resumes the exact same masks.
//
// A Graph, like its Device, is not safe for concurrent use.
type Graph struct {
	dev device.Device

	tape    []op
	tensors []*Tensor // pool of Tensor structs, the first nt in use this step
	nt      int

	free map[int][]device.Buffer // recycled float32 buffers by length
	used []device.Buffer         // buffers handed out this step

	views map[viewKey]viewEntry // views made by cachedView, kept across steps
	step  uint64                // steps begun (Resets), for the views' ages

	seed, offset uint64
	noGrad       bool
	backwardDone bool
}

// NewGraph returns an empty graph on dev with dropout seed 0.
func NewGraph(dev device.Device) *Graph {
	return &Graph{dev: dev, free: make(map[int][]device.Buffer)}
}

// Device is the device the graph's buffers live on.
func (g *Graph) Device() device.Device { return g.dev }

// SetRNG sets the dropout stream: seed and the next position to draw.
func (g *Graph) SetRNG(seed, offset uint64) { g.seed, g.offset = seed, offset }

// RNG returns the dropout stream's seed and next position, for checkpoints.
func (g *Graph) RNG() (seed, offset uint64) { return g.seed, g.offset }

// SetGradEnabled turns recording on (the default) or off. With recording
// off (evaluation, prediction), ops compute values only: nothing requires
// grad, nothing is put on the tape, and Loss skips its gradient.
func (g *Graph) SetGradEnabled(on bool) { g.noGrad = !on }

// Reset ends the step: the tape is cleared and every intermediate buffer
// and Tensor of the step goes back to the graph's free lists for the next
// step. Tensors the graph returned before must not be used afterwards.
func (g *Graph) Reset() {
	for _, b := range g.used {
		n := b.Len()
		g.free[n] = append(g.free[n], b)
	}
	clear(g.used)
	g.used = g.used[:0]
	for i := range g.tape {
		g.tape[i] = op{}
	}
	g.tape = g.tape[:0]
	for _, t := range g.tensors[:g.nt] {
		*t = Tensor{}
	}
	g.nt = 0
	g.backwardDone = false
	g.step++
	if g.step > viewSteps {
		g.dropViews(g.step - viewSteps)
	}
}

// Free resets the graph and returns every buffer it holds to the device.
// The graph stays usable; its next step allocates afresh.
func (g *Graph) Free() error {
	g.Reset()
	var errs []error
	for n, l := range g.free {
		for _, b := range l {
			if err := g.dev.Free(b); err != nil {
				errs = append(errs, err)
			}
		}
		delete(g.free, n)
	}
	clear(g.views)
	return errors.Join(errs...)
}

// viewKey names a view: its parent buffer, offset and length.
type viewKey struct {
	parent device.Buffer
	off, n int
}

// viewEntry is a kept view and the last step that asked for it.
type viewEntry struct {
	v    device.Buffer
	step uint64
}

// viewSteps is how many steps a view is kept without being asked for.
// A steady step asks for the same views every time (a transformer: q, k, v
// and their gradients per layer, the position embedding's rows; a CNN: the
// image groups of every convolution, however many), but not always of the
// same parent objects: the free lists hand buffers out last in, first
// out, so buffers of one length swap roles every other step. Reset keeps
// the views the last two steps asked for: the cache holds two steps' views
// whatever the model's depth, and a parent the caller owns (a parameter,
// an input it frees) is not held longer than two idle steps.
const viewSteps = 2

// maxViews bounds the cache within a step: only steps that keep asking for
// new views (shapes that never repeat) reach it, and then the older steps'
// views go first.
const maxViews = 1 << 16

// dropViews forgets the views no step since step `since` asked for. The
// sweep deletes while it ranges over the map, which Go allows, and
// allocates nothing.
func (g *Graph) dropViews(since uint64) {
	for k, e := range g.views {
		if e.step < since {
			delete(g.views, k)
		}
	}
}

// cachedView returns dev.View(parent, off, n), reusing the view it made for the
// same (parent, off, n) in an earlier step, so that a steady step makes no
// Go heap allocation for its Narrows.
//
// Why a kept view stays right: a view is a window into its parent's
// memory, fixed when it is made. The graph's buffers are recycled by
// handing out the same buffer object again (Reset → free lists), never a
// new allocation under an old name, so when a later step's tensor of the
// same length gets the same parent, the kept view still windows exactly
// that memory — the memory the new tensor now holds — which is what a
// fresh View would return. Only freeing the parent (to the device) ends
// that: Free empties the cache, and for parents the graph does not own
// (parameters, inputs) a hit is checked with Freed, so a freed parent is
// passed to dev.View again, which reports it. A freed buffer object is
// never handed out again by either backend (Alloc makes a new one), so a
// kept view can never alias a different allocation.
func (g *Graph) cachedView(parent device.Buffer, off, n int) (device.Buffer, error) {
	k := viewKey{parent, off, n}
	if e, ok := g.views[k]; ok {
		if !e.v.Freed() {
			if e.step != g.step {
				g.views[k] = viewEntry{e.v, g.step} // an existing key: no allocation
			}
			return e.v, nil
		}
		delete(g.views, k)
	}
	v, err := g.dev.View(parent, off, n)
	if err != nil {
		return nil, err
	}
	if g.views == nil {
		g.views = make(map[viewKey]viewEntry)
	}
	if len(g.views) >= maxViews {
		g.dropViews(g.step) // the earlier steps' views first
		if len(g.views) >= maxViews {
			clear(g.views)
		}
	}
	g.views[k] = viewEntry{v, g.step}
	return v, nil
}

// buffer hands out a float32 buffer of exactly n elements for this step,
// recycled when possible. Its contents are arbitrary.
func (g *Graph) buffer(n int) (device.Buffer, error) {
	if l := g.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		g.free[n] = l[:len(l)-1]
		g.used = append(g.used, b)
		return b, nil
	}
	b, err := g.dev.Alloc(device.Float32, n)
	if err != nil {
		return nil, err
	}
	g.used = append(g.used, b)
	return b, nil
}

// tensor returns a recycled Tensor struct of the given shape with no
// buffers attached.
func (g *Graph) tensor(shape []int) (*Tensor, error) {
	if g.nt == len(g.tensors) {
		g.tensors = append(g.tensors, new(Tensor))
	}
	t := g.tensors[g.nt]
	*t = Tensor{dev: g.dev}
	if err := t.setShape(shape); err != nil {
		return nil, err
	}
	g.nt++
	return t, nil
}

// newValue returns a graph tensor of the given shape with a fresh value
// buffer; it requires grad when grad is true and recording is on.
func (g *Graph) newValue(shape []int, grad bool) (*Tensor, error) {
	t, err := g.tensor(shape)
	if err != nil {
		return nil, err
	}
	if t.val, err = g.buffer(t.n); err != nil {
		return nil, err
	}
	t.requiresGrad = grad && !g.noGrad
	return t, nil
}

// Input wraps buf (a batch the caller owns; not copied) as a tensor of the
// given shape that does not require grad. It is valid until Reset.
func (g *Graph) Input(buf device.Buffer, shape ...int) (*Tensor, error) {
	t, err := g.tensor(shape)
	if err != nil {
		return nil, fmt.Errorf("nn: Input: %w", err)
	}
	if err := device.CheckF32(g.dev, "nn.Input", "buf", buf, t.n); err != nil {
		return nil, err
	}
	t.val = buf
	return t, nil
}

// Variable wraps buf (not copied) as a leaf tensor that requires grad: its
// gradient buffer is zeroed now and accumulates every contribution of
// Backward. It is how GradCheck, and any caller that needs d loss/d input,
// obtains input gradients.
func (g *Graph) Variable(buf device.Buffer, shape ...int) (*Tensor, error) {
	t, err := g.Input(buf, shape...)
	if err != nil {
		return nil, err
	}
	if t.grad, err = g.buffer(t.n); err != nil {
		return nil, err
	}
	if err := g.dev.Fill(t.grad, t.n, 0); err != nil {
		return nil, err
	}
	t.requiresGrad = !g.noGrad
	t.accumulate = true
	return t, nil
}

// gradDst returns where the next gradient contribution to t goes and the
// beta to use: 0 (overwrite) for the first contribution to an
// intermediate, 1 (accumulate) otherwise.
func (g *Graph) gradDst(t *Tensor) (device.Buffer, float32, error) {
	t.gradOne = false
	if t.accumulate {
		return t.grad, 1, nil
	}
	if t.gradSet {
		return t.grad, 1, nil
	}
	if t.grad == nil {
		b, err := g.buffer(t.n)
		if err != nil {
			return nil, 0, err
		}
		t.grad = b
	}
	t.gradSet = true
	return t.grad, 0, nil
}

// contribute adds f's output to t's gradient for primitives that only
// overwrite: f writes straight into the gradient for a first contribution,
// or into scratch that is then added.
func (g *Graph) contribute(t *Tensor, f func(dst device.Buffer) error) error {
	dst, beta, err := g.gradDst(t)
	if err != nil {
		return err
	}
	if beta == 0 {
		return f(dst)
	}
	tmp, err := g.buffer(t.n)
	if err != nil {
		return err
	}
	if err := f(tmp); err != nil {
		return err
	}
	return g.dev.Add(dst, tmp, dst, t.n)
}

// Backward computes d loss/d t for every tensor t of the step that requires
// grad, walking the tape in reverse. loss must be a one-element tensor of
// this step. Parameter gradients accumulate (the trainer zeroes them with
// ZeroGrad each step); intermediate gradients are written fresh. Backward
// runs once per step: call Reset before the next.
func (g *Graph) Backward(loss *Tensor) error {
	if loss == nil {
		return fmt.Errorf("nn: Backward: nil loss")
	}
	if loss.n != 1 {
		return fmt.Errorf("nn: Backward: loss has shape %v, expected a single element", loss.shape)
	}
	if !loss.requiresGrad {
		return fmt.Errorf("nn: Backward: the loss does not depend on anything that requires grad (was recording off, or are all parameters frozen?)")
	}
	if g.backwardDone {
		return fmt.Errorf("nn: Backward: already called for this step; call Reset first")
	}
	g.backwardDone = true
	dst, _, err := g.gradDst(loss)
	if err != nil {
		return fmt.Errorf("nn: Backward: %w", err)
	}
	if err := g.dev.Fill(dst, 1, 1); err != nil {
		return fmt.Errorf("nn: Backward: %w", err)
	}
	loss.gradOne = true
	for i := len(g.tape) - 1; i >= 0; i-- {
		o := &g.tape[i]
		if !o.out.gradSet && !o.out.accumulate {
			continue // nothing flowed into this op's result
		}
		if err := o.backward(g); err != nil {
			return fmt.Errorf("nn: Backward through %s: %w", o.kind, err)
		}
	}
	return nil
}
