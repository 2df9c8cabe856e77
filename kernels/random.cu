// Counter-based random numbers: Philox4x32-10, reproducing device/rng.go
// exactly. Element i of a call takes position pos = offset + i of the
// stream for seed; position pos lives in Philox block pos/4, lane pos%4,
// with counter (blk low, blk high, 0, 0) and key (seed low, seed high).
//
// Launch shape: 1-D grid of 1-D blocks (256 threads), grid-stride loop over
// Philox blocks: thread t handles block first + t, where first = offset/4,
// and writes the (up to four) positions of that block that fall inside
// [offset, offset + n). nblocks = (offset+n+3)/4 - offset/4.
//
// Float arithmetic uses explicit rounding intrinsics so that nvcc cannot
// contract anything into an FMA: UnitFloat rounds in float32, Box-Muller and
// the affine steps run in float64 and round once to float32, exactly as the
// Go reference does.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define KILN_TWO_PI 6.283185307179586476925286766559 // rounds to the float64 2·math.Pi

__device__ __forceinline__ uint4 philox_block(unsigned long long seed, unsigned long long blk) {
    uint4 c = make_uint4((unsigned)blk, (unsigned)(blk >> 32), 0u, 0u);
    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        const unsigned long long p0 = (unsigned long long)PHILOX_M0 * c.x;
        const unsigned long long p1 = (unsigned long long)PHILOX_M1 * c.z;
        c = make_uint4((unsigned)(p1 >> 32) ^ c.y ^ k0, (unsigned)p1, (unsigned)(p0 >> 32) ^ c.w ^ k1, (unsigned)p0);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return c;
}

// device.UnitFloat: (float32(w>>8) + 0.5) · 2^-24.
__device__ __forceinline__ float unit_float(unsigned w) {
    return __fmul_rn(__fadd_rn((float)(w >> 8), 0.5f), 5.9604644775390625e-08f);
}

__device__ __forceinline__ unsigned lane_word(const uint4& w, int lane) {
    return lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
}

// The four positions of block blk that lie in [offset, end): out index
// pos - offset.
#define KILN_RNG_LOOP(BODY)                                                                      \
    const unsigned long long first = offset >> 2;                                                \
    const unsigned long long end = offset + (unsigned long long)n;                               \
    const unsigned long long nblk = ((end + 3) >> 2) - first;                                    \
    for (unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; t < nblk; \
         t += (unsigned long long)blockDim.x * gridDim.x) {                                      \
        const unsigned long long blk = first + t;                                                \
        const uint4 w = philox_block(seed, blk);                                                 \
        BODY                                                                                     \
    }

// x[i] = mean + std·N(seed, offset+i): Box-Muller in double on lanes
// (0,1) and (2,3), cosine for the even position, sine for the odd one;
// mean + std·(r·cos) in double (mul, mul, add, each rounded), one rounding
// to float.
extern "C" __global__ void rand_normal_f32(float* x, long long n, float mean, float std, unsigned long long seed,
                                           unsigned long long offset) {
    const double m = mean, s = std;
    KILN_RNG_LOOP({
        for (int pair = 0; pair < 4; pair += 2) {
            const unsigned long long p0 = blk * 4 + pair;
            const bool want0 = p0 >= offset && p0 < end;
            const bool want1 = p0 + 1 >= offset && p0 + 1 < end;
            if (!want0 && !want1) continue;
            const double u1 = (double)unit_float(lane_word(w, pair));
            const double u2 = (double)unit_float(lane_word(w, pair + 1));
            const double r = sqrt(__dmul_rn(-2.0, log(u1)));
            const double th = __dmul_rn(KILN_TWO_PI, u2);
            if (want0) x[p0 - offset] = (float)__dadd_rn(m, __dmul_rn(s, __dmul_rn(r, cos(th))));
            if (want1) x[p0 + 1 - offset] = (float)__dadd_rn(m, __dmul_rn(s, __dmul_rn(r, sin(th))));
        }
    })
}

// x[i] = lo + (hi-lo)·U(seed, offset+i), in double with one rounding.
extern "C" __global__ void rand_uniform_f32(float* x, long long n, float lo, float hi, unsigned long long seed,
                                            unsigned long long offset) {
    const double l = lo, span = __dsub_rn((double)hi, (double)lo);
    KILN_RNG_LOOP({
        for (int lane = 0; lane < 4; lane++) {
            const unsigned long long pos = blk * 4 + lane;
            if (pos < offset || pos >= end) continue;
            const double u = (double)unit_float(lane_word(w, lane));
            x[pos - offset] = (float)__dadd_rn(l, __dmul_rn(span, u));
        }
    })
}

// mask[i] = keep where U(seed, offset+i) >= p, else 0. keep = 1/(1-p) is
// computed by the host in float32, as the CPU backend does.
extern "C" __global__ void dropout_mask_f32(float* x, long long n, float p, float keep, unsigned long long seed,
                                            unsigned long long offset) {
    KILN_RNG_LOOP({
        for (int lane = 0; lane < 4; lane++) {
            const unsigned long long pos = blk * 4 + lane;
            if (pos < offset || pos >= end) continue;
            x[pos - offset] = unit_float(lane_word(w, lane)) >= p ? keep : 0.0f;
        }
    })
}
