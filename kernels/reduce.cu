// Reductions: sum and sum of squares (two passes), bias gradient (column
// sums, two passes), clip by a norm held in device memory, argmax per row.
// Every reduction accumulates in double and is deterministic: the partials
// have a fixed layout and are combined in a fixed order, no atomics.
#include "common.cuh"

// Pass 1 of Sum/SumSquares. Launch: 1-D grid of G ≤ 1024 blocks of 256
// threads; block b writes the double sum of its grid-stride share of x (or
// of x², when squares is 1) to partials[b]. vec = 1 when x is 16-byte
// aligned.
extern "C" __global__ void reduce_partial_f32(const float* x, long long n, int squares, int vec, double* partials) {
    double acc = 0.0;
    long long done = 0;
    if (vec) {
        const long long n4 = n >> 2;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        KILN_FOR(i, n4) {
            const float4 v = x4[i];
            if (squares)
                acc += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
            else
                acc += (double)v.x + (double)v.y + (double)v.z + (double)v.w;
        }
        done = n4 << 2;
    }
    for (long long i = done + (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const double v = x[i];
        acc += squares ? v * v : v;
    }
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// Pass 2: out[0] = beta*out[0] + sum(partials[0..np)) / div, in double,
// rounded once to float (div is 1 for Sum, the loss's divisor for Loss).
// When beta is 0, out[0] is not read (a NaN in it does not leak). Launch:
// one block of 256 threads (any multiple of 32 up to 1024).
extern "C" __global__ void reduce_final_f64(const double* partials, int np, float* out, double div, float beta) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += partials[i];
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) {
        double r = acc / div;
        if (beta != 0.0f) r += (double)beta * (double)out[0];
        out[0] = (float)r;
    }
}

// Bias gradient, pass 1: column sums of a rows x cols dy over row chunks.
// Launch: grid (ceil(cols/256), chunks), block 256. Block (bx, c) sums rows
// [c*rowsPer, min(rows, (c+1)*rowsPer)) of columns bx*256 + threadIdx.x
// into partials[c*cols + j]. Neighbouring threads read neighbouring
// columns, so every load is coalesced.
extern "C" __global__ void bias_grad_partial_f32(const float* dy, int rows, int cols, int rowsPer, double* partials) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    const int c = blockIdx.y;
    const int r0 = c * rowsPer;
    int r1 = r0 + rowsPer;
    if (r1 > rows) r1 = rows;
    double acc = 0.0;
    for (int r = r0; r < r1; r++) acc += dy[(long long)r * cols + j];
    partials[(long long)c * cols + j] = acc;
}

// Bias gradient, pass 2: db[j] = beta*db[j] + sum_c partials[c*cols + j]
// in chunk order. Launch: 1-D grid ceil(cols/256), block 256. When beta is
// 0, db is not read.
extern "C" __global__ void bias_grad_final_f32(const double* partials, int chunks, int cols, float* db, float beta) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double acc = 0.0;
    for (int c = 0; c < chunks; c++) acc += partials[(long long)c * cols + j];
    if (beta != 0.0f) acc += (double)beta * (double)db[j];
    db[j] = (float)acc;
}

// Bias gradient in one pass for small inputs (a single row chunk): each
// thread sums its column over all rows. Launch: grid ceil(cols/256), block
// 256.
extern "C" __global__ void bias_grad_direct_f32(const float* dy, int rows, int cols, float* db, float beta) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double acc = 0.0;
    for (int r = 0; r < rows; r++) acc += dy[(long long)r * cols + j];
    if (beta != 0.0f) acc += (double)beta * (double)db[j];
    db[j] = (float)acc;
}

// x[i] *= min(1, maxNorm / (sqrt(sumSq[0]) + 1e-6)), i < n: the clip
// coefficient of torch.nn.utils.clip_grad_norm_, computed in float32 as
// PyTorch does, read from device memory by every thread (no host round
// trip). Launch: 1-D grid-stride, block 256.
extern "C" __global__ void clip_by_norm_f32(float* x, long long n, const float* sumSq, float maxNorm) {
    const float norm = __fsqrt_rn(sumSq[0]);
    const float coef = __fdiv_rn(maxNorm, __fadd_rn(norm, 1e-6f));
    // Nothing to scale when coef >= 1; a NaN coefficient (NaN or infinite
    // norm) propagates into x, as in PyTorch (error_if_nonfinite=False).
    if (coef >= 1.0f) return;
    KILN_FOR(i, n) x[i] = __fmul_rn(x[i], coef);
}

// out[r] = index of the largest element of row r of a rows x cols x (the
// first one on ties), as the CPU's scan "best = x[0]; if v > best" gives:
// a NaN at column 0 wins (nothing compares greater), NaNs elsewhere never
// do. One warp per row; block 256 (8 rows), grid ceil(rows/8).
extern "C" __global__ void argmax_rows_f32(const float* x, int rows, int cols, int* out) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* xr = x + row * cols;
    float best = 0.0f;
    int idx = -1; // no element seen yet
    for (int j = lane; j < cols; j += 32) {
        const float v = xr[j];
        if (v != v) continue; // NaN
        if (idx < 0 || v > best) { best = v; idx = j; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(KILN_FULL_MASK, best, o);
        const int oi = __shfl_xor_sync(KILN_FULL_MASK, idx, o);
        // A lane without elements (idx < 0) loses; otherwise the larger
        // value wins and ties go to the smaller index.
        if (oi >= 0 && (idx < 0 || ob > best || (ob == best && oi < idx))) { best = ob; idx = oi; }
    }
    if (lane == 0) {
        const float x0 = xr[0];
        out[row] = (x0 != x0 || idx < 0) ? 0 : idx;
    }
}
