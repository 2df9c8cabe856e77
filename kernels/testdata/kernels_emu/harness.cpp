// harness.cpp: runs the kernels of kernels/{activations,elementwise,losses,
// optim,reduce,random}.cu on the CPU (see shim.h) under the script that
// kernels/kernels_emu_test.go writes on stdin, one command a line:
//
//   case <name>                          start a case (echoed on failure)
//   buf <id> <f|i|d> <off> <n> <path>    allocate off+n elements of float32,
//                                        int32 or float64 at their exact size
//                                        (so AddressSanitizer sees any access
//                                        past the end) and load all of them
//                                        from path; the buffer's device
//                                        pointer is element off (a view)
//   launch <kernel> <gx> <gy> <gz> <bx> <slot>...
//                                        launch as cuLaunchKernel would: the
//                                        slots are the 8-byte argument values
//                                        the Go backend passes (decimal), or
//                                        @id for a buffer's pointer
//   dump <id> <path>                     write all off+n elements to path
//   end                                  free the case's buffers, print "ok"
//
// Every kernel argument is decoded from its slot by the type of the
// kernel's own parameter, as the driver does (4-byte values in the low half
// of the slot). Emulation errors (a barrier that waits for a thread that has
// returned, shuffles that do not match) print "FAIL <case>: <why>" and exit;
// sanitizer reports abort the process.
#include "shim.h"

#include <string>
#include <thread>
#include <vector>
#include <map>
#include <functional>
#include <iostream>
#include <sstream>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
EmuBarrier emu_block_barrier;
EmuBarrier emu_warp_barrier[32];
EmuShflLane emu_shfl[32][32];
static EmuBarrier emu_end_barrier;
static std::string cur_case = "(none)";

void emu_fail(const char* why) {
    printf("FAIL %s: %s\n", cur_case.c_str(), why);
    fflush(stdout);
    _Exit(3);
}

// The kernel files (found through -I: kernels/, or the directory in
// KILN_KERNELS_EMU_SRC), each in a namespace of its own (their file-local
// helpers share names, e.g. sigmoid64); common.cuh first so that its
// #pragma once keeps its helpers global.
#include "common.cuh"
namespace k_act {
#include "activations.cu"
}
namespace k_elem {
#include "elementwise.cu"
}
namespace k_loss {
#include "losses.cu"
}
namespace k_optim {
#include "optim.cu"
}
namespace k_reduce {
#include "reduce.cu"
}
namespace k_random {
#include "random.cu"
}
namespace k_conv {
#include "conv.cu"
}
namespace k_norm {
#include "norm.cu"
}
namespace k_attention {
#include "attention.cu"
}
namespace k_embedding {
#include "embedding.cu"
}

// --- argument decoding -----------------------------------------------------------
template <typename T> struct Slot;
template <> struct Slot<int> { static int get(uint64_t s) { return (int)(uint32_t)s; } };
template <> struct Slot<unsigned> { static unsigned get(uint64_t s) { return (uint32_t)s; } };
template <> struct Slot<long long> { static long long get(uint64_t s) { return (long long)s; } };
template <> struct Slot<unsigned long long> { static unsigned long long get(uint64_t s) { return s; } };
template <> struct Slot<float> { static float get(uint64_t s) { return __uint_as_float((uint32_t)s); } };
template <> struct Slot<double> {
    static double get(uint64_t s) { double d; memcpy(&d, &s, 8); return d; }
};
template <typename P> struct Slot<P*> { static P* get(uint64_t s) { return (P*)(uintptr_t)s; } };

template <typename... A, size_t... I>
static void call_with(void (*fn)(A...), const std::vector<uint64_t>& s, std::index_sequence<I...>) {
    fn(Slot<A>::get(s[I])...);
}

struct Kernel {
    int nargs;
    std::function<void(const std::vector<uint64_t>&)> call;
};
template <typename... A>
static Kernel kernel(void (*fn)(A...)) {
    return Kernel{(int)sizeof...(A),
                  [fn](const std::vector<uint64_t>& s) { call_with(fn, s, std::index_sequence_for<A...>{}); }};
}

