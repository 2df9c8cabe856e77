// Elementwise arithmetic, fill and bias add.
//
// Launch shape of every kernel here: 1-D grid of 1-D blocks (256 threads on
// the host side, any multiple of 32 works), grid-stride loops, so any grid
// size covers any n. Arguments named vec select the float4 path: the host
// sets vec = 1 only when every pointer the kernel touches is 16-byte aligned;
// the float4 loop covers the first n/4*4 elements and a scalar loop the tail.
// Outputs may alias inputs (same index in, same index out).
//
// Products and sums use __fmul_rn/__fadd_rn so that nvcc cannot contract
// them into FMAs: each operation rounds once, as the CPU backend does, and the
// two backends agree bit for bit.
#include "common.cuh"

#define KILN_TID ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define KILN_STRIDE ((long long)blockDim.x * gridDim.x)

enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2 };

template <int OP>
__device__ __forceinline__ float bin_op(float a, float b) {
    if (OP == OP_ADD) return __fadd_rn(a, b);
    if (OP == OP_SUB) return __fsub_rn(a, b);
    return __fmul_rn(a, b);
}

template <int OP>
__device__ __forceinline__ void binary_loop(const float* a, const float* b, float* out, long long n, int vec) {
    long long done = 0;
    if (vec) {
        const long long n4 = n >> 2;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        float4* o4 = reinterpret_cast<float4*>(out);
        KILN_FOR(i, n4) {
            const float4 x = a4[i], y = b4[i];
            float4 r;
            r.x = bin_op<OP>(x.x, y.x);
            r.y = bin_op<OP>(x.y, y.y);
            r.z = bin_op<OP>(x.z, y.z);
            r.w = bin_op<OP>(x.w, y.w);
            o4[i] = r;
        }
        done = n4 << 2;
    }
    for (long long i = done + KILN_TID; i < n; i += KILN_STRIDE) out[i] = bin_op<OP>(a[i], b[i]);
}

// out[i] = a[i] + b[i], i < n.
extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n, int vec) {
    binary_loop<OP_ADD>(a, b, out, n, vec);
}

// out[i] = a[i] - b[i], i < n.
extern "C" __global__ void sub_f32(const float* a, const float* b, float* out, long long n, int vec) {
    binary_loop<OP_SUB>(a, b, out, n, vec);
}

// out[i] = a[i] * b[i], i < n.
extern "C" __global__ void mul_f32(const float* a, const float* b, float* out, long long n, int vec) {
    binary_loop<OP_MUL>(a, b, out, n, vec);
}

// out[i] = alpha * x[i], i < n.
extern "C" __global__ void scale_f32(float alpha, const float* x, float* out, long long n, int vec) {
    long long done = 0;
    if (vec) {
        const long long n4 = n >> 2;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        float4* o4 = reinterpret_cast<float4*>(out);
        KILN_FOR(i, n4) {
            const float4 v = x4[i];
            o4[i] = make_float4(__fmul_rn(alpha, v.x), __fmul_rn(alpha, v.y), __fmul_rn(alpha, v.z),
                                __fmul_rn(alpha, v.w));
        }
        done = n4 << 2;
    }
    for (long long i = done + KILN_TID; i < n; i += KILN_STRIDE) out[i] = __fmul_rn(alpha, x[i]);
}

// y[i] = alpha * x[i] + y[i], i < n (two roundings, no FMA).
extern "C" __global__ void axpy_f32(float alpha, const float* x, float* y, long long n, int vec) {
    long long done = 0;
    if (vec) {
        const long long n4 = n >> 2;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        float4* y4 = reinterpret_cast<float4*>(y);
        KILN_FOR(i, n4) {
            const float4 v = x4[i];
            float4 w = y4[i];
            w.x = __fadd_rn(__fmul_rn(alpha, v.x), w.x);
            w.y = __fadd_rn(__fmul_rn(alpha, v.y), w.y);
            w.z = __fadd_rn(__fmul_rn(alpha, v.z), w.z);
            w.w = __fadd_rn(__fmul_rn(alpha, v.w), w.w);
            y4[i] = w;
        }
        done = n4 << 2;
    }
    for (long long i = done + KILN_TID; i < n; i += KILN_STRIDE) y[i] = __fadd_rn(__fmul_rn(alpha, x[i]), y[i]);
}

// x[i] = v, i < n.
extern "C" __global__ void fill_f32(float* x, long long n, float v, int vec) {
    long long done = 0;
    if (vec) {
        const long long n4 = n >> 2;
        float4* x4 = reinterpret_cast<float4*>(x);
        const float4 v4 = make_float4(v, v, v, v);
        KILN_FOR(i, n4) x4[i] = v4;
        done = n4 << 2;
    }
    for (long long i = done + KILN_TID; i < n; i += KILN_STRIDE) x[i] = v;
}

// x[i, j] += bias[j] for a row-major rows x cols matrix x; total = rows*cols.
// vec = 1 needs x and bias 16-byte aligned and cols a multiple of 4.
extern "C" __global__ void add_bias_f32(float* x, const float* bias, long long total, int cols, int vec) {
    if (vec) {
        const long long n4 = total >> 2;
        const int c4 = cols >> 2;
        float4* x4 = reinterpret_cast<float4*>(x);
        const float4* b4 = reinterpret_cast<const float4*>(bias);
        KILN_FOR(i, n4) {
            float4 v = x4[i];
            const float4 b = b4[i % c4];
            v.x = __fadd_rn(v.x, b.x);
            v.y = __fadd_rn(v.y, b.y);
            v.z = __fadd_rn(v.z, b.z);
            v.w = __fadd_rn(v.w, b.w);
            x4[i] = v;
        }
        return; // total is a multiple of 4 when cols is
    }
    KILN_FOR(i, total) x[i] = __fadd_rn(x[i], bias[i % cols]);
}
