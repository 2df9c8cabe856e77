// gemm.cu: kiln's matrix products.
//
//   C = alpha * op(A) * op(B) + beta * C
//
// Row-major and contiguous: op(A) is m×k (A is stored m×k, or k×m for the
// "t" variants), op(B) is k×n (B stored k×n, or n×k), C is m×n. The leading
// dimension of every matrix is its row length. When beta == 0, C is never
// read, so NaNs already in C do not leak into the result.
//
// Every kernel takes the same plain arguments, in this order:
//
//   (int m, int n, int k, float alpha, const float* A, long long strideA,
//    const float* B, long long strideB, float beta, float* C,
//    long long strideC, int splits)
//
// and is correct for every shape (m, n ≥ 1, k ≥ 0; edges that are not
// multiples of the tile) and every alignment: buffers may be views at any
// element offset. A kernel checks at run time, once per block, whether an
// operand's pointer is 16-byte aligned and its row length a multiple of 4;
// only then does it use 16-byte loads and stores for that operand, and
// otherwise it reads element by element with bounds checks. The choice is
// uniform across the block, so the check costs nothing in the inner loop.
//
// Batches: a launch with gridDim.z = batch * splits computes the products
// C_i = alpha * op(A_i) * op(B_i) + beta * C_i, i = blockIdx.z / splits,
// with A_i = A + i*strideA, B_i = B + i*strideB and C_i = C + i*strideC
// (64-bit element strides; 0 shares one matrix among all i). Gemm is the
// case batch = 1 (the strides are then never used; it passes 0).
//
// Split-K: when splits = S > 1, block z handles its own slice of k (slice
// s = blockIdx.z % S; slices of equal size, a multiple of the tile depth)
// and writes its partial product to C_i + s*m*n, so C then points to a
// batch*S*m*n workspace (strideC = S*m*n) and the caller passes alpha = 1,
// beta = 0. kiln_sgemm_splitk_reduce then sums the S partials in a fixed
// order into the real C. No atomics: results are the same bit for bit run
// after run. kernels/gemm_launch.go (PlanGemm, PlanGemmBatched) chooses the
// kernel and launch shape.
//
// Kernel families (each with _nn, _nt, _tn, _tt for transA/transB):
//
//   kiln_sgemm_*        fp32, 128×128 block tile, 8×8 outputs per thread,
//                       256 threads, 16.5 KB static shared memory.
//   kiln_sgemm_small_*  fp32, 64×64 block tile, 4×4 outputs per thread,
//                       256 threads, 16.5 KB static shared memory; for small
//                       and skinny shapes, with split-K.
//   kiln_sgemm_tf32_*   TF32 tensor cores (mma.sync m16n8k8), 128×128 block
//                       tile, 256 threads, 4-stage cp.async pipeline,
//                       at most 48 KB static shared memory. Only in the
//                       compute_80 (and later) PTX.
//
// Compile flags: nvcc -ptx -O3 (no --use_fast_math: it changes nothing here
// but must not be relied on), -lineinfo is harmless.
//
// The host emulation in kernels/testdata/gemm_emu compiles this file as
// plain C++ (with KILN_GEMM_HOST_EMU defined) and runs every kernel on the
// CPU, one OS thread per CUDA thread, to check the index arithmetic; the
// PTX-only helpers below are replaced there by emulations.

#include <stdint.h>

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

__device__ __forceinline__ int kiln_imin(int a, int b) { return a < b ? a : b; }

