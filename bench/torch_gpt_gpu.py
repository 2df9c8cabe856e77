#!/usr/bin/env python3
"""GPT-2 small training throughput in PyTorch eager on a CUDA GPU, beside `kiln lm train --device cuda`.

The model and step are those scripts/gpu-check.sh runs through kiln: GPT-2 small (12 layers,
12 heads, width 768, context 1024, vocabulary 50257, biases, tied head, GELU-tanh, dropout 0),
batch 8, one AdamW step (lr 6e-4, betas (0.9, 0.95), weight decay 0.1 on the 2-D weights,
torch's default foreach implementation) with global-norm clipping at 1.0 per step. The tokens
are uniform random ids (throughput does not depend on their values; kiln reads GPT-2 tokens of
the embedded corpus). Attention is written out as in nanoGPT without flash attention (q·kᵀ,
causal mask, softmax, ·v), the computation kiln's batched GEMM + fused causal softmax does.

It runs the fp32 mode, then TF32 (torch.backends.cuda.matmul.allow_tf32 and cudnn.allow_tf32),
each for --warmup untimed steps and --steps timed ones (synchronised), and prints one JSON line
per mode:

  {"bench": "lm", "name": "gpt2-small", "mode": "fp32", "batch": 8, "context": 1024,
   "tokens_per_s": ..., "ms_per_step": ..., "mfu": ..., "params": ...}

MFU counts the FLOPs as kiln's train/lm.FLOPsPerToken does (6·N + 12·layers·width·context per
token, N every parameter once, embeddings included) against --peak FLOP/s (default 67e12, the
H200's fp32 non-tensor-core peak, the peak kiln's MFU uses on CUDA), in both modes.

  python3 bench/torch_gpt_gpu.py [--steps 10] [--warmup 3] [--batch 8] [--modes fp32,tf32]
"""
import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # a machine without PyTorch: nothing to compare
    print(f"torch_gpt_gpu.py: no PyTorch ({e})", file=sys.stderr)
    sys.exit(0)


class Block(nn.Module):
    def __init__(self, c, heads, context):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.mlp_proj = nn.Linear(4 * c, c)
        self.register_buffer("mask", torch.ones(context, context, dtype=torch.bool).tril(), persistent=False)

    def attn(self, x):
        B, T, C = x.shape
        h = self.heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, h, C // h).transpose(1, 2)
        k = k.view(B, T, h, C // h).transpose(1, 2)
        v = v.view(B, T, h, C // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // h))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList([Block(width, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                torch.nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def run(mode, a, dev):
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(1337)
    layers, heads, width, context, vocab = 12, 12, 768, 1024, 50257
    model = GPT(vocab, context, layers, heads, width).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randint(vocab, (a.batch, context), device=dev, generator=g)
    y = torch.randint(vocab, (a.batch, context), device=dev, generator=g)

    def step():
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    tokens = a.batch * context
    flops_per_token = 6 * n_params + 12 * layers * width * context
    rec = {"bench": "lm", "name": "gpt2-small", "mode": mode, "batch": a.batch, "context": context,
           "tokens_per_s": tokens / dt, "ms_per_step": dt * 1e3, "mfu": flops_per_token * tokens / dt / a.peak,
           "params": n_params, "loss": float(loss), "torch": torch.__version__}
    print(json.dumps(rec), flush=True)
    del model, opt
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--peak", type=float, default=67e12)
    ap.add_argument("--modes", default="fp32,tf32")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpt_gpu.py: PyTorch sees no CUDA device", file=sys.stderr)
        return
    dev = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", file=sys.stderr)
    for mode in a.modes.split(","):
        run(mode, a, dev)


if __name__ == "__main__":
    main()
