package kernels

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kilnml/kiln/device"
)

// TestKernelsEmulation runs the real kernels of activations.cu,
// elementwise.cu, losses.cu, optim.cu, reduce.cu and random.cu on the CPU:
// testdata/kernels_emu/harness.cpp compiles them as host C++ with a small
// CUDA shim (one OS thread per CUDA thread, __syncthreads and the warp
// shuffles as barriers among the threads concerned; see shim.h), under
// AddressSanitizer and UBSan. This test writes a script of launches with
// the grids, blocks and argument slots that device/cuda/ops.go passes (the
// launch shapes below are copies of its formulas, for GPUs of several
// sizes), on inputs of awkward sizes placed at element offsets as views
// place them, with outputs poisoned with NaN; then it compares what the
// kernels wrote with references from the definitions in device/device.go
// (PyTorch's) and, for the random numbers, with device.NormalScaled,
// UniformScaled and DropoutAt. Elements in front of a view must be left
// alone; any access past a buffer's end is an ASan report.
//
// It needs g++ and takes under a minute on two cores; it is skipped with
// -short. KILN_KERNELS_EMU_CXXFLAGS replaces the sanitizer flags (e.g.
// "-fsanitize=thread"); KILN_EMU_THREADED=1 runs every kernel with one OS
// thread per CUDA thread (by default the kernels whose threads never wait
// for each other run their threads one after the other, which is exact for
// them and much faster); KILN_KERNELS_EMU_SRC names a directory holding
// copies of the kernel files to build instead of these (to check that a
// planted bug is caught); KILN_KERNELS_EMU_RUN, a regular expression, keeps
// only the cases whose names match.
func TestKernelsEmulation(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: compiles and runs the C++ emulation of the kernels")
	}
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("g++ not found")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kernels_emu")
	san := "-fsanitize=address,undefined -fno-sanitize-recover=all"
	if s := os.Getenv("KILN_KERNELS_EMU_CXXFLAGS"); s != "" {
		san = s
	}
	// -ffp-contract=off: the kernels' rounding intrinsics become plain IEEE
	// operations in the shim, and nothing may fuse them.
	args := append([]string{"-std=c++17", "-O1", "-pthread", "-ffp-contract=off", "-Wno-unknown-pragmas"}, strings.Fields(san)...)
	src, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	if d := os.Getenv("KILN_KERNELS_EMU_SRC"); d != "" {
		src = d // a directory with (modified) copies of the kernel files
	}
	args = append(args, "-I", src, "-o", bin, filepath.Join("testdata", "kernels_emu", "harness.cpp"))
	if out, err := exec.Command(gxx, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the emulation: %v\n%s", err, out)
	}

	s := &emuScript{dir: dir, rng: rand.New(rand.NewPCG(1, 2))}
	emuElementwiseCases(s)
	emuActivationCases(s)
	emuReduceCases(s)
	emuLossCases(s)
	emuOptimCases(s)
	emuRandomCases(s)
	emuConvCases(s)
	emuNormCases(s)
	emuAttentionCases(s)
	emuEmbeddingCases(s)

	if re := os.Getenv("KILN_KERNELS_EMU_RUN"); re != "" {
		// Only the cases whose names match (while working on one kernel).
		keep := regexp.MustCompile(re)
		var cs []*emuCase
		for _, c := range s.cases {
			if keep.MatchString(c.name) {
				cs = append(cs, c)
			}
		}
		s.cases = cs
	}
	for _, c := range s.cases {
		s.script.Write(c.script.Bytes())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(s.script.Bytes())
	cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Results stream in as the harness finishes each case; the slowest are
	// logged, to keep the emulation's run time in check.
	type timing struct {
		name string
		d    time.Duration
	}
	var slow []timing
	done, last := 0, time.Now()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL") {
			t.Errorf("emulation: %s", line)
			continue
		}
		if done < len(s.cases) && line == "ok "+s.cases[done].name {
			now := time.Now()
			slow = append(slow, timing{s.cases[done].name, now.Sub(last)})
			last = now
			s.cases[done].finish(t)
			done++
			continue
		}
		t.Errorf("unexpected harness output %q", line)
	}
	runErr := cmd.Wait()
	sort.Slice(slow, func(i, j int) bool { return slow[i].d > slow[j].d })
	for _, x := range slow[:min(len(slow), 5)] {
		t.Logf("slow: %v %s", x.d.Round(time.Millisecond), x.name)
	}
	if done != len(s.cases) {
		at := "(none)"
		if done < len(s.cases) {
			at = s.cases[done].name
		}
		t.Fatalf("harness stopped after %d of %d cases, in case %q (%v)\n%s", done, len(s.cases), at, runErr, emuTail(stderr.String(), 6000))
	}
	if runErr != nil {
		t.Fatalf("harness: %v\n%s", runErr, emuTail(stderr.String(), 6000))
	}
	launches := strings.Count(s.script.String(), "\nlaunch ")
	t.Logf("%d cases, %d launches emulated", len(s.cases), launches)
}

func emuTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ---------------------------------------------------------------------------
// The script and its cases

type emuScript struct {
	dir    string
	rng    *rand.Rand
	script bytes.Buffer
	cases  []*emuCase
}

type emuBuf struct {
	id     string
	dt     byte // 'f' float32, 'i' int32, 'd' float64
	off, n int
	init   []byte // all off+n elements as loaded
	out    []byte // all off+n elements as dumped
	dump   bool
}

type emuCase struct {
	s      *emuScript
	name   string
	seq    int          // its number, for file names
	script bytes.Buffer // its commands for the harness
	bufs   map[string]*emuBuf
	order  []string
	check  func(c *emuCase)
	errs   []string
	nerrs  int
	failed bool
}

// The value in front of a view (must survive) and the poison of outputs (a
// NaN with a payload no kernel computes).
const (
	emuGuard     = float32(-12345.678)
	emuPoison    = uint32(0x7fc0dead)
	emuPoisonI32 = int32(-777777)
)

var emuPoison64 = math.Float64frombits(0x7ff80000deadbeef)

func (s *emuScript) begin(format string, a ...any) *emuCase {
	c := &emuCase{s: s, name: fmt.Sprintf(format, a...), seq: len(s.cases), bufs: map[string]*emuBuf{}}
	s.cases = append(s.cases, c)
	fmt.Fprintf(&c.script, "case %s\n", c.name)
	return c
}

func (c *emuCase) addBuf(id string, dt byte, off, n int, data []byte) {
	b := &emuBuf{id: id, dt: dt, off: off, n: n, init: data}
	path := filepath.Join(c.s.dir, fmt.Sprintf("c%d_%s.in", c.seq, id))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(err)
	}
	c.bufs[id] = b
	c.order = append(c.order, id)
	fmt.Fprintf(&c.script, "buf %s %c %d %d %s\n", id, dt, off, n, path)
}

// f32 places vals at element off of a fresh buffer (guards in front) and
// returns id's pointer slot. Its contents come back after the launches.
func (c *emuCase) f32(id string, off int, vals []float32) string {
	data := make([]byte, 4*(off+len(vals)))
	for i := 0; i < off; i++ {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(emuGuard))
	}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(data[4*(off+i):], math.Float32bits(v))
	}
	c.addBuf(id, 'f', off, len(vals), data)
	c.bufs[id].dump = true
	return "@" + id
}

