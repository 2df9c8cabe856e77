// harness.cpp: runs kernels/gemm.cu's kernels on the CPU (see shim.h) for
// the launch plans that kernels/gemm_emu_test.go sends on stdin, one case a
// line:
//
//   kernel gx gy gz block ws reduce rgx rgy rblock ta tb m n k alpha beta offA offB offC tf32
//          batch splits sA sB sC
//
// (reduce is "-" when the plan is not split; batch products C_i of a strided
// batch, i < batch, with element strides sA, sB, sC; sA or sB may be 0). For
// each case it fills A and B with random values, C with random values (or
// NaN when beta == 0), the workspace with NaN, launches exactly as the Go
// backend will, compares with a float64 reference and prints "ok <worst
// error/bound>" or "FAIL <why>". Buffers are allocated at their exact size
// (plus the element offset), so AddressSanitizer catches any out-of-bounds
// access, and the elements before C's offset and in the gaps between the
// C_i (sC > m·n) are checked to be untouched.
#include "shim.h"

#include <string>
#include <thread>
#include <map>
#include <iostream>
#include <sstream>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
pthread_barrier_t* emu_block_barrier;
pthread_barrier_t emu_warp_barrier[32];
EmuMmaLane emu_mma[32][32];
thread_local EmuAsync emu_async;
bool emu_eager;

#include "../../gemm.cu"

typedef void (*GemmFn)(int, int, int, float, const float*, long long, const float*, long long, float, float*,
                       long long, int);

static std::map<std::string, GemmFn> gemm_kernels = {
    {"kiln_sgemm_nn", kiln_sgemm_nn},
    {"kiln_sgemm_nt", kiln_sgemm_nt},
    {"kiln_sgemm_tn", kiln_sgemm_tn},
    {"kiln_sgemm_tt", kiln_sgemm_tt},
    {"kiln_sgemm_small_nn", kiln_sgemm_small_nn},
    {"kiln_sgemm_small_nt", kiln_sgemm_small_nt},
    {"kiln_sgemm_small_tn", kiln_sgemm_small_tn},
    {"kiln_sgemm_small_tt", kiln_sgemm_small_tt},
    {"kiln_sgemm_tf32_nn", kiln_sgemm_tf32_nn},
    {"kiln_sgemm_tf32_nt", kiln_sgemm_tf32_nt},
    {"kiln_sgemm_tf32_tn", kiln_sgemm_tf32_tn},
    {"kiln_sgemm_tf32_tt", kiln_sgemm_tf32_tt},
};

// launch runs body() for every thread of every block of the grid, block
// after block: one OS thread per CUDA thread of a block, reused for each
// block in turn (a block barrier separates blocks, as blocks do not share
// shared memory).
template <typename F>
static bool launch(dim3 grid, dim3 block, F body)
{
    const unsigned nt = block.x * block.y * block.z;
    if (block.y != 1 || block.z != 1 || nt % 32 != 0 || nt > 1024) {
        fprintf(stderr, "unsupported block shape\n");
        return false;
    }
    gridDim = grid;
    blockDim = block;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, nullptr, nt);
    emu_block_barrier = &bar;
    for (unsigned w = 0; w < nt / 32; ++w) pthread_barrier_init(&emu_warp_barrier[w], nullptr, 32);
    std::vector<char> leftover(nt, 0);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([=, &leftover, &bar] {
            threadIdx = dim3{t, 0, 0};
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = dim3{bx, by, bz};
                        emu_async = EmuAsync();
                        body();
                        if (!emu_async.pending.empty()) leftover[t] = 1;
                        pthread_barrier_wait(&bar);  // the block ends for all its threads
                    }
        });
    for (auto& th : ts) th.join();
    bool ok = true;
    for (char c : leftover)
        if (c) ok = false;
    if (!ok) fprintf(stderr, "cp.async copies never waited for\n");
    for (unsigned w = 0; w < nt / 32; ++w) pthread_barrier_destroy(&emu_warp_barrier[w]);
    pthread_barrier_destroy(&bar);
    return ok;
}

static uint64_t rng_state = 88172645463325252ull;
static float urand()  // uniform in [-1, 1)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 24))) * 2.f - 1.f;
}

