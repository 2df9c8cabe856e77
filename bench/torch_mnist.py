#!/usr/bin/python3
"""PyTorch reference for `kiln train --data mnist --model 784-256-relu-128-relu-10 --optimizer adam`.

The same recipe as kiln: Linear(784,256)-ReLU-Linear(256,128)-ReLU-Linear(128,10),
torch.nn.CrossEntropyLoss (mean over the batch), torch.optim.Adam(lr=1e-3, betas
(0.9, 0.999), eps 1e-8), batch 64, a fresh shuffle every epoch, the last partial batch
kept, PyTorch's default Linear init. Pixels are scaled to [0, 1] (x/255), as kiln's data
package does (no mean/std normalisation unless --normalize, kiln's Options.Normalize:
0.1307/0.3081 for MNIST).

Usage (Debian's torch 1.13 under /usr/bin/python3):

    /usr/bin/python3 bench/torch_mnist.py --data DIR --epochs 5
        trains, printing per epoch: seconds, samples/s, test loss and accuracy.
    /usr/bin/python3 bench/torch_mnist.py --throughput --batch 64,256 --steps 200 --warmup 20 [--data DIR]
        measures training throughput only: for each batch size, --warmup steps, then
        --steps timed steps; prints the median samples/s (random data when --data is
        not given; the step includes gathering the batch by index, as kiln's does).

DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte, each optionally .gz (the names kiln's data package accepts; e.g.
~/go/pkg/mod/github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data).
--device cuda runs on a GPU when torch has one (times are then synchronised).

Threads: the comparison with kiln on the 2-core machine uses two threads. The script
calls torch.set_num_threads(2) (--threads) and, because Debian's torch does its matrix
products through libblas.so.3 (the system's OpenBLAS), re-executes itself once with
LD_LIBRARY_PATH pointing at /usr/lib/x86_64-linux-gnu/openblas-openmp when that folder
exists (libopenblas0-openmp: shares torch's OpenMP pool), else at openblas-pthread with
OPENBLAS_NUM_THREADS set to the same thread count. Set KILN_BENCH_NO_REEXEC=1 to skip it.
"""

import argparse
import gzip
import json
import os
import statistics
import struct
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


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="folder with the MNIST IDX files")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", default="64", help="batch size; in --throughput mode a comma-separated list")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--normalize", action="store_true", help="apply MNIST's mean/std after scaling to [0,1]")
    p.add_argument("--throughput", action="store_true", help="measure training samples/s only")
    p.add_argument("--steps", type=int, default=200, help="timed steps per batch size (--throughput)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (--throughput)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    return p.parse_args()


def find_idx(d, split, kind):
    nd = "idx1" if kind == "labels" else "idx3"
    for name in (f"{split}-{kind}-{nd}-ubyte.gz", f"{split}-{kind}-{nd}-ubyte",
                 f"{split}-{kind}.{nd}-ubyte.gz", f"{split}-{kind}.{nd}-ubyte"):
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"torch_mnist.py: no {split} {kind} IDX file in {d} (expected {split}-{kind}-{nd}-ubyte[.gz])")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"torch_mnist.py: {path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def load_split(torch, d, split, normalize):
    (n, rows, cols), pix = read_idx(find_idx(d, split, "images"))
    (nl,), lab = read_idx(find_idx(d, split, "labels"))
    if nl != n:
        sys.exit(f"torch_mnist.py: {split}: {n} images but {nl} labels")
    x = torch.frombuffer(bytearray(pix), dtype=torch.uint8).reshape(n, rows * cols).float().div_(255)
    if normalize:
        x.sub_(0.1307).div_(0.3081)
    y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).long()
    return x, y


def make_model(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def sync(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def evaluate(torch, model, x, y, dev):
    model.eval()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    total, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), 1024):
            xb, yb = x[s:s + 1024].to(dev), y[s:s + 1024].to(dev)
            out = model(xb)
            total += loss_fn(out, yb).item()
            correct += (out.argmax(1) == yb).sum().item()
    model.train()
    return total / len(x), correct / len(x)


def train(torch, args, dev):
    x, y = load_split(torch, args.data, "train", args.normalize)
    xt, yt = load_split(torch, args.data, "t10k", args.normalize)
    x, y = x.to(dev), y.to(dev)
    bs = int(args.batch)
    model = make_model(torch).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(x)
    g = torch.Generator().manual_seed(args.seed)
    epochs = []
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=g).to(dev)
        sync(torch, dev)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
        train_loss = loss_sum.item() / n
        sync(torch, dev)
        secs = time.perf_counter() - t0
        test_loss, acc = evaluate(torch, model, xt, yt, dev)
        e = {"epoch": epoch, "seconds": secs, "samples_per_sec": n / secs, "train_loss": train_loss,
             "test_loss": test_loss, "test_accuracy": acc}
        epochs.append(e)
        print(f"epoch {epoch + 1}/{args.epochs}: {secs:.2f} s, {n / secs:,.0f} samples/s, "
              f"train loss {train_loss:.4f}, test loss {test_loss:.4f}, test accuracy {acc:.4f}", flush=True)
    return {"mode": "train", "batch": bs, "epochs": epochs}


def throughput(torch, args, dev):
    if args.data:
        x, y = load_split(torch, args.data, "train", args.normalize)
    else:
        g = torch.Generator().manual_seed(args.seed)
        x = torch.rand(60000, 784, generator=g)
        y = torch.randint(0, 10, (60000,), generator=g)
    x, y = x.to(dev), y.to(dev)
    n = len(x)
    results = []
    for bs in [int(b) for b in args.batch.split(",")]:
        torch.manual_seed(args.seed)
        model = make_model(torch).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        perm = torch.randperm(n).to(dev)
        times = []
        for i in range(args.warmup + args.steps):
            s = (i * bs) % (n - bs + 1)
            sync(torch, dev)
            t0 = time.perf_counter()
            idx = perm[s:s + bs]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sync(torch, dev)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        r = {"batch": bs, "steps": args.steps, "median_step_ms": med * 1e3, "samples_per_sec": bs / med}
        results.append(r)
        print(f"batch {bs}: median step {med * 1e3:.3f} ms, {bs / med:,.0f} samples/s "
              f"({args.steps} steps after {args.warmup} warm-up)", flush=True)
    return {"mode": "throughput", "results": results}


def main():
    args = parse_args()
    _reexec(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
          f"LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH', '')}", flush=True)
    if args.throughput:
        out = throughput(torch, args, dev)
    else:
        if not args.data:
            sys.exit("torch_mnist.py: --data DIR is needed to train (or use --throughput)")
        out = train(torch, args, dev)
    out.update({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(dev)})
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
