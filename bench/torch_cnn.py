#!/usr/bin/python3
"""PyTorch reference for bench/cnnbench: training throughput of examples/mnist-cnn's CNN.

The same model, batch and optimiser as kiln's bench/cnnbench (see its package comment):

    Conv2d(1,32,3,padding=1,bias=False)-BatchNorm2d(32)-ReLU-Conv2d(32,32,3,p1,nobias)-BN-ReLU-MaxPool2d(2)
    Conv2d(32,64,3,p1,nobias)-BN-ReLU-Conv2d(64,64,3,p1,nobias)-BN-ReLU-MaxPool2d(2)
    Flatten-Linear(3136,128)-ReLU-Dropout(0.3)-Linear(128,10)

torch.nn.CrossEntropyLoss (mean), torch.optim.AdamW(lr 3e-3) with two parameter groups:
weight decay 5e-4 on tensors of two or more dimensions, none on biases and norm weights
(kiln's train.DecayGroups). A timed step gathers the batch by index from a fixed pool of
synthetic images (uniform [0, 1) pixels, labels 0..9), zero_grad(set_to_none=True),
forward, loss, backward, step. Prints the median step on a last line

    result: median_step_ms=... samples_per_s=...

Usage (Debian's torch 1.13 under /usr/bin/python3):

    /usr/bin/python3 bench/torch_cnn.py [--batch 64] [--steps 20] [--warmup 3] [--threads 2]

Threads: torch.set_num_threads(--threads); the script re-executes itself once with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp when that folder exists (Debian's
libopenblas0-openmp, which shares torch's OpenMP pool; torch's matrix products go through
libblas.so.3), as bench/torch_mnist.py does. KILN_BENCH_NO_REEXEC=1 skips that. Convolutions
run in oneDNN (MKL-DNN), which torch 1.13 uses for float32 CPU convolutions when available.
"""

import argparse
import os
import statistics
import sys
import time


def _reexec(threads):
    if os.environ.get("KILN_BENCH_NO_REEXEC") or os.environ.get("_KILN_BENCH_REEXECED"):
        return
    env = dict(os.environ)
    env["_KILN_BENCH_REEXECED"] = "1"
    base = "/usr/lib/x86_64-linux-gnu"
    for variant in ("openblas-openmp", "openblas-pthread"):
        d = os.path.join(base, variant)
        if os.path.isdir(d):
            env["LD_LIBRARY_PATH"] = d + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
            break
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def make_model(torch, width):
    nn = torch.nn

    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    c1, c2 = width, 2 * width
    return nn.Sequential(*conv(1, c1), *conv(c1, c1), nn.MaxPool2d(2, 2),
                         *conv(c1, c2), *conv(c2, c2), nn.MaxPool2d(2, 2),
                         nn.Flatten(), nn.Linear(c2 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(128, 10))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--pool", type=int, default=4096, help="synthetic images to draw batches from")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    _reexec(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn "
          f"{torch.backends.mkldnn.is_available()}, LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH', '')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}", flush=True)

    model = make_model(torch, args.width)
    model.train()
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4},
                             {"params": no_decay, "weight_decay": 0.0}], lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    nparams = sum(q.numel() for q in model.parameters())
    print(f"torch cpu: CNN width {args.width}, {nparams} parameters, batch {args.batch}, AdamW", flush=True)

    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.pool, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.pool,), generator=g)
    perm = torch.randperm(args.pool, generator=g)
    bs = args.batch
    times = []
    pos = 0
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        if pos + bs > args.pool:
            pos = 0
        idx = perm[pos:pos + bs]
        pos += bs
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"steps {args.steps} after {args.warmup} warm-up: min {min(times) * 1e3:.1f} ms, "
          f"median {med * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms (last loss {loss.item():.4f})", flush=True)
    print(f"result: median_step_ms={med * 1e3:.3f} samples_per_s={bs / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