static std::map<std::string, Kernel> kernels = {
    {"activate_f32", kernel(k_act::activate_f32)},
    {"activate_grad_f32", kernel(k_act::activate_grad_f32)},
    {"softmax_rows_f32", kernel(k_act::softmax_rows_f32)},
    {"softmax_grad_rows_f32", kernel(k_act::softmax_grad_rows_f32)},
    {"add_f32", kernel(k_elem::add_f32)},
    {"sub_f32", kernel(k_elem::sub_f32)},
    {"mul_f32", kernel(k_elem::mul_f32)},
    {"scale_f32", kernel(k_elem::scale_f32)},
    {"axpy_f32", kernel(k_elem::axpy_f32)},
    {"fill_f32", kernel(k_elem::fill_f32)},
    {"add_bias_f32", kernel(k_elem::add_bias_f32)},
    {"loss_elem_f32", kernel(k_loss::loss_elem_f32)},
    {"xent_rows_f32", kernel(k_loss::xent_rows_f32)},
    {"sgd_step_f32", kernel(k_optim::sgd_step_f32)},
    {"adam_step_f32", kernel(k_optim::adam_step_f32)},
    {"reduce_partial_f32", kernel(k_reduce::reduce_partial_f32)},
    {"reduce_final_f64", kernel(k_reduce::reduce_final_f64)},
    {"bias_grad_partial_f32", kernel(k_reduce::bias_grad_partial_f32)},
    {"bias_grad_final_f32", kernel(k_reduce::bias_grad_final_f32)},
    {"bias_grad_direct_f32", kernel(k_reduce::bias_grad_direct_f32)},
    {"clip_by_norm_f32", kernel(k_reduce::clip_by_norm_f32)},
    {"argmax_rows_f32", kernel(k_reduce::argmax_rows_f32)},
    {"rand_normal_f32", kernel(k_random::rand_normal_f32)},
    {"rand_uniform_f32", kernel(k_random::rand_uniform_f32)},
    {"dropout_mask_f32", kernel(k_random::dropout_mask_f32)},
    // conv.cu kernels (add entries here)
    {"im2col_f32", kernel(k_conv::im2col_f32)},
    {"col2im_f32", kernel(k_conv::col2im_f32)},
    {"add_channel_bias_f32", kernel(k_conv::add_channel_bias_f32)},
    {"channel_bias_grad_f32", kernel(k_conv::channel_bias_grad_f32)},
    {"maxpool2d_f32", kernel(k_conv::maxpool2d_f32)},
    {"maxpool2d_grad_f32", kernel(k_conv::maxpool2d_grad_f32)},
    {"avgpool2d_f32", kernel(k_conv::avgpool2d_f32)},
    {"avgpool2d_grad_f32", kernel(k_conv::avgpool2d_grad_f32)},
    {"adaptive_avgpool2d_f32", kernel(k_conv::adaptive_avgpool2d_f32)},
    {"adaptive_avgpool2d_grad_f32", kernel(k_conv::adaptive_avgpool2d_grad_f32)},
    // norm.cu kernels (add entries here)
    {"bn_stats_partial_f32", kernel(k_norm::bn_stats_partial_f32)},
    {"bn_stats_final_f32", kernel(k_norm::bn_stats_final_f32)},
    {"bn_apply_f32", kernel(k_norm::bn_apply_f32)},
    {"bn_grad_partial_f32", kernel(k_norm::bn_grad_partial_f32)},
    {"bn_grad_final_f32", kernel(k_norm::bn_grad_final_f32)},
    {"bn_grad_apply_f32", kernel(k_norm::bn_grad_apply_f32)},
    {"layer_norm_rows_f32", kernel(k_norm::layer_norm_rows_f32)},
    {"layer_norm_grad_rows_f32", kernel(k_norm::layer_norm_grad_rows_f32)},
    {"layer_norm_grad_cols_f32", kernel(k_norm::layer_norm_grad_cols_f32)},
    {"layer_norm_grad_cols_final_f32", kernel(k_norm::layer_norm_grad_cols_final_f32)},
    // attention.cu kernels (add entries here)
    {"softmax_masked_rows_f32", kernel(k_attention::softmax_masked_rows_f32)},
    {"softmax_masked_grad_rows_f32", kernel(k_attention::softmax_masked_grad_rows_f32)},
    {"permute4_f32", kernel(k_attention::permute4_f32)},
    // embedding.cu kernels (add entries here)
    {"gather_rows_f32", kernel(k_embedding::gather_rows_f32)},
    {"scatter_add_rows_f32", kernel(k_embedding::scatter_add_rows_f32)},
    {"xent_ignore_count", kernel(k_embedding::xent_ignore_count)},
    {"xent_ignore_rows_f32", kernel(k_embedding::xent_ignore_rows_f32)},
    {"xent_ignore_final", kernel(k_embedding::xent_ignore_final)},
};

