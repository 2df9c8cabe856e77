package devicetest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/kilnml/kiln/device"
)

// u is the unit roundoff of float32 (round to nearest): every correctly
// rounded float32 operation has a relative error of at most u.
const u = 1.0 / (1 << 24)

// bigN is the length used for the large elementwise cases: above 2²⁰ so
// that backends take their parallel or vectorised paths, and odd so that
// every tail loop runs.
const bigN = 1<<20 + 7

// Options tunes Run. The zero value runs everything (except under
// `go test -short`, which implies Short).
type Options struct {
	// Short skips the largest cases: the 1024×768×512 GEMM and the 2²⁰
	// element vectors.
	Short bool
}

// Run runs the whole conformance suite on dev. It does not close dev. The
// device must be otherwise idle: the memory statistics checks assume no
// one else allocates while they run.
func Run(t *testing.T, dev device.Device) {
	RunWith(t, dev, Options{})
}

// RunWith is Run with options.
func RunWith(t *testing.T, dev device.Device, opt Options) {
	t.Helper()
	if testing.Short() {
		opt.Short = true
	}
	s := &suite{dev: dev, short: opt.Short}
	t.Run("Memory", s.testMemory)
	t.Run("Errors", s.testErrors)
	t.Run("Gemm", s.testGemm)
	t.Run("AddBias", s.testAddBias)
	t.Run("BiasGrad", s.testBiasGrad)
	t.Run("Activate", s.testActivate)
	t.Run("ActivateGrad", s.testActivateGrad)
	t.Run("Softmax", s.testSoftmax)
	t.Run("SoftmaxGrad", s.testSoftmaxGrad)
	t.Run("Elementwise", s.testElementwise)
	t.Run("Loss", s.testLoss)
	t.Run("Sum", func(t *testing.T) { s.testSum(t, false) })
	t.Run("SumSquares", func(t *testing.T) { s.testSum(t, true) })
	t.Run("ClipByNorm", s.testClipByNorm)
	t.Run("ArgmaxRows", s.testArgmaxRows)
	t.Run("SGDStep", s.testSGD)
	t.Run("AdamStep", s.testAdam)
	t.Run("Random", s.testRandom)
	t.Run("Conv", s.testConv)
	t.Run("Norm", s.testNorm)
	t.Run("Attention", s.testAttention)
	t.Run("Embedding", s.testEmbedding)
}

// suite carries the device under test through the subtests.
type suite struct {
	dev   device.Device
	short bool
}

