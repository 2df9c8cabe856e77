// Activations forward and backward, and the row-wise softmax.
//
// activate_f32 / activate_grad_f32: 1-D grid of 1-D blocks (256 threads),
// grid-stride loop over n elements. act is a device.Activation value
// (1 identity, 2 relu, 3 leaky relu, 4 tanh, 5 sigmoid, 6 gelu (erf),
// 7 gelu (tanh approximation), 8 silu, 9 elu (alpha: ELU's alpha, as
// leaky relu's slope)); it is uniform across the grid, so the switch costs
// nothing per element. y may alias x, dx may alias dy.
//
// softmax_rows_f32 / softmax_grad_rows_f32: one warp per row; blocks of
// 256 threads (8 rows per block), grid = ceil(rows / 8). The warp strides
// over the columns, so any cols works; every reduction is a butterfly
// (deterministic).
//
// Tanh, sigmoid, both GELUs, SiLU and ELU (expm1, as PyTorch, so that it
// keeps its relative accuracy near 0) evaluate their transcendentals in
// double and round once, as the CPU backend does; the float32 steps round with explicit
// intrinsics (no FMA contraction), so the two backends agree to the last
// bit or within an ulp.
#include "common.cuh"

enum { ACT_IDENTITY = 1, ACT_RELU, ACT_LEAKY, ACT_TANH, ACT_SIGMOID, ACT_GELU, ACT_GELU_TANH, ACT_SILU, ACT_ELU };

#define KILN_INV_SQRT2 0.70710678118654752440      // 1/sqrt(2)
#define KILN_INV_SQRT_2PI 0.39894228040143267794   // 1/sqrt(2*pi)
#define KILN_SQRT_2_OVER_PI 0.79788456080286535588 // sqrt(2/pi)
#define KILN_GELU_C 0.044715

