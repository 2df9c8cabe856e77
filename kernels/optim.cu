// Fused optimizer updates with torch.optim semantics. The host computes
// every scalar that PyTorch computes in Python (Adam's bias corrections in
// float64). SGD runs in float32, Adam in float64, each operation with an
// explicit rounding intrinsic (__fmul_rn, __dadd_rn, ...), so nvcc cannot
// contract anything into an FMA: the result matches the CPU backend's Go
// code operation for operation, bit for bit.
//
// Launch shape: 1-D grid of 1-D blocks (256 threads), grid-stride loop over
// n; every pointer covers at least n elements; p, g, m, v do not alias.

// One torch.optim.SGD update (see device.SGDConfig):
//   g' = g + wd·p (when wd != 0)
//   momentum != 0: v = g' on the first step, else μ·v + (1−dampening)·g';
//                  g' = g' + μ·v (Nesterov) or v
//   p = p − lr·g'
// damp1 is 1 − dampening in float32. v may be null when momentum is 0.
extern "C" __global__ void sgd_step_f32(float* p, const float* g, float* v, long long n, float lr, float mom,
                                        float damp1, float wd, int first, int nesterov) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float pi = p[i];
        float gi = g[i];
        if (mom == 0.0f) {
            if (wd != 0.0f) gi = __fadd_rn(gi, __fmul_rn(wd, pi));
            p[i] = __fsub_rn(pi, __fmul_rn(lr, gi));
            continue;
        }
        if (wd != 0.0f) gi = __fadd_rn(gi, __fmul_rn(wd, pi));
        float vi;
        if (first)
            vi = gi;
        else
            vi = __fadd_rn(__fmul_rn(mom, v[i]), __fmul_rn(damp1, gi));
        v[i] = vi;
        if (nesterov)
            gi = __fadd_rn(gi, __fmul_rn(mom, vi));
        else
            gi = vi;
        p[i] = __fsub_rn(pi, __fmul_rn(lr, gi));
    }
}

// One torch.optim.Adam update (AdamW when decoupled, see device.AdamConfig),
// in float64 with one rounding of p, m and v each, exactly as the CPU
// backend computes it:
//   wd != 0: AdamW p = p·decay (decay = 1 − lr·wd); Adam g' = g + wd·p
//   m = β1·m + (1−β1)·g';  v = β2·v + (1−β2)·g'·g'
//   p = p − step·m / (sqrt(v) + epsS)
// with step = lr/(1−β1^t)·sqrt(1−β2^t) and epsS = eps·sqrt(1−β2^t)
// (PyTorch's lr/bc1 · m/(sqrt(v)/sqrt(bc2) + eps) with one division),
// all scalars computed by the host in float64. Every double operation uses
// an explicit rounding intrinsic, so nothing is contracted into an FMA.
extern "C" __global__ void adam_step_f32(float* p, const float* g, float* m, float* v, long long n, double step,
                                         double epsS, double b1, double b2, double c1, double c2, double wd,
                                         double decay, int decoupled) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        double pi = p[i];
        double gi = g[i];
        if (wd != 0.0) {
            if (decoupled)
                pi = __dmul_rn(pi, decay);
            else
                gi = __dadd_rn(gi, __dmul_rn(wd, pi));
        }
        const double mi = __dadd_rn(__dmul_rn(b1, (double)m[i]), __dmul_rn(c1, gi));
        const double vi = __dadd_rn(__dmul_rn(b2, (double)v[i]), __dmul_rn(__dmul_rn(c2, gi), gi));
        m[i] = (float)mi;
        v[i] = (float)vi;
        p[i] = (float)__dsub_rn(pi, __ddiv_rn(__dmul_rn(step, mi), __dadd_rn(__dsqrt_rn(vi), epsS)));
    }
}
