// Embeddings and cross-entropy with an ignore index.
//
// gather_rows_f32: out[i, :] = table[idx[i], :] (nn.Embedding's lookup).
//
// scatter_add_rows_f32: its adjoint, dtable[idx[i], :] += dout[i, :], with
// every sum made in ascending i and no atomics. The choice: each element
// of dtable is owned by one thread, which walks all n indices in order and
// adds the terms that name its row. Threads own columns (coalesced rows of
// dout and dtable), and to have more than cols threads at work the table
// rows are dealt out over `groups` blocks along grid.y: block (bx, g) owns
// the rows r with r mod groups == g. Cost: every block reads all n indices
// (staged through shared memory, 256 at a time), so the index traffic is
// groups·ceil(cols/256)·n·4 bytes, and each block skips the indices of
// other groups (a shared-memory load and a compare each); the useful work
// is n·cols adds. The rows of one group are summed by one block, so a row
// named by most indices (a padding token) makes its block the critical
// path: n adds per thread, in order, as the contract asks. A sort-based
// scheme (sort the indices, segment-sum) would balance that, at the cost of
// a device sort per call.
//
// xent_ignore_count / xent_ignore_rows_f32 / xent_ignore_final: the mean
// over the rows whose label is not the ignore index of
// lse(row) − row[label], and its gradient, in three launches: the count
// of kept rows (needed by every gradient element, so it comes first), one
// warp per row with an online max / log-sum-exp (one pass over the row
// for the loss, a second for the gradient), and a fixed-order sum of the
// row losses divided by the count. Nothing reads the count on the host:
// when every row is ignored, the loss is 0/0 = NaN and every gradient
// row 0, as in PyTorch. Exponentials and sums run in double and round
// once, as the CPU backend does.
#include "common.cuh"

// out[e] = table[idx[e / cols] * cols + e % cols] for e < total = n·cols: a
// grid-stride loop over the output, so consecutive threads copy
// consecutive columns. The host checks the indices first; one outside
// [0, rows) still gives a NaN row rather than a wild read.
// Launch: 1-D grid (device/cuda's grid1D(total)), block 256.
extern "C" __global__ void gather_rows_f32(const float* table, const int* idx, float* out, int rows, int cols,
                                           long long total) {
    KILN_FOR(e, total) {
        const long long i = e / cols;
        const int j = (int)(e - i * cols);
        const int r = idx[i];
        out[e] = (r >= 0 && r < rows) ? table[(long long)r * cols + j] : __int_as_float(0x7fc00000);
    }
}

// dtable[idx[i], j] += dout[i, j] for i = 0 … n−1 in ascending i, float32
// adds. Launch: grid (ceil(cols/256), groups), block 256 (groups ≤ 65535):
// thread x of block (bx, g) owns column j = bx·256 + x of the rows r with
// r mod groups == g. Indices outside [0, rows) (which the host rejects
// before launching) are skipped. Every thread, including those past the
// last column, takes part in the staging barriers.
extern "C" __global__ void scatter_add_rows_f32(float* dtable, const int* idx, const float* dout, int rows, int cols,
                                                int n, int groups) {
    __shared__ int tile[256];
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int g = blockIdx.y;
    for (int base = 0; base < n; base += blockDim.x) {
        const int t = base + threadIdx.x;
        int r = -1;
        if (t < n) {
            r = idx[t];
            if (r < 0 || r >= rows || r % groups != g) r = -1;
        }
        __syncthreads(); // the previous tile has been read by every thread
        tile[threadIdx.x] = r;
        __syncthreads();
        const int m = n - base < (int)blockDim.x ? n - base : (int)blockDim.x;
        if (j < cols) {
            for (int k = 0; k < m; k++) {
                const int row = tile[k];
                if (row < 0) continue; // uniform across the block
                float* dst = dtable + (long long)row * cols + j;
                *dst = __fadd_rn(*dst, dout[(long long)(base + k) * cols + j]);
            }
        }
    }
}

