#!/usr/bin/python3
"""Issue 12's MNIST recipes in PyTorch, throughput only.

The timing loop is bench/torch_mnist.py --throughput's (random 60000x784 data,
a batch gathered by index each step, median of single-step times after a
warm-up); only the model and optimiser are parameters here, set like
`kiln bench`: SGD lr 0.01 momentum 0.9, Adam lr 1e-3 (PyTorch defaults
otherwise), mean cross-entropy, PyTorch's default Linear init.

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=2 \
  OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_mlp_recipes.py --model 784-128-relu-10 \
      --optimizer sgd --batch 64 --steps 300 --warmup 30
"""
import argparse
import json
import os
import statistics
import time

p = argparse.ArgumentParser()
p.add_argument("--model", default="784-128-relu-10")
p.add_argument("--optimizer", default="sgd")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--steps", type=int, default=300)
p.add_argument("--warmup", type=int, default=30)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=1)
args = p.parse_args()

import torch  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

parts = args.model.split("-")
layers, width = [], int(parts[0])
for tok in parts[1:]:
    if tok == "relu":
        layers.append(torch.nn.ReLU())
    else:
        layers.append(torch.nn.Linear(width, int(tok)))
        width = int(tok)
model = torch.nn.Sequential(*layers)
if args.optimizer == "sgd":
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
else:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()

g = torch.Generator().manual_seed(args.seed)
x = torch.rand(60000, 784, generator=g)
y = torch.randint(0, 10, (60000,), generator=g)
n, bs = len(x), args.batch
perm = torch.randperm(n)
times = []
for i in range(args.warmup + args.steps):
    s = (i * bs) % (n - bs + 1)
    t0 = time.perf_counter()
    idx = perm[s:s + bs]
    xb, yb = x[idx], y[idx]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    if i >= args.warmup:
        times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(json.dumps({"framework": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""), "model": args.model,
                  "optimizer": args.optimizer, "batch": bs, "median_step_ms": med * 1e3,
                  "samples_per_sec": bs / med}))
