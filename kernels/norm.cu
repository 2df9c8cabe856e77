// Batch normalisation and layer normalisation, forward and backward.
//
// Batch norm works on x laid out [outer, channels, inner]: channel c's
// values are x[(o*channels + c)*inner + i] for o < outer, i < inner, which
// the kernels number q = o*inner + i (q < plane = outer*inner). Its
// statistics are deterministic two-pass reductions: each channel's plane is
// cut into chunks of `per` consecutive q; block (c, k) reduces chunk k of
// channel c into the workspace, and a final kernel (one thread per channel)
// combines the chunks in order. The elementwise passes (y, dx) are 1-D
// grid-stride kernels reading per-channel coefficients (double) that the
// final kernels leave in the workspace.
//
// Layer norm works on rows x cols x, one warp per row (block 256 = 8 rows,
// grid ceil(rows/8)), with butterfly warp sums. dgamma/dbeta of its
// backward are column sums over the rows: per row-chunk partials in the
// workspace, then a final pass over the chunks in order (one pass when
// there is one chunk), as reduce.cu's bias gradient does. No float atomics:
// a run repeats bit for bit.
//
// Every statistic and sum is accumulated in double and every output rounded
// once, as the CPU backend does (device/cpu/norm.go), so the two agree to
// within an ulp. Pointers documented as optional may be null.
#include "common.cuh"

// Index of value q = o*inner + i of channel c in a [outer, channels, inner]
// buffer.
__device__ __forceinline__ long long bn_index(long long q, int c, int channels, int inner) {
    const long long o = q / inner;
    return (o * channels + c) * inner + (q - o * inner);
}

// out = accum*out + sum, rounded once; out is not read when accum is 0.
// out may be null (not wanted).
__device__ __forceinline__ void norm_accum(float* out, long long j, float accum, double sum) {
    if (!out) return;
    if (accum != 0.0f) sum += (double)accum * (double)out[j];
    out[j] = (float)sum;
}

// Batch norm statistics, pass 1. Launch: grid (channels, chunks), block 256
// (any multiple of 32). Block (c, k) takes chunk k of channel c, the values
// q in [k*per, min(plane, (k+1)*per)) (never empty: the host sets chunks =
// ceil(plane/per)), and writes their mean and the sum of squared deviations
// from it, both two-pass in double, to partials[2*(c*chunks + k)] and the
// slot after.
extern "C" __global__ void bn_stats_partial_f32(const float* x, int outer, int channels, int inner, long long per,
                                                double* partials) {
    __shared__ double s_mean;
    const int c = blockIdx.x, k = blockIdx.y;
    const long long plane = (long long)outer * inner;
    const long long q0 = (long long)k * per;
    const long long q1 = q0 + per < plane ? q0 + per : plane;
    double acc = 0.0;
    for (long long q = q0 + threadIdx.x; q < q1; q += blockDim.x) acc += (double)x[bn_index(q, c, channels, inner)];
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) s_mean = acc / (double)(q1 - q0);
    __syncthreads();
    const double m = s_mean;
    double m2 = 0.0;
    for (long long q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
        const double d = (double)x[bn_index(q, c, channels, inner)] - m;
        m2 += d * d;
    }
    m2 = kiln_block_sum_d(m2);
    if (threadIdx.x == 0) {
        const long long slot = 2 * ((long long)c * gridDim.y + k);
        partials[slot] = m;
        partials[slot + 1] = m2;
    }
}

// Batch norm statistics, pass 2, and the running statistics. Launch: 1-D
// grid ceil(channels/256), block 256, one thread per channel.
//
// training = 1: the chunks' (mean, M2) pairs are combined in chunk order,
// mean = Σ n_k·mean_k / plane and σ² = (Σ M2_k + Σ n_k·(mean_k − mean)²) /
// plane (the biased variance; exact in exact arithmetic); when runMean and
// runVar are given they become (1−momentum)·run + momentum·stat with the
// unbiased variance σ²·plane/(plane−1) (plane ≥ 2, checked by the host).
// training = 0: mean and σ² are runMean and runVar; partials is not read.
//
// mean and invstd (optional) receive μ and 1/sqrt(σ²+eps); coef receives
// μ at [c] and invstd·gamma (gamma optional: 1) at [channels + c], in
// double, for bn_apply_f32.
extern "C" __global__ void bn_stats_final_f32(const double* partials, int chunks, long long per, long long plane,
                                              int channels, int training, float eps, float momentum,
                                              const float* gamma, float* mean, float* invstd, float* runMean,
                                              float* runVar, double* coef) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double mu, var;
    if (training) {
        const double* pc = partials + 2 * (long long)c * chunks;
        double s = 0.0;
        for (int k = 0; k < chunks; k++) {
            const long long left = plane - (long long)k * per;
            s += (double)(left < per ? left : per) * pc[2 * k];
        }
        mu = s / (double)plane;
        double m2 = 0.0;
        for (int k = 0; k < chunks; k++) {
            const long long left = plane - (long long)k * per;
            const double d = pc[2 * k] - mu;
            m2 += pc[2 * k + 1] + (double)(left < per ? left : per) * d * d;
        }
        var = m2 / (double)plane;
    } else {
        mu = (double)runMean[c];
        var = (double)runVar[c];
    }
    double is = 1.0 / sqrt(var + (double)eps);
    if (mean) mean[c] = (float)mu;
    if (invstd) invstd[c] = (float)is;
    if (training && runMean) {
        const double m = (double)momentum;
        const double unbiased = var * (double)plane / (double)(plane - 1);
        runMean[c] = (float)((1.0 - m) * (double)runMean[c] + m * mu);
        runVar[c] = (float)((1.0 - m) * (double)runVar[c] + m * unbiased);
    }
    if (gamma) is *= (double)gamma[c];
    coef[c] = mu;
    coef[channels + c] = is;
}