// count[0] = the number of the rows labels that are not ignore, as a
// double. Launch: one block of 256 threads.
extern "C" __global__ void xent_ignore_count(const int* labels, int rows, int ignore, double* count) {
    double c = 0.0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) c += labels[r] != ignore ? 1.0 : 0.0;
    c = kiln_block_sum_d(c);
    if (threadIdx.x == 0) count[0] = c;
}

// Merges the online log-sum-exp state (m2, s2) into (m, s): s is
// sum exp(x − m) over the elements seen. A state that has seen nothing is
// (−inf, 0); the factor of the state holding the larger maximum is 1
// exactly, so two empty states merge to (−inf, 0), not NaN. Symmetric in
// its operands (a + b == b + a), so both lanes of a butterfly end with the
// same bits.
__device__ __forceinline__ void lse_merge(float& m, double& s, float m2, double s2) {
    const float mm = fmaxf(m, m2);
    const double f1 = m == mm ? 1.0 : exp((double)m - (double)mm);
    const double f2 = m2 == mm ? 1.0 : exp((double)m2 - (double)mm);
    s = s * f1 + s2 * f2;
    m = mm;
}

// One warp per row of rows×cols logits x: rowloss[r] = lse − x[r, label]
// for a kept row, 0 for a row labelled ignore; when grad is not null,
// grad[r, j] = (exp(x_j − lse) − [j == label]) / count, 0 on ignored rows.
// lse = m + log(sum exp(x − m)) with the online (max, rescaled sum) state
// per lane, merged by butterfly; double throughout. count is
// xent_ignore_count's output, read here on the device. A label that is
// neither ignore nor in [0, cols) (which the host rejects) gives NaN.
// Launch: block 256 (8 rows), grid ceil(rows/8). grad may alias x.
extern "C" __global__ void xent_ignore_rows_f32(const float* x, const int* labels, int rows, int cols, int ignore,
                                                float* grad, const double* count, double* rowloss) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; // whole warp leaves together
    const int label = labels[row];
    float* gr = grad ? grad + row * cols : nullptr;
    if (label == ignore) { // uniform across the warp
        if (lane == 0) rowloss[row] = 0.0;
        if (gr)
            for (int j = lane; j < cols; j += 32) gr[j] = 0.0f;
        return;
    }
    const float* xr = x + row * cols;
    const bool ok = label >= 0 && label < cols;
    float m = -INFINITY;
    double s = 0.0;
    for (int j = lane; j < cols; j += 32) {
        const float v = xr[j];
        if (v > m) {
            s = s * exp((double)m - (double)v) + 1.0;
            m = v;
        } else {
            s += exp((double)v - (double)m);
        }
    }
    // Every lane reads x[label] before the shuffles below, so no lane can
    // overwrite it (grad aliasing x) before another has read it.
    const double xl = ok ? (double)xr[label] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(KILN_FULL_MASK, m, o);
        const double s2 = __shfl_xor_sync(KILN_FULL_MASK, s, o);
        lse_merge(m, s, m2, s2);
    }
    const double lse = (double)m + log(s);
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    if (lane == 0) rowloss[row] = ok ? lse - xl : nan;
    if (gr) {
        const double inv = 1.0 / count[0];
        for (int j = lane; j < cols; j += 32) {
            const double p = exp((double)xr[j] - lse);
            gr[j] = ok ? (float)((j == label ? p - 1.0 : p) * inv) : (float)nan;
        }
    }
}

// loss[0] = sum(rowloss[0..rows)) / count[0], summed in double in a fixed
// order and rounded once (0/0 = NaN when every row was ignored). Launch:
// one block of 256 threads.
extern "C" __global__ void xent_ignore_final(const double* rowloss, int rows, const double* count, float* loss) {
    double acc = 0.0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) acc += rowloss[r];
    acc = kiln_block_sum_d(acc);
    if (threadIdx.x == 0) loss[0] = (float)(acc / count[0]);
}
