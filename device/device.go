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
// slope and ELU its alpha from the alpha argument; the others ignore it. GELU is the exact
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
	// SiLU is x·sigmoid(x) (nn.SiLU, the swish).
	SiLU
	// ELU is x for x > 0 and alpha·(exp(x) − 1) otherwise (nn.ELU; alpha
	// is PyTorch's alpha, 1 by default).
	ELU
)

var activationNames = map[Activation]string{
	Identity: "identity", ReLU: "relu", LeakyReLU: "leakyrelu", Tanh: "tanh",
	Sigmoid: "sigmoid", GELU: "gelu", GELUTanh: "gelu_tanh", SiLU: "silu", ELU: "elu",
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

	// Ops2 holds the primitives of convolutional, normalised and attention
	// networks (below).
	Ops2
}

// TF32Setter is implemented by devices whose GEMM can use TensorFloat-32
// matrix units. It is off by default, as torch.backends.cuda.matmul.allow_tf32.
type TF32Setter interface {
	SetAllowTF32(bool)
}

// CacheHinter is implemented by devices whose primitives run faster when
// the operands of one call fit a cache: CacheBlockBytes is that working
// set in bytes. Layers may split a large op into pieces of about this size
// (Conv2d unfolds groups of images instead of the whole batch); a split
// never changes results, only speed. A device without it (a GPU, where the
// whole batch keeps the launches few and large) is never split.
type CacheHinter interface {
	CacheBlockBytes() int
}

// Window2D is the geometry of a 2-D convolution or pooling window sliding
// over an NCHW input, with PyTorch's nn.Conv2d / nn.MaxPool2d arguments.
// Output height is (H + 2·PadH − DilH·(KH−1) − 1)/StrideH + 1 (floor, as
// PyTorch with ceil_mode=False), and likewise the width.
type Window2D struct {
	N, C, H, W       int // input batch, channels, height and width
	KH, KW           int // window (kernel) height and width, ≥ 1
	StrideH, StrideW int // ≥ 1
	PadH, PadW       int // ≥ 0: zeros for convolution and average pooling, −∞ for max pooling
	DilH, DilW       int // ≥ 1
}

// OutH is the output height of the window.
func (g Window2D) OutH() int { return (g.H+2*g.PadH-g.DilH*(g.KH-1)-1)/g.StrideH + 1 }

// OutW is the output width of the window.
func (g Window2D) OutW() int { return (g.W+2*g.PadW-g.DilW*(g.KW-1)-1)/g.StrideW + 1 }

// ColRows is C·KH·KW, the rows of one image's im2col matrix.
func (g Window2D) ColRows() int { return g.C * g.KH * g.KW }

// NormConfig holds the hyperparameters of batch and layer normalisation.
type NormConfig struct {
	// Eps is added to the variance before the square root (PyTorch: 1e-5).
	Eps float32
	// Momentum is the running statistics' update weight (PyTorch: 0.1):
	// running = (1 − Momentum)·running + Momentum·batch.
	Momentum float32
}

