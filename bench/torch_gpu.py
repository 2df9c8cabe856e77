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

MB256 = 256 << 20


def emit(rec):
    print(json.dumps(rec), flush=True)
    keys = [k for k in ("bench", "name", "mode") if k in rec]
    label = "/".join(str(rec[k]) for k in keys)
    figs = ", ".join(f"{k}={rec[k]:.4g}" for k in ("tflops", "gbps", "samples_per_s", "ms") if k in rec)
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
               "optim": bench_optim, "train": bench_train}
    for b in args.only.split(","):
        b = b.strip()
        if b not in benches:
            print(f"torch_gpu.py: unknown benchmark {b!r}; choose from {', '.join(benches)}", file=sys.stderr)
            sys.exit(2)
        benches[b](args)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