// --- launches ------------------------------------------------------------------------
static void end_of_block() {
    // Runs while every thread of the block waits at the end barrier: the
    // next block starts with fresh barriers.
    emu_block_barrier.reset((int)(blockDim.x));
    for (unsigned w = 0; w < blockDim.x / 32; ++w) emu_warp_barrier[w].reset(32);
}

// The worker threads, one per CUDA thread of a block, made once and reused
// for every threaded launch (thread creation under ASan is slow).
static std::mutex pool_mu;
static std::condition_variable pool_cv, pool_done_cv;
static unsigned long pool_gen = 0;
static unsigned pool_nt = 0, pool_running = 0;
static dim3 pool_grid;
static const std::function<void()>* pool_body = nullptr;
static std::vector<std::thread> pool;

static void pool_worker(unsigned t) {
    threadIdx = dim3{t, 0, 0};
    unsigned long seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> l(pool_mu);
            pool_cv.wait(l, [&] { return pool_gen != seen; });
            seen = pool_gen;
            if (t >= pool_nt) continue;
        }
        const dim3 grid = pool_grid;
        for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
                for (unsigned bx = 0; bx < grid.x; ++bx) {
                    blockIdx = dim3{bx, by, bz};
                    (*pool_body)();
                    emu_block_barrier.exit();
                    emu_warp_barrier[t / 32].exit();
                    emu_end_barrier.wait();
                }
        std::lock_guard<std::mutex> l(pool_mu);
        if (--pool_running == 0) pool_done_cv.notify_all();
    }
}

static bool emu_sequential = false;

void emu_no_collectives() {
    if (emu_sequential) emu_fail("the kernel uses a barrier or shuffle: list it in threaded_kernels (harness.cpp)");
}

// launch runs body() for every thread of every block of the grid, block
// after block. threaded: one OS thread per CUDA thread of a block, with a
// barrier between blocks. Otherwise the threads of each block run one after
// the other on this thread, which is exact for kernels whose threads never
// wait for each other (any barrier or shuffle is then reported).
static void launch(dim3 grid, dim3 block, bool threaded, const std::function<void()>& body) {
    const unsigned nt = block.x * block.y * block.z;
    if (block.y != 1 || block.z != 1 || nt % 32 != 0 || nt == 0 || nt > 1024) emu_fail("unsupported block shape");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) emu_fail("invalid grid");
    gridDim = grid;
    blockDim = block;
    if (!threaded) {
        emu_sequential = true;
        for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
                for (unsigned bx = 0; bx < grid.x; ++bx)
                    for (unsigned t = 0; t < nt; ++t) {
                        blockIdx = dim3{bx, by, bz};
                        threadIdx = dim3{t, 0, 0};
                        body();
                    }
        emu_sequential = false;
        return;
    }
    emu_block_barrier.what = "__syncthreads waits for a thread that has returned";
    for (unsigned w = 0; w < 32; ++w) emu_warp_barrier[w].what = "warp collective waits for a lane that has returned";
    emu_end_barrier.reset((int)nt);
    emu_end_barrier.onLast = end_of_block;
    end_of_block();
    while (pool.size() < nt) pool.emplace_back(pool_worker, (unsigned)pool.size());
    std::unique_lock<std::mutex> l(pool_mu);
    pool_grid = grid;
    pool_body = &body;
    pool_nt = nt;
    pool_running = nt;
    pool_gen++;
    pool_cv.notify_all();
    pool_done_cv.wait(l, [] { return pool_running == 0; });
}

