#!/usr/bin/env python3
"""PyTorch side of kiln's GPU benchmarks (compare with the Go benchmarks of
device/cuda: BenchmarkGemm, BenchmarkCopy, BenchmarkElementwise, and kiln's
training throughput).

Runs on the GPU test machine's python3 with torch 2.x (CUDA build). Every
figure is timed with CUDA events after a warm-up; each measurement times a
batch of iterations between two events and is repeated, and the median is
reported. Output: one JSON object per line on stdout (machine-readable),
a short human-readable table on stderr.

  python3 bench/torch_gpu.py [--quick] [--only gemm,copy,elementwise,optim,train]
  python3 bench/torch_gpu.py --only ops2,train2

The default --only is the MLP-era set. ops2 and train2 are the counterparts
of the Ops2 benchmarks (BenchmarkGemmBatched, Im2Col, MaxPool2D, BatchNorm,
LayerNorm, SoftmaxMasked, CrossEntropy, Embedding, Permute4) and of
BenchmarkCNNTrainStep / BenchmarkLMTrainStep; scripts/gpu-check.sh runs them
as a second invocation with its own timeout. Their records carry the Go
benchmark's name (without "Benchmark" and the -N suffix) so gpu_summary.py
pairs them; a part that raises emits {"bench", "name", "error"} and the
rest still run.

Shapes and sizes are the Go benchmarks': GEMM 1024^3, 4096^3, 8192^3 and
the MLP shapes (m x k x n written as in the Go names: mlp64x784x256 is a
64x784 batch times a 784x256 weight), fp32 and TF32; 256 MB buffers for the
bandwidth figures (GB/s counts bytes read plus written); training
throughput of 784-256-relu-128-relu-10 at batch 64 and
784-4096-relu-4096-relu-10 at batch 1024 with Adam and cross-entropy on
random data resident on the GPU.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

MB256 = 256 << 20


def emit(rec):
    print(json.dumps(rec), flush=True)
    keys = [k for k in ("bench", "name", "mode") if k in rec]
    label = "/".join(str(rec[k]) for k in keys)
    figs = ", ".join(f"{k}={rec[k]:.4g}" for k in ("tflops", "gbps", "samples_per_s", "tokens_per_s", "ms") if k in rec)
    print(f"{label:50s} {figs}", file=sys.stderr, flush=True)


def time_cuda(fn, iters, reps, warmup=3):
    """Median seconds per call of fn: reps measurements of iters calls each,
    timed with CUDA events, after warmup calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / iters)
    return statistics.median(times)


def iters_for(seconds_per_call_guess, budget=0.05):
    return max(1, min(1000, int(budget / max(seconds_per_call_guess, 1e-7))))


def calibrate(fn):
    """Rough seconds per call, to size the timed batches."""
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def bench_gemm(args):
    shapes = [
        ("1024x1024x1024", 1024, 1024, 1024),
        ("4096x4096x4096", 4096, 4096, 4096),
        ("8192x8192x8192", 8192, 8192, 8192),
        ("mlp64x784x256", 64, 256, 784),
        ("mlp1024x784x4096", 1024, 4096, 784),
        ("mlp1024x4096x4096", 1024, 4096, 4096),
    ]
    if args.quick:
        shapes = [s for s in shapes if not s[0].startswith("8192")]
    for name, m, n, k in shapes:
        a = torch.rand(m, k, device="cuda") * 2 - 1
        b = torch.rand(k, n, device="cuda") * 2 - 1
        c = torch.empty(m, n, device="cuda")
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            fn = lambda: torch.matmul(a, b, out=c)
            s = time_cuda(fn, iters_for(calibrate(fn)), args.reps)
            emit({"bench": "gemm", "name": name, "mode": "tf32" if tf32 else "fp32", "m": m, "n": n, "k": k,
                  "ms": s * 1e3, "tflops": 2 * m * n * k / s / 1e12})
        del a, b, c
    torch.backends.cuda.matmul.allow_tf32 = False


