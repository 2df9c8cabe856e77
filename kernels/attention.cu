// attention.cu: the attention family besides its matrix products (those are
// gemm.cu's batched kernels): the scaled softmax with an optional causal
// mask and its gradient, and the 4-D axis permutation that splits and
// merges attention heads.
//
// softmax_masked_rows_f32 / softmax_masked_grad_rows_f32: one warp per row,
// as softmax_rows_f32 (activations.cu); blocks of 256 threads (8 rows per
// block), grid = ceil(rows / 8). The warp strides over the columns, so any
// cols works; every reduction is a butterfly (deterministic). They compute
// exactly what the CPU backend computes (device/cpu/attention.go), with
// every float32 step rounded by an explicit intrinsic (no FMA contraction).
//
// permute4_f32: a grid-stride gather, one thread per output element.
#include "common.cuh"

// y[r, :] = softmax(scale * x[r, :]) over the columns the mask keeps, and
// exactly 0 in the others. Causal (causal != 0): row r is the query at
// position q = r mod qLen + cols - qLen of a sequence whose keys are the
// cols columns, and keeps columns 0..q (1 <= qLen <= cols, checked by the
// host); otherwise every column is kept. Per row: z_j = float(scale * x_j),
// m = max z_j, e_j = exp(double(z_j - m)), the sum in double,
// y_j = float(double(float(e_j)) * (1/sum)).
// Launch: block 256, grid ceil(rows / 8). y may alias x (each lane reads
// its own x_j before writing y_j, and the reductions read before any
// write).
extern "C" __global__ void softmax_masked_rows_f32(const float* x, float* y, int rows, int cols, float scale,
                                                   int causal, int qLen) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; // whole warp leaves together
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    const int valid = causal ? (int)(row % qLen) + cols - qLen + 1 : cols;
    float m = -INFINITY;
    for (int j = lane; j < valid; j += 32) m = fmaxf(m, __fmul_rn(scale, xr[j]));
    m = kiln_warp_max(m);
    double s = 0.0;
    for (int j = lane; j < valid; j += 32) s += exp((double)__fsub_rn(__fmul_rn(scale, xr[j]), m));
    s = kiln_warp_sum_d(s);
    const double inv = 1.0 / s;
    for (int j = lane; j < cols; j += 32) {
        float v = 0.0f;
        if (j < valid) {
            const float e = (float)exp((double)__fsub_rn(__fmul_rn(scale, xr[j]), m));
            v = (float)((double)e * inv);
        }
        yr[j] = v;
    }
}

// dx[r, :] = scale * (y[r, :] * (dy[r, :] - sum_j dy[r, j] * y[r, j])), one
// warp per row; the dot product in double, rounded to float, the rest
// float32 (masked entries have y = 0 and get 0).
// Launch: block 256, grid ceil(rows / 8). dx may alias dy.
extern "C" __global__ void softmax_masked_grad_rows_f32(const float* y, const float* dy, float* dx, int rows,
                                                        int cols, float scale) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* yr = y + row * cols;
    const float* dyr = dy + row * cols;
    float* dxr = dx + row * cols;
    double dot = 0.0;
    for (int j = lane; j < cols; j += 32) dot += (double)dyr[j] * (double)yr[j];
    const float dt = (float)kiln_warp_sum_d(dot);
    for (int j = lane; j < cols; j += 32) dxr[j] = __fmul_rn(scale, __fmul_rn(yr[j], __fsub_rn(dyr[j], dt)));
}

// y = x.permute(perm).contiguous() for a 4-D x: output element i, of
// coordinates (i0, i1, i2, i3) in the output dimensions (d0, d1, d2, d3),
// is x[i0*s0 + i1*s1 + i2*s2 + i3*s3], where s_k is x's row-major stride
// along its axis perm[k] (the host computes the strides; d0 is implied by
// n = d0*d1*d2*d3). Consecutive threads write consecutive y elements
// (coalesced stores; the reads are coalesced when perm keeps the last
// axis, as the head split and merge do).
// Launch: block 256, grid-stride over n (the grid may be capped).
// y must not overlap x.
extern "C" __global__ void permute4_f32(const float* x, float* y, long long n, int d1, int d2, int d3,
                                        long long s0, long long s1, long long s2, long long s3) {
    KILN_FOR(i, n) {
        long long r = i;
        const long long i3 = r % d3;
        r /= d3;
        const long long i2 = r % d2;
        r /= d2;
        const long long i1 = r % d1;
        const long long i0 = r / d1;
        y[i] = x[i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3];
    }
}
