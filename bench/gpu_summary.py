#!/usr/bin/env python3
"""Summary table of one GPU check (scripts/gpu-check.sh): kiln's figures beside PyTorch's,
measured in the same run on the same GPU, with the issue's targets.

  python3 bench/gpu_summary.py OUTDIR

Reads OUTDIR/bench.log (Go benchmarks of device/cuda), OUTDIR/kiln-bench.jsonl (kiln bench
--json, one JSON array per line), OUTDIR/torch.jsonl (bench/torch_gpu.py) and
OUTDIR/torch-ops2.jsonl (bench/torch_gpu.py --only ops2,train2, a separate run). Prints
Markdown, ready to paste into docs/benchmarks.md. The Ops2 tables pair each Go benchmark with
the torch records ("bench": "ops2"/"train2") of the same name; a missing figure prints "—".
"""
import json
import re
import sys

out = sys.argv[1]


def go_bench(path):
    """{name: {unit: value}} from Go benchmark lines, -N suffix dropped."""
    res = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return res
    for line in lines:
        if not line.startswith("Benchmark"):
            continue
        parts = line.split()
        name = re.sub(r"-\d+$", "", parts[0])
        vals = {}
        for i in range(2, len(parts) - 1, 2):
            try:
                vals[parts[i + 1]] = float(parts[i])
            except ValueError:
                pass
        res[name] = vals
    return res


def jsonl(path):
    """Every JSON value in the file (objects or arrays, one per line or pretty-printed)."""
    recs = []
    try:
        text = open(path).read()
    except OSError:
        return recs
    dec, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i] not in "[{":
            i += 1
        if i >= len(text):
            break
        try:
            v, i = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        recs.extend(v if isinstance(v, list) else [v])
    return recs


go = go_bench(f"{out}/bench.log")
torch = jsonl(f"{out}/torch.jsonl") + jsonl(f"{out}/torch-ops2.jsonl")
kiln = jsonl(f"{out}/kiln-bench.jsonl")