def bench_copy(args):
    n = MB256 // 4
    x = torch.rand(n, device="cuda")
    y = torch.empty_like(x)
    fn = lambda: y.copy_(x)
    s = time_cuda(fn, iters_for(calibrate(fn)), args.reps)
    emit({"bench": "copy", "name": "Copy", "bytes": MB256, "ms": s * 1e3, "gbps": 2 * MB256 / s / 1e9})


def bench_elementwise(args):
    n = MB256 // 4
    x = [torch.rand(n, device="cuda") for _ in range(3)]
    cases = [
        ("Add", 3, lambda: torch.add(x[0], x[1], out=x[2])),
        ("Axpy", 3, lambda: x[1].add_(x[0], alpha=0.5)),
        ("Scale", 2, lambda: torch.mul(x[0], 0.5, out=x[1])),
        ("Fill", 1, lambda: x[0].fill_(1.0)),
        ("ActivateReLU", 2, lambda: torch.clamp_min(x[0], 0.0, out=x[1])),
        # gelu has no out=: its output comes from the caching allocator.
        ("ActivateGELU", 2, lambda: torch.nn.functional.gelu(x[0])),
        ("ActivateTanh", 2, lambda: torch.tanh(x[0], out=x[1])),
        ("SumSquares", 1, lambda: torch.linalg.vector_norm(x[0])),
    ]
    for name, traffic, fn in cases:
        s = time_cuda(fn, iters_for(calibrate(fn)), args.reps)
        emit({"bench": "elementwise", "name": name, "ms": s * 1e3, "gbps": traffic * MB256 / s / 1e9})
        if name == "Fill":
            for t in x:
                t.uniform_()


def bench_optim(args):
    n = MB256 // 4
    variants = [
        ("SGDStep", "foreach", 5, lambda p: torch.optim.SGD([p], lr=0.01, momentum=0.9, foreach=True)),
        ("AdamStep", "foreach", 7, lambda p: torch.optim.Adam([p], lr=1e-3, foreach=True)),
        ("AdamStep", "fused", 7, lambda p: torch.optim.Adam([p], lr=1e-3, fused=True)),
        ("AdamWStep", "fused", 7, lambda p: torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, fused=True)),
    ]
    for name, mode, traffic, make in variants:
        p = torch.nn.Parameter(torch.rand(n, device="cuda"))
        p.grad = torch.rand(n, device="cuda")
        try:
            opt = make(p)
        except (RuntimeError, TypeError) as e:  # older torch without fused
            emit({"bench": "optim", "name": name, "mode": mode, "error": str(e)})
            continue
        fn = opt.step
        s = time_cuda(fn, iters_for(calibrate(fn)), args.reps)
        emit({"bench": "optim", "name": name, "mode": mode, "ms": s * 1e3, "gbps": traffic * MB256 / s / 1e9})
        del opt, p


def bench_train(args):
    configs = [
        ("784-256-relu-128-relu-10", [784, 256, 128, 10], 64, 200),
        ("784-4096-relu-4096-relu-10", [784, 4096, 4096, 10], 1024, 30),
    ]
    for name, sizes, batch, steps in configs:
        for mode in ("foreach", "fused"):
            torch.manual_seed(0)
            layers = []
            for i in range(len(sizes) - 1):
                layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
                if i < len(sizes) - 2:
                    layers.append(torch.nn.ReLU())
            model = torch.nn.Sequential(*layers).cuda()
            try:
                opt = torch.optim.Adam(model.parameters(), lr=1e-3, **{mode: True})
            except (RuntimeError, TypeError) as e:
                emit({"bench": "train", "name": name, "mode": mode, "error": str(e)})
                continue
            crit = torch.nn.CrossEntropyLoss()
            nb = 16
            xs = torch.randn(nb, batch, sizes[0], device="cuda")
            ys = torch.randint(0, sizes[-1], (nb, batch), device="cuda")
            it = [0]

            def step():
                i = it[0] % nb
                it[0] += 1
                opt.zero_grad(set_to_none=True)
                loss = crit(model(xs[i]), ys[i])
                loss.backward()
                opt.step()

            s = time_cuda(step, steps, args.reps, warmup=20)
            emit({"bench": "train", "name": name, "mode": "adam_" + mode, "batch": batch,
                  "ms": s * 1e3, "samples_per_s": batch / s})
            del model, opt, xs, ys