__device__ __forceinline__ bool kiln_aligned16(const void* p)
{
    return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// kiln_load4 returns the four elements p[r*ld + c], ..., p[r*ld + c + 3] of
// a row-major matrix with row length ld, reading 0 for every element whose
// row r ≥ rend or whose column ≥ cend. With vec set it does one 16-byte
// load; the caller guarantees that p is 16-byte aligned and that ld, c and
// cend are multiples of 4, so the four elements are all in range or all out.
__device__ __forceinline__ float4 kiln_load4(const float* __restrict__ p, int ld,
                                             int r, int rend, int c, int cend, bool vec)
{
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (r < rend) {
        const float* q = p + (size_t)r * ld + c;
        if (vec) {
            if (c < cend) v = *reinterpret_cast<const float4*>(q);
        } else {
            if (c + 0 < cend) v.x = q[0];
            if (c + 1 < cend) v.y = q[1];
            if (c + 2 < cend) v.z = q[2];
            if (c + 3 < cend) v.w = q[3];
        }
    }
    return v;
}

// kiln_split_range gives split s of splits its slice [kbeg, kend) of
// 0..k. Slices are ceil(k/splits) rounded up to a multiple of BK, so every
// slice but the last starts and ends on a multiple of BK (and of 4). A slice
// may be empty (kbeg == kend); its block then writes zeros.
template <int BK>
__device__ __forceinline__ void kiln_split_range(int k, int splits, int s, int& kbeg, int& kend)
{
    int chunk = (k + splits - 1) / splits;
    chunk = (chunk + BK - 1) / BK * BK;
    kbeg = kiln_imin(k, s * chunk);
    kend = kiln_imin(k, kbeg + chunk);
}

// kiln_batch_offsets gives block z of a launch with gridDim.z = batch*splits
// its batch entry's element offsets into A, B and C (the last including its
// split's partial product, at C_i + s*m*n), and its split s.
__device__ __forceinline__ int kiln_batch_offsets(long long strideA, long long strideB, long long strideC, int M,
                                                  int N, int splits, long long& offA, long long& offB,
                                                  long long& offC)
{
    const long long bz = (long long)(blockIdx.z / (unsigned)splits);
    const int sz = (int)(blockIdx.z % (unsigned)splits);
    offA = bz * strideA;
    offB = bz * strideB;
    offC = bz * strideC + (long long)sz * M * N;
    return sz;
}

// ---------------------------------------------------------------------------
// fp32 SIMT kernel (templated; instantiated as kiln_sgemm_* and
// kiln_sgemm_small_*)
// ---------------------------------------------------------------------------
//
// Block tile BM×BN, depth BK. The block's warps form a WARPS_M×WARPS_N grid,
// each warp owns a WM×WN tile (WM = 32*RM, WN = 16*RN) and its lanes form an
// 8×4 grid (lm = lane/4 down, ln = lane%4 across). A lane owns RM×RN
// sub-tiles of 4×4 outputs:
//
//   rows  wm*WM + s*32 + lm*4 + i   (s < RM, i < 4)
//   cols  wn*WN + u*16 + ln*4 + j   (u < RN, j < 4)
//
// Both operand tiles sit in shared memory k-major, As[kk][m] and Bs[kk][n]
// (A is stored transposed there), so that a lane reads its 4 consecutive
// rows or columns with one 16-byte load; the 8 lanes lm of a warp read 128
// consecutive bytes (no bank conflicts). Rows are padded by 4 floats, which
// keeps 16-byte alignment and makes the transposing stores conflict-free
// for BK = 8.
//
// Global memory → registers → shared memory, double-buffered: while the
// block computes on one shared buffer, each thread holds the next k-slice
// in registers and writes it to the other buffer afterwards; one
// __syncthreads per k-slice.

// kiln_fetch_tile reads this thread's part of one BK-deep slice of an
// operand tile into registers. The operand is stored either "k-contiguous"
// (KCONTIG: D×K row-major, i.e. A not transposed or B transposed) or
// "mn-contiguous" (K×D row-major). d0 is the tile's first row (of m or n),
// kt its first k, kend the end of this block's k range.
template <bool KCONTIG, int ROWS, int BK, int THREADS, int LOADS>
__device__ __forceinline__ void kiln_fetch_tile(float4 (&r)[LOADS], const float* __restrict__ X,
                                                int D, int K, int d0, int kt, int kend, bool vec)
{
#pragma unroll
    for (int l = 0; l < LOADS; ++l) {
        const int f = (int)threadIdx.x + l * THREADS;  // float4 index within the tile
        if (KCONTIG) {
            const int row = f / (BK / 4), kq = (f % (BK / 4)) * 4;
            r[l] = kiln_load4(X, K, d0 + row, D, kt + kq, kend, vec);
        } else {
            const int kk = f / (ROWS / 4), c = (f % (ROWS / 4)) * 4;
            r[l] = kiln_load4(X, D, kt + kk, kend, d0 + c, D, vec);
        }
    }
}

// kiln_store_tile writes the registers of kiln_fetch_tile into the k-major
// shared tile S[BK][ROWS + 4].
template <bool KCONTIG, int ROWS, int BK, int THREADS, int LOADS>
__device__ __forceinline__ void kiln_store_tile(float (*S)[ROWS + 4], const float4 (&r)[LOADS])
{
#pragma unroll
    for (int l = 0; l < LOADS; ++l) {
        const int f = (int)threadIdx.x + l * THREADS;
        if (KCONTIG) {
            const int row = f / (BK / 4), kq = (f % (BK / 4)) * 4;
            S[kq + 0][row] = r[l].x;
            S[kq + 1][row] = r[l].y;
            S[kq + 2][row] = r[l].z;
            S[kq + 3][row] = r[l].w;
        } else {
            const int kk = f / (ROWS / 4), c = (f % (ROWS / 4)) * 4;
            *reinterpret_cast<float4*>(&S[kk][c]) = r[l];
        }
    }
}

template <bool TA, bool TB, int WARPS_M, int WARPS_N, int RM, int RN, int BK>
__device__ __forceinline__ void kiln_sgemm_simt(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                long long strideA, const float* __restrict__ B,
                                                long long strideB, float beta, float* __restrict__ C,
                                                long long strideC, int splits)
{
    constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    constexpr int WM = 32 * RM, WN = 16 * RN;  // warp tile
    constexpr int BM = WARPS_M * WM, BN = WARPS_N * WN;  // block tile
    constexpr int TM = 4 * RM, TN = 4 * RN;  // outputs per thread
    constexpr int LOADS_A = BM * BK / 4 / THREADS, LOADS_B = BN * BK / 4 / THREADS;
    static_assert(LOADS_A * 4 * THREADS == BM * BK, "A tile must split evenly into float4 loads");
    static_assert(LOADS_B * 4 * THREADS == BN * BK, "B tile must split evenly into float4 loads");
    static_assert(BK % 4 == 0, "BK must be a multiple of 4");

    __shared__ __align__(16) float As[2][BK][BM + 4];
    __shared__ __align__(16) float Bs[2][BK][BN + 4];

    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int lm = lane / 4, ln = lane % 4;
    const int m0 = (int)blockIdx.y * BM, n0 = (int)blockIdx.x * BN;

    long long offA, offB, offC;
    const int split = kiln_batch_offsets(strideA, strideB, strideC, M, N, splits, offA, offB, offC);
    A += offA;  // this block's batch entry (C moves in the epilogue)
    B += offB;
    int kbeg, kend;
    kiln_split_range<BK>(K, splits, split, kbeg, kend);
    const int ntiles = (kend - kbeg + BK - 1) / BK;

    // Operand A is k-contiguous unless transposed; B is k-contiguous when
    // transposed. The row length of each stored matrix is its last extent.
    constexpr bool A_KC = !TA, B_KC = TB;
    const bool vecA = kiln_aligned16(A) && (A_KC ? K : M) % 4 == 0;
    const bool vecB = kiln_aligned16(B) && (B_KC ? K : N) % 4 == 0;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    float4 ra[LOADS_A], rb[LOADS_B];
    if (ntiles > 0) {
        kiln_fetch_tile<A_KC, BM, BK, THREADS, LOADS_A>(ra, A, M, K, m0, kbeg, kend, vecA);
        kiln_fetch_tile<B_KC, BN, BK, THREADS, LOADS_B>(rb, B, N, K, n0, kbeg, kend, vecB);
        kiln_store_tile<A_KC, BM, BK, THREADS, LOADS_A>(As[0], ra);
        kiln_store_tile<B_KC, BN, BK, THREADS, LOADS_B>(Bs[0], rb);
    }
    __syncthreads();

    for (int t = 0; t < ntiles; ++t) {
        const int cur = t & 1;
        const bool more = t + 1 < ntiles;
        if (more) {  // prefetch the next k-slice into registers
            const int kt = kbeg + (t + 1) * BK;
            kiln_fetch_tile<A_KC, BM, BK, THREADS, LOADS_A>(ra, A, M, K, m0, kt, kend, vecA);
            kiln_fetch_tile<B_KC, BN, BK, THREADS, LOADS_B>(rb, B, N, K, n0, kt, kend, vecB);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int s = 0; s < RM; ++s) {
                const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk][wm * WM + s * 32 + lm * 4]);
                a[4 * s + 0] = v.x; a[4 * s + 1] = v.y; a[4 * s + 2] = v.z; a[4 * s + 3] = v.w;
            }
#pragma unroll
            for (int u = 0; u < RN; ++u) {
                const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk][wn * WN + u * 16 + ln * 4]);
                b[4 * u + 0] = v.x; b[4 * u + 1] = v.y; b[4 * u + 2] = v.z; b[4 * u + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {  // the other buffer is free: everyone passed the last barrier
            kiln_store_tile<A_KC, BM, BK, THREADS, LOADS_A>(As[cur ^ 1], ra);
            kiln_store_tile<B_KC, BN, BK, THREADS, LOADS_B>(Bs[cur ^ 1], rb);
        }
        __syncthreads();
    }

    // Epilogue: C = alpha*acc + beta*C, C not read when beta == 0. C moves
    // to this block's batch entry (and split-K slice) only now, its offset
    // computed again: that keeps it out of the registers of the main loop
    // (the 128×128 kernel spills otherwise).
    kiln_batch_offsets(strideA, strideB, strideC, M, N, splits, offA, offB, offC);
    C += offC;
    const bool vecC = kiln_aligned16(C) && N % 4 == 0;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = m0 + wm * WM + (i / 4) * 32 + lm * 4 + (i % 4);
        if (row >= M) continue;
        float* crow = C + (size_t)row * N;