def fmt(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return None if a is None or not b else 100 * a / b


print("\n### GEMM (TFLOP/s)\n")
print("| shape (m×n×k) | mode | kiln | torch.matmul | kiln/torch | target |")
print("|---|---|---|---|---|---|")
for name, vals in sorted(go.items()):
    m = re.match(r"BenchmarkGemm/([^/]+)/(fp32|tf32)$", name)
    if not m:
        continue
    shape, mode = m.groups()
    k = vals.get("TFLOP/s")
    t = next((r.get("tflops") for r in torch if r.get("bench") == "gemm" and r.get("name") == shape and r.get("mode") == mode), None)
    target = {"fp32": "≥ 85%", "tf32": "≥ 70%"}[mode] if shape.startswith("4096") else ""
    print(f"| {shape} | {mode} | {fmt(k)} | {fmt(t)} | {fmt(ratio(k, t), 0)}% | {target} |")

copy = go.get("BenchmarkCopy", {}).get("GB/s")
tcopy = next((r.get("gbps") for r in torch if r.get("bench") == "copy"), None)
print("\n### Bandwidth-bound kernels on 256 MB buffers (GB/s, bytes read + written)\n")
print(f"Device-to-device copy: kiln {fmt(copy, 0)} GB/s, torch {fmt(tcopy, 0)} GB/s.\n")
print("| kernel | kiln | % of copy | torch | target |")
print("|---|---|---|---|---|")
for name, vals in sorted(go.items()):
    m = re.match(r"BenchmarkElementwise/(\w+)$", name)
    if not m:
        continue
    op = m.group(1)
    g = vals.get("GB/s")
    t = next((r.get("gbps") for r in torch if r.get("bench") in ("elementwise", "optim") and r.get("name") == op), None)
    print(f"| {op} | {fmt(g, 0)} | {fmt(ratio(g, copy), 0)}% | {fmt(t, 0)} | ≥ 70% of copy |")

for name in ("BenchmarkLaunchOverhead", "BenchmarkLaunchOverheadAdd"):
    if name in go:
        print(f"\n{name}: {fmt(go[name].get('µs/launch'), 2)} µs per launch")

print("\n### Training throughput (samples/s, Adam, cross-entropy, data on the GPU)\n")
print("| model | batch | kiln fp32 | kiln tf32 | torch eager (foreach) | torch eager (fused) | kiln fp32 / best torch |")
print("|---|---|---|---|---|---|---|")
for model, batch in (("784-256-relu-128-relu-10", 64), ("784-4096-relu-4096-relu-10", 1024)):
    def kv(tf):
        return next((r.get("samples_per_sec") for r in kiln if r.get("model") == model and r.get("batch") == batch and bool(r.get("tf32")) == tf), None)
    def tv(mode):
        return next((r.get("samples_per_s") for r in torch if r.get("bench") == "train" and r.get("name") == model and r.get("mode") == mode), None)
    k32, ktf, tfe, tfu = kv(False), kv(True), tv("adam_foreach"), tv("adam_fused")
    best = max([x for x in (tfe, tfu) if x] or [0])
    print(f"| {model} | {batch} | {fmt(k32, 0)} | {fmt(ktf, 0)} | {fmt(tfe, 0)} | {fmt(tfu, 0)} | {fmt(ratio(k32, best), 0)}% |")

# GPT-2 small training (kiln lm train --device cuda vs bench/torch_gpt_gpu.py), tokens/s and MFU
# against the fp32 peak. kiln's figure is the median over the logged steps after the first 3
# (kernel loading and allocator warm-up), as torch's is timed after its warm-up steps.


def kiln_lm(mode):
    recs = [r for r in jsonl(f"{out}/lm-gpu-{mode}/metrics.jsonl") if not r.get("eval") and r.get("tokens_per_s")]
    steady = recs[3:] or recs
    if not steady:
        return None, None, 0
    def median(xs):
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return median([r["tokens_per_s"] for r in steady]), median([r.get("mfu", 0) for r in steady]), len(recs)


torch_gpt = jsonl(f"{out}/torch-gpt.jsonl")
print("\n### GPT-2 small training (12 layers, 12 heads, width 768, context 1024, batch 8; tokens/s, MFU of the fp32 peak)\n")
print("| mode | kiln tokens/s | kiln MFU | kiln steps | torch eager tokens/s | torch MFU | kiln/torch | target |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("fp32", "tf32"):
    ktok, kmfu, ksteps = kiln_lm(mode)
    t = next((r for r in torch_gpt if r.get("bench") == "lm" and r.get("mode") == mode), {})
    ttok, tmfu = t.get("tokens_per_s"), t.get("mfu")
    pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"
    kt = "—" if ratio(ktok, ttok) is None else f"{ratio(ktok, ttok):.0f}%"
    print(f"| {mode} | {fmt(ktok, 0)} | {pct(kmfu)} | {ksteps} | {fmt(ttok, 0)} | {pct(tmfu)} | {kt} | ≥ 100% |")

# Primitives beyond MLPs (device.Ops2) and the two small training steps built on them, beside
# bench/torch_gpu.py's "ops2" and "train2" records of the same names.
OPS2 = ("GemmBatched/", "Im2Col/", "MaxPool2D/", "BatchNorm/", "LayerNorm/", "SoftmaxMasked/", "CrossEntropy/",
        "Embedding/", "Permute4")
print("\n### Primitives beyond MLPs (device.Ops2; GB/s counts each big buffer once)\n")
print(f"Device-to-device copy, the bandwidth ceiling: kiln {fmt(copy, 0)} GB/s.\n")
print("| benchmark | unit | kiln | torch | kiln/torch |")
print("|---|---|---|---|---|")
for name, vals in sorted(go.items()):
    short = name[len("Benchmark"):]
    if not short.startswith(OPS2):
        continue
    unit, key, nd = ("TFLOP/s", "tflops", 1) if "TFLOP/s" in vals else ("GB/s", "gbps", 0)
    k = vals.get(unit)
    recs = [r for r in torch if r.get("bench") == "ops2" and r.get("name") == short and key in r]
    for r in recs or [{}]:
        label = short + (f" (torch: {r['mode']})" if r.get("mode") else "")
        t = r.get(key)
        rt = ratio(k, t)
        print(f"| {label} | {unit} | {fmt(k, nd)} | {fmt(t, nd)} | {'—' if rt is None else f'{rt:.0f}%'} |")

print("\n### Training steps of the small CNN and the one-block LM (Adam, one batch on the GPU)\n")
print("| model | unit | kiln | torch | kiln sysallocs/step |")
print("|---|---|---|---|---|")
for name, unit, key in (("CNNTrainStep", "samples/s", "samples_per_s"),
                        ("LMTrainStep/vocab50257", "tokens/s", "tokens_per_s"),
                        ("LMTrainStep/vocab512", "tokens/s", "tokens_per_s")):
    vals = go.get("Benchmark" + name, {})
    recs = [r for r in torch if r.get("bench") == "train2" and r.get("name") == name and key in r]
    ts = ", ".join(f"{fmt(r.get(key), 0)} ({r.get('mode')})" for r in recs) or "—"
    print(f"| {name} | {unit} | {fmt(vals.get(unit), 0)} | {ts} | {fmt(vals.get('sysallocs/step'), 2)} |")

errs = [r for r in torch if r.get("bench") in ("ops2", "train2") and "error" in r]
if errs:
    print("\nPyTorch parts that raised (information, not a check):\n")
    for r in errs:
        print(f"- {r.get('bench')}/{r.get('name')}: {r.get('error')}")
