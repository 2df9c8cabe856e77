// Convolution and pooling: im2col and its adjoint col2im, the per-channel
// bias of a convolution and its gradient, and max, average and adaptive
// average pooling with their gradients, on NCHW float32 tensors.
//
// Every kernel but channel_bias_grad_f32 is a 1-D grid-stride loop with one
// thread per output element (per input element for the gradients), blocks
// of 256, the grid capped by the host (device/cuda/conv.go). The gradients
// gather: each thread computes one input element from the outputs whose
// windows hold it, in a fixed order, so nothing is scattered with atomics
// and a run repeats bit for bit. The orders match the CPU backend's
// (device/cpu/conv.go), so both round alike: col2im adds in ascending
// window offset (i, j); max-pool gradients in ascending output (oh, ow).
//
// Geometry arguments are the fields of device.Window2D (each below 2^31,
// checked by Window2D.Check) and the output size OH, OW; element indices
// are 64-bit.
#include "common.cuh"

// cols[(p·KH·KW + i·KW + j)·OH·OW + oh·OW + ow] = x[p, oh·SH − PH + i·DH,
// ow·SW − PW + j·DW] for each plane p = n·C + c, 0 in the padding. One
// thread per (p, oh, ow), writing its KH·KW column entries; neighbouring
// threads write neighbouring ow, so the stores coalesce. total = N·C·OH·OW.
extern "C" __global__ void im2col_f32(const float* x, float* cols, long long total, int H, int W, int KH, int KW,
                                      int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW) {
    const long long L = (long long)OH * OW;
    KILN_FOR(t, total) {
        const int ow = (int)(t % OW);
        const int oh = (int)((t / OW) % OH);
        const long long p = t / L;
        const float* xp = x + p * H * W;
        float* out = cols + p * KH * KW * L + (long long)oh * OW + ow;
        for (int i = 0; i < KH; i++) {
            const int h = oh * SH - PH + i * DH;
            const bool hin = h >= 0 && h < H;
            for (int j = 0; j < KW; j++) {
                const int w = ow * SW - PW + j * DW;
                out[((long long)i * KW + j) * L] = (hin && w >= 0 && w < W) ? xp[(long long)h * W + w] : 0.0f;
            }
        }
    }
}

__device__ __forceinline__ int conv_imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int conv_imax(int a, int b) { return a > b ? a : b; }

// The window offsets tap·dil that place tap `tap` of output o on input
// coordinate x: o = (x + pad − tap·dil)/stride when that divides evenly and
// 0 ≤ o < n; −1 otherwise.
__device__ __forceinline__ int kiln_conv_out_of(int x, int tap, int stride, int pad, int dil, int n) {
    const int s = x + pad - tap * dil;
    if (s < 0 || s % stride != 0) return -1;
    const int o = s / stride;
    return o < n ? o : -1;
}

// dx[p, h, w] = beta·dx[p, h, w] + Σ_{i, j} cols[(p·KH·KW + i·KW + j)·L +
// oh·OW + ow] over the window offsets (i, j), in ascending order, whose
// output (oh, ow) takes its input from (h, w): the adjoint of im2col,
// gathered. One thread per dx element; total = N·C·H·W. When beta is 0,
// dx is not read.
extern "C" __global__ void col2im_f32(const float* cols, float* dx, long long total, int H, int W, int KH, int KW,
                                      int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW, float beta) {
    const long long L = (long long)OH * OW;
    KILN_FOR(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const long long p = e / ((long long)H * W);
        const float* cp = cols + p * KH * KW * L;
        float acc = beta != 0.0f ? __fmul_rn(beta, dx[e]) : 0.0f;
        for (int i = 0; i < KH; i++) {
            const int oh = kiln_conv_out_of(h, i, SH, PH, DH, OH);
            if (oh < 0) continue;
            for (int j = 0; j < KW; j++) {
                const int ow = kiln_conv_out_of(w, j, SW, PW, DW, OW);
                if (ow < 0) continue;
                acc = __fadd_rn(acc, cp[((long long)i * KW + j) * L + (long long)oh * OW + ow]);
            }
        }
        dx[e] = acc;
    }
}

