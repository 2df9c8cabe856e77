#!/usr/bin/python3
"""Checkpoint interop between kiln and PyTorch.

kiln checkpoints are safetensors files with torch.nn.Sequential state_dict
names and layouts ("0.weight" as [out, in]) and the model spec in
__metadata__["kiln.spec"]. This script reads and writes that format by hand
(json, struct, torch.frombuffer), so it needs only torch (1.13 or newer),
not the safetensors package.

  forward: load a kiln checkpoint into torch.nn.Sequential and print (and
           optionally write) the logits for inputs given as raw float32.
      torch_interop.py forward CKPT INPUT.f32 ROWS [OUT.f32]

  export:  build the model of a kiln spec (an MLP, or an image model:
           CxHxW-conv…-bn-…-flatten-…) with PyTorch's default init
           (torch.manual_seed(SEED)), write its state_dict as safetensors,
           and, given inputs, its logits as raw float32.
      torch_interop.py export SPEC SEED CKPT [INPUT.f32 ROWS OUT.f32]

Raw float32 files are little-endian, row-major, ROWS x width. Several
commands can run in one process (torch is slow to import), separated by a
lone "+": torch_interop.py forward ... + export ...
"""
import json
import struct
import sys

import torch
from torch import nn

SPEC_KEY = "kiln.spec"


def window(rest, allowed):
    """The number and lettered options of an image token: conv32k3p1 → 32, {k: 3, p: 1}."""
    num, opts, key, first = "", {}, None, None
    for ch in rest + "$":
        if ch.isdigit():
            num += ch
            continue
        if key is None:
            first = int(num)
        else:
            opts[key] = int(num)
        if ch == "$":
            break
        if ch not in allowed:
            raise SystemExit(f"bad image token option {ch!r} in {rest!r}")
        key, num = ch, ""
    return first, opts


def build(spec):
    """torch.nn.Sequential for a kiln spec string (see nn.ParseSpec and
    nn/spec_image.go), and the per-sample input shape [C, H, W] of an
    image spec (None for a flat one): the caller views its [rows, C·H·W]
    inputs as [rows, C, H, W], as kiln's model does, so that the module
    indices (the state_dict names) are the spec's."""
    toks = [t.strip().lower() for t in spec.strip().split("-")]
    shape = None
    if "x" in toks[0]:
        shape = [int(v) for v in toks[0].split("x")]
        chan, h, w = shape
        width = None
    else:
        width = int(toks[0])
    layers = []
    for tok in toks[1:]:
        if tok.isdigit():
            layers.append(nn.Linear(width, int(tok)))
            width = int(tok)
        elif tok == "relu":
            layers.append(nn.ReLU())
        elif tok.startswith("leakyrelu"):
            rest = tok[len("leakyrelu"):]
            layers.append(nn.LeakyReLU(float(rest) if rest else 0.01))
        elif tok == "tanh":
            layers.append(nn.Tanh())
        elif tok == "sigmoid":
            layers.append(nn.Sigmoid())
        elif tok == "gelu":
            layers.append(nn.GELU())
        elif tok == "gelu_tanh":
            layers.append(nn.GELU(approximate="tanh"))
        elif tok == "silu":
            layers.append(nn.SiLU())
        elif tok.startswith("elu"):
            rest = tok[len("elu"):]
            layers.append(nn.ELU(float(rest) if rest else 1.0))
        elif tok == "identity":
            layers.append(nn.Identity())
        elif tok == "softmax":
            layers.append(nn.Softmax(dim=-1))
        elif tok.startswith("drop"):
            p = tok[len("dropout"):] if tok.startswith("dropout") else tok[len("drop"):]
            layers.append(nn.Dropout(float(p)))
        elif tok.startswith("conv"):
            out, o = window(tok[4:], "kspd")
            k, s, p, d = o["k"], o.get("s", 1), o.get("p", 0), o.get("d", 1)
            layers.append(nn.Conv2d(chan, out, k, stride=s, padding=p, dilation=d))
            chan, h, w = out, (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
        elif tok == "bn":
            layers.append(nn.BatchNorm2d(chan) if width is None else nn.BatchNorm1d(width))
        elif tok.startswith("maxpool") or tok.startswith("avgpool"):
            k, o = window(tok[7:], "sp")
            s, p = o.get("s", k), o.get("p", 0)
            cls = nn.MaxPool2d if tok.startswith("maxpool") else nn.AvgPool2d
            layers.append(cls(k, stride=s, padding=p))
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif tok == "gap":
            layers.append(nn.AdaptiveAvgPool2d(1))
            h, w = 1, 1
        elif tok == "flatten":
            layers.append(nn.Flatten())
            if width is None:
                width = chan * h * w
        else:
            raise SystemExit(f"spec {spec!r}: unknown token {tok!r}")
    return nn.Sequential(*layers), shape


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SystemExit(f"{path}: truncated")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        dtype = {"F32": torch.float32, "I64": torch.int64}.get(info["dtype"])
        if dtype is None:
            raise SystemExit(f"{path}: tensor {name}: dtype {info['dtype']}, expected F32 (or I64 for num_batches_tracked)")
        start, end = info["data_offsets"]
        buf = bytearray(body[start:end])
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.zeros(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name, t in tensors.items():
        if t.dtype == torch.int64:  # BatchNorm's num_batches_tracked
            b, dt = t.detach().contiguous().numpy().astype("<i8").tobytes(), "I64"
        else:
            b, dt = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_f32(path, rows):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    return torch.frombuffer(buf, dtype=torch.float32).reshape(rows, -1).clone()


def inputs(path, rows, shape):
    """The rows of path, viewed as [rows, C, H, W] for an image spec."""
    x = read_f32(path, rows)
    return x if shape is None else x.reshape(rows, *shape)


def write_f32(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())


def main(argv):
    torch.set_num_threads(1)
    cmds, cur = [], []
    for a in argv[1:]:
        if a == "+":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    for c in cmds:
        run([argv[0]] + c)


def run(argv):
    if len(argv) >= 5 and argv[1] == "forward":
        tensors, meta = read_safetensors(argv[2])
        if SPEC_KEY not in meta:
            raise SystemExit(f"{argv[2]}: no {SPEC_KEY} in __metadata__")
        model, shape = build(meta[SPEC_KEY])
        model.load_state_dict(tensors, strict=True)
        model.eval()
        with torch.no_grad():
            y = model(inputs(argv[3], int(argv[4]), shape))
        print(y)
        if len(argv) > 5:
            write_f32(argv[5], y)
    elif len(argv) >= 5 and argv[1] == "export":
        spec, seed, path = argv[2], int(argv[3]), argv[4]
        torch.manual_seed(seed)
        model, shape = build(spec)
        model.eval()
        write_safetensors(path, model.state_dict(), {SPEC_KEY: spec, "producer": "torch " + torch.__version__})
        if len(argv) > 7:
            with torch.no_grad():
                y = model(inputs(argv[5], int(argv[6]), shape))
            write_f32(argv[7], y)
            print(y)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
