// Shared device helpers for kiln's kernels. Every kernel file includes this
// header; nothing here is a kernel itself.
//
// Conventions of every kernel:
//   - element counts are 64-bit (long long) so buffers above 2^31 elements work;
//   - 1-D kernels use grid-stride loops, so the host may cap the grid at a few
//     blocks per SM and still cover any n;
//   - reductions are deterministic: a fixed tree inside a block, per-block
//     partials in a workspace, and a second single-block pass in a fixed order
//     (no floating-point atomics anywhere).
#pragma once

#define KILN_WARP 32
#define KILN_FULL_MASK 0xffffffffu

// Grid-stride loop over [0, n).
#define KILN_FOR(i, n)                                                            \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// Butterfly warp reductions: every lane ends with the same bits (a+b == b+a
// in IEEE arithmetic), so the result does not depend on the lane.
__device__ __forceinline__ float kiln_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(KILN_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ double kiln_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(KILN_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float kiln_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(KILN_FULL_MASK, v, o));
    return v;
}

// Block-wide sum in double. blockDim.x must be a multiple of 32 and at most
// 1024. Every thread of the block must call it; the result is valid in
// thread 0 (and in every thread of warp 0).
__device__ __forceinline__ double kiln_block_sum_d(double v) {
    __shared__ double warp_part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = kiln_warp_sum_d(v);
    __syncthreads(); // warp_part may still be read by a previous call
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    const int nwarps = blockDim.x >> 5;
    v = 0.0;
    if (warp == 0) {
        if (lane < nwarps) v = warp_part[lane];
        v = kiln_warp_sum_d(v);
    }
    return v;
}