// The kernels whose threads cooperate (block sums, warp shuffles); the
// others run sequentially. KILN_EMU_THREADED=1 runs every kernel threaded.
static const char* threaded_kernels[] = {
    "softmax_rows_f32", "softmax_grad_rows_f32", "loss_elem_f32", "xent_rows_f32",
    "reduce_partial_f32", "reduce_final_f64", "argmax_rows_f32",
    // conv.cu threaded kernels (add names here)
    "channel_bias_grad_f32",
    // norm.cu threaded kernels (add names here)
    "bn_stats_partial_f32", "bn_grad_partial_f32", "layer_norm_rows_f32", "layer_norm_grad_rows_f32",
    // attention.cu threaded kernels (add names here)
    "softmax_masked_rows_f32", "softmax_masked_grad_rows_f32",
    // embedding.cu threaded kernels (add names here)
    "scatter_add_rows_f32", "xent_ignore_count", "xent_ignore_rows_f32", "xent_ignore_final",
};
static bool all_threaded = false;

static bool is_threaded(const std::string& name) {
    if (all_threaded) return true;
    for (const char* k : threaded_kernels)
        if (name == k) return true;
    return false;
}

// --- buffers and the script --------------------------------------------------------
struct Buf {
    char* base = nullptr;
    size_t esize = 0, off = 0, n = 0;
    char* ptr() const { return base + esize * off; }
    size_t bytes() const { return esize * (off + n); }
};
static std::map<std::string, Buf> bufs;

static void free_bufs() {
    for (auto& b : bufs) free(b.second.base);
    bufs.clear();
}

int main() {
    all_threaded = getenv("KILN_EMU_THREADED") && getenv("KILN_EMU_THREADED")[0] == '1';
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        if (!(in >> cmd)) continue;
        if (cmd == "case") {
            std::getline(in >> std::ws, cur_case);
        } else if (cmd == "buf") {
            std::string id, dt, path;
            size_t off, n;
            if (!(in >> id >> dt >> off >> n >> path)) emu_fail("bad buf line");
            Buf b;
            b.esize = dt == "f" ? 4 : dt == "i" ? 4 : dt == "d" ? 8 : 0;
            if (!b.esize) emu_fail("bad buf dtype");
            b.off = off;
            b.n = n;
            void* p = nullptr;
            if (posix_memalign(&p, 256, b.bytes() ? b.bytes() : 1)) emu_fail("out of memory");
            b.base = (char*)p;
            FILE* f = fopen(path.c_str(), "rb");
            if (!f || fread(b.base, 1, b.bytes(), f) != b.bytes()) emu_fail("reading a buffer file");
            fclose(f);
            if (bufs.count(id)) free(bufs[id].base);
            bufs[id] = b;
        } else if (cmd == "launch") {
            std::string name;
            unsigned gx, gy, gz, bx;
            if (!(in >> name >> gx >> gy >> gz >> bx)) emu_fail("bad launch line");
            auto it = kernels.find(name);
            if (it == kernels.end()) emu_fail(("unknown kernel " + name).c_str());
            std::vector<uint64_t> slots;
            std::string tok;
            while (in >> tok) {
                if (tok[0] == '@') {
                    auto b = bufs.find(tok.substr(1));
                    if (b == bufs.end()) emu_fail(("unknown buffer " + tok).c_str());
                    slots.push_back((uint64_t)(uintptr_t)b->second.ptr());
                } else {
                    slots.push_back(strtoull(tok.c_str(), nullptr, 10));
                }
            }
            if ((int)slots.size() != it->second.nargs) {
                std::string why = name + ": " + std::to_string(slots.size()) + " arguments passed, the kernel takes " +
                                  std::to_string(it->second.nargs);
                emu_fail(why.c_str());
            }
            const Kernel& k = it->second;
            std::function<void()> body = [&] { k.call(slots); };
            launch(dim3{gx, gy, gz}, dim3{bx, 1, 1}, is_threaded(name), body);
        } else if (cmd == "dump") {
            std::string id, path;
            if (!(in >> id >> path)) emu_fail("bad dump line");
            auto b = bufs.find(id);
            if (b == bufs.end()) emu_fail("dump of an unknown buffer");
            FILE* f = fopen(path.c_str(), "wb");
            if (!f || fwrite(b->second.base, 1, b->second.bytes(), f) != b->second.bytes()) emu_fail("writing a dump");
            fclose(f);
        } else if (cmd == "end") {
            free_bufs();
            printf("ok %s\n", cur_case.c_str());
            fflush(stdout);
        } else {
            emu_fail(("unknown command " + cmd).c_str());
        }
    }
    free_bufs();
    fflush(stdout);
    _Exit(0); // the pool's threads are parked for good
}
