package device

// Buffer is a flat run of elements of one DType in one Device's memory.
// It is opaque: its contents are reached only through its Device. A buffer
// obtained from View shares memory with its parent and is not freed itself.
type Buffer interface {
	Device() Device
	DType() DType
	Len() int
	// Freed reports whether the buffer (or, for a view, its parent) has
	// been freed. A freed buffer must not be used; every primitive returns
	// an ErrFreed error for it.
	Freed() bool
}

// Info describes one device, for device.List and `kiln devices`.
type Info struct {
	Spec              string // the string Open takes for it: "cpu", "cuda:0"
	Backend           string // "cpu" or "cuda"
	Name              string // processor or GPU model
	Memory            int64  // total bytes
	FreeMemory        int64  // free bytes when the device was listed
	Cores             int    // CPU cores, or streaming multiprocessors on a GPU
	ComputeCapability string // "9.0" on CUDA; empty on the CPU
	Driver            string // driver version on CUDA; empty on the CPU
}

// MemStats counts a device's memory traffic. A training step in steady
// state must leave SystemAllocs unchanged: every buffer comes from the
// device's pool.
type MemStats struct {
	InUse        int64 // bytes in buffers handed out and not yet freed
	Peak         int64 // the largest InUse has been
	Cached       int64 // bytes held in the pool's free lists
	Allocs       int64 // Alloc calls
	SystemAllocs int64 // allocations that reached the system (make, cuMemAlloc)
}

// Activation names an elementwise activation function.
type Activation uint8

// The activations every backend implements. LeakyReLU takes its negative
// slope from the alpha argument; the others ignore it. GELU is the exact
// form x·Φ(x) with Φ the normal CDF (erf); GELUTanh is the tanh
// approximation PyTorch calls approximate="tanh".
const (
	Identity Activation = iota + 1
	ReLU
	LeakyReLU
	Tanh
	Sigmoid
	GELU
	GELUTanh
)

var activationNames = map[Activation]string{
	Identity: "identity", ReLU: "relu", LeakyReLU: "leakyrelu", Tanh: "tanh",
	Sigmoid: "sigmoid", GELU: "gelu", GELUTanh: "gelu_tanh",
}

func (a Activation) String() string {
	if s, ok := activationNames[a]; ok {
		return s
	}
	return "Activation(?)"
}

// LossKind names a loss function. Each follows PyTorch's definition and
// its default reduction, so figures compare number for number.
type LossKind uint8

const (
	// MSE is mean((h-y)²) over all elements (torch.nn.MSELoss).
	MSE LossKind = iota + 1
	// HalfSSE is J = 1/(2m) Σ (h-y)², m the number of rows (samples): the
	// classic textbook cost.
	HalfSSE
	// BCE is binary cross-entropy on probabilities, mean over elements,
	// with each log clamped at -100 as torch.nn.BCELoss does.
	BCE
	// BCEWithLogits is binary cross-entropy on logits, computed stably
	// (torch.nn.BCEWithLogitsLoss).
	BCEWithLogits
	// SoftmaxCrossEntropy is cross-entropy of row-wise softmax(logits)
	// against int32 class labels, mean over rows (torch.nn.CrossEntropyLoss).
	SoftmaxCrossEntropy
)

var lossNames = map[LossKind]string{
	MSE: "mse", HalfSSE: "half_sse", BCE: "bce", BCEWithLogits: "bce_logits",
	SoftmaxCrossEntropy: "cross_entropy",
}

func (l LossKind) String() string {
	if s, ok := lossNames[l]; ok {
		return s
	}
	return "LossKind(?)"
}

// SGDConfig holds torch.optim.SGD's hyperparameters.
type SGDConfig struct {
	LR, Momentum, Dampening, WeightDecay float32
	Nesterov                             bool
}

// AdamConfig holds torch.optim.Adam's hyperparameters; Decoupled selects
// AdamW's decoupled weight decay.
type AdamConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Decoupled                          bool
}

