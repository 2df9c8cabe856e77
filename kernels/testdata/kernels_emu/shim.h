// shim.h: just enough of CUDA to compile kernels/{activations,elementwise,
// losses,optim,reduce,random}.cu as host C++ and run each kernel on the
// CPU, one OS thread per CUDA thread. Used by harness.cpp (see
// kernels/kernels_emu_test.go). Same approach as testdata/gemm_emu/shim.h,
// with warp shuffles instead of mma.sync and cp.async.
//
// What is emulated:
//   - threadIdx/blockIdx (thread-local), blockDim/gridDim (global);
//   - __shared__ as static storage: blocks run one at a time, so a static
//     array is the current block's shared memory;
//   - __syncthreads as a barrier over the block's threads;
//   - __shfl_xor_sync / __shfl_down_sync / __shfl_up_sync / __shfl_sync as
//     warp collectives: each lane publishes its value, the 32 lanes of the
//     warp meet at a barrier, each reads its source lane's value, and the
//     warp meets again. The emulation insists on what the hardware needs
//     for a full mask: all 32 lanes present (none has returned), the same
//     mask and the same lane operand in every lane;
//   - a barrier (block or warp) reached while a thread it waits for has
//     already returned is reported as an error, not a hang;
//   - the rounding intrinsics (__fadd_rn, __fmul_rn, __dmul_rn, ...) as
//     plain IEEE operations: compile with -ffp-contract=off so that nothing
//     is fused;
//   - float4 / uint4 with their device alignment, so UBSan reports a float4
//     access through a pointer that is not 16-byte aligned.
#pragma once

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <mutex>
#include <condition_variable>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline double __longlong_as_double(long long u) { double f; memcpy(&f, &u, 8); return f; }
inline long long __double_as_longlong(double f) { long long u; memcpy(&u, &f, 8); return u; }

// --- IEEE operations with one rounding (no contraction under -ffp-contract=off)
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

// --- barriers -------------------------------------------------------------------
[[noreturn]] void emu_fail(const char* why);
void emu_no_collectives(); // fails when the launch runs its threads one by one

// EmuBarrier is a reusable barrier over n threads that knows which of them
// have returned from the kernel: a barrier that would wait for a returned
// thread is a kernel bug (undefined on the GPU; a deadlock here), reported
// through emu_fail. onLast, when set, runs in the last thread to arrive
// before the others are released.
struct EmuBarrier {
    std::mutex mu;
    std::condition_variable cv;
    int n = 0, arrived = 0, exited = 0;
    unsigned long gen = 0;
    const char* what = "barrier";
    void (*onLast)() = nullptr;

    void reset(int count) {
        n = count;
        arrived = 0;
        exited = 0;
    }
    void wait() {
        emu_no_collectives();
        std::unique_lock<std::mutex> l(mu);
        if (exited) emu_fail(what);
        const unsigned long g = gen;
        if (++arrived == n) {
            if (onLast) onLast();
            arrived = 0;
            gen++;
            cv.notify_all();
            return;
        }
        cv.wait(l, [&] { return gen != g; });
    }
    // exit marks the calling thread as returned from the kernel.
    void exit() {
        std::lock_guard<std::mutex> l(mu);
        exited++;
        if (arrived) emu_fail(what);
    }
};

extern EmuBarrier emu_block_barrier;
extern EmuBarrier emu_warp_barrier[32];
inline void __syncthreads() { emu_block_barrier.wait(); }

// --- warp shuffles ---------------------------------------------------------------
struct EmuShflLane {
    uint64_t bits;
    unsigned mask;
    int kind, arg, width;
};
extern EmuShflLane emu_shfl[32][32]; // [warp][lane]

template <typename T>
inline T emu_shfl_op(unsigned mask, T v, int kind, int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    if (mask != 0xffffffffu) emu_fail("shuffle with a partial mask (not emulated)");
    if (width != 32) emu_fail("shuffle with width != 32 (not emulated)");
    EmuShflLane& me = emu_shfl[warp][lane];
    me.bits = 0;
    memcpy(&me.bits, &v, sizeof(T));
    me.mask = mask;
    me.kind = kind;
    me.arg = arg;
    me.width = width;
    emu_warp_barrier[warp].wait();
    for (int l = 0; l < 32; ++l) {
        const EmuShflLane& o = emu_shfl[warp][l];
        if (o.kind != kind || o.mask != mask || o.width != width)
            emu_fail("lanes of a warp reached different shuffles");
        if (kind != 3 && o.arg != arg) emu_fail("lanes of a warp shuffled with different lane operands");
    }
    int src = lane;
    switch (kind) {
    case 0: src = lane ^ arg; break;                            // xor
    case 1: src = lane + arg < 32 ? lane + arg : lane; break;   // down
    case 2: src = lane - arg >= 0 ? lane - arg : lane; break;   // up
    case 3: src = arg & 31; break;                               // idx
    }
    if (src < 0 || src > 31) src = lane;
    T r;
    memcpy(&r, &emu_shfl[warp][src].bits, sizeof(T));
    emu_warp_barrier[warp].wait(); // nobody publishes again before all have read
    return r;
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
    return emu_shfl_op(mask, v, 0, laneMask, width);
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu_shfl_op(mask, v, 1, (int)delta, width);
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu_shfl_op(mask, v, 2, (int)delta, width);
}
template <typename T> inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
    return emu_shfl_op(mask, v, 3, srcLane, width);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) emu_fail("__syncwarp with a partial mask (not emulated)");
    emu_warp_barrier[(int)threadIdx.x / 32].wait();
}