#pragma unroll
        for (int u = 0; u < RN; ++u) {
            const int col = n0 + wn * WN + u * 16 + ln * 4;
            float v[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) v[j] = alpha * acc[i][4 * u + j];
            if (vecC) {
                if (col < N) {
                    float4* p = reinterpret_cast<float4*>(crow + col);
                    if (beta != 0.f) {
                        const float4 old = *p;
                        v[0] = fmaf(beta, old.x, v[0]);
                        v[1] = fmaf(beta, old.y, v[1]);
                        v[2] = fmaf(beta, old.z, v[2]);
                        v[3] = fmaf(beta, old.w, v[3]);
                    }
                    *p = make_float4(v[0], v[1], v[2], v[3]);
                }
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (col + j < N) {
                        if (beta != 0.f) v[j] = fmaf(beta, crow[col + j], v[j]);
                        crow[col + j] = v[j];
                    }
                }
            }
        }
    }
}

// kiln_sgemm_{nn,nt,tn,tt}: fp32, the fast path for large products.
// Launch: grid (ceil(n/128), ceil(m/128), batch*splits), block (256,1,1), no
// dynamic shared memory (2×(8×132 + 8×132) floats = 16.9 KB static).
// Warps 2×4, warp tile 64×32, 8×8 outputs per thread, k-slices of 8.
#define KILN_SGEMM_BIG(NAME, TA, TB)                                                        \
    extern "C" __global__ void __launch_bounds__(256, 2)                                    \
        NAME(int m, int n, int k, float alpha, const float* __restrict__ A, long long sA,   \
             const float* __restrict__ B, long long sB, float beta, float* __restrict__ C,  \
             long long sC, int splits)                                                      \
    {                                                                                       \
        kiln_sgemm_simt<TA, TB, 2, 4, 2, 2, 8>(m, n, k, alpha, A, sA, B, sB, beta, C, sC, splits); \
    }