// RelErr is ‖got − want‖₂ / ‖want‖₂, computed in float64; when want is all
// zeros it is ‖got‖₂. A NaN or Inf in got makes it +Inf. It panics if the
// lengths differ.
func RelErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		panic(fmt.Sprintf("devicetest.RelErr: %d values against %d", len(got), len(want)))
	}
	var num, den float64
	for i, g := range got {
		d := float64(g) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if math.IsNaN(num) || math.IsInf(num, 0) {
		return math.Inf(1)
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// newRand returns a generator seeded from the test's name, so every case
// gets fresh inputs that reproduce run after run.
func newRand(t *testing.T) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// uniform draws n float32 values in [lo, hi).
func uniform(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// nan is a quiet NaN, the poison written into outputs that a primitive must
// overwrite.
var nan = float32(math.NaN())

// sentinel is the finite poison for outputs that a primitive combines with
// beta, where the contract does not say whether beta = 0 reads the output.
const sentinel = float32(12345.5)

func filled(n int, v float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// do runs fn, a call of the primitive op, and fails the test now if it
// returns an error or panics.
func do(t *testing.T, op string, fn func() error) {
	t.Helper()
	if err := protect(fn); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// panicError is a panic turned into an error by protect.
type panicError struct {
	val   any
	stack []byte
}

func (p *panicError) Error() string {
	return fmt.Sprintf("panicked: %v\n%s", p.val, p.stack)
}

// protect runs fn and turns a panic into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{val: v, stack: debug.Stack()}
		}
	}()
	return fn()
}

// alloc allocates a zeroed buffer that is freed when the test ends.
func (s *suite) alloc(t *testing.T, dt device.DType, n int) device.Buffer {
	t.Helper()
	var b device.Buffer
	do(t, fmt.Sprintf("Alloc(%s, %d)", dt, n), func() error {
		var err error
		b, err = s.dev.Alloc(dt, n)
		return err
	})
	if b == nil {
		t.Fatalf("Alloc(%s, %d) returned a nil buffer and no error", dt, n)
	}
	t.Cleanup(func() {
		if !b.Freed() {
			_ = protect(func() error { return s.dev.Free(b) })
		}
	})
	return b
}

// upload allocates a float32 buffer holding x.
func (s *suite) upload(t *testing.T, x []float32) device.Buffer {
	t.Helper()
	b := s.alloc(t, device.Float32, len(x))
	s.write(t, b, x)
	return b
}

// uploadI32 allocates an int32 buffer holding x.
func (s *suite) uploadI32(t *testing.T, x []int32) device.Buffer {
	t.Helper()
	b := s.alloc(t, device.Int32, len(x))
	do(t, "WriteI32", func() error { return s.dev.WriteI32(b, 0, x) })
	return b
}

// write copies x into b from element 0.
func (s *suite) write(t *testing.T, b device.Buffer, x []float32) {
	t.Helper()
	do(t, "WriteF32", func() error { return s.dev.WriteF32(b, 0, x) })
}

// read copies the first n elements of b to the host.
func (s *suite) read(t *testing.T, b device.Buffer, n int) []float32 {
	t.Helper()
	x := make([]float32, n)
	do(t, "ReadF32", func() error { return s.dev.ReadF32(x, b, 0) })
	return x
}

// readI32 copies the first n elements of the int32 buffer b to the host.
func (s *suite) readI32(t *testing.T, b device.Buffer, n int) []int32 {
	t.Helper()
	x := make([]int32, n)
	do(t, "ReadI32", func() error { return s.dev.ReadI32(x, b, 0) })
	return x
}

// checker collects elementwise mismatches and reports the first few, so a
// wrong kernel yields a short, readable failure.
type checker struct {
	t     *testing.T
	what  string
	bad   int
	shown int
}

func newChecker(t *testing.T, what string) *checker {
	return &checker{t: t, what: what}
}

// near checks |got − want| ≤ tol; got must be finite when want is.
// It is called once per element, so it leaves t.Helper (costly) to fail.
func (c *checker) near(i int, got float32, want, tol float64) {
	g := float64(got)
	ok := math.Abs(g-want) <= tol
	if math.IsNaN(want) {
		ok = math.IsNaN(g)
	} else if math.IsInf(want, 0) {
		ok = g == want
	}
	if !ok {
		c.t.Helper()
		c.fail(i, "got %v, want %v (|diff| %.3g > tol %.3g)", got, want, math.Abs(g-want), tol)
	}
}

// equal checks got == want exactly (NaN never equals).
func (c *checker) equal(i int, got, want float32) {
	if got != want {
		c.t.Helper()
		c.fail(i, "got %v, want exactly %v", got, want)
	}
}

func (c *checker) fail(i int, format string, a ...any) {
	c.t.Helper()
	c.bad++
	if c.shown < 5 {
		c.shown++
		c.t.Errorf("%s[%d]: %s", c.what, i, fmt.Sprintf(format, a...))
	}
}

// done reports how many elements failed beyond the ones shown, and
// returns whether all passed.
func (c *checker) done() bool {
	c.t.Helper()
	if c.bad > c.shown {
		c.t.Errorf("%s: %d elements wrong in all", c.what, c.bad)
	}
	return c.bad == 0
}

// finite fails for each NaN or Inf in x.
func finite(t *testing.T, what string, x []float32) {
	t.Helper()
	c := newChecker(t, what)
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			c.fail(i, "got %v, want a finite value", v)
		}
	}
	c.done()
}