// x[o, c, i] += bias[c] for x laid out [outer, channels, inner]; total =
// outer·channels·inner. One thread per element.
extern "C" __global__ void add_channel_bias_f32(float* x, const float* bias, long long total, int channels, int inner) {
    KILN_FOR(e, total) x[e] = __fadd_rn(x[e], bias[(e / inner) % channels]);
}

// db[c] = beta·db[c] + Σ_{o, i} dy[o, c, i], in double. Launch: one block
// of 256 threads per channel (grid = channels); thread t sums the elements
// t, t + 256, … of the channel's outer·inner values (in o-major order),
// then the block adds the threads' sums in a fixed tree. When beta is 0,
// db is not read.
extern "C" __global__ void channel_bias_grad_f32(const float* dy, float* db, int outer, int channels, int inner, float beta) {
    const int c = blockIdx.x;
    const long long n = (long long)outer * inner;
    double acc = 0.0;
    for (long long t = threadIdx.x; t < n; t += blockDim.x) {
        const long long o = t / inner;
        acc += (double)dy[(o * channels + c) * inner + (t - o * inner)];
    }
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) {
        if (beta != 0.0f) acc += __dmul_rn((double)beta, (double)db[c]);
        db[c] = (float)acc;
    }
}

// y[p, oh, ow] = the largest x of the window, idx its position h·W + w in
// the plane: the first in row-major window order on ties, a NaN winning
// (the first one), padding never. A window holding no input element
// (possible only with dilation) gives −Inf and −1. One thread per output;
// total = N·C·OH·OW.
extern "C" __global__ void maxpool2d_f32(const float* x, float* y, int* idx, long long total, int H, int W, int KH,
                                         int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW) {
    KILN_FOR(t, total) {
        const int ow = (int)(t % OW);
        const int oh = (int)((t / OW) % OH);
        const long long p = t / ((long long)OH * OW);
        const float* xp = x + p * H * W;
        float best = -INFINITY;
        int bi = -1;
        for (int i = 0; i < KH; i++) {
            const int h = oh * SH - PH + i * DH;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; j++) {
                const int w = ow * SW - PW + j * DW;
                if (w < 0 || w >= W) continue;
                const float v = xp[(long long)h * W + w];
                if (bi < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    bi = h * W + w;
                }
            }
        }
        y[t] = best;
        idx[t] = bi;
    }
}

// dx[p, h, w] = Σ dy[p, oh, ow] over the outputs whose idx names (h, w)
// and whose window has (h, w) as a tap, in ascending (oh, ow); 0 when none
// does. One thread per input element; total = N·C·H·W. Tap i of output oh
// lies on row h for oh = (h + PH − i·DH)/SH, so descending i visits
// ascending oh.
extern "C" __global__ void maxpool2d_grad_f32(const float* dy, const int* idx, float* dx, long long total, int H,
                                              int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
                                              int OH, int OW) {
    KILN_FOR(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const long long p = e / ((long long)H * W);
        const long long base = p * OH * OW;
        const int pos = h * W + w;
        float acc = 0.0f;
        for (int i = KH - 1; i >= 0; i--) {
            const int oh = kiln_conv_out_of(h, i, SH, PH, DH, OH);
            if (oh < 0) continue;
            for (int j = KW - 1; j >= 0; j--) {
                const int ow = kiln_conv_out_of(w, j, SW, PW, DW, OW);
                if (ow < 0) continue;
                const long long o = base + (long long)oh * OW + ow;
                if (idx[o] == pos) acc = __fadd_rn(acc, dy[o]);
            }
        }
        dx[e] = acc;
    }
}

// y[p, oh, ow] = the window's sum in double (row-major, padding as zeros)
// divided by KH·KW (count_include_pad=True), rounded once. No dilation.
// One thread per output; total = N·C·OH·OW.
extern "C" __global__ void avgpool2d_f32(const float* x, float* y, long long total, int H, int W, int KH, int KW,
                                         int SH, int SW, int PH, int PW, int OH, int OW) {
    const double div = (double)KH * KW;
    KILN_FOR(t, total) {
        const int ow = (int)(t % OW);
        const int oh = (int)((t / OW) % OH);
        const long long p = t / ((long long)OH * OW);
        const float* xp = x + p * H * W;
        const int h0 = conv_imax(oh * SH - PH, 0), h1 = conv_imin(oh * SH - PH + KH, H);
        const int w0 = conv_imax(ow * SW - PW, 0), w1 = conv_imin(ow * SW - PW + KW, W);
        double s = 0.0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) s += (double)xp[(long long)h * W + w];
        y[t] = (float)(s / div);
    }
}