KILN_SGEMM_BIG(kiln_sgemm_nn, false, false)
KILN_SGEMM_BIG(kiln_sgemm_nt, false, true)
KILN_SGEMM_BIG(kiln_sgemm_tn, true, false)
KILN_SGEMM_BIG(kiln_sgemm_tt, true, true)

// kiln_sgemm_small_{nn,nt,tn,tt}: fp32 for small and skinny products (the
// MLP shapes), usually with split-K.
// Launch: grid (ceil(n/64), ceil(m/64), batch*splits), block (256,1,1), no
// dynamic shared memory (2×(16×68 + 16×68) floats = 17.4 KB static).
// Warps 2×4, warp tile 32×16, 4×4 outputs per thread, k-slices of 16.
#define KILN_SGEMM_SMALL(NAME, TA, TB)                                                      \
    extern "C" __global__ void __launch_bounds__(256)                                       \
        NAME(int m, int n, int k, float alpha, const float* __restrict__ A, long long sA,   \
             const float* __restrict__ B, long long sB, float beta, float* __restrict__ C,  \
             long long sC, int splits)                                                      \
    {                                                                                       \
        kiln_sgemm_simt<TA, TB, 2, 4, 1, 1, 16>(m, n, k, alpha, A, sA, B, sB, beta, C, sC, splits); \
    }