# Counterparts of device/cuda's Ops2 benchmarks. Every record has "bench": "ops2" (or "train2")
# and "name" equal to the Go benchmark's name without the "Benchmark" prefix and the -N suffix
# (e.g. "GemmBatched/attn48x256/QKt/fp32"), so gpu_summary.py pairs them; "mode" tells variants
# apart where PyTorch has more than one way. GB/s counts the same bytes as the Go benchmark (each
# big buffer read or written once), whatever the PyTorch kernels move. Each part runs on its own
# (_guarded): one that raises emits an error record and the others still run.


def _gb(nbytes, s):
    return nbytes / s / 1e9


def _t(fn, args):
    return time_cuda(fn, iters_for(calibrate(fn)), args.reps)


def _guarded(bench, name, fn, *a):
    try:
        fn(*a)
    except Exception as e:  # information, not a check: report and go on
        emit({"bench": bench, "name": name, "error": f"{type(e).__name__}: {e}"[:500]})
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.cuda.empty_cache()


def _ops2_gemm_batched(args, dev):
    # Batched GEMM: attention scores Q·Kᵀ and values P·V (k stands in for V).
    for name, t, hd, batch in (("attn48x256", 256, 64, 48), ("gpt2_96x1024", 1024, 64, 96)):
        q = torch.rand(batch, t, hd, device=dev) * 2 - 1
        k = torch.rand(batch, t, hd, device=dev) * 2 - 1
        p = torch.rand(batch, t, t, device=dev) * 2 - 1
        s_out = torch.empty(batch, t, t, device=dev)
        v_out = torch.empty(batch, t, hd, device=dev)
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            mode = "tf32" if tf32 else "fp32"
            s = _t(lambda: torch.bmm(q, k.transpose(1, 2), out=s_out), args)
            emit({"bench": "ops2", "name": f"GemmBatched/{name}/QKt/{mode}", "ms": s * 1e3,
                  "tflops": 2 * batch * t * t * hd / s / 1e12})
            s = _t(lambda: torch.bmm(p, k, out=v_out), args)
            emit({"bench": "ops2", "name": f"GemmBatched/{name}/PV/{mode}", "ms": s * 1e3,
                  "tflops": 2 * batch * t * hd * t / s / 1e12})
        torch.backends.cuda.matmul.allow_tf32 = False
        del q, k, p, s_out, v_out


def _ops2_im2col(args, dev):
    # im2col / col2im: F.unfold / F.fold over ResNet-50's first stage at batch 32.
    x = torch.rand(32, 64, 56, 56, device=dev) * 2 - 1
    cols = F.unfold(x, 3, padding=1)
    nbytes = 4 * (x.numel() + cols.numel())
    s = _t(lambda: F.unfold(x, 3, padding=1), args)
    emit({"bench": "ops2", "name": "Im2Col/Im2Col/resnet32x64x56x56k3", "ms": s * 1e3, "gbps": _gb(nbytes, s)})
    s = _t(lambda: F.fold(cols, (56, 56), 3, padding=1), args)
    emit({"bench": "ops2", "name": "Im2Col/Col2Im/resnet32x64x56x56k3", "ms": s * 1e3, "gbps": _gb(nbytes, s)})


def _ops2_maxpool(args, dev):
    # Max pooling 3×3/2 pad 1 over 32×64×112×112 with indices, and its backward.
    x = torch.rand(32, 64, 112, 112, device=dev) * 2 - 1
    y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    nbytes = 4 * (x.numel() + 2 * y.numel())
    s = _t(lambda: F.max_pool2d(x, 3, 2, 1, return_indices=True), args)
    emit({"bench": "ops2", "name": "MaxPool2D/fwd/resnet32x64x112x112k3s2", "ms": s * 1e3, "gbps": _gb(nbytes, s)})
    dy = torch.rand_like(y)
    s = _t(lambda: torch.ops.aten.max_pool2d_with_indices_backward(dy, x, [3, 3], [2, 2], [1, 1], [1, 1], False, idx),
           args)
    emit({"bench": "ops2", "name": "MaxPool2D/grad/resnet32x64x112x112k3s2", "ms": s * 1e3, "gbps": _gb(nbytes, s)})