// dx[p, h, w] = the double sum of dy over the windows that cover (h, w),
// in ascending (oh, ow), divided by KH·KW, rounded once: outputs oh from
// ceil((h + PH − KH + 1)/SH) to floor((h + PH)/SH), within [0, OH). One
// thread per input element; total = N·C·H·W.
extern "C" __global__ void avgpool2d_grad_f32(const float* dy, float* dx, long long total, int H, int W, int KH,
                                              int KW, int SH, int SW, int PH, int PW, int OH, int OW) {
    const double div = (double)KH * KW;
    KILN_FOR(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const long long p = e / ((long long)H * W);
        const float* dp = dy + p * OH * OW;
        const int th = h + PH - KH + 1, tw = w + PW - KW + 1;
        const int r0 = th > 0 ? (th + SH - 1) / SH : 0, r1 = conv_imin((h + PH) / SH + 1, OH);
        const int c0 = tw > 0 ? (tw + SW - 1) / SW : 0, c1 = conv_imin((w + PW) / SW + 1, OW);
        double s = 0.0;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) s += (double)dp[(long long)r * OW + c];
        dx[e] = (float)(s / div);
    }
}

// PyTorch's adaptive window o of n over size inputs: [floor(o·size/n),
// ceil((o+1)·size/n)).
__device__ __forceinline__ void kiln_adaptive_window(int o, int size, int n, int* lo, int* hi) {
    *lo = (int)((long long)o * size / n);
    *hi = (int)(((long long)(o + 1) * size + n - 1) / n);
}

// y[p, oh, ow] = the mean of x[p] over the adaptive window (oh, ow): the
// double sum in row-major order divided by its element count, rounded
// once. One thread per output; total = planes·OH·OW.
extern "C" __global__ void adaptive_avgpool2d_f32(const float* x, float* y, long long total, int H, int W, int OH, int OW) {
    KILN_FOR(t, total) {
        const int ow = (int)(t % OW);
        const int oh = (int)((t / OW) % OH);
        const long long p = t / ((long long)OH * OW);
        const float* xp = x + p * H * W;
        int h0, h1, w0, w1;
        kiln_adaptive_window(oh, H, OH, &h0, &h1);
        kiln_adaptive_window(ow, W, OW, &w0, &w1);
        double s = 0.0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) s += (double)xp[(long long)h * W + w];
        y[t] = (float)(s / ((double)(h1 - h0) * (w1 - w0)));
    }
}

// dx[p, h, w] = Σ dy[p, oh, ow] / count(oh, ow) in double over the adaptive
// windows that cover (h, w), in ascending (oh, ow), rounded once. The
// windows that can cover row h are oh in [floor(h·OH/H), ceil((h+1)·OH/H))
// (the same formula with the sizes swapped); each is still tested. One
// thread per input element; total = planes·H·W.
extern "C" __global__ void adaptive_avgpool2d_grad_f32(const float* dy, float* dx, long long total, int H, int W,
                                                       int OH, int OW) {
    KILN_FOR(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const long long p = e / ((long long)H * W);
        const float* dp = dy + p * OH * OW;
        int r0, r1, c0, c1;
        kiln_adaptive_window(h, OH, H, &r0, &r1);
        kiln_adaptive_window(w, OW, W, &c0, &c1);
        double s = 0.0;
        for (int r = r0; r < r1; r++) {
            int h0, h1;
            kiln_adaptive_window(r, H, OH, &h0, &h1);
            if (h < h0 || h >= h1) continue;
            for (int c = c0; c < c1; c++) {
                int w0, w1;
                kiln_adaptive_window(c, W, OW, &w0, &w1);
                if (w < w0 || w >= w1) continue;
                s += (double)dp[(long long)r * OW + c] / ((double)(h1 - h0) * (w1 - w0));
            }
        }
        dx[e] = (float)s;
    }
}