KILN_SGEMM_SMALL(kiln_sgemm_small_nn, false, false)
KILN_SGEMM_SMALL(kiln_sgemm_small_nt, false, true)
KILN_SGEMM_SMALL(kiln_sgemm_small_tn, true, false)
KILN_SGEMM_SMALL(kiln_sgemm_small_tt, true, true)

// kiln_sgemm_splitk_reduce sums the partial products of a split-K launch:
//   C[i] = alpha * (W[i] + W[mn + i] + ... + W[(splits-1)*mn + i]) + beta*C[i]
// in that fixed order, for i < mn = m*n; C is not read when beta == 0. Batch
// entry b = blockIdx.y has its partials at W + b*splits*mn and its output at
// C + b*strideC. Arguments: (int mn, int splits, float alpha, const float* W,
// float beta, float* C, long long strideC). Launch: grid (ceil(mn/256),
// batch, 1) or fewer in x (grid-stride loop), block (256,1,1), no shared
// memory.
extern "C" __global__ void __launch_bounds__(256)
    kiln_sgemm_splitk_reduce(int mn, int splits, float alpha, const float* __restrict__ W,
                             float beta, float* __restrict__ C, long long strideC)
{
    W += (long long)blockIdx.y * splits * mn;
    C += (long long)blockIdx.y * strideC;
    for (int i = (int)(blockIdx.x * blockDim.x + threadIdx.x); i < mn;
         i += (int)(gridDim.x * blockDim.x)) {
        float s = 0.f;
        for (int z = 0; z < splits; ++z) s += W[(size_t)z * mn + i];
        float v = alpha * s;
        if (beta != 0.f) v = fmaf(beta, C[i], v);
        C[i] = v;
    }
}

// ---------------------------------------------------------------------------
// TF32 tensor-core kernel (sm_80 and later only)
// ---------------------------------------------------------------------------

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

#ifndef KILN_GEMM_HOST_EMU
// PTX wrappers. The host emulation (kernels/testdata/gemm_emu) defines the
// same five functions for the CPU.

// kiln_tf32 rounds x to TensorFloat-32 (10-bit mantissa), to nearest with
// ties away from zero, and returns the bits.
__device__ __forceinline__ uint32_t kiln_tf32(float x)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// kiln_mma_tf32: d += a·b for one warp, a 16×8 (row), b 8×8 (col), d 16×8,
// fragments as in the PTX ISA, "Matrix Fragments for mma.m16n8k8" (.tf32):
// with g = lane/4 and t = lane%4,
//   a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   b0 = B[t][g], b1 = B[t+4][g]
//   d0 = D[g][2t], d1 = D[g][2t+1], d2 = D[g+8][2t], d3 = D[g+8][2t+1]
__device__ __forceinline__ void kiln_mma_tf32(float (&d)[4], const uint32_t (&a)[4],
                                              const uint32_t (&b)[2])
{
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// kiln_cp_async16 copies 16 bytes from global src to shared dst without
// passing through registers, or writes 16 zero bytes when !valid (src-size
// 0: nothing is read; src is then any valid address). Needs 16-byte
// aligned src and dst.
__device__ __forceinline__ void kiln_cp_async16(float* dst, const float* src, bool valid)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(n)
                 : "memory");
}