// poisoned is an output buffer of n float32 filled with the poison.
func (c *emuCase) poisoned(id string, off, n int) string {
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(emuPoison)
	}
	return c.f32(id, off, v)
}

func (c *emuCase) i32(id string, off int, vals []int32) string {
	data := make([]byte, 4*(off+len(vals)))
	for i := 0; i < off; i++ {
		binary.LittleEndian.PutUint32(data[4*i:], 0xffffff9d) // -99
	}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(data[4*(off+i):], uint32(v))
	}
	c.addBuf(id, 'i', off, len(vals), data)
	c.bufs[id].dump = true
	return "@" + id
}

// workspace is a float64 scratch buffer of n elements filled with NaN, as
// the backend's shared workspace may hold anything.
func (c *emuCase) workspace(id string, n int) string {
	data := make([]byte, 8*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(emuPoison64))
	}
	c.addBuf(id, 'd', 0, n, data)
	return "@" + id
}

// launch queues kernel with grid × block threads and the argument slots
// args: uint64 values (the emuArgX encoders below, as device/cuda passes
// them) or "@id" pointers.
func (c *emuCase) launch(kernel string, grid [3]uint32, block uint32, args ...any) {
	var b strings.Builder
	fmt.Fprintf(&b, "launch %s %d %d %d %d", kernel, grid[0], grid[1], grid[2], block)
	for _, a := range args {
		switch v := a.(type) {
		case uint64:
			fmt.Fprintf(&b, " %d", v)
		case string:
			b.WriteString(" " + v)
		default:
			panic(fmt.Sprintf("bad slot %T", a))
		}
	}
	c.script.WriteString(b.String() + "\n")
}

// launch1 is device/cuda's launch: a 1-D grid of blocks of 256.
func (c *emuCase) launch1(kernel string, grid uint32, args ...any) {
	c.launch(kernel, [3]uint32{grid, 1, 1}, emuBlock, args...)
}

// done ends the case's script; check runs once the harness has finished it.
func (c *emuCase) done(check func(c *emuCase)) {
	for _, id := range c.order {
		if b := c.bufs[id]; b.dump {
			fmt.Fprintf(&c.script, "dump %s %s\n", id, c.outPath(id))
		}
	}
	c.script.WriteString("end\n")
	c.check = check
}

func (c *emuCase) outPath(id string) string {
	return filepath.Join(c.s.dir, fmt.Sprintf("c%d_%s.out", c.seq, id))
}

func (c *emuCase) finish(t *testing.T) {
	t.Helper()
	for _, id := range c.order {
		b := c.bufs[id]
		if !b.dump {
			continue
		}
		data, err := os.ReadFile(c.outPath(id))
		if err != nil || len(data) != len(b.init) {
			c.errorf("%s: dump missing or of the wrong size (%v)", id, err)
			continue
		}
		b.out = data
		if !bytes.Equal(data[:4*b.off], b.init[:4*b.off]) {
			c.errorf("%s: an element in front of the view (offset %d) was written", id, b.off)
		}
	}
	if c.check != nil && !c.failed {
		c.check(c)
	}
	if c.nerrs > 0 {
		more := ""
		if c.nerrs > len(c.errs) {
			more = fmt.Sprintf("\n\t… %d more", c.nerrs-len(c.errs))
		}
		t.Errorf("%s:\n\t%s%s", c.name, strings.Join(c.errs, "\n\t"), more)
	}
}

func (c *emuCase) errorf(format string, a ...any) {
	c.nerrs++
	if len(c.errs) < 6 {
		c.errs = append(c.errs, fmt.Sprintf(format, a...))
	}
}

// outF32 is the n elements of buffer id (from its offset) after the case.
func (c *emuCase) outF32(id string) []float32 {
	b := c.bufs[id]
	v := make([]float32, b.n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b.out[4*(b.off+i):]))
	}
	return v
}

func (c *emuCase) outI32(id string) []int32 {
	b := c.bufs[id]
	v := make([]int32, b.n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b.out[4*(b.off+i):]))
	}
	return v
}

// ---------------------------------------------------------------------------
// Comparisons

// emuUlps is the distance between a and b in units in the last place of
// float32 (0 for +0 and -0).
func emuUlps(a, b float32) uint64 {
	ord := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&0x80000000 != 0 {
			return -(u & 0x7fffffff)
		}
		return u
	}
	d := ord(a) - ord(b)
	if d < 0 {
		d = -d
	}
	return uint64(d)
}

func emuIsPoison(f float32) bool { return math.Float32bits(f) == emuPoison }

// expect checks got against want: a NaN want needs a NaN (not the poison),
// otherwise got must be within maxUlps of want, or within abs of it.
func (c *emuCase) expect(what string, i int, got, want float32, maxUlps uint64, abs float64) {
	switch {
	case emuIsPoison(got):
		c.errorf("%s[%d] never written (want %g)", what, i, want)
	case want != want:
		if got == got {
			c.errorf("%s[%d] = %g, want NaN", what, i, got)
		}
	case got != got:
		c.errorf("%s[%d] = NaN, want %g", what, i, want)
	case emuUlps(got, want) <= maxUlps:
	case math.Abs(float64(got)-float64(want)) <= abs:
	default:
		c.errorf("%s[%d] = %.9g (%#08x), want %.9g (%#08x): %d ulps", what, i, got, math.Float32bits(got),
			want, math.Float32bits(want), emuUlps(got, want))
	}
}

func (c *emuCase) expectAll(what string, got, want []float32, maxUlps uint64, abs float64) {
	for i := range want {
		c.expect(what, i, got[i], want[i], maxUlps, abs)
	}
}

// ---------------------------------------------------------------------------
// Launch shapes: copies of device/cuda (launch.go, ops.go), which builds
// only with the cuda tag. Keep them in step.

const (
	emuBlock       = 256
	emuWarpsPerBlk = emuBlock / 32
	emuMaxPartials = 1024
)

// emuSMs are the GPU sizes emulated: the H200's 132 SMs, and small GPUs
// whose capped grids make every grid-stride loop take several turns.
var emuSMs = []int{132, 1, 2}

func emuGrid1D(sms int, work int64) uint32 {
	g := (work + emuBlock - 1) / emuBlock
	g = min(g, int64(sms)*8)
	return uint32(max(g, 1))
}

func emuRowGrid(rows int) uint32 { return uint32((rows + emuWarpsPerBlk - 1) / emuWarpsPerBlk) }

func emuVecWork(n int, v uint64) int64 {
	if v == 1 {
		return int64(max(n/4, 1))
	}
	return int64(n)
}

// emuPartials is the grid of the two-pass reductions and losses.
func emuPartials(n int) int {
	g := int(min(int64(emuMaxPartials), (int64(n)+4*emuBlock-1)/(4*emuBlock)))
	return max(g, 1)
}

// emuVec is device/cuda's vec: 1 when every pointer is 16-byte aligned.
// The harness allocates every buffer 256-byte aligned, as cuMemAlloc does,
// so a view at element off is aligned when off%4 == 0.
func emuVec(offs ...int) uint64 {
	for _, o := range offs {
		if o%4 != 0 {
			return 0
		}
	}
	return 1
}

