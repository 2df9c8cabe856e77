#!/usr/bin/python3
"""PyTorch reference for bench/blockbench: forward+backward of a pre-norm transformer block.

The block of nn/block_bench_test.go (BenchmarkBlockStep) and bench/blockbench, written from
explicit modules as nanoGPT's Block (not nn.MultiheadAttention): x + attn(ln_1(x)), then
+ mlp(ln_2(.)); attention with a fused c_attn Linear(width, 3*width), q, k, v split into heads,
q k^T / sqrt(d), a causal mask, softmax, times v, heads merged, c_proj Linear(width, width); the
MLP c_fc Linear(width, 4*width), GELU (tanh form), c_proj Linear(4*width, width). A timed step
is zero_grad(set_to_none=True), forward with the input requiring grad (so its gradient is
computed, as kiln's Graph.Variable), MSE against a fixed target, backward; no optimiser step.
Prints the median step on a last line

    result: median_step_ms=... samples_per_s=...

Usage (Debian's torch 1.13 under /usr/bin/python3):

    /usr/bin/python3 bench/torch_block.py [--batch 8] [--ctx 256] [--width 384] [--heads 6] [--steps 10]

Threads: torch.set_num_threads(--threads, default 2), with the same re-execution under
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp as bench/torch_mnist.py
(KILN_BENCH_NO_REEXEC=1 skips it).
"""

import argparse
import math
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


def make_block(torch, width, heads, ctx):
    nn = torch.nn
    F = torch.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(width, 3 * width)
            self.c_proj = nn.Linear(width, width)
            self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)), persistent=False)

        def forward(self, x):
            b, t, c = x.shape
            d = c // heads
            q, k, v = self.c_attn(x).split(c, dim=2)
            q = q.view(b, t, heads, d).transpose(1, 2)
            k = k.view(b, t, heads, d).transpose(1, 2)
            v = v.view(b, t, heads, d).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
            att = att.masked_fill(~self.mask[:t, :t], float("-inf"))
            att = F.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(width, 4 * width)
            self.c_proj = nn.Linear(4 * width, width)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(width)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(width)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    return Block()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    _reexec(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH', '')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}", flush=True)
    m = make_block(torch, args.width, args.heads, args.ctx)
    nparams = sum(q.numel() for q in m.parameters())
    print(f"torch cpu: block [batch {args.batch}, ctx {args.ctx}, width {args.width}, heads {args.heads}], "
          f"{nparams} parameters, forward+backward", flush=True)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(args.batch, args.ctx, args.width, generator=g) * 2 - 1
    tgt = torch.rand(args.batch, args.ctx, args.width, generator=g) * 2 - 1
    x.requires_grad_(True)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        m.zero_grad(set_to_none=True)
        x.grad = None
        loss = torch.nn.functional.mse_loss(m(x), tgt)
        loss.backward()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"steps {args.steps} after {args.warmup} warm-up: min {min(times) * 1e3:.1f} ms, "
          f"median {med * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms (loss {loss.item():.4f})", flush=True)
    print(f"result: median_step_ms={med * 1e3:.3f} samples_per_s={args.batch / med:.2f}", flush=True)


if __name__ == "__main__":
    main()