static std::string run_case(const std::string& line)
{
    std::istringstream in(line);
    std::string kname, rname;
    unsigned gx, gy, gz, bx, rgx, rgy, rbx;
    long ws;
    int ta, tb, m, n, k, offA, offB, offC, tf32, batch, splits;
    long long strA, strB, strC;
    float alpha, beta;
    if (!(in >> kname >> gx >> gy >> gz >> bx >> ws >> rname >> rgx >> rgy >> rbx >> ta >> tb >> m >> n >> k >>
          alpha >> beta >> offA >> offB >> offC >> tf32 >> batch >> splits >> strA >> strB >> strC))
        return "FAIL bad case line";
    auto it = gemm_kernels.find(kname);
    if (it == gemm_kernels.end()) return "FAIL unknown kernel " + kname;
    GemmFn fn = it->second;
    if (gz != (unsigned)(batch * splits)) return "FAIL gridDim.z is not batch*splits";

    const long sa = (long)m * k, sb = (long)k * n, sc = (long)m * n;
    const long cs = strC > 0 ? strC : sc;  // C_i apart (Gemm passes 0 for its one product)
    const long na = (batch - 1) * strA + sa, nb = (batch - 1) * strB + sb, nc = (batch - 1) * strC + sc;
    float* A = (float*)malloc(sizeof(float) * (offA + na + 1));  // +1: malloc(0)
    float* B = (float*)malloc(sizeof(float) * (offB + nb + 1));
    float* C = (float*)malloc(sizeof(float) * (offC + nc));
    float* W = ws > 0 ? (float*)malloc(sizeof(float) * ws) : nullptr;
    for (long i = 0; i < offA + na; ++i) A[i] = urand();
    for (long i = 0; i < offB + nb; ++i) B[i] = urand();
    for (long i = 0; i < offC + nc; ++i) {
        const long e = (i - offC) % cs;  // element within its C_i, or in the gap after it
        C[i] = (beta == 0.f && i >= offC && e < sc) ? NAN : urand();
    }
    for (long i = 0; i < ws; ++i) W[i] = NAN;
    std::vector<float> C0(C, C + offC + nc);
    const float *a = A + offA, *b = B + offB;
    float* c = C + offC;

    bool ok;
    if (rname == "-") {
        if (splits != 1) return "FAIL split plan without a reduction";
        ok = launch(dim3{gx, gy, gz}, dim3{bx, 1, 1},
                    [&] { fn(m, n, k, alpha, a, strA, b, strB, beta, c, strC, 1); });
    } else {
        if (ws != (long)batch * splits * sc) return "FAIL workspace size";
        if (rgy != (unsigned)batch) return "FAIL reduce grid is not one row per batch entry";
        ok = launch(dim3{gx, gy, gz}, dim3{bx, 1, 1},
                    [&] { fn(m, n, k, 1.f, a, strA, b, strB, 0.f, W, (long long)splits * sc, splits); });
        const int mn = (int)sc;
        ok = ok && launch(dim3{rgx, rgy, 1}, dim3{rbx, 1, 1},
                          [&] { kiln_sgemm_splitk_reduce(mn, splits, alpha, W, beta, c, strC); });
    }
    std::string res;
    if (!ok) res = "FAIL launch";
    for (int i = 0; i < offC && res.empty(); ++i)
        if (__float_as_uint(C[i]) != __float_as_uint(C0[i])) res = "FAIL wrote before C";
    for (long i = 0; i < nc && res.empty(); ++i)
        if (i % cs >= sc && __float_as_uint(c[i]) != __float_as_uint(C0[offC + i])) {
            char buf[100];
            snprintf(buf, sizeof buf, "FAIL wrote into the gap after C_%ld (element %ld)", i / cs, i % cs);
            res = buf;
        }

    // Reference and bound: |err| ≤ eps·(|alpha|·Σ|a||b| + |beta·c|) + tiny.
    const double eps = tf32 ? 2.0 * 1.0 / 1024 + (k + 4) * 1.2e-7 : (k + 4) * 1.2e-7;
    double worst = 0;
    for (int bi = 0; bi < batch && res.empty(); ++bi) {
        const float *ai = a + bi * strA, *bb = b + bi * strB;
        const float* ci = c + bi * strC;
        const float* c0 = C0.data() + offC + bi * strC;
        for (int i = 0; i < m && res.empty(); ++i)
            for (int j = 0; j < n && res.empty(); ++j) {
                double s = 0, mag = 0;
                for (int p = 0; p < k; ++p) {
                    const double x = ta ? ai[(long)p * m + i] : ai[(long)i * k + p];
                    const double y = tb ? bb[(long)j * k + p] : bb[(long)p * n + j];
                    s += x * y;
                    mag += fabs(x * y);
                }
                double ref = alpha * s, bound = fabs(alpha) * mag;
                if (beta != 0.f) {
                    ref += (double)beta * c0[(long)i * n + j];
                    bound += fabs((double)beta * c0[(long)i * n + j]);
                }
                const double got = ci[(long)i * n + j];
                const double err = fabs(got - ref), lim = eps * bound + 1e-30;
                if (!(err <= lim)) {
                    char buf[200];
                    snprintf(buf, sizeof buf, "FAIL C_%d[%d][%d] = %.9g, want %.9g (bound %.3g)", bi, i, j, got, ref,
                             lim);
                    res = buf;
                }
                if (lim > 0 && err / lim > worst) worst = err / lim;
            }
    }
    if (res.empty()) {
        char buf[64];
        snprintf(buf, sizeof buf, "ok %.3f", worst);
        res = buf;
    }
    free(A);
    free(B);
    free(C);
    free(W);
    return res;
}

int main()
{
    emu_eager = getenv("KILN_EMU_EAGER") && getenv("KILN_EMU_EAGER")[0] == '1';
    std::string line;
    int fails = 0;
    while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        std::string r = run_case(line);
        if (r.rfind("FAIL", 0) == 0) fails++;
        std::cout << r << "\n" << std::flush;
    }
    return fails ? 1 : 0;
}