def _ops2_batchnorm(args, dev):
    # Batch norm (training: statistics, running statistics, normalisation) and its backward.
    for name, shape in (("2d32x64x56x56", (32, 64, 56, 56)), ("1d8192x768", (8192, 768))):
        c = shape[1]
        x = torch.rand(shape, device=dev) * 3 - 1
        dy = torch.rand_like(x) * 2 - 1
        gamma, beta = torch.rand(c, device=dev) + 0.5, torch.rand(c, device=dev) * 2 - 1
        rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
        fwd = lambda: torch.ops.aten.native_batch_norm(x, gamma, beta, rm, rv, True, 0.1, 1e-5)
        _, sm, si = fwd()
        s = _t(fwd, args)
        emit({"bench": "ops2", "name": f"BatchNorm/fwd/{name}", "ms": s * 1e3, "gbps": _gb(8 * x.numel(), s)})
        s = _t(lambda: torch.ops.aten.native_batch_norm_backward(dy, x, gamma, rm, rv, sm, si, True, 1e-5,
                                                                  [True, True, True]), args)
        emit({"bench": "ops2", "name": f"BatchNorm/grad/{name}", "ms": s * 1e3, "gbps": _gb(12 * x.numel(), s)})
        del x, dy


def _ops2_layernorm(args, dev):
    # Layer norm over GPT-2's [8·1024, 768] and its backward.
    x = torch.rand(8192, 768, device=dev) * 3 - 1
    dy = torch.rand_like(x) * 2 - 1
    gamma, beta = torch.rand(768, device=dev) + 0.5, torch.rand(768, device=dev) * 2 - 1
    fwd = lambda: torch.ops.aten.native_layer_norm(x, [768], gamma, beta, 1e-5)
    _, mean, rstd = fwd()
    s = _t(fwd, args)
    emit({"bench": "ops2", "name": "LayerNorm/fwd/8192x768", "ms": s * 1e3, "gbps": _gb(8 * x.numel(), s)})
    s = _t(lambda: torch.ops.aten.native_layer_norm_backward(dy, x, [768], mean, rstd, gamma, beta, [True, True, True]),
           args)
    emit({"bench": "ops2", "name": "LayerNorm/grad/8192x768", "ms": s * 1e3, "gbps": _gb(12 * x.numel(), s)})


def _ops2_softmax(args, dev):
    # Causal softmax of GPT-2 small's scores [96·1024, 1024]: eager attention's masked_fill +
    # softmax (nanoGPT without flash), and softmax alone (the kernel kiln's fuses the mask into).
    x = torch.rand(96, 1024, 1024, device=dev) * 8 - 4
    mask = torch.ones(1024, 1024, device=dev, dtype=torch.bool).tril_().logical_not_()
    n = x.numel()
    s = _t(lambda: torch.softmax((x * 0.125).masked_fill_(mask, float("-inf")), -1), args)
    emit({"bench": "ops2", "name": "SoftmaxMasked/fwd/causal98304x1024", "mode": "masked_fill+softmax", "ms": s * 1e3,
          "gbps": _gb(8 * n, s)})
    s = _t(lambda: torch.softmax(x, -1), args)
    emit({"bench": "ops2", "name": "SoftmaxMasked/fwd/causal98304x1024", "mode": "softmax_nomask", "ms": s * 1e3,
          "gbps": _gb(8 * n, s)})
    y = torch.softmax((x * 0.125).masked_fill_(mask, float("-inf")), -1)
    del x
    dy = torch.rand_like(y) * 2 - 1
    s = _t(lambda: torch.ops.aten._softmax_backward_data(dy, y, -1, torch.float32), args)
    emit({"bench": "ops2", "name": "SoftmaxMasked/grad/causal98304x1024", "ms": s * 1e3, "gbps": _gb(12 * n, s)})