func emuArgF32(v float32) uint64 { return uint64(math.Float32bits(v)) }
func emuArgF64(v float64) uint64 { return math.Float64bits(v) }
func emuArgI32(v int) uint64     { return uint64(uint32(int32(v))) }
func emuArgI64(v int) uint64     { return uint64(int64(v)) }
func emuArgU64(v uint64) uint64  { return v }
func emuArgBool(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

const emuNull = uint64(0)

// ---------------------------------------------------------------------------
// Inputs

func (s *emuScript) uniform(n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*s.rng.Float64())
	}
	return v
}

func (s *emuScript) normal(n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(std * s.rng.NormFloat64())
	}
	return v
}

// emuSizes are the element counts of the 1-D kernels: tiny, around the
// float4 width, not multiples of 4, and big enough that a capped grid
// loops.
var emuSizes = []int{1, 3, 4, 7, 8, 1000, 1001, 4099}

// emuShapes are rows×cols of the row and matrix kernels.
var emuShapes = [][2]int{{1, 1}, {7, 13}, {3, 1000}, {9, 32}, {17, 33}, {2, 5}, {40, 64}, {64, 10}, {33, 257}}

// ---------------------------------------------------------------------------
// elementwise.cu

func emuElementwiseCases(s *emuScript) {
	// Offsets of (a, b, out) views; -1 for out means out aliases a.
	offsets := [][3]int{{0, 0, 0}, {1, 1, 1}, {0, 4, 8}, {2, 0, 3}, {0, 0, -1}, {3, 3, -1}}
	type binop struct {
		name string
		f    func(a, b float32) float32
	}
	ops := []binop{
		{"add_f32", func(a, b float32) float32 { return a + b }},
		{"sub_f32", func(a, b float32) float32 { return a - b }},
		{"mul_f32", func(a, b float32) float32 { return a * b }},
	}
	k := 0
	for _, n := range emuSizes {
		for _, off := range offsets {
			sms := emuSMs[k%len(emuSMs)]
			k++
			for _, op := range ops {
				c := s.begin("%s n=%d offsets=%v sms=%d", op.name, n, off, sms)
				a, b := s.uniform(n, -4, 4), s.uniform(n, -4, 4)
				pa, pb := c.f32("a", off[0], a), c.f32("b", off[1], b)
				po, outID, oo := pa, "a", off[0]
				if off[2] >= 0 {
					po, outID, oo = c.poisoned("out", off[2], n), "out", off[2]
				}
				v := emuVec(off[0], off[1], oo)
				c.launch1(op.name, emuGrid1D(sms, emuVecWork(n, v)), pa, pb, po, emuArgI64(n), v)
				c.done(func(c *emuCase) {
					want := make([]float32, n)
					for i := range want {
						want[i] = op.f(a[i], b[i])
					}
					c.expectAll("out", c.outF32(outID), want, 0, 0)
					if outID != "b" {
						c.expectAll("b (input)", c.outF32("b"), b, 0, 0)
					}
				})
			}

			// scale_f32(alpha, x, out, n, vec); axpy_f32(alpha, x, y, n, vec)
			alpha := float32(-1.75)
			{
				c := s.begin("scale_f32 n=%d offsets=%v sms=%d", n, off, sms)
				x := s.uniform(n, -4, 4)
				px := c.f32("x", off[0], x)
				po, outID, oo := px, "x", off[0]
				if off[2] >= 0 {
					po, outID, oo = c.poisoned("out", off[2], n), "out", off[2]
				}
				v := emuVec(off[0], oo)
				c.launch1("scale_f32", emuGrid1D(sms, emuVecWork(n, v)), emuArgF32(alpha), px, po, emuArgI64(n), v)
				c.done(func(c *emuCase) {
					want := make([]float32, n)
					for i := range want {
						want[i] = alpha * x[i]
					}
					c.expectAll("out", c.outF32(outID), want, 0, 0)
				})

			}
			{
				c := s.begin("axpy_f32 n=%d offsets=%v sms=%d", n, off, sms)
				x, y := s.uniform(n, -4, 4), s.uniform(n, -4, 4)
				px, py := c.f32("x", off[0], x), c.f32("y", off[1], y)
				v := emuVec(off[0], off[1])
				c.launch1("axpy_f32", emuGrid1D(sms, emuVecWork(n, v)), emuArgF32(alpha), px, py, emuArgI64(n), v)
				c.done(func(c *emuCase) {
					want := make([]float32, n)
					for i := range want {
						want[i] = float32(alpha*x[i]) + y[i] // two roundings
					}
					c.expectAll("y", c.outF32("y"), want, 0, 0)
				})

				// fill_f32(x, n, v, vec)
			}
			{
				c := s.begin("fill_f32 n=%d offset=%d sms=%d", n, off[1], sms)
				px := c.poisoned("x", off[1], n)
				v := emuVec(off[1])
				fv := float32(-3.25)
				c.launch1("fill_f32", emuGrid1D(sms, emuVecWork(n, v)), px, emuArgI64(n), emuArgF32(fv), v)
				c.done(func(c *emuCase) {
					want := make([]float32, n)
					for i := range want {
						want[i] = fv
					}
					c.expectAll("x", c.outF32("x"), want, 0, 0)
				})
			}
		}
	}

	// add_bias_f32(x, bias, total, cols, vec) as AddBias launches it.
	shapes := append([][2]int{{5, 8}, {4, 4}, {2, 1000}, {300, 12}}, emuShapes...)
	for i, sh := range shapes {
		rows, cols := sh[0], sh[1]
		for j, off := range [][2]int{{0, 0}, {1, 2}, {4, 4}} {
			sms := emuSMs[(i+j)%len(emuSMs)]
			c := s.begin("add_bias_f32 %dx%d offsets=%v sms=%d", rows, cols, off, sms)
			x, bias := s.uniform(rows*cols, -4, 4), s.uniform(cols, -4, 4)
			px, pb := c.f32("x", off[0], x), c.f32("bias", off[1], bias)
			v := emuVec(off[0], off[1])
			if cols%4 != 0 {
				v = 0
			}
			total := rows * cols
			work := int64(total)
			if v == 1 {
				work = int64(total) / 4
			}
			c.launch1("add_bias_f32", emuGrid1D(sms, work), px, pb, emuArgI64(total), emuArgI32(cols), v)
			c.done(func(c *emuCase) {
				want := make([]float32, total)
				for i := range want {
					want[i] = x[i] + bias[i%cols]
				}
				c.expectAll("x", c.outF32("x"), want, 0, 0)
			})
		}
	}
}

// ---------------------------------------------------------------------------
// activations.cu

const (
	emuInvSqrt2    = 0.70710678118654752440
	emuInvSqrt2Pi  = 0.39894228040143267794
	emuSqrt2OverPi = 0.79788456080286535588
	emuGeluC       = 0.044715
)

func emuSigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// emuActRef is f(x) by the definitions (PyTorch's), in float64 rounded once.
func emuActRef(act device.Activation, alpha, x float32) float32 {
	z := float64(x)
	switch act {
	case device.ReLU:
		if x > 0 {
			return x
		}
		return 0
	case device.LeakyReLU:
		if x > 0 {
			return x
		}
		return alpha * x
	case device.Tanh:
		return float32(math.Tanh(z))
	case device.Sigmoid:
		return float32(emuSigmoid64(z))
	case device.GELU:
		return float32(0.5 * z * (1 + math.Erf(z*emuInvSqrt2)))
	case device.GELUTanh:
		return float32(0.5 * z * (1 + math.Tanh(emuSqrt2OverPi*(z+emuGeluC*z*z*z))))
	case device.SiLU:
		return float32(z * emuSigmoid64(z))
	case device.ELU:
		if x > 0 {
			return x
		}
		return float32(float64(alpha) * math.Expm1(z))
	}
	return x
}

// emuActGradRef is dy·f'(src): src is x, or y for ReLU/Tanh/Sigmoid when
// fromY.
func emuActGradRef(act device.Activation, alpha, src float32, fromY bool, dy float32) float32 {
	z, g := float64(src), float64(dy)
	switch act {
	case device.ReLU:
		if src > 0 {
			return dy
		}
		return 0
	case device.LeakyReLU:
		if src > 0 {
			return dy
		}
		return alpha * dy
	case device.Tanh:
		if fromY {
			return dy * (1 - src*src)
		}
		t := math.Tanh(z)
		return float32(g * (1 - t*t))
	case device.Sigmoid:
		if fromY {
			return dy * src * (1 - src)
		}
		s := emuSigmoid64(z)
		return float32(g * s * (1 - s))
	case device.GELU:
		cdf := 0.5 * (1 + math.Erf(z*emuInvSqrt2))
		pdf := emuInvSqrt2Pi * math.Exp(-0.5*z*z)
		return float32(g * (cdf + z*pdf))
	case device.GELUTanh:
		t := math.Tanh(emuSqrt2OverPi * (z + emuGeluC*z*z*z))
		d := 0.5*(1+t) + 0.5*z*(1-t*t)*emuSqrt2OverPi*(1+3*emuGeluC*z*z)
		return float32(g * d)
	case device.SiLU:
		s := emuSigmoid64(z)
		return float32(g * s * (1 + z*(1-s)))
	case device.ELU:
		if src > 0 {
			return dy
		}
		return float32(g * float64(alpha) * math.Exp(z))
	}
	return dy
}

// actInputs are n activation inputs with the edge values first.
func (s *emuScript) actInputs(n int) []float32 {
	special := []float32{-0.5, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 3, -3, 20, -20, 100, -100, 9, -9, 0.5}
	x := s.normal(n, 3)
	copy(x, special)
	return x
}

