// Losses with their gradients, fused: one pass computes each element's (or
// row's) loss term and, when grad is not null, d loss / d pred. The scalar
// loss is then reduced deterministically by reduce_final_f64 (reduce.cu),
// which the host launches on the partials written here and which divides
// the sum by the loss's divisor.
//
// kind is a device.LossKind: 1 mse, 2 half_sse, 3 bce, 4 bce_logits,
// 5 cross_entropy. inv is 1/norm, the reciprocal of the divisor (n for mse,
// bce and bce_logits, 2·rows for half_sse, rows for cross_entropy),
// computed in double by the host. Terms and gradients are computed in
// double and rounded once, as the CPU backend does.
#include "common.cuh"

enum { LOSS_MSE = 1, LOSS_HALF_SSE, LOSS_BCE, LOSS_BCE_LOGITS, LOSS_XENT };

__device__ __forceinline__ double sigmoid64(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

template <int KIND>
__device__ __forceinline__ double loss_term(float h, float y, float* g, double inv) {
    const double hd = h, yd = y;
    if (KIND == LOSS_MSE || KIND == LOSS_HALF_SSE) {
        // d/dh of sum (h-y)^2 / norm is 2(h-y)/norm.
        const double r = hd - yd;
        *g = (float)(2.0 * inv * r);
        return r * r;
    }
    if (KIND == LOSS_BCE) {
        // torch.nn.BCELoss: -(y·max(log h, -100) + (1-y)·max(log(1-h), -100));
        // gradient (h-y) / max((1-h)·h, 1e-12).
        const double lp = fmax(log(hd), -100.0);
        const double l1p = fmax(log(1.0 - hd), -100.0);
        *g = (float)((hd - yd) / fmax((1.0 - hd) * hd, 1e-12) * inv);
        return -(yd * lp + (1.0 - yd) * l1p);
    }
    // LOSS_BCE_LOGITS: max(x,0) - x·y + log1p(exp(-|x|)); gradient
    // sigmoid(x) - y.
    *g = (float)((sigmoid64(hd) - yd) * inv);
    return fmax(hd, 0.0) - hd * yd + log1p(exp(-fabs(hd)));
}

template <int KIND>
__device__ __forceinline__ void loss_loop(const float* h, const float* y, long long n, float* grad, double inv,
                                          double* partials) {
    double acc = 0.0;
    KILN_FOR(i, n) {
        float g;
        acc += loss_term<KIND>(h[i], y[i], &g, inv);
        if (grad) grad[i] = g;
    }
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// Elementwise losses (mse, half_sse, bce, bce_logits) over n = rows*cols
// elements of pred h and target y. Launch: 1-D grid of G ≤ 1024 blocks of
// 256 threads; block b writes its double sum of loss terms to partials[b];
// grad (may be null) gets d loss / d h. grad may alias h or y.
extern "C" __global__ void loss_elem_f32(int kind, const float* h, const float* y, long long n, float* grad,
                                         double inv, double* partials) {
    switch (kind) {
    case LOSS_MSE: loss_loop<LOSS_MSE>(h, y, n, grad, inv, partials); break;
    case LOSS_HALF_SSE: loss_loop<LOSS_HALF_SSE>(h, y, n, grad, inv, partials); break;
    case LOSS_BCE: loss_loop<LOSS_BCE>(h, y, n, grad, inv, partials); break;
    case LOSS_BCE_LOGITS: loss_loop<LOSS_BCE_LOGITS>(h, y, n, grad, inv, partials); break;
    }
}

// Softmax cross-entropy of rows x cols logits x against int32 labels, one
// warp per row: rowloss[r] = lse - x[r, label] with m the row max (float),
// lse = m + log(sum_j exp(double(x_j) - m)) in double; when grad is not
// null, grad[r, j] = (exp(x_j - lse) - [j == label])·inv. The host checks
// the labels before launching; a label outside [0, cols) still gives a NaN
// loss term and gradient row rather than a wild read. Launch: block 256
// (8 rows), grid ceil(rows/8). grad may alias x.
extern "C" __global__ void xent_rows_f32(const float* x, const int* labels, int rows, int cols, float* grad,
                                         double inv, double* rowloss) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* xr = x + row * cols;
    const int label = labels[row];
    const bool ok = label >= 0 && label < cols;
    float m = -INFINITY;
    for (int j = lane; j < cols; j += 32) m = fmaxf(m, xr[j]);
    m = kiln_warp_max(m);
    const double m64 = m;
    double se = 0.0;
    for (int j = lane; j < cols; j += 32) se += exp((double)xr[j] - m64);
    // Every lane reads x[label] before the shuffles below, so no lane can
    // overwrite it (grad aliasing x) before another has read it.
    const double xl = ok ? (double)xr[label] : 0.0;
    se = kiln_warp_sum_d(se);
    const double lse = m64 + log(se);
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    if (lane == 0) rowloss[row] = ok ? lse - xl : nan;
    if (grad) {
        float* gr = grad + row * cols;
        for (int j = lane; j < cols; j += 32) {
            const double p = exp((double)xr[j] - lse);
            gr[j] = ok ? (float)((j == label ? p - 1.0 : p) * inv) : (float)nan;
        }
    }
}