def _ops2_cross_entropy(args, dev):
    # Cross-entropy with ignore_index over GPT-2's vocabulary for 8·1024 tokens (1.65 GB logits).
    rows, cols = 8192, 50257
    logits = (torch.rand(rows, cols, device=dev) * 16 - 8).requires_grad_()
    lab = (torch.arange(rows, device=dev) * 7919) % cols
    lab[15::16] = -100
    n = rows * cols
    s = _t(lambda: torch.autograd.grad(F.cross_entropy(logits, lab, ignore_index=-100), logits), args)
    emit({"bench": "ops2", "name": "CrossEntropy/lossgrad/8192x50257", "ms": s * 1e3, "gbps": _gb(8 * n, s)})
    with torch.no_grad():
        s = _t(lambda: F.cross_entropy(logits, lab, ignore_index=-100), args)
    emit({"bench": "ops2", "name": "CrossEntropy/loss/8192x50257", "ms": s * 1e3, "gbps": _gb(4 * n, s)})


def _ops2_embedding(args, dev):
    # Token embedding: lookup and its gradient (embedding_dense_backward: what autograd uses;
    # index_add_: atomics).
    rows, cols, n = 50257, 768, 8192
    table = torch.rand(rows, cols, device=dev) * 2 - 1
    idx = (torch.arange(n, device=dev) * 40503) % rows
    dout = torch.rand(n, cols, device=dev) * 2 - 1
    s = _t(lambda: F.embedding(idx, table), args)
    emit({"bench": "ops2", "name": "Embedding/Gather/8192x50257x768", "ms": s * 1e3, "gbps": _gb(8 * n * cols, s)})
    s = _t(lambda: torch.ops.aten.embedding_dense_backward(dout, idx, rows, -1, False), args)
    emit({"bench": "ops2", "name": "Embedding/ScatterAdd/8192x50257x768", "mode": "embedding_dense_backward",
          "ms": s * 1e3, "gbps": _gb(12 * n * cols, s)})
    s = _t(lambda: table.index_add_(0, idx, dout), args)
    emit({"bench": "ops2", "name": "Embedding/ScatterAdd/8192x50257x768", "mode": "index_add_",
          "ms": s * 1e3, "gbps": _gb(12 * n * cols, s)})


def _ops2_permute(args, dev):
    # Attention's head split [8·1024, 36, 64] → [36, 8·1024, 64].
    x = torch.rand(8192, 36, 64, device=dev)
    y = torch.empty(36, 8192, 64, device=dev)
    s = _t(lambda: y.copy_(x.permute(1, 0, 2)), args)
    emit({"bench": "ops2", "name": "Permute4", "ms": s * 1e3, "gbps": _gb(8 * x.numel(), s)})


def bench_ops2(args):
    for name, fn in (("GemmBatched", _ops2_gemm_batched), ("Im2Col", _ops2_im2col), ("MaxPool2D", _ops2_maxpool),
                     ("BatchNorm", _ops2_batchnorm), ("LayerNorm", _ops2_layernorm),
                     ("SoftmaxMasked", _ops2_softmax), ("CrossEntropy", _ops2_cross_entropy),
                     ("Embedding", _ops2_embedding), ("Permute4", _ops2_permute)):
        _guarded("ops2", name, fn, args, "cuda")