// kiln_cp_async4: the same for one float (4-byte aligned).
__device__ __forceinline__ void kiln_cp_async4(float* dst, const float* src, bool valid)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(s), "l"(src), "r"(n)
                 : "memory");
}

__device__ __forceinline__ void kiln_cp_async_commit()
{
    asm volatile("cp.async.commit_group;" ::: "memory");
}

// kiln_cp_async_wait<N> waits until at most N of this thread's committed
// groups are still in flight.
template <int N>
__device__ __forceinline__ void kiln_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#endif  // KILN_GEMM_HOST_EMU

// Shared-memory layout of one pipeline stage of an operand tile (ROWS rows
// of m or n, BK of k). A k-contiguous operand (A not transposed, B
// transposed) keeps its global layout: S[row][k], row length BK+4. An
// mn-contiguous operand likewise: S[k][row], row length ROWS+8. Both
// paddings keep rows 16-byte aligned (for cp.async) and make the fragment
// reads conflict-free: lanes read (row g, k t) for g < 8, t < 4, which is
// bank (12g + t) mod 32 resp. (136t + g) mod 32 = 8t + g, all distinct.
template <bool KCONTIG, int ROWS, int BK>
struct KilnTf32Tile {
    static constexpr int LD = KCONTIG ? BK + 4 : ROWS + 8;
    static constexpr int STAGE = KCONTIG ? ROWS * (BK + 4) : BK * (ROWS + 8);  // floats
    // at is the offset of element (row, k) in a stage.
    static __device__ __forceinline__ int at(int row, int k)
    {
        return KCONTIG ? row * LD + k : k * LD + row;
    }
};

// kiln_tf32_chunk gives the f-th 4-float chunk of an operand tile: its
// offset in the stage, and its position (d = row of m or n, kk = k) of its
// first element within the tile. A chunk runs along the stored row: along k
// when KCONTIG, along m or n otherwise.
template <bool KCONTIG, int ROWS, int BK>
__device__ __forceinline__ void kiln_tf32_chunk(int f, int& off, int& d, int& kk)
{
    if (KCONTIG) {
        d = f / (BK / 4);
        kk = (f % (BK / 4)) * 4;
    } else {
        kk = f / (ROWS / 4);
        d = (f % (ROWS / 4)) * 4;
    }
    off = KilnTf32Tile<KCONTIG, ROWS, BK>::at(d, kk);
}

// kiln_tf32_issue starts the asynchronous copies of this thread's chunks of
// the operand tile (rows d0.., k kt..) into shared stage S. Elements outside
// the matrix (row ≥ D or k ≥ kend) are written as zeros.
template <bool KCONTIG, int ROWS, int BK, int THREADS>
__device__ __forceinline__ void kiln_tf32_issue(float* S, const float* __restrict__ X, int D,
                                                int K, int d0, int kt, int kend, bool vec)
{
    constexpr int CHUNKS = ROWS * BK / 4 / THREADS;
#pragma unroll
    for (int l = 0; l < CHUNKS; ++l) {
        int off, d, kk;
        kiln_tf32_chunk<KCONTIG, ROWS, BK>((int)threadIdx.x + l * THREADS, off, d, kk);
        const int gr = KCONTIG ? d0 + d : kt + kk;  // stored row
        const int gc = KCONTIG ? kt + kk : d0 + d;  // stored column (first of 4)
        const int rend = KCONTIG ? D : kend;
        const int cend = KCONTIG ? kend : D;
        const int ld = KCONTIG ? K : D;
        const float* src = X + (size_t)gr * ld + gc;
        if (vec) {
            const bool ok = gr < rend && gc < cend;
            kiln_cp_async16(S + off, ok ? src : X, ok);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const bool ok = gr < rend && gc + j < cend;
                kiln_cp_async4(S + off + j, ok ? src + j : X, ok);
            }
        }
    }
}