// y = (x − μ_c)·scale_c + beta[c] over the total = outer·channels·inner
// elements, with μ and scale from bn_stats_final_f32's coef (beta
// optional: 0). Launch: 1-D grid-stride, block 256. y may alias x.
extern "C" __global__ void bn_apply_f32(const float* x, float* y, const float* beta, const double* coef,
                                        long long total, int channels, int inner) {
    KILN_FOR(k, total) {
        const int c = (int)((k / inner) % channels);
        const double b = beta ? (double)beta[c] : 0.0;
        y[k] = (float)(((double)x[k] - coef[c]) * coef[channels + c] + b);
    }
}

// Batch norm backward, pass 1: per chunk Σ dy and Σ dy·x̂, x̂ = (x −
// mean)·invstd from the saved statistics. Launch and chunks as
// bn_stats_partial_f32; block (c, k) writes its two sums to
// partials[2*(c*chunks + k)] and the slot after.
extern "C" __global__ void bn_grad_partial_f32(const float* x, const float* dy, const float* mean, const float* invstd,
                                               int outer, int channels, int inner, long long per, double* partials) {
    const int c = blockIdx.x, k = blockIdx.y;
    const long long plane = (long long)outer * inner;
    const long long q0 = (long long)k * per;
    const long long q1 = q0 + per < plane ? q0 + per : plane;
    const double m = (double)mean[c], is = (double)invstd[c];
    double s = 0.0, sx = 0.0;
    for (long long q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
        const long long e = bn_index(q, c, channels, inner);
        const double g = (double)dy[e];
        s += g;
        sx += g * (((double)x[e] - m) * is);
    }
    s = kiln_block_sum_d(s);
    sx = kiln_block_sum_d(sx);
    if (threadIdx.x == 0) {
        const long long slot = 2 * ((long long)c * gridDim.y + k);
        partials[slot] = s;
        partials[slot + 1] = sx;
    }
}

// Batch norm backward, pass 2. Launch: 1-D grid ceil(channels/256), block
// 256, one thread per channel. Sums the chunks in order; dgamma[c] =
// accum·dgamma[c] + Σ dy·x̂ and dbeta[c] = accum·dbeta[c] + Σ dy (each
// optional; not read when accum is 0); coef receives mean(dy) at [c],
// mean(dy·x̂) at [channels + c] and gamma·invstd at [2·channels + c] for
// bn_grad_apply_f32 (gamma optional: 1).
extern "C" __global__ void bn_grad_final_f32(const double* partials, int chunks, int channels, long long plane,
                                             const float* gamma, const float* invstd, float* dgamma, float* dbeta,
                                             float accum, double* coef) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    const double* pc = partials + 2 * (long long)c * chunks;
    double s = 0.0, sx = 0.0;
    for (int k = 0; k < chunks; k++) {
        s += pc[2 * k];
        sx += pc[2 * k + 1];
    }
    norm_accum(dgamma, c, accum, sx);
    norm_accum(dbeta, c, accum, s);
    const double g = gamma ? (double)gamma[c] : 1.0;
    coef[c] = s / (double)plane;
    coef[channels + c] = sx / (double)plane;
    coef[2 * channels + c] = g * (double)invstd[c];
}

// dx = a_c·(dy − m1_c − x̂·m2_c) over the total elements, with m1, m2 and a
// from bn_grad_final_f32's coef and x̂ = (x − mean)·invstd. Launch: 1-D
// grid-stride, block 256. dx may alias dy or x.
extern "C" __global__ void bn_grad_apply_f32(const float* x, const float* dy, const float* mean, const float* invstd,
                                             const double* coef, float* dx, long long total, int channels, int inner) {
    KILN_FOR(k, total) {
        const int c = (int)((k / inner) % channels);
        const double xh = ((double)x[k] - (double)mean[c]) * (double)invstd[c];
        dx[k] = (float)(coef[2 * channels + c] * ((double)dy[k] - coef[c] - xh * coef[channels + c]));
    }
}