func emuActivationCases(s *emuScript) {
	acts := []device.Activation{device.Identity, device.ReLU, device.LeakyReLU, device.Tanh, device.Sigmoid, device.GELU, device.GELUTanh,
		device.SiLU, device.ELU}
	sizes := []int{1, 7, 1000, 1037}
	k := 0
	for _, act := range acts {
		for _, n := range sizes {
			sms := emuSMs[k%len(emuSMs)]
			k++
			alpha := float32(0.01)
			if k%2 == 0 {
				alpha = 0.2
			}
			if act == device.ELU {
				alpha = 1 // PyTorch's default, and another value
				if k%2 == 0 {
					alpha = 0.5
				}
			}
			exactFwd := act <= device.LeakyReLU
			// Forward: activate_f32(act, alpha, x, y, n), out of place and in place.
			for _, inPlace := range []bool{false, true} {
				c := s.begin("activate_f32 %v n=%d in-place=%v sms=%d", act, n, inPlace, sms)
				x := s.actInputs(n)
				off := k % 3
				px := c.f32("x", off, x)
				py, yID := px, "x"
				if !inPlace {
					py, yID = c.poisoned("y", (k+1)%5, n), "y"
				}
				c.launch1("activate_f32", emuGrid1D(sms, int64(n)), emuArgI32(int(act)), emuArgF32(alpha), px, py, emuArgI64(n))
				c.done(func(c *emuCase) {
					got := c.outF32(yID)
					for i := range x {
						want := emuActRef(act, alpha, x[i])
						if exactFwd {
							c.expect("y", i, got[i], want, 0, 0)
						} else {
							// One ulp for the double transcendentals (the
							// C library's and Go's may differ in the last
							// bit), and an absolute slack where 1+erf or
							// 1+tanh cancels.
							c.expect("y", i, got[i], want, 1, 1e-15*(1+math.Abs(float64(x[i]))))
						}
					}
				})
			}
			// Backward, with the buffers ActivateGrad may be given: x only,
			// y only, both (the backend picks src and fromY).
			for gi, given := range [][2]bool{{true, false}, {false, true}, {true, true}} {
				xGiven, yGiven := given[0], given[1]
				needX, needY := false, false
				switch act {
				case device.ReLU:
					needX = xGiven || !yGiven
					needY = !needX
				case device.LeakyReLU, device.GELU, device.GELUTanh, device.SiLU, device.ELU:
					needX = true
				case device.Tanh, device.Sigmoid:
					needY = yGiven || !xGiven
					needX = !needY
				}
				if (needX && !xGiven) || (needY && !yGiven) {
					continue // the backend refuses the call
				}
				alias := gi == 2
				c := s.begin("activate_grad_f32 %v n=%d x=%v y=%v dx=dy:%v sms=%d", act, n, xGiven, yGiven, alias, sms)
				x := s.actInputs(n)
				y := make([]float32, n)
				for i := range x {
					y[i] = emuActRef(act, alpha, x[i])
				}
				dy := s.uniform(n, -2, 2)
				var src any = emuNull
				var srcVals []float32
				if needX {
					src = c.f32("x", gi, x)
					srcVals = x
				}
				if needY {
					src = c.f32("y", gi+1, y)
					srcVals = y
				}
				pdy := c.f32("dy", 4, dy)
				pdx, dxID := pdy, "dy"
				if !alias {
					pdx, dxID = c.poisoned("dx", gi*2, n), "dx"
				}
				c.launch1("activate_grad_f32", emuGrid1D(sms, int64(n)), emuArgI32(int(act)), emuArgF32(alpha), src, emuArgBool(needY),
					pdy, pdx, emuArgI64(n))
				c.done(func(c *emuCase) {
					got := c.outF32(dxID)
					exact := act <= device.LeakyReLU || ((act == device.Tanh || act == device.Sigmoid) && needY)
					for i := range dy {
						var sv float32
						if srcVals != nil {
							sv = srcVals[i]
						}
						want := emuActGradRef(act, alpha, sv, needY, dy[i])
						if exact {
							c.expect("dx", i, got[i], want, 0, 0)
						} else {
							c.expect("dx", i, got[i], want, 1, 1e-15*(1+math.Abs(float64(x[i])))*(1+math.Abs(float64(dy[i]))))
						}
					}
				})
			}
		}
	}

	// softmax_rows_f32(x, y, rows, cols), grid ceil(rows/8).
	for i, sh := range emuShapes {
		rows, cols := sh[0], sh[1]
		inPlace := i%3 == 2
		c := s.begin("softmax_rows_f32 %dx%d in-place=%v", rows, cols, inPlace)
		x := s.normal(rows*cols, 4)
		for r := 0; r < rows; r++ { // rows at different levels, some large
			shift := float32(r%4) * 30
			for j := 0; j < cols; j++ {
				x[r*cols+j] += shift
			}
		}
		px := c.f32("x", i%4, x)
		py, yID := px, "x"
		if !inPlace {
			py, yID = c.poisoned("y", (i+1)%4, rows*cols), "y"
		}
		c.launch1("softmax_rows_f32", emuRowGrid(rows), px, py, emuArgI32(rows), emuArgI32(cols))
		c.done(func(c *emuCase) {
			got := c.outF32(yID)
			for r := 0; r < rows; r++ {
				xr := x[r*cols : (r+1)*cols]
				// As documented: m in float32, e_j = exp(double(x_j - m)),
				// the sum in double, y_j = float(double(float(e_j))/sum).
				m := xr[0]
				for _, v := range xr {
					m = max(m, v)
				}
				sum, exact := 0.0, 0.0
				for _, v := range xr {
					sum += math.Exp(float64(v - m))
					exact += math.Exp(float64(v) - float64(m))
				}
				rowSum := 0.0
				for j, v := range xr {
					e := float32(math.Exp(float64(v - m)))
					want := float32(float64(e) * (1 / sum))
					c.expect(fmt.Sprintf("y[%d]", r), j, got[r*cols+j], want, 2, 0)
					rowSum += float64(got[r*cols+j])
					// and the true softmax, loosely
					if d := math.Abs(float64(got[r*cols+j]) - math.Exp(float64(v)-float64(m))/exact); d > 1e-6 {
						c.errorf("y[%d][%d] = %g, softmax %g", r, j, got[r*cols+j], math.Exp(float64(v)-float64(m))/exact)
					}
				}
				if math.Abs(rowSum-1) > 1e-5 {
					c.errorf("row %d sums to %g", r, rowSum)
				}
			}
		})
	}

	// softmax_grad_rows_f32(y, dy, dx, rows, cols).
	for i, sh := range emuShapes {
		rows, cols := sh[0], sh[1]
		alias := i%3 == 1
		c := s.begin("softmax_grad_rows_f32 %dx%d dx=dy:%v", rows, cols, alias)
		y := s.uniform(rows*cols, 0, 1)
		dy := s.normal(rows*cols, 1)
		py := c.f32("y", i%4, y)
		pdy := c.f32("dy", (i+2)%4, dy)
		pdx, dxID := pdy, "dy"
		if !alias {
			pdx, dxID = c.poisoned("dx", (i+1)%3, rows*cols), "dx"
		}
		c.launch1("softmax_grad_rows_f32", emuRowGrid(rows), py, pdy, pdx, emuArgI32(rows), emuArgI32(cols))
		c.done(func(c *emuCase) {
			got := c.outF32(dxID)
			for r := 0; r < rows; r++ {
				dot, mag := 0.0, 0.0
				for j := 0; j < cols; j++ {
					dot += float64(y[r*cols+j]) * float64(dy[r*cols+j])
					mag += math.Abs(float64(y[r*cols+j]) * float64(dy[r*cols+j]))
				}
				for j := 0; j < cols; j++ {
					k := r*cols + j
					want := float64(y[k]) * (float64(dy[k]) - dot)
					// float(dot), dy - dt and y·(…) each round once.
					bound := math.Abs(float64(y[k])) * (math.Abs(float64(dy[k])) + mag) * 3 * 0x1p-24
					if g := got[k]; emuIsPoison(g) || !(math.Abs(float64(g)-want) <= bound+1e-30) {
						c.errorf("dx[%d][%d] = %g, want %g (±%.2g)", r, j, g, want, bound)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// reduce.cu

func emuReduceCases(s *emuScript) {
	// reduce_partial_f32 + reduce_final_f64, as Sum and SumSquares launch them.
	sizes := []int{1, 3, 4, 7, 1000, 1001, 5000, 70001}
	betas := []float32{0, 1, 0.5}
	k := 0
	for _, n := range sizes {
		for _, squares := range []bool{false, true} {
			off := k % 5
			beta := betas[k%len(betas)]
			k++
			name := "Sum"
			if squares {
				name = "SumSquares"
			}
			c := s.begin("%s (reduce_partial_f32, reduce_final_f64) n=%d offset=%d beta=%g", name, n, off, beta)
			x := s.uniform(n, -1, 3)
			px := c.f32("x", off, x)
			out0 := float32(2.5)
			var pout string
			if beta == 0 {
				pout = c.poisoned("out", 1, 1) // must not be read
			} else {
				pout = c.f32("out", 1, []float32{out0})
			}
			g := emuPartials(n)
			ws := c.workspace("ws", g)
			c.launch1("reduce_partial_f32", uint32(g), px, emuArgI64(n), emuArgBool(squares), emuVec(off), ws)
			c.launch1("reduce_final_f64", 1, ws, emuArgI32(g), pout, emuArgF64(1), emuArgF32(beta))
			c.done(func(c *emuCase) {
				sum := 0.0
				for _, v := range x {
					if squares {
						sum += float64(v) * float64(v)
					} else {
						sum += float64(v)
					}
				}
				if beta != 0 {
					sum += float64(beta) * float64(out0)
				}
				c.expect("out", 0, c.outF32("out")[0], float32(sum), 1, 0)
			})
		}
	}

	// BiasGrad: bias_grad_direct_f32, or bias_grad_partial_f32 then
	// bias_grad_final_f32, as planned for the GPU's size.
	shapes := append([][2]int{{200, 7}, {1000, 3}, {100, 300}, {32, 1}, {31, 600}, {2000, 513}}, emuShapes...)
	for i, sh := range shapes {
		rows, cols := sh[0], sh[1]
		for j, sms := range emuSMs {
			if rows*cols > 100000 && sms != 132 {
				continue
			}
			beta := betas[(i+j)%len(betas)]
			offs := [2]int{(i + j) % 3, (i + 2*j) % 5}
			colBlocks := (cols + emuBlock - 1) / emuBlock
			chunks := 1
			if colBlocks < 2*sms && rows >= 32 {
				chunks = min((rows+15)/16, max(1, 4*sms/colBlocks), 1024)
			}
			rowsPer := (rows + chunks - 1) / chunks
			chunks = (rows + rowsPer - 1) / rowsPer
			c := s.begin("BiasGrad %dx%d sms=%d chunks=%d beta=%g offsets=%v", rows, cols, sms, chunks, beta, offs)
			dy := s.uniform(rows*cols, -1, 2)
			db0 := s.uniform(cols, -1, 1)
			pdy := c.f32("dy", offs[0], dy)
			var pdb string
			if beta == 0 {
				pdb = c.poisoned("db", offs[1], cols)
			} else {
				pdb = c.f32("db", offs[1], db0)
			}
			if chunks == 1 {
				c.launch1("bias_grad_direct_f32", uint32(colBlocks), pdy, emuArgI32(rows), emuArgI32(cols), pdb, emuArgF32(beta))
			} else {
				ws := c.workspace("ws", chunks*cols)
				c.launch("bias_grad_partial_f32", [3]uint32{uint32(colBlocks), uint32(chunks), 1}, emuBlock,
					pdy, emuArgI32(rows), emuArgI32(cols), emuArgI32(rowsPer), ws)
				c.launch1("bias_grad_final_f32", uint32(colBlocks), ws, emuArgI32(chunks), emuArgI32(cols), pdb, emuArgF32(beta))
			}
			c.done(func(c *emuCase) {
				got := c.outF32("db")
				for j := 0; j < cols; j++ {
					sum := 0.0
					for r := 0; r < rows; r++ {
						sum += float64(dy[r*cols+j])
					}
					if beta != 0 {
						sum += float64(beta) * float64(db0[j])
					}
					c.expect("db", j, got[j], float32(sum), 1, 0)
				}
			})
		}
	}

	// clip_by_norm_f32(x, n, sumSq, maxNorm), grid-stride.
	type clipCase struct {
		sumSq, maxNorm float32
	}
	clips := []clipCase{
		{100, 1},                 // norm 10: scale by ~0.1
		{0.25, 1},                // norm 0.5: unchanged
		{1, 1 + 1e-6},            // coefficient exactly 1
		{2, 1.4142},              // just below 1
		{float32(math.NaN()), 1}, // NaN propagates
		{float32(math.Inf(1)), 1},
		{0, 0.5},
	}
	k = 0
	for _, n := range []int{1, 7, 1000, 3001} {
		for _, cc := range clips {
			sms := emuSMs[k%len(emuSMs)]
			off := k % 4
			k++
			c := s.begin("clip_by_norm_f32 n=%d sumSq=%g maxNorm=%g sms=%d offset=%d", n, cc.sumSq, cc.maxNorm, sms, off)
			x := s.uniform(n, -3, 3)
			px := c.f32("x", off, x)
			ps := c.f32("sumSq", 3, []float32{cc.sumSq})
			c.launch1("clip_by_norm_f32", emuGrid1D(sms, int64(n)), px, emuArgI64(n), ps, emuArgF32(cc.maxNorm))
			c.done(func(c *emuCase) {
				// torch.nn.utils.clip_grad_norm_ in float32:
				// coef = max_norm / (norm + 1e-6), clamped to 1.
				norm := float32(math.Sqrt(float64(cc.sumSq)))
				coef := cc.maxNorm / (norm + float32(1e-6))
				want := make([]float32, n)
				for i, v := range x {
					if coef >= 1 {
						want[i] = v
					} else {
						want[i] = v * coef
					}
				}
				c.expectAll("x", c.outF32("x"), want, 0, 0)
				if got := c.outF32("sumSq")[0]; math.Float32bits(got) != math.Float32bits(cc.sumSq) {
					c.errorf("sumSq changed to %g", got)
				}
			})
		}
	}

	// argmax_rows_f32(x, rows, cols, out): ties, NaNs, -Inf.
	for i, sh := range append([][2]int{{40, 2}, {5, 64}, {3, 1}}, emuShapes...) {
		rows, cols := sh[0], sh[1]
		c := s.begin("argmax_rows_f32 %dx%d", rows, cols)
		x := make([]float32, rows*cols)
		for j := range x {
			switch u := s.rng.IntN(20); {
			case u == 0:
				x[j] = float32(math.NaN())
			case u == 1:
				x[j] = float32(math.Inf(-1))
			default:
				x[j] = float32(s.rng.IntN(7) - 3) // many ties
			}
		}
		if rows > 2 {
			x[cols] = float32(math.NaN()) // NaN at column 0 of row 1
			for j := 0; j < cols; j++ {
				x[2*cols+j] = float32(math.NaN()) // an all-NaN row
			}
		}
		px := c.f32("x", i%4, x)
		pout := c.i32("out", (i+1)%3, func() []int32 {
			v := make([]int32, rows)
			for j := range v {
				v[j] = emuPoisonI32
			}
			return v
		}())
		c.launch1("argmax_rows_f32", emuRowGrid(rows), px, emuArgI32(rows), emuArgI32(cols), pout)
		c.done(func(c *emuCase) {
			got := c.outI32("out")
			for r := 0; r < rows; r++ {
				xr := x[r*cols : (r+1)*cols]
				best, bi := xr[0], 0
				for j, v := range xr {
					if v > best {
						best, bi = v, j
					}
				}
				if got[r] != int32(bi) {
					c.errorf("out[%d] = %d, want %d (row %v)", r, got[r], bi, xr[:min(cols, 40)])
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// losses.cu

func emuLossCases(s *emuScript) {
	kinds := []device.LossKind{device.MSE, device.HalfSSE, device.BCE, device.BCEWithLogits}
	shapes := [][2]int{{1, 1}, {7, 13}, {3, 1000}, {64, 100}, {2, 5}, {130, 500}}
	k := 0
	for _, kind := range kinds {
		for _, sh := range shapes {
			rows, cols := sh[0], sh[1]
			n := rows * cols
			for gmode := 0; gmode < 3; gmode++ { // 0 no grad, 1 grad, 2 grad aliases pred
				if n > 50000 && (gmode != 1 || kind != device.MSE && kind != device.BCE) {
					continue
				}
				k++
				c := s.begin("Loss %v %dx%d grad=%s", kind, rows, cols, []string{"nil", "separate", "aliases pred"}[gmode])
				var h, y []float32
				switch kind {
				case device.MSE, device.HalfSSE:
					h, y = s.normal(n, 2), s.normal(n, 2)
				case device.BCE:
					h, y = s.uniform(n, 0, 1), s.uniform(n, 0, 1)
					for i := range h { // clamped logs and both ends
						switch i % 11 {
						case 3:
							h[i] = 0
						case 5:
							h[i] = 1
						case 7:
							y[i] = 1
						case 9:
							y[i] = 0
						}
					}
				case device.BCEWithLogits:
					h, y = s.normal(n, 5), s.uniform(n, 0, 1)
					if n > 3 {
						h[0], h[1], h[2] = 60, -60, 0
					}
				}
				ph := c.f32("h", k%4, h)
				py := c.f32("y", (k+1)%4, y)
				grad, gradID := emuNull, ""
				var gslot any = grad
				switch gmode {
				case 1:
					gslot, gradID = c.poisoned("grad", (k+2)%4, n), "grad"
				case 2:
					gslot, gradID = ph, "h"
				}
				lossSlot := c.poisoned("loss", 1, 1)
				var norm float64
				switch kind {
				case device.MSE, device.BCE, device.BCEWithLogits:
					norm = float64(n)
				case device.HalfSSE:
					norm = 2 * float64(rows)
				}
				inv := 1 / norm
				g := emuPartials(n)
				ws := c.workspace("ws", g)
				c.launch1("loss_elem_f32", uint32(g), emuArgI32(int(kind)), ph, py, emuArgI64(n), gslot, emuArgF64(inv), ws)
				c.launch1("reduce_final_f64", 1, ws, emuArgI32(g), lossSlot, emuArgF64(norm), emuArgF32(0))
				c.done(func(c *emuCase) {
					sum := 0.0
					want := make([]float32, n)
					for i := range h {
						hd, yd := float64(h[i]), float64(y[i])
						switch kind {
						case device.MSE, device.HalfSSE:
							sum += (hd - yd) * (hd - yd)
							want[i] = float32(2 * (hd - yd) / norm)
						case device.BCE:
							lp := math.Max(math.Log(hd), -100)
							l1p := math.Max(math.Log(1-hd), -100)
							sum += -(yd*lp + (1-yd)*l1p)
							want[i] = float32((hd - yd) / math.Max((1-hd)*hd, 1e-12) / norm)
						case device.BCEWithLogits:
							sum += math.Max(hd, 0) - hd*yd + math.Log1p(math.Exp(-math.Abs(hd)))
							want[i] = float32((emuSigmoid64(hd) - yd) / norm)
						}
					}
					c.expect("loss", 0, c.outF32("loss")[0], float32(sum/norm), 1, 0)
					if gradID != "" {
						c.expectAll("grad", c.outF32(gradID), want, 1, 0)
					}
					if gradID != "h" {
						c.expectAll("h (input)", c.outF32("h"), h, 0, 0)
					}
				})
			}
		}
	}

	// xent_rows_f32 then reduce_final_f64 over the row losses.
	for i, sh := range [][2]int{{1, 1}, {7, 13}, {3, 1000}, {17, 10}, {64, 10}, {9, 33}, {8, 32}, {2, 2}} {
		rows, cols := sh[0], sh[1]
		for gmode := 0; gmode < 3; gmode++ {
			c := s.begin("Loss cross_entropy %dx%d grad=%s", rows, cols, []string{"nil", "separate", "aliases pred"}[gmode])
			x := s.normal(rows*cols, 3)
			for r := 0; r < rows; r++ {
				x[r*cols] += float32(r%3) * 40
			}
			labels := make([]int32, rows)
			for r := range labels {
				labels[r] = int32(s.rng.IntN(cols))
			}
			px := c.f32("x", (i+gmode)%4, x)
			pl := c.i32("labels", (i+1)%3, labels)
			var gslot any = emuNull
			gradID := ""
			switch gmode {
			case 1:
				gslot, gradID = c.poisoned("grad", (i+2)%4, rows*cols), "grad"
			case 2:
				gslot, gradID = px, "x"
			}
			lossSlot := c.poisoned("loss", 0, 1)
			norm := float64(rows)
			ws := c.workspace("ws", rows)
			c.launch1("xent_rows_f32", emuRowGrid(rows), px, pl, emuArgI32(rows), emuArgI32(cols), gslot, emuArgF64(1/norm), ws)
			c.launch1("reduce_final_f64", 1, ws, emuArgI32(rows), lossSlot, emuArgF64(norm), emuArgF32(0))
			c.done(func(c *emuCase) {
				sum := 0.0
				want := make([]float32, rows*cols)
				for r := 0; r < rows; r++ {
					xr := x[r*cols : (r+1)*cols]
					m := math.Inf(-1)
					for _, v := range xr {
						m = math.Max(m, float64(v))
					}
					se := 0.0
					for _, v := range xr {
						se += math.Exp(float64(v) - m)
					}
					lse := m + math.Log(se)
					sum += lse - float64(xr[labels[r]])
					for j, v := range xr {
						p := math.Exp(float64(v) - lse)
						if j == int(labels[r]) {
							p -= 1
						}
						want[r*cols+j] = float32(p / norm)
					}
				}
				c.expect("loss", 0, c.outF32("loss")[0], float32(sum/norm), 1, 0)
				if gradID != "" {
					c.expectAll("grad", c.outF32(gradID), want, 1, 1e-15)
				}
			})
		}
	}

	// Labels outside [0, cols) (the host checks them first; the kernel
	// promises a NaN row and no wild read).
	{
		rows, cols := 4, 37
		c := s.begin("xent_rows_f32 invalid labels %dx%d", rows, cols)
		x := s.normal(rows*cols, 1)
		labels := []int32{0, -1, int32(cols), 3}
		px := c.f32("x", 0, x)
		pl := c.i32("labels", 0, labels)
		pg := c.poisoned("grad", 1, rows*cols)
		ws := c.workspace("ws", rows)
		c.launch1("xent_rows_f32", emuRowGrid(rows), px, pl, emuArgI32(rows), emuArgI32(cols), pg, emuArgF64(0.25), ws)
		c.done(func(c *emuCase) {
			g := c.outF32("grad")
			for r := 0; r < rows; r++ {
				bad := labels[r] < 0 || int(labels[r]) >= cols
				for j := 0; j < cols; j++ {
					v := g[r*cols+j]
					if emuIsPoison(v) || (bad && v == v) || (!bad && v != v) {
						c.errorf("grad[%d][%d] = %g with label %d", r, j, v, labels[r])
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// optim.cu

func emuOptimCases(s *emuScript) {
	type sgdCase struct {
		cfg  device.SGDConfig
		step int
	}
	sgds := []sgdCase{
		{device.SGDConfig{LR: 0.1}, 1},
		{device.SGDConfig{LR: 0.1, WeightDecay: 0.01}, 4},
		{device.SGDConfig{LR: 0.05, Momentum: 0.9}, 1},
		{device.SGDConfig{LR: 0.05, Momentum: 0.9}, 2},
		{device.SGDConfig{LR: 0.05, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.01}, 3},
		{device.SGDConfig{LR: 0.05, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.01}, 1},
		{device.SGDConfig{LR: 0.01, Momentum: 0.8, Nesterov: true}, 1},
		{device.SGDConfig{LR: 0.01, Momentum: 0.8, Nesterov: true, WeightDecay: 0.001}, 7},
	}
	k := 0
	for _, n := range []int{1, 7, 1000, 1001, 3001} {
		for _, sc := range sgds {
			sms := emuSMs[k%len(emuSMs)]
			k++
			cfg := sc.cfg
			c := s.begin("sgd_step_f32 n=%d %+v step=%d sms=%d", n, cfg, sc.step, sms)
			p, g := s.uniform(n, -2, 2), s.uniform(n, -1, 1)
			v := s.uniform(n, -1, 1)
			pp, pg := c.f32("p", k%4, p), c.f32("g", (k+1)%4, g)
			vslot := emuNull
			var vs any = vslot
			if cfg.Momentum != 0 {
				vs = c.f32("v", (k+2)%4, v)
			}
			damp1 := 1 - cfg.Dampening
			c.launch1("sgd_step_f32", emuGrid1D(sms, int64(n)), pp, pg, vs, emuArgI64(n), emuArgF32(cfg.LR), emuArgF32(cfg.Momentum),
				emuArgF32(damp1), emuArgF32(cfg.WeightDecay), emuArgBool(sc.step == 1), emuArgBool(cfg.Nesterov))
			c.done(func(c *emuCase) {
				// torch.optim.SGD, each float32 operation rounded.
				wantP, wantV := make([]float32, n), make([]float32, n)
				for i := range p {
					gi := g[i]
					if cfg.WeightDecay != 0 {
						gi = gi + float32(cfg.WeightDecay*p[i])
					}
					if cfg.Momentum != 0 {
						var vi float32
						if sc.step == 1 {
							vi = gi
						} else {
							vi = float32(cfg.Momentum*v[i]) + float32(damp1*gi)
						}
						wantV[i] = vi
						if cfg.Nesterov {
							gi = gi + float32(cfg.Momentum*vi)
						} else {
							gi = vi
						}
					}
					wantP[i] = p[i] - float32(cfg.LR*gi)
				}
				c.expectAll("p", c.outF32("p"), wantP, 0, 0)
				if cfg.Momentum != 0 {
					c.expectAll("v", c.outF32("v"), wantV, 0, 0)
				}
				c.expectAll("g (input)", c.outF32("g"), g, 0, 0)
			})
		}
	}

	type adamCase struct {
		cfg  device.AdamConfig
		step int
	}
	adams := []adamCase{
		{device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, 1},
		{device.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}, 3},
		{device.AdamConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Decoupled: true}, 1},
		{device.AdamConfig{LR: 1e-2, Beta1: 0.5, Beta2: 0.9, Eps: 1e-6, WeightDecay: 0.1, Decoupled: true}, 10},
		{device.AdamConfig{LR: 3e-4, Beta1: 0, Beta2: 0.99, Eps: 1e-8}, 2},
	}
	for _, n := range []int{1, 7, 1000, 1001, 3001} {
		for _, ac := range adams {
			sms := emuSMs[k%len(emuSMs)]
			k++
			cfg := ac.cfg
			c := s.begin("adam_step_f32 n=%d %+v step=%d sms=%d", n, cfg, ac.step, sms)
			p, g := s.uniform(n, -2, 2), s.uniform(n, -1, 1)
			m, v := make([]float32, n), make([]float32, n)
			if ac.step > 1 {
				m, v = s.uniform(n, -0.3, 0.3), s.uniform(n, 0, 0.2)
			}
			pp, pg := c.f32("p", k%4, p), c.f32("g", (k+1)%4, g)
			pm, pv := c.f32("m", (k+2)%4, m), c.f32("v", (k+3)%4, v)
			// The host's scalars, as AdamStep computes them.
			t := float64(ac.step)
			lr := float64(cfg.LR)
			bc1 := 1 - math.Pow(float64(cfg.Beta1), t)
			bc2 := 1 - math.Pow(float64(cfg.Beta2), t)
			sq2 := math.Sqrt(bc2)
			stepSize := lr / bc1 * sq2
			epsS := float64(cfg.Eps) * sq2
			b1, b2 := float64(cfg.Beta1), float64(cfg.Beta2)
			wd := float64(cfg.WeightDecay)
			decay := 1 - lr*wd
			c.launch1("adam_step_f32", emuGrid1D(sms, int64(n)), pp, pg, pm, pv, emuArgI64(n), emuArgF64(stepSize),
				emuArgF64(epsS), emuArgF64(b1), emuArgF64(b2), emuArgF64(1-b1), emuArgF64(1-b2), emuArgF64(wd),
				emuArgF64(decay), emuArgBool(cfg.Decoupled))
			c.done(func(c *emuCase) {
				gotP, gotM, gotV := c.outF32("p"), c.outF32("m"), c.outF32("v")
				wantP, wantM, wantV := make([]float32, n), make([]float32, n), make([]float32, n)
				for i := range p {
					// The kernel's documented sequence in float64, one
					// rounding of each output, exactly.
					pi, gi := float64(p[i]), float64(g[i])
					if wd != 0 {
						if cfg.Decoupled {
							pi = pi * decay
						} else {
							gi = gi + float64(wd*pi)
						}
					}
					mi := float64(b1*float64(m[i])) + float64((1-b1)*gi)
					vi := float64(b2*float64(v[i])) + float64(float64((1-b2)*gi)*gi)
					wantP[i] = float32(pi - float64(stepSize*mi)/(math.Sqrt(vi)+epsS))
					wantM[i], wantV[i] = float32(mi), float32(vi)

					// torch.optim.Adam / AdamW as written, loosely: catches
					// a wrong formula, not a rounding.
					p64, g64 := float64(p[i]), float64(g[i])
					if wd != 0 {
						if cfg.Decoupled {
							p64 *= 1 - lr*wd
						} else {
							g64 += wd * p64
						}
					}
					m64 := b1*float64(m[i]) + (1-b1)*g64
					v64 := b2*float64(v[i]) + (1-b2)*g64*g64
					p64 -= lr / bc1 * m64 / (math.Sqrt(v64)/sq2 + float64(cfg.Eps))
					if d := math.Abs(float64(gotP[i]) - p64); !(d <= 1e-6*(math.Abs(p64)+lr)) {
						c.errorf("p[%d] = %.9g, PyTorch's formula in float64 gives %.9g", i, gotP[i], p64)
					}
				}
				c.expectAll("p", gotP, wantP, 0, 0)
				c.expectAll("m", gotM, wantM, 0, 0)
				c.expectAll("v", gotV, wantV, 0, 0)
			})
		}
	}
}

// ---------------------------------------------------------------------------
// random.cu

func emuRandomCases(s *emuScript) {
	sizes := []int{1, 2, 3, 5, 7, 1000, 1001}
	offsets := []uint64{0, 1, 2, 3, 5, 6, 7, 1<<34 + 3, 1<<34 - 2}
	seeds := []uint64{0, 42, 0xdeadbeefcafef00d}
	k := 0
	for _, n := range sizes {
		for _, offset := range offsets {
			sms := emuSMs[k%len(emuSMs)]
			seed := seeds[k%len(seeds)]
			view := k % 3
			k++
			nblk := (offset+uint64(n)+3)>>2 - offset>>2
			grid := emuGrid1D(sms, int64(nblk))

			ms := [][2]float32{{0, 1}, {1.5, 0.02}, {-2, 0}}[k%3]
			c := s.begin("rand_normal_f32 n=%d offset=%d seed=%#x mean=%g std=%g sms=%d", n, offset, seed, ms[0], ms[1], sms)
			px := c.poisoned("x", view, n)
			c.launch1("rand_normal_f32", grid, px, emuArgI64(n), emuArgF32(ms[0]), emuArgF32(ms[1]), emuArgU64(seed), emuArgU64(offset))
			c.done(func(c *emuCase) {
				got := c.outF32("x")
				for i := range got {
					c.expect("x", i, got[i], device.NormalScaled(seed, offset+uint64(i), ms[0], ms[1]), 1, 0)
				}
			})

			lh := [][2]float32{{0, 1}, {-0.1, 0.1}, {3, 3}}[k%3]
			c = s.begin("rand_uniform_f32 n=%d offset=%d seed=%#x lo=%g hi=%g sms=%d", n, offset, seed, lh[0], lh[1], sms)
			px = c.poisoned("x", view, n)
			c.launch1("rand_uniform_f32", grid, px, emuArgI64(n), emuArgF32(lh[0]), emuArgF32(lh[1]), emuArgU64(seed), emuArgU64(offset))
			c.done(func(c *emuCase) {
				got := c.outF32("x")
				for i := range got {
					c.expect("x", i, got[i], device.UniformScaled(seed, offset+uint64(i), lh[0], lh[1]), 0, 0)
				}
			})

			prob := []float32{0, 0.1, 0.5, 0.999}[k%4]
			keep := 1 / (1 - prob) // float32, as DropoutMask
			c = s.begin("dropout_mask_f32 n=%d offset=%d seed=%#x p=%g sms=%d", n, offset, seed, prob, sms)
			px = c.poisoned("x", view, n)
			c.launch1("dropout_mask_f32", grid, px, emuArgI64(n), emuArgF32(prob), emuArgF32(keep), emuArgU64(seed), emuArgU64(offset))
			c.done(func(c *emuCase) {
				got := c.outF32("x")
				for i := range got {
					c.expect("x", i, got[i], device.DropoutAt(seed, offset+uint64(i), prob), 0, 0)
				}
			})
		}
	}
}