// kiln_tf32_round rounds this thread's own chunks of stage S to TF32 in
// place (after its copies have landed, before the barrier that publishes
// them), so that the fragment reads need no conversion.
template <bool KCONTIG, int ROWS, int BK, int THREADS>
__device__ __forceinline__ void kiln_tf32_round(float* S)
{
    constexpr int CHUNKS = ROWS * BK / 4 / THREADS;
#pragma unroll
    for (int l = 0; l < CHUNKS; ++l) {
        int off, d, kk;
        kiln_tf32_chunk<KCONTIG, ROWS, BK>((int)threadIdx.x + l * THREADS, off, d, kk);
        float4 v = *reinterpret_cast<float4*>(S + off);
        v.x = __uint_as_float(kiln_tf32(v.x));
        v.y = __uint_as_float(kiln_tf32(v.y));
        v.z = __uint_as_float(kiln_tf32(v.z));
        v.w = __uint_as_float(kiln_tf32(v.w));
        *reinterpret_cast<float4*>(S + off) = v;
    }
}

// kiln_sgemm_tf32: block tile BM×BN (BM = WARPS_M*16*MT, BN = WARPS_N*8*NT),
// k-slices of BK (a multiple of 8), NSTAGE-deep cp.async ring. Warp (wm, wn)
// owns the WM×WN = 16MT × 8NT tile at (wm*WM, wn*WN): MT×NT mma tiles of
// 16×8, each accumulated in 4 floats per lane (layout of kiln_mma_tf32).
//
// Pipeline, per k-slice t: wait until slice t has landed; round own chunks
// to TF32; __syncthreads (slice t visible to all; everyone has finished
// slice t-1, so its stage may be refilled); start copying slice
// t+NSTAGE-1 into that stage; compute slice t. Exactly one commit per
// prologue step and per iteration, empty or not, so that wait_group
// NSTAGE-2 always means "slice t has landed".
template <bool TA, bool TB, int WARPS_M, int WARPS_N, int MT, int NT, int BK, int NSTAGE>
__device__ __forceinline__ void kiln_sgemm_tf32(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                long long strideA, const float* __restrict__ B,
                                                long long strideB, float beta, float* __restrict__ C,
                                                long long strideC, int splits)
{
    constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    constexpr int WM = 16 * MT, WN = 8 * NT;
    constexpr int BM = WARPS_M * WM, BN = WARPS_N * WN;
    constexpr bool A_KC = !TA, B_KC = TB;
    typedef KilnTf32Tile<A_KC, BM, BK> TileA;
    typedef KilnTf32Tile<B_KC, BN, BK> TileB;
    static_assert(BK % 8 == 0, "BK must be a multiple of 8");
    static_assert(BM * BK % (4 * THREADS) == 0 && BN * BK % (4 * THREADS) == 0,
                  "tiles must split evenly into 4-float chunks");
    static_assert(NSTAGE >= 2, "need at least two stages");

    __shared__ __align__(16) float As[NSTAGE * TileA::STAGE];
    __shared__ __align__(16) float Bs[NSTAGE * TileB::STAGE];

    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int g = lane / 4, t4 = lane % 4;
    const int m0 = (int)blockIdx.y * BM, n0 = (int)blockIdx.x * BN;

    long long offA, offB, offC;
    const int split = kiln_batch_offsets(strideA, strideB, strideC, M, N, splits, offA, offB, offC);
    A += offA;  // this block's batch entry
    B += offB;
    C += offC;  // split-K: this slice's partial product
    int kbeg, kend;
    kiln_split_range<BK>(K, splits, split, kbeg, kend);
    const int ntiles = (kend - kbeg + BK - 1) / BK;

    const bool vecA = kiln_aligned16(A) && (A_KC ? K : M) % 4 == 0;
    const bool vecB = kiln_aligned16(B) && (B_KC ? K : N) % 4 == 0;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

    // Prologue: slices 0 .. NSTAGE-2.
#pragma unroll
    for (int s = 0; s < NSTAGE - 1; ++s) {
        if (s < ntiles) {
            const int kt = kbeg + s * BK;
            kiln_tf32_issue<A_KC, BM, BK, THREADS>(As + s * TileA::STAGE, A, M, K, m0, kt, kend, vecA);
            kiln_tf32_issue<B_KC, BN, BK, THREADS>(Bs + s * TileB::STAGE, B, N, K, n0, kt, kend, vecB);
        }
        kiln_cp_async_commit();
    }

    for (int t = 0; t < ntiles; ++t) {
        const int st = t % NSTAGE;
        kiln_cp_async_wait<NSTAGE - 2>();
        kiln_tf32_round<A_KC, BM, BK, THREADS>(As + st * TileA::STAGE);
        kiln_tf32_round<B_KC, BN, BK, THREADS>(Bs + st * TileB::STAGE);
        __syncthreads();

        const int tn = t + NSTAGE - 1;  // refill the stage that slice t-1 used
        if (tn < ntiles) {
            const int sn = tn % NSTAGE, kt = kbeg + tn * BK;
            kiln_tf32_issue<A_KC, BM, BK, THREADS>(As + sn * TileA::STAGE, A, M, K, m0, kt, kend, vecA);
            kiln_tf32_issue<B_KC, BN, BK, THREADS>(Bs + sn * TileB::STAGE, B, N, K, n0, kt, kend, vecB);
        }
        kiln_cp_async_commit();

        const float* as = As + st * TileA::STAGE;
        const float* bs = Bs + st * TileB::STAGE;
#pragma unroll
        for (int ks = 0; ks < BK; ks += 8) {
            uint32_t af[MT][4], bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                const int r = wm * WM + i * 16 + g;
                af[i][0] = __float_as_uint(as[TileA::at(r, ks + t4)]);
                af[i][1] = __float_as_uint(as[TileA::at(r + 8, ks + t4)]);
                af[i][2] = __float_as_uint(as[TileA::at(r, ks + t4 + 4)]);
                af[i][3] = __float_as_uint(as[TileA::at(r + 8, ks + t4 + 4)]);
            }
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const int c = wn * WN + j * 8 + g;
                bf[j][0] = __float_as_uint(bs[TileB::at(c, ks + t4)]);
                bf[j][1] = __float_as_uint(bs[TileB::at(c, ks + t4 + 4)]);
            }
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) kiln_mma_tf32(acc[i][j], af[i], bf[j]);
        }
    }
    kiln_cp_async_wait<0>();  // nothing real is in flight; leave nothing behind

    // Epilogue: lane holds D[g][2t4 + (r&1)] (r < 2) and D[g+8][...] (r ≥ 2)
    // of each mma tile. C = alpha*acc + beta*C, C not read when beta == 0.
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int row = m0 + wm * WM + i * 16 + g + (r / 2) * 8;
                const int col = n0 + wn * WN + j * 8 + t4 * 2 + (r % 2);
                if (row < M && col < N) {
                    float* p = C + (size_t)row * N + col;
                    float v = alpha * acc[i][j][r];
                    if (beta != 0.f) v = fmaf(beta, *p, v);
                    *p = v;
                }
            }
        }
    }
}