// Layer norm forward: one warp per row of the rows x cols x (block 256,
// grid ceil(rows/8)). mean and rstd = 1/sqrt(σ²+eps) (σ² biased, two-pass
// in double) go to mean[row] and rstd[row]; y = (x − mean)·rstd·gamma[j] +
// beta[j] (gamma, beta optional). y may alias x.
extern "C" __global__ void layer_norm_rows_f32(const float* x, float* y, const float* gamma, const float* beta,
                                               float* mean, float* rstd, int rows, int cols, float eps) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; // whole warp leaves together
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    double s = 0.0;
    for (int j = lane; j < cols; j += 32) s += (double)xr[j];
    const double m = kiln_warp_sum_d(s) / (double)cols;
    double q = 0.0;
    for (int j = lane; j < cols; j += 32) {
        const double d = (double)xr[j] - m;
        q += d * d;
    }
    const double rs = 1.0 / sqrt(kiln_warp_sum_d(q) / (double)cols + (double)eps);
    if (lane == 0) {
        mean[row] = (float)m;
        rstd[row] = (float)rs;
    }
    for (int j = lane; j < cols; j += 32) {
        double t = ((double)xr[j] - m) * rs;
        if (gamma) t *= (double)gamma[j];
        if (beta) t += (double)beta[j];
        yr[j] = (float)t;
    }
}

// Layer norm backward, dx: one warp per row (block 256, grid ceil(rows/8)).
// With g = dy·gamma (gamma optional: 1) and x̂ = (x − mean)·rstd from the
// saved statistics, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), the means in
// double. dx may alias dy or x.
extern "C" __global__ void layer_norm_grad_rows_f32(const float* x, const float* dy, const float* gamma,
                                                    const float* mean, const float* rstd, float* dx, int rows,
                                                    int cols) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* xr = x + row * cols;
    const float* dyr = dy + row * cols;
    float* dxr = dx + row * cols;
    const double m = (double)mean[row], rs = (double)rstd[row];
    double s = 0.0, sx = 0.0;
    for (int j = lane; j < cols; j += 32) {
        const double g = gamma ? (double)dyr[j] * (double)gamma[j] : (double)dyr[j];
        s += g;
        sx += g * (((double)xr[j] - m) * rs);
    }
    const double m1 = kiln_warp_sum_d(s) / (double)cols;
    const double m2 = kiln_warp_sum_d(sx) / (double)cols;
    for (int j = lane; j < cols; j += 32) {
        const double g = gamma ? (double)dyr[j] * (double)gamma[j] : (double)dyr[j];
        dxr[j] = (float)(rs * (g - m1 - ((double)xr[j] - m) * rs * m2));
    }
}

// Layer norm backward, dgamma and dbeta: column sums over row chunks.
// Launch: grid (ceil(cols/256), chunks), block 256; thread (bx, c) sums
// rows [c*rowsPer, min(rows, (c+1)*rowsPer)) of column j = bx*256 +
// threadIdx.x, Σ dy·x̂ and Σ dy (neighbouring threads read neighbouring
// columns: coalesced). With one chunk (gridDim.y == 1) it writes dgamma[j]
// = accum·dgamma[j] + Σ dy·x̂ and dbeta[j] = accum·dbeta[j] + Σ dy itself
// (each optional; not read when accum is 0) and partials is not used;
// otherwise it writes the two sums to partials[2*(c*cols + j)] and the slot
// after, for layer_norm_grad_cols_final_f32.
extern "C" __global__ void layer_norm_grad_cols_f32(const float* x, const float* dy, const float* mean,
                                                    const float* rstd, int rows, int cols, int rowsPer,
                                                    double* partials, float* dgamma, float* dbeta, float accum) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    const int c = blockIdx.y;
    const int r0 = c * rowsPer;
    const int r1 = r0 + rowsPer < rows ? r0 + rowsPer : rows;
    double sg = 0.0, sb = 0.0;
    for (int r = r0; r < r1; r++) {
        const long long e = (long long)r * cols + j;
        const double g = (double)dy[e];
        sb += g;
        sg += g * (((double)x[e] - (double)mean[r]) * (double)rstd[r]);
    }
    if (gridDim.y == 1) {
        norm_accum(dgamma, j, accum, sg);
        norm_accum(dbeta, j, accum, sb);
        return;
    }
    const long long slot = 2 * ((long long)c * cols + j);
    partials[slot] = sg;
    partials[slot + 1] = sb;
}

// Layer norm backward, dgamma and dbeta from the chunks' partials, summed in
// chunk order. Launch: 1-D grid ceil(cols/256), block 256.
extern "C" __global__ void layer_norm_grad_cols_final_f32(const double* partials, int chunks, int cols,
                                                          float* dgamma, float* dbeta, float accum) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double sg = 0.0, sb = 0.0;
    for (int c = 0; c < chunks; c++) {
        const long long slot = 2 * ((long long)c * cols + j);
        sg += partials[slot];
        sb += partials[slot + 1];
    }
    norm_accum(dgamma, j, accum, sg);
    norm_accum(dbeta, j, accum, sb);
}
