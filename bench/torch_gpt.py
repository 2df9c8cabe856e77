#!/usr/bin/python3
"""nanoGPT's CPU recipe in plain PyTorch (1.13), the reference for `kiln lm train`.

The recipe (nanoGPT README, "I only have a macbook"): config/train_shakespeare_char.py
with --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
--max_iters=2000 --lr_decay_iters=2000 --dropout=0.0, here on the embedded
Moby-Dick (data/text/mobydick.txt.gz) instead of Shakespeare:

  model     GPT-2 blocks (pre-norm, causal self-attention, 4x MLP), no biases
            (nanoGPT's bias=False), tied head, GPT-2 init (N(0, 0.02), residual
            projections 0.02/sqrt(2*layers)). GELU is the tanh approximation,
            as kiln's (and GPT-2's gelu_new); nanoGPT uses the exact GELU.
  data      character-level: the sorted characters of the corpus (kiln's char
            tokenizer gives the same ids), the last 10% held out for validation
            (kiln's Split(0.1)), windows at uniform random offsets.
  optimiser AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the 2-D
            weights only, warm-up 100 steps (lr*(it+1)/(warmup+1)), cosine to
            1e-4 at max_iters, global-norm clip 1.0.
  eval      the mean loss of 20 validation batches (the same batches each time)
            every --eval-every steps and at the end.

Prints "step N: val loss X" lines, then "val loss: X" and "tokens/s: Y" (training
steps only, evaluation excluded), so bench/lm.sh can read both runs alike.

  /usr/bin/python3 bench/torch_gpt.py [--iters 2000] [--eval-every 250] [--threads 2]
"""
import argparse
import gzip
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(c, elementwise_affine=True)
        self.ln_1.bias = None  # nanoGPT's bias=False LayerNorm
        self.c_attn = nn.Linear(c, 3 * c, bias=False)
        self.c_proj = nn.Linear(c, c, bias=False)
        self.ln_2 = nn.LayerNorm(c)
        self.ln_2.bias = None
        self.c_fc = nn.Linear(c, 4 * c, bias=False)
        self.mlp_proj = nn.Linear(4 * c, c, bias=False)

    def attn(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        h = self.heads
        q = q.view(B, T, h, C // h).transpose(1, 2)
        k = k.view(B, T, h, C // h).transpose(1, 2)
        v = v.view(B, T, h, C // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // h))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(F.layer_norm(x, x.shape[-1:], self.ln_1.weight, None, 1e-5))
        h = F.layer_norm(x, x.shape[-1:], self.ln_2.weight, None, 1e-5)
        return x + self.mlp_proj(F.gelu(self.c_fc(h), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.ln_f.bias = None
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                torch.nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        x = F.layer_norm(x, x.shape[-1:], self.ln_f.weight, None, 1e-5)
        logits = x @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    layers, heads, width, context, batch = 4, 4, 128, 64, 12
    lr, min_lr, warmup = 1e-3, 1e-4, min(100, a.iters // 10)

    here = os.path.dirname(os.path.abspath(__file__))
    with gzip.open(os.path.join(here, "..", "data", "text", "mobydick.txt.gz"), "rt", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    nv = round(len(data) * 0.1)
    train, val = data[: len(data) - nv], data[len(data) - nv:]
    print(f"data: {len(train)} training and {len(val)} validation tokens, {len(chars)} symbols")

    def batch_of(split, gen):
        ix = torch.randint(len(split) - context, (batch,), generator=gen)
        x = torch.stack([split[i: i + context] for i in ix])
        y = torch.stack([split[i + 1: i + 1 + context] for i in ix])
        return x, y

    model = GPT(len(chars), context, layers, heads, width)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {layers} layers, {heads} heads, width {width}, context {context}: {n_params / 1e6:.2f}M parameters")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99), eps=1e-8)

    def get_lr(it):
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (it - warmup) / (a.iters - warmup))) / 2

    @torch.no_grad()
    def evaluate():
        model.eval()
        gen = torch.Generator().manual_seed(a.seed + 1)
        losses = [model(*batch_of(val, gen)).item() for _ in range(a.eval_batches)]
        model.train()
        return sum(losses) / len(losses)

    gen = torch.Generator().manual_seed(a.seed)
    val_loss = evaluate()
    print(f"step 0: val loss {val_loss:.4f}")
    train_time, tokens = 0.0, 0
    for it in range(a.iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = get_lr(it)
        x, y = batch_of(train, gen)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = loss.item()
        dt = time.perf_counter() - t0
        train_time += dt
        tokens += batch * context
        if (it + 1) % 10 == 0 or it + 1 == a.iters:
            print(f"step {it + 1:4d}/{a.iters} | loss {lv:.6f} | lr {get_lr(it):.2e} | {dt * 1e3:.1f} ms | {batch * context / dt:.0f} tok/s")
        if (it + 1) % a.eval_every == 0 or it + 1 == a.iters:
            val_loss = evaluate()
            print(f"step {it + 1}: val loss {val_loss:.4f}")
    print(f"val loss: {val_loss:.4f}")
    print(f"tokens/s: {tokens / train_time:.0f}")


if __name__ == "__main__":
    main()