// kiln_sgemm_tf32_{nn,nt,tn,tt}: TF32 tensor cores, fp32 accumulation.
// Launch: grid (ceil(n/128), ceil(m/128), batch*splits), block (256,1,1), no
// dynamic shared memory (static: 4 stages × (A + B tiles of 128×8, padded)
// ≤ 48 KB). Warps 2×4, warp tile 64×32 (4×4 mma tiles), k-slices of 8.
// Needs sm_80 or later: present only in PTX built for compute_80 and up.
#define KILN_SGEMM_TF32(NAME, TA, TB)                                                       \
    extern "C" __global__ void __launch_bounds__(256, 2)                                    \
        NAME(int m, int n, int k, float alpha, const float* __restrict__ A, long long sA,   \
             const float* __restrict__ B, long long sB, float beta, float* __restrict__ C,  \
             long long sC, int splits)                                                      \
    {                                                                                       \
        kiln_sgemm_tf32<TA, TB, 2, 4, 4, 4, 8, 4>(m, n, k, alpha, A, sA, B, sB, beta, C, sC, splits); \
    }
KILN_SGEMM_TF32(kiln_sgemm_tf32_nn, false, false)
KILN_SGEMM_TF32(kiln_sgemm_tf32_nt, false, true)
KILN_SGEMM_TF32(kiln_sgemm_tf32_tn, true, false)
KILN_SGEMM_TF32(kiln_sgemm_tf32_tt, true, true)

#endif  // __CUDA_ARCH__ >= 800