// Device owns memory and runs kernels.
//
// Matrices are row-major and contiguous. Sizes are element counts. Every
// method checks its arguments and returns an error wrapping one of the
// sentinel errors of this package for a bad call; none panics. Launches may
// run asynchronously; a copy to the host or Sync waits for them.
// A Device is not safe for concurrent use by several goroutines.
type Device interface {
	// Name is the spec the device was opened with, e.g. "cpu" or "cuda:0".
	Name() string
	Info() Info
	Stats() MemStats

	// Alloc returns a zeroed buffer of n elements (n ≥ 1).
	Alloc(dt DType, n int) (Buffer, error)
	// Free returns a buffer to the device's pool. Freeing twice or freeing
	// a view is an error.
	Free(b Buffer) error
	// View is n elements of b starting at element off; it shares b's memory.
	View(b Buffer, off, n int) (Buffer, error)

	WriteF32(dst Buffer, off int, src []float32) error
	ReadF32(dst []float32, src Buffer, off int) error
	WriteI32(dst Buffer, off int, src []int32) error
	ReadI32(dst []int32, src Buffer, off int) error
	// Copy copies n elements from src to dst on the device.
	Copy(dst, src Buffer, n int) error
	// Sync waits until every launched kernel has finished.
	Sync() error
	// Close frees all memory; the device is unusable afterwards.
	Close() error

	// Gemm computes C = alpha·op(A)·op(B) + beta·C, with op(A) m×k, op(B)
	// k×n and C m×n; op transposes when its flag is set (A is then stored
	// k×m, B n×k). When beta is 0, C is not read (NaNs in it do not leak).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a, b Buffer, beta float32, c Buffer) error

	// AddBias adds bias[j] to x[i,j] in place for a rows×cols x.
	AddBias(x, bias Buffer, rows, cols int) error
	// BiasGrad sets db = beta·db + Σ_i dy[i,:] (column sums of rows×cols dy).
	// When beta is 0, db is not read.
	BiasGrad(db, dy Buffer, rows, cols int, beta float32) error

	// Activate sets y = f(x) over n elements; y may be x.
	Activate(act Activation, alpha float32, x, y Buffer, n int) error
	// ActivateGrad sets dx = dy·f'(x) over n elements. It reads x or y
	// (the output of Activate) as the function needs; dx may be dy.
	ActivateGrad(act Activation, alpha float32, x, y, dy, dx Buffer, n int) error
	// Softmax sets y to the row-wise softmax of rows×cols x.
	Softmax(x, y Buffer, rows, cols int) error
	// SoftmaxGrad sets dx = y ⊙ (dy − Σ_j dy⊙y) row by row.
	SoftmaxGrad(y, dy, dx Buffer, rows, cols int) error

	// Elementwise arithmetic over n elements; out may alias an input.
	Add(a, b, out Buffer, n int) error
	Sub(a, b, out Buffer, n int) error
	Mul(a, b, out Buffer, n int) error
	Scale(alpha float32, x, out Buffer, n int) error
	// Axpy sets y = alpha·x + y.
	Axpy(alpha float32, x, y Buffer, n int) error
	Fill(x Buffer, n int, v float32) error

	// Loss writes the loss of pred (rows×cols) against target into the
	// one-element buffer loss and, when grad is not nil, d loss/d pred into
	// grad. target is float32 rows×cols, or int32 rows for
	// SoftmaxCrossEntropy.
	Loss(kind LossKind, pred, target Buffer, rows, cols int, loss, grad Buffer) error

	// Sum sets out[0] = beta·out[0] + Σ x over n elements. Here and in
	// SumSquares, when beta is 0 out is not read (NaN in it does not leak).
	Sum(x Buffer, n int, out Buffer, beta float32) error
	// SumSquares sets out[0] = beta·out[0] + Σ x² over n elements: with
	// beta 1 it accumulates a global norm over several buffers.
	SumSquares(x Buffer, n int, out Buffer, beta float32) error
	// ClipByNorm scales x by min(1, maxNorm/(sqrt(sumSq[0])+1e-6)), as
	// torch.nn.utils.clip_grad_norm_ does, without a round trip to the host.
	ClipByNorm(x Buffer, n int, sumSq Buffer, maxNorm float32) error
	// ArgmaxRows writes the index of each row's largest element (the first
	// on ties) into the int32 buffer out.
	ArgmaxRows(x Buffer, rows, cols int, out Buffer) error

	// SGDStep is one torch.optim.SGD update of n parameters p with gradient
	// g and momentum buffer v; step counts from 1 (on step 1 the momentum
	// buffer is set to the gradient, as PyTorch does). v may be nil when
	// Momentum is 0.
	SGDStep(p, g, v Buffer, n int, cfg SGDConfig, step int) error
	// AdamStep is one torch.optim.Adam (or AdamW, when cfg.Decoupled)
	// update with first and second moment buffers m and v; step counts
	// from 1 and drives the bias correction.
	AdamStep(p, g, m, v Buffer, n int, cfg AdamConfig, step int) error

	// RandNormal, RandUniform and DropoutMask draw from the counter-based
	// generator of this package (Philox4x32-10, see rng.go): element i
	// takes the number at position offset+i of the stream for seed, so
	// every backend produces the same values.
	RandNormal(x Buffer, n int, mean, std float32, seed, offset uint64) error
	RandUniform(x Buffer, n int, lo, hi float32, seed, offset uint64) error
	// DropoutMask sets mask[i] to 1/(1-p) where the uniform draw u ≥ p and
	// to 0 elsewhere (0 ≤ p < 1).
	DropoutMask(mask Buffer, n int, p float32, seed, offset uint64) error
}

// TF32Setter is implemented by devices whose GEMM can use TensorFloat-32
// matrix units. It is off by default, as torch.backends.cuda.matmul.allow_tf32.
type TF32Setter interface {
	SetAllowTF32(bool)
}
