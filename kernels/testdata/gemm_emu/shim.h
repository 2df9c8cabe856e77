// shim.h: just enough of CUDA to compile kernels/gemm.cu as host C++ and
// run each kernel on the CPU, one OS thread per CUDA thread. Used by
// harness.cpp (see kernels/gemm_emu_test.go).
//
// What is emulated:
//   - threadIdx/blockIdx (thread-local), blockDim/gridDim (global);
//   - __shared__ as static storage: blocks run one at a time, so a static
//     array is the current block's shared memory;
//   - __syncthreads as a pthread barrier over the block's threads;
//   - mma.sync m16n8k8 tf32 as a warp-collective: each lane publishes its
//     fragments, the warp meets at a barrier, each lane computes its own
//     accumulators from everybody's fragments using the PTX ISA fragment
//     layout, and the warp meets again;
//   - cvt.rna.tf32.f32;
//   - cp.async with zero fill: copies are queued per thread and performed
//     only when cp.async.wait_group requires their group to be complete
//     (the latest moment the hardware may finish them), so a kernel that
//     reads a stage too early sees stale data. With KILN_EMU_EAGER=1 in the
//     environment they are performed at issue instead (the earliest
//     moment), so a stage overwritten while others still read it shows up.
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#define KILN_GEMM_HOST_EMU 1
#define __device__
#define __global__
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
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// --- barriers ---------------------------------------------------------------
extern pthread_barrier_t* emu_block_barrier;
extern pthread_barrier_t emu_warp_barrier[32];
inline void __syncthreads() { pthread_barrier_wait(emu_block_barrier); }

// --- cvt.rna.tf32.f32 ----------------------------------------------------------
// Round to nearest, ties away from zero, keeping 10 mantissa bits (finite x).
inline uint32_t kiln_tf32(float x)
{
    uint32_t u = __float_as_uint(x);
    u += 0x1000u;  // half an ulp of tf32, on the magnitude
    return u & 0xffffe000u;
}

// --- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ------------------------
struct EmuMmaLane {
    uint32_t a[4], b[2];
};
extern EmuMmaLane emu_mma[32][32];  // [warp][lane]

inline void kiln_mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2])
{
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    EmuMmaLane& me = emu_mma[warp][lane];
    for (int i = 0; i < 4; ++i) me.a[i] = a[i];
    for (int i = 0; i < 2; ++i) me.b[i] = b[i];
    pthread_barrier_wait(&emu_warp_barrier[warp]);
    // Element (row, col) of the warp's A (16×8) and B (8×8), from the
    // fragment layout of the PTX ISA (groupID = lane>>2, tig = lane%4):
    //   A: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
    //   B: b0 (t, g), b1 (t+4, g)
    //   C/D: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
    auto A = [&](int row, int col) -> float {
        const int l = (row % 8) * 4 + (col % 4);
        const int reg = (row >= 8 ? 1 : 0) + (col >= 4 ? 2 : 0);
        return __uint_as_float(emu_mma[warp][l].a[reg]);
    };
    auto B = [&](int row, int col) -> float {
        const int l = col * 4 + (row % 4);
        return __uint_as_float(emu_mma[warp][l].b[row >= 4 ? 1 : 0]);
    };
    const int g = lane / 4, t = lane % 4;
    for (int r = 0; r < 4; ++r) {
        const int row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r % 2);
        double s = d[r];
        for (int kk = 0; kk < 8; ++kk) {
            const float x = A(row, kk), y = B(kk, col);
            // The tensor core reads only the tf32 bits: insist that the
            // kernel rounded its operands.
            if ((__float_as_uint(x) & 0x1fffu) || (__float_as_uint(y) & 0x1fffu)) {
                fprintf(stderr, "mma operand not rounded to tf32\n");
                abort();
            }
            s += (double)x * (double)y;
        }
        d[r] = (float)s;
    }
    pthread_barrier_wait(&emu_warp_barrier[warp]);
}

// --- cp.async ----------------------------------------------------------------------
struct EmuCopy {
    float* dst;
    const float* src;
    int bytes, srcBytes, group;
};
struct EmuAsync {
    std::vector<EmuCopy> pending;
    int committed = 0;  // groups committed so far; the open group is number `committed`
};
extern thread_local EmuAsync emu_async;
extern bool emu_eager;

inline void emu_do_copy(const EmuCopy& c)
{
    char* d = (char*)c.dst;
    memset(d, 0, c.bytes);
    if (c.srcBytes > 0) memcpy(d, c.src, c.srcBytes);
}

inline void emu_cp_async(float* dst, const float* src, int bytes, bool valid)
{
    if (((uintptr_t)dst % bytes) || ((uintptr_t)src % bytes)) {
        fprintf(stderr, "cp.async of %d bytes misaligned (dst %p, src %p)\n", bytes, (void*)dst, (const void*)src);
        abort();
    }
    EmuCopy c{dst, src, bytes, valid ? bytes : 0, emu_async.committed};
    if (emu_eager) emu_do_copy(c);
    else emu_async.pending.push_back(c);
}
inline void kiln_cp_async16(float* dst, const float* src, bool valid) { emu_cp_async(dst, src, 16, valid); }
inline void kiln_cp_async4(float* dst, const float* src, bool valid) { emu_cp_async(dst, src, 4, valid); }
inline void kiln_cp_async_commit() { emu_async.committed++; }

template <int N>
inline void kiln_cp_async_wait()
{
    // Groups 0 .. committed-1-N must be complete.
    std::vector<EmuCopy> keep;
    for (const EmuCopy& c : emu_async.pending) {
        if (c.group < emu_async.committed - N) emu_do_copy(c);
        else keep.push_back(c);
    }
    emu_async.pending.swap(keep);
}
