"""GPT-2 in plain PyTorch with Hugging Face's module and parameter names,
for kiln's parity test (nn/gpt/torch_test.go). transformers is not needed:
the modules below follow transformers' modeling_gpt2.py (GPT2LMHeadModel,
GPT2Model, GPT2Block, GPT2Attention with Conv1D, GPT2MLP with gelu_new),
so their state_dict names and layouts are GPT-2's.

usage: gpt2_torch.py CONFIG_JSON KILN_WEIGHTS IDX_BIN BATCH TIME OUT_DIR

1. kiln -> torch: loads KILN_WEIGHTS (a safetensors file kiln wrote, with
   GPT2LMHeadModel names) with load_state_dict(strict=True) and writes the
   logits of the int32 tokens IDX_BIN [BATCH, TIME] to OUT_DIR/kiln_weights.logits.
2. torch -> kiln: initialises its own model (seeded), writes its
   transformer's state_dict as the Hub's gpt2 files name it (no
   "transformer." prefix, the attn.bias / attn.masked_bias buffers, no
   lm_head) to OUT_DIR/torch.safetensors, and its logits to OUT_DIR/torch.logits.
The safetensors reader and writer are written here (F32 only), since the
safetensors package may be absent.
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {h['dtype']}, this reader handles F32")
        s, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(body[s:e]), dtype=torch.float32) if e > s else torch.zeros(0)
        out[name] = t.reshape(h["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in chunks:
            f.write(b)


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight [nx, nf], y = x W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        T, C = cfg["Context"], cfg["Width"]
        # Older transformers persisted these buffers; the Hub's gpt2 files carry them.
        self.register_buffer("bias", torch.tril(torch.ones((T, T))).view(1, 1, T, T))
        self.register_buffer("masked_bias", torch.tensor(-1e4))
        self.n_head, self.width = cfg["Heads"], C
        self.c_attn = Conv1D(3 * C, C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        d = C // self.n_head
        q, k, v = (a.view(B, T, self.n_head, d).permute(0, 2, 1, 3) for a in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        mask = self.bias[:, :, :T, :T].bool()
        w = torch.where(mask, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = torch.softmax(w, dim=-1)
        y = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPT2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg["Width"]
        self.c_fc = Conv1D(4 * C, C)
        self.c_proj = Conv1D(C, 4 * C)

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return self.c_proj(h)


class GPT2Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg["Width"]
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["VocabSize"], cfg["Width"])
        self.wpe = nn.Embedding(cfg["Context"], cfg["Width"])
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg["Layers"])])
        self.ln_f = nn.LayerNorm(cfg["Width"], eps=1e-5)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for b in self.h:
            x = b(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg["Width"], cfg["VocabSize"], bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied

    def forward(self, idx):
        return self.lm_head(self.transformer(idx))


def main():
    cfg_path, weights, idx_path, B, T, out = sys.argv[1:7]
    cfg = json.load(open(cfg_path))
    B, T = int(B), int(T)
    with open(idx_path, "rb") as f:
        idx = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long().view(B, T)
    torch.set_grad_enabled(False)

    # 1. kiln -> torch.
    m = GPT2LMHeadModel(cfg).eval()
    sd = read_safetensors(weights)
    missing = set(m.state_dict().keys()) - set(sd.keys())
    # kiln writes no mask buffers (transformers >= 4.31 does not persist them).
    if any(not k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing):
        raise SystemExit(f"kiln's file lacks {sorted(missing)}")
    for k in missing:
        sd[k] = m.state_dict()[k]
    m.load_state_dict(sd, strict=True)
    m(idx).numpy().astype("<f4").tofile(out + "/kiln_weights.logits")

    # 2. torch -> kiln: a seeded model with every parameter non-trivial.
    torch.manual_seed(1234)
    t = GPT2LMHeadModel(cfg).eval()
    for name, p in t.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif name.endswith(".bias"):
            p.copy_(0.1 * torch.randn_like(p))
        else:
            p.copy_(0.2 * torch.randn_like(p))
    write_safetensors(out + "/torch.safetensors", t.transformer.state_dict())
    t(idx).numpy().astype("<f4").tofile(out + "/torch.logits")


if __name__ == "__main__":
    main()
