// harness.cpp: runs kernels/gemm.cu's kernels on the CPU (see shim.h) for
// the launch plans that kernels/gemm_emu_test.go sends on stdin, one case a
// line:
//
//   kernel gx gy gz block ws reduce rgx rblock ta tb m n k alpha beta offA offB offC tf32
//
// (reduce is "-" when the plan is not split). For each case it fills A and
// B with random values, C with random values (or NaN when beta == 0), the
// workspace with NaN, launches exactly as the Go backend will, compares
// with a float64 reference and prints "ok <worst error/bound>" or
// "FAIL <why>". Buffers are allocated at their exact size (plus the element
// offset), so AddressSanitizer catches any out-of-bounds access, and the
// elements before C's offset are checked to be untouched.
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

typedef void (*GemmFn)(int, int, int, float, const float*, const float*, float, float*);

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
    unsigned gx, gy, gz, bx, rgx, rbx;
    long ws;
    int ta, tb, m, n, k, offA, offB, offC, tf32;
    float alpha, beta;
    if (!(in >> kname >> gx >> gy >> gz >> bx >> ws >> rname >> rgx >> rbx >> ta >> tb >> m >> n >> k >>
          alpha >> beta >> offA >> offB >> offC >> tf32))
        return "FAIL bad case line";
    auto it = gemm_kernels.find(kname);
    if (it == gemm_kernels.end()) return "FAIL unknown kernel " + kname;
    GemmFn fn = it->second;

    const long sa = (long)m * k, sb = (long)k * n, sc = (long)m * n;
    float* A = (float*)malloc(sizeof(float) * (offA + sa + 1));  // +1: malloc(0)
    float* B = (float*)malloc(sizeof(float) * (offB + sb + 1));
    float* C = (float*)malloc(sizeof(float) * (offC + sc));
    float* W = ws > 0 ? (float*)malloc(sizeof(float) * ws) : nullptr;
    for (long i = 0; i < offA + sa; ++i) A[i] = urand();
    for (long i = 0; i < offB + sb; ++i) B[i] = urand();
    for (long i = 0; i < offC + sc; ++i) C[i] = (beta == 0.f && i >= offC) ? NAN : urand();
    for (long i = 0; i < ws; ++i) W[i] = NAN;
    std::vector<float> C0(C, C + offC + sc);
    const float *a = A + offA, *b = B + offB;
    float* c = C + offC;

    bool ok;
    if (rname == "-") {
        ok = launch(dim3{gx, gy, gz}, dim3{bx, 1, 1}, [&] { fn(m, n, k, alpha, a, b, beta, c); });
    } else {
        if (ws != (long)gz * sc) return "FAIL workspace size";
        ok = launch(dim3{gx, gy, gz}, dim3{bx, 1, 1}, [&] { fn(m, n, k, 1.f, a, b, 0.f, W); });
        const int mn = (int)sc, splits = (int)gz;
        ok = ok && launch(dim3{rgx, 1, 1}, dim3{rbx, 1, 1},
                          [&] { kiln_sgemm_splitk_reduce(mn, splits, alpha, W, beta, c); });
    }
    std::string res;
    if (!ok) res = "FAIL launch";
    for (int i = 0; i < offC && res.empty(); ++i)
        if (__float_as_uint(C[i]) != __float_as_uint(C0[i])) res = "FAIL wrote before C";

    // Reference and bound: |err| ≤ eps·(|alpha|·Σ|a||b| + |beta·c|) + tiny.
    const double eps = tf32 ? 2.0 * 1.0 / 1024 + (k + 4) * 1.2e-7 : (k + 4) * 1.2e-7;
    double worst = 0;
    for (int i = 0; i < m && res.empty(); ++i)
        for (int j = 0; j < n && res.empty(); ++j) {
            double s = 0, mag = 0;
            for (int p = 0; p < k; ++p) {
                const double x = ta ? a[(long)p * m + i] : a[(long)i * k + p];
                const double y = tb ? b[(long)j * k + p] : b[(long)p * n + j];
                s += x * y;
                mag += fabs(x * y);
            }
            double ref = alpha * s, bound = fabs(alpha) * mag;
            if (beta != 0.f) {
                ref += (double)beta * C0[offC + (long)i * n + j];
                bound += fabs((double)beta * C0[offC + (long)i * n + j]);
            }
            const double got = c[(long)i * n + j];
            const double err = fabs(got - ref), lim = eps * bound + 1e-30;
            if (!(err <= lim)) {
                char buf[200];
                snprintf(buf, sizeof buf, "FAIL C[%d][%d] = %.9g, want %.9g (bound %.3g)", i, j, got, ref, lim);
                res = buf;
            }
            if (lim > 0 && err / lim > worst) worst = err / lim;
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