// Primitives beyond MLPs: convolution, pooling, normalisation, embeddings
// and attention. Every backend implements them; device/devicetest checks
// them against float64 references. They extend Device through this
// interface, which Device embeds.
type Ops2 interface {
	// GemmBatched computes C_i = alpha·op(A_i)·op(B_i) + beta·C_i for
	// i = 0 … batch−1, each product shaped as in Gemm, where A_i starts at
	// element i·strideA of a, B_i at i·strideB of b and C_i at i·strideC
	// of c. strideA or strideB may be 0 (one matrix for every i);
	// strideC must be at least m·n, so that no two C_i overlap (negative
	// strides are ErrInvalid); a must hold (batch−1)·strideA + m·k
	// elements, and likewise b and c. When alpha is 0, A and B are not
	// read; when beta is 0, C is not read. Elements of c between the C_i
	// are left alone.
	GemmBatched(transA, transB bool, m, n, k int, alpha float32, a Buffer, strideA int, b Buffer, strideB int,
		beta float32, c Buffer, strideC int, batch int) error

	// Im2Col unfolds the NCHW input x (N·C·H·W elements) into cols, laid
	// out [N, C·KH·KW, OH·OW]: for image n, channel c, window offset
	// (i, j) and output position (oh, ow),
	// cols[n, (c·KH+i)·KW+j, oh·OW+ow] = x[n, c, oh·StrideH − PadH + i·DilH, ow·StrideW − PadW + j·DilW],
	// and 0 where that position falls in the padding.
	Im2Col(x, cols Buffer, g Window2D) error
	// Col2Im is the adjoint of Im2Col: dx = beta·dx + the sum, for each
	// input element, of every cols entry Im2Col would have copied from it.
	// Each dx element is summed in a fixed order (no atomics). When beta is
	// 0, dx is not read.
	Col2Im(cols, dx Buffer, g Window2D, beta float32) error
	// AddChannelBias adds bias[c] to x[o, c, i] in place for x laid out
	// [outer, channels, inner] (a convolution's output: outer = N,
	// inner = OH·OW). AddBias is the case inner = 1.
	AddChannelBias(x, bias Buffer, outer, channels, inner int) error
	// ChannelBiasGrad sets db[c] = beta·db[c] + Σ_{o,i} dy[o, c, i] for dy
	// laid out [outer, channels, inner]. When beta is 0, db is not read.
	ChannelBiasGrad(db, dy Buffer, outer, channels, inner int, beta float32) error

	// MaxPool2D sets y[n, c, oh, ow] (laid out [N, C, OH, OW]) to the
	// largest x in the window and idx, an int32 buffer of the same length,
	// to its position h·W + w within the input plane (the first on ties,
	// in row-major window order; padding never wins; a NaN wins, the first
	// one, as PyTorch propagates it). PyTorch's
	// nn.MaxPool2d(return_indices=True) with ceil_mode=False. A window that
	// holds no input element (only possible with dilation and padding)
	// gives −Inf and idx −1. H·W must fit in an int32.
	MaxPool2D(x, y, idx Buffer, g Window2D) error
	// MaxPool2DGrad sets dx (N·C·H·W elements) to the gradient of
	// MaxPool2D: each dy is routed to the input position idx names, and
	// positions that won no window get 0. Overlapping windows that picked
	// the same position add in ascending output order. An idx that is not
	// a position of its own window (−1 among them) routes nothing.
	MaxPool2DGrad(dy, idx, dx Buffer, g Window2D) error
	// AvgPool2D sets y to the mean of each window, counting the padding as
	// zeros in the divisor (PyTorch's nn.AvgPool2d defaults,
	// count_include_pad=True). DilH and DilW must be 1.
	AvgPool2D(x, y Buffer, g Window2D) error
	// AvgPool2DGrad sets dx to the gradient of AvgPool2D.
	AvgPool2DGrad(dy, dx Buffer, g Window2D) error
	// AdaptiveAvgPool2D averages the NCHW input x over PyTorch's adaptive
	// windows to y, laid out [n·c, outH, outW]: output row oh covers input
	// rows floor(oh·h/outH) … ceil((oh+1)·h/outH) − 1, and likewise the
	// columns. outH = outW = 1 is global average pooling.
	AdaptiveAvgPool2D(x, y Buffer, n, c, h, w, outH, outW int) error
	// AdaptiveAvgPool2DGrad sets dx to the gradient of AdaptiveAvgPool2D.
	AdaptiveAvgPool2DGrad(dy, dx Buffer, n, c, h, w, outH, outW int) error

	// BatchNorm normalises x laid out [outer, channels, inner] per channel
	// (nn.BatchNorm1d: outer = N, inner = 1 or L; nn.BatchNorm2d: outer = N,
	// inner = H·W) and writes y = (x − μ_c)·invstd_c·gamma[c] + beta[c].
	// gamma and beta may be nil (affine=False: 1 and 0).
	//
	// training: μ and σ² are the batch statistics over the cnt =
	// outer·inner values of each channel (σ² biased; cnt must be ≥ 2, as
	// PyTorch requires); mean and invstd (channels each, required) receive
	// μ and 1/sqrt(σ²+Eps) for BatchNormGrad; and when runMean and runVar
	// are given (both or neither) they are updated as PyTorch does:
	// run = (1−Momentum)·run + Momentum·stat, with the unbiased variance
	// σ²·cnt/(cnt−1). Eps must be ≥ 0 and Momentum in [0, 1].
	//
	// Not training: μ and σ² are runMean and runVar (which must not be
	// nil); mean and invstd may be nil, and are written when not.
	BatchNorm(x, y, gamma, beta, mean, invstd, runMean, runVar Buffer, outer, channels, inner int,
		training bool, cfg NormConfig) error
	// BatchNormGrad is the backward of BatchNorm in training mode, from the
	// saved mean and invstd: dx is set; dgamma[c] = accum·dgamma[c] +
	// Σ dy·x̂ and dbeta[c] = accum·dbeta[c] + Σ dy (when accum is 0 they are
	// not read). gamma may be nil (1); dgamma, dbeta and dx may each be nil
	// (not wanted).
	BatchNormGrad(x, dy, gamma, mean, invstd, dx, dgamma, dbeta Buffer, outer, channels, inner int, accum float32) error
	// LayerNorm normalises each row of the rows×cols x over its cols
	// values: y = (x − μ)·rstd·gamma + beta with rstd = 1/sqrt(σ²+Eps) (σ²
	// biased), PyTorch's nn.LayerNorm over the last axis. mean and rstd
	// (rows each, required) receive μ and rstd for LayerNormGrad. gamma and
	// beta may be nil (elementwise_affine=False). eps must be ≥ 0.
	LayerNorm(x, y, gamma, beta, mean, rstd Buffer, rows, cols int, eps float32) error
	// LayerNormGrad is the backward of LayerNorm: dx is set (may be nil);
	// dgamma[j] = accum·dgamma[j] + Σ_rows dy·x̂ and dbeta[j] =
	// accum·dbeta[j] + Σ_rows dy, summed over rows in a fixed order (no
	// atomics); dgamma and dbeta may be nil.
	LayerNormGrad(x, dy, gamma, mean, rstd, dx, dgamma, dbeta Buffer, rows, cols int, accum float32) error

	// Gather copies rows of the rows×cols table into out: out[i, :] =
	// table[idx[i], :] for the n int32 indices of idx (nn.Embedding). An
	// index outside [0, rows) is an ErrInvalid error.
	Gather(table, idx, out Buffer, rows, cols, n int) error
	// ScatterAdd is Gather's adjoint: dtable[idx[i], :] += dout[i, :] for
	// i = 0 … n−1. Rows that several indices name receive their sums in
	// ascending i, on every backend, without float atomics, so a run
	// repeats bit for bit. An index outside [0, rows) is an ErrInvalid
	// error, as in Gather.
	ScatterAdd(dtable, idx, dout Buffer, rows, cols, n int) error

	// SoftmaxMasked sets y to the row-wise softmax of scale·x for a
	// rows×cols x, as attention weights. When causal, row r is the query at
	// position q = r mod qLen + (cols − qLen) of a sequence whose keys are
	// the cols columns, and columns j > q get weight 0 (the upper triangle
	// for qLen = cols, the last rows of it when a KV cache holds earlier
	// keys). qLen must be between 1 and cols when causal; it is ignored
	// otherwise. Masked entries are exactly 0. y may be x.
	SoftmaxMasked(x, y Buffer, rows, cols int, scale float32, causal bool, qLen int) error
	// SoftmaxMaskedGrad sets dx = scale · y ⊙ (dy − Σ_j dy⊙y), row by row:
	// the gradient of SoftmaxMasked with respect to x (masked entries have
	// y = 0 and get 0). dx may be dy.
	SoftmaxMaskedGrad(y, dy, dx Buffer, rows, cols int, scale float32) error
	// Permute4 writes y, the 4-D x of dimensions dims with its axes
	// reordered: y has dimensions (dims[perm[0]], …, dims[perm[3]]) and
	// y[i0, i1, i2, i3] = x[j] where j's coordinate along axis perm[k] is
	// i_k (torch's x.permute(perm).contiguous()). perm is a permutation of
	// 0…3; dimensions of size 1 make lower ranks. y must not overlap x.
	Permute4(x, y Buffer, dims [4]int, perm [4]int) error

	// CrossEntropy writes into the one-element loss the mean, over the rows
	// whose int32 label is not ignoreIndex, of −log softmax(logits)[label]
	// for rows×cols logits (torch.nn.functional.cross_entropy with
	// ignore_index), and when grad is not nil, d loss/d logits into grad
	// (0 for ignored rows; grad may be logits). Labels other than
	// ignoreIndex must lie in [0, cols) (else an ErrInvalid error). When
	// every row is ignored the loss is NaN and the gradient 0, as in
	// PyTorch. One pass per row; no temporaries beyond grad.
	CrossEntropy(logits, labels Buffer, rows, cols int, ignoreIndex int32, loss, grad Buffer) error
}