// Numerically stable logistic function in double.
__device__ __forceinline__ double sigmoid64(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

template <int ACT>
__device__ __forceinline__ float act_fwd(float x, float alpha) {
    const double z = x;
    switch (ACT) {
    case ACT_IDENTITY: return x;
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_LEAKY: return x > 0.0f ? x : __fmul_rn(alpha, x);
    case ACT_TANH: return (float)tanh(z);
    case ACT_SIGMOID: return (float)sigmoid64(z);
    case ACT_GELU: return (float)(0.5 * z * (1.0 + erf(z * KILN_INV_SQRT2)));
    case ACT_GELU_TANH: return (float)(0.5 * z * (1.0 + tanh(KILN_SQRT_2_OVER_PI * (z + KILN_GELU_C * z * z * z))));
    case ACT_SILU: return (float)(z * sigmoid64(z));
    case ACT_ELU: return x > 0.0f ? x : (float)((double)alpha * expm1(z));
    }
    return x;
}

// dy * f'(x). src is x, or y (= f(x)) for ReLU when x is not given, and for
// Tanh and Sigmoid when fromY is set (else they recompute f from x).
template <int ACT>
__device__ __forceinline__ float act_bwd(float src, int fromY, float dy, float alpha) {
    const double g = dy;
    switch (ACT) {
    case ACT_IDENTITY: return dy;
    case ACT_RELU: return src > 0.0f ? dy : 0.0f;
    case ACT_LEAKY: return src > 0.0f ? dy : __fmul_rn(alpha, dy);
    case ACT_TANH:
        if (fromY) return __fmul_rn(dy, __fsub_rn(1.0f, __fmul_rn(src, src)));
        else {
            const double t = tanh((double)src);
            return (float)(g * (1.0 - t * t));
        }
    case ACT_SIGMOID:
        if (fromY) return __fmul_rn(__fmul_rn(dy, src), __fsub_rn(1.0f, src));
        else {
            const double s = sigmoid64((double)src);
            return (float)(g * s * (1.0 - s));
        }
    case ACT_GELU: {
        const double z = src;
        const double cdf = 0.5 * (1.0 + erf(z * KILN_INV_SQRT2));
        const double pdf = KILN_INV_SQRT_2PI * exp(-0.5 * z * z);
        return (float)(g * (cdf + z * pdf));
    }
    case ACT_GELU_TANH: {
        // PyTorch's GeluBackward with approximate="tanh".
        const double z = src;
        const double t = tanh(KILN_SQRT_2_OVER_PI * (z + KILN_GELU_C * z * z * z));
        const double d = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * KILN_SQRT_2_OVER_PI * (1.0 + 3.0 * KILN_GELU_C * z * z);
        return (float)(g * d);
    }
    case ACT_SILU: {
        // d/dx x·sigmoid(x) = s·(1 + x·(1 − s)).
        const double z = src;
        const double s = sigmoid64(z);
        return (float)(g * s * (1.0 + z * (1.0 - s)));
    }
    case ACT_ELU:
        // 1 for x > 0, else alpha·exp(x) (PyTorch's elu_backward from x).
        return src > 0.0f ? dy : (float)(g * (double)alpha * exp((double)src));
    }
    return dy;
}

template <int ACT>
__device__ __forceinline__ void fwd_loop(float alpha, const float* x, float* y, long long n) {
    KILN_FOR(i, n) y[i] = act_fwd<ACT>(x[i], alpha);
}

template <int ACT>
__device__ __forceinline__ void bwd_loop(float alpha, const float* src, int fromY, const float* dy, float* dx,
                                         long long n) {
    KILN_FOR(i, n) dx[i] = act_bwd<ACT>(ACT == ACT_IDENTITY ? 0.0f : src[i], fromY, dy[i], alpha);
}

// y[i] = f_act(x[i]), i < n.
extern "C" __global__ void activate_f32(int act, float alpha, const float* x, float* y, long long n) {
    switch (act) {
    case ACT_IDENTITY: fwd_loop<ACT_IDENTITY>(alpha, x, y, n); break;
    case ACT_RELU: fwd_loop<ACT_RELU>(alpha, x, y, n); break;
    case ACT_LEAKY: fwd_loop<ACT_LEAKY>(alpha, x, y, n); break;
    case ACT_TANH: fwd_loop<ACT_TANH>(alpha, x, y, n); break;
    case ACT_SIGMOID: fwd_loop<ACT_SIGMOID>(alpha, x, y, n); break;
    case ACT_GELU: fwd_loop<ACT_GELU>(alpha, x, y, n); break;
    case ACT_GELU_TANH: fwd_loop<ACT_GELU_TANH>(alpha, x, y, n); break;
    case ACT_SILU: fwd_loop<ACT_SILU>(alpha, x, y, n); break;
    case ACT_ELU: fwd_loop<ACT_ELU>(alpha, x, y, n); break;
    }
}

// dx[i] = dy[i] * f_act'(x[i]), i < n. src is the operand the function
// reads, chosen by the host: x for leaky relu, both gelus, silu and elu; x or y for
// relu; y (fromY = 1) or x (fromY = 0) for tanh and sigmoid; identity reads
// nothing (src may be null).
extern "C" __global__ void activate_grad_f32(int act, float alpha, const float* src, int fromY, const float* dy,
                                             float* dx, long long n) {
    switch (act) {
    case ACT_IDENTITY: bwd_loop<ACT_IDENTITY>(alpha, src, fromY, dy, dx, n); break;
    case ACT_RELU: bwd_loop<ACT_RELU>(alpha, src, fromY, dy, dx, n); break;
    case ACT_LEAKY: bwd_loop<ACT_LEAKY>(alpha, src, fromY, dy, dx, n); break;
    case ACT_TANH: bwd_loop<ACT_TANH>(alpha, src, fromY, dy, dx, n); break;
    case ACT_SIGMOID: bwd_loop<ACT_SIGMOID>(alpha, src, fromY, dy, dx, n); break;
    case ACT_GELU: bwd_loop<ACT_GELU>(alpha, src, fromY, dy, dx, n); break;
    case ACT_GELU_TANH: bwd_loop<ACT_GELU_TANH>(alpha, src, fromY, dy, dx, n); break;
    case ACT_SILU: bwd_loop<ACT_SILU>(alpha, src, fromY, dy, dx, n); break;
    case ACT_ELU: bwd_loop<ACT_ELU>(alpha, src, fromY, dy, dx, n); break;
    }
}

// y[r, :] = softmax(x[r, :]), one warp per row, as the CPU backend
// computes it: m = max in float32, e_j = exp(double(x_j - m)), the sum in
// double, y_j = float(double(float(e_j)) · (1/sum))).
// Launch: block 256, grid ceil(rows / 8). y may alias x.
extern "C" __global__ void softmax_rows_f32(const float* x, float* y, int rows, int cols) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; // whole warp leaves together
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    float m = -INFINITY;
    for (int j = lane; j < cols; j += 32) m = fmaxf(m, xr[j]);
    m = kiln_warp_max(m);
    double s = 0.0;
    for (int j = lane; j < cols; j += 32) s += exp((double)__fsub_rn(xr[j], m));
    s = kiln_warp_sum_d(s);
    const double inv = 1.0 / s;
    for (int j = lane; j < cols; j += 32) {
        const float e = (float)exp((double)__fsub_rn(xr[j], m));
        yr[j] = (float)((double)e * inv);
    }
}

// dx[r, :] = y[r, :] * (dy[r, :] - sum_j dy[r, j] * y[r, j]), one warp per
// row; the dot product in double, rounded to float, the rest float32.
// Launch: block 256, grid ceil(rows / 8). dx may alias dy.
extern "C" __global__ void softmax_grad_rows_f32(const float* y, const float* dy, float* dx, int rows, int cols) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* yr = y + row * cols;
    const float* dyr = dy + row * cols;
    float* dxr = dx + row * cols;
    double dot = 0.0;
    for (int j = lane; j < cols; j += 32) dot += (double)dyr[j] * (double)yr[j];
    const float dt = (float)kiln_warp_sum_d(dot);
    for (int j = lane; j < cols; j += 32) dxr[j] = __fmul_rn(yr[j], __fsub_rn(dyr[j], dt));
}