def _cnn(classes=10):
    """device/cuda's newTestCNN: two conv–BN stages, pooling, a linear head."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2, 2), torch.nn.Conv2d(16, 32, 3, padding=1, bias=False), torch.nn.BatchNorm2d(32),
        torch.nn.SiLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(128, classes))


class _LM(torch.nn.Module):
    """device/cuda's testLM: token and position embeddings, one pre-norm block (c_attn without
    bias, causal attention, c_proj; GELU-tanh MLP), ln_f, a head without bias. sdpa: attention
    through F.scaled_dot_product_attention (flash/efficient kernels) instead of eager."""

    def __init__(self, vocab, ctx, width, heads, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.wte, self.wpe = torch.nn.Embedding(vocab, width), torch.nn.Embedding(ctx, width)
        self.ln_1, self.ln_2, self.ln_f = (torch.nn.LayerNorm(width) for _ in range(3))
        self.c_attn = torch.nn.Linear(width, 3 * width, bias=False)
        self.attn_proj = torch.nn.Linear(width, width)
        self.c_fc, self.c_proj = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)
        self.lm_head = torch.nn.Linear(width, vocab, bias=False)
        self.register_buffer("mask", torch.ones(ctx, ctx, dtype=torch.bool).tril_().logical_not_())

    def forward(self, idx):
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        q, k, v = self.c_attn(self.ln_1(x)).split(x.shape[-1], dim=2)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / q.shape[-1] ** 0.5)
            a = torch.softmax(att.masked_fill(self.mask[:t, :t], float("-inf")), -1) @ v
        x = x + self.attn_proj(a.transpose(1, 2).reshape(b, t, -1))
        x = x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return self.lm_head(self.ln_f(x))


def _train2_cnn(args, mode):
    # BenchmarkCNNTrainStep: newTestCNN on one batch of 256 3×32×32 images resident on the GPU.
    torch.manual_seed(0)
    cnn = _cnn().cuda()
    x = torch.randn(256, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (256,), device="cuda")
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3, **{mode: True})

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(cnn(x), y).backward()
        opt.step()

    s = time_cuda(step, 20, args.reps, warmup=5)
    emit({"bench": "train2", "name": "CNNTrainStep", "mode": "adam_" + mode, "ms": s * 1e3, "samples_per_s": 256 / s})


def _train2_lm(args, vocab, sdpa):
    # BenchmarkLMTrainStep: testLM, 8 sequences of 256 tokens, width 384, 6 heads, fused Adam.
    torch.manual_seed(0)
    lm = _LM(vocab, 256, 384, 6, sdpa).cuda()
    opt = torch.optim.Adam(lm.parameters(), lr=1e-3, fused=True)
    toks = torch.randint(0, vocab, (8, 256), device="cuda")
    lab = torch.roll(toks, -1, 1)
    lab[:, -1] = -100

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(lm(toks).view(-1, vocab), lab.view(-1), ignore_index=-100).backward()
        opt.step()

    s = time_cuda(step, 10, args.reps, warmup=3)
    emit({"bench": "train2", "name": f"LMTrainStep/vocab{vocab}", "mode": "sdpa" if sdpa else "eager",
          "ms": s * 1e3, "tokens_per_s": 8 * 256 / s})


def bench_train2(args):
    for mode in ("foreach", "fused"):
        _guarded("train2", "CNNTrainStep", _train2_cnn, args, mode)
    for vocab in (50257, 512):
        for sdpa in (False, True):
            _guarded("train2", f"LMTrainStep/vocab{vocab}", _train2_lm, args, vocab, sdpa)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the 8192^3 GEMMs")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per figure (median reported)")
    ap.add_argument("--only", default="gemm,copy,elementwise,optim,train")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu.py: torch.cuda.is_available() is False: no GPU or no CUDA build of torch", file=sys.stderr)
        sys.exit(1)
    props = torch.cuda.get_device_properties(0)
    emit_info = {"bench": "info", "name": props.name, "torch": torch.__version__, "cuda": torch.version.cuda,
                 "sms": props.multi_processor_count, "memory_gib": props.total_memory / 2**30}
    print(json.dumps(emit_info), flush=True)
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {props.name}", file=sys.stderr)
    benches = {"gemm": bench_gemm, "copy": bench_copy, "elementwise": bench_elementwise,
               "optim": bench_optim, "train": bench_train, "ops2": bench_ops2, "train2": bench_train2}
    for b in args.only.split(","):
        b = b.strip()
        if b not in benches:
            print(f"torch_gpu.py: unknown benchmark {b!r}; choose from {', '.join(benches)}", file=sys.stderr)
            sys.exit(2)
        benches[b](args)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
