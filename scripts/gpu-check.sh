#!/usr/bin/env bash
# gpu-check.sh OUTDIR — the whole GPU check of kiln in one go, on a machine with an NVIDIA GPU.
#
# Run it from a folder that holds what scripts/gpu-build.sh put there: cuda.test (the device/cuda
# test binary, built with -tags cuda), kiln (the cuda build of the command), torch_gpu.py,
# torch_gpt_gpu.py, gpu_summary.py and this script. It prints the GPU and driver, runs the
# conformance and parity tests, the kernel benchmarks, kiln's training throughput (an MLP, and
# GPT-2 small through `kiln lm train`, ≤ 60 s) and the PyTorch comparison on the same GPU, and
# ends with a summary table. Logs go to OUTDIR. It finishes well inside five minutes.
#
# Exit status: 0 only when everything that checks kiln passed: the conformance and parity tests
# (exit status 0 and no "--- FAIL" line), the kernel benchmarks, `kiln train` and every
# `kiln bench` run. Otherwise 1, after all phases and the summary have run, and the last line
# names what failed. The PyTorch comparison is information, not a check: a machine without
# PyTorch still passes. scripts/gpucheck_test.go runs this script with fake binaries.
#
# Time: the PyTorch counterparts of the Ops2 benchmarks (torch_gpu.py --only ops2,train2, a
# second invocation after the first PyTorch runs, so its failure or timeout costs only its own
# figures) get what is left of KILN_GPU_BUDGET (default 270 s from the start, which leaves the
# summary well inside five minutes), at most 90 s; with under 20 s left they are skipped.
set -u
out=${1:?usage: gpu-check.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
t0=$SECONDS
phase() { printf '\n=== %s (t=%ds)\n' "$*" $((SECONDS - t0)); }

phase "GPU"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
lib=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1/{print $NF; exit}')
[ -n "$lib" ] || lib=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libcuda.so.1' 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "libcuda.so.1 not found"; exit 1; }
export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "libcuda: $lib"

phase "kiln version, devices, and a training run through the command"
"$here/kiln" version
"$here/kiln" devices
timeout 60 "$here/kiln" train --device cuda --progress lines >"$out/train-digits.log" 2>&1
train_rc=$?
tail -3 "$out/train-digits.log"

phase "conformance and parity tests"
(cd "$here" && timeout 180 ./cuda.test -test.v -test.count=1 -test.timeout=170s) >"$out/tests.log" 2>&1
test_rc=$?
grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok|panic)|GPU|gpu' "$out/tests.log" | grep -v '=== RUN' | tail -80

phase "kernel benchmarks"
(cd "$here" && timeout 150 ./cuda.test -test.run '^$' -test.bench "${KILN_BENCH:-.}" -test.benchtime "${KILN_BENCHTIME:-20x}" -test.timeout=140s) >"$out/bench.log" 2>&1
bench_rc=$?
grep -E '^Benchmark|^(ok|FAIL|PASS)' "$out/bench.log"

phase "kiln training throughput"
: >"$out/kiln-bench.jsonl"
kbench_rc=0
# The last is the CNN of an image spec (conv, batch norm, pooling through the spec path).
for cfg in "784-256-relu-128-relu-10 64" "784-4096-relu-4096-relu-10 1024" \
	"1x28x28-conv32k3p1-bn-relu-maxpool2-conv64k3p1-bn-relu-maxpool2-flatten-128-relu-10 64"; do
	set -- $cfg
	timeout 60 "$here/kiln" bench --device cuda --model "$1" --batch "$2" --optimizer adam --json >>"$out/kiln-bench.jsonl" 2>>"$out/kiln-bench.err" || kbench_rc=$?
	timeout 60 "$here/kiln" bench --device cuda --model "$1" --batch "$2" --optimizer adam --tf32 --json >>"$out/kiln-bench.jsonl" 2>>"$out/kiln-bench.err" || kbench_rc=$?
done
cat "$out/kiln-bench.jsonl"; tail -5 "$out/kiln-bench.err"

phase "GPT-2 small training step (kiln lm train)"
# GPT-2 small (12 layers, 12 heads, width 768, context 1024, GPT-2's 50257-token BPE over the
# embedded corpus), batch 8, 30 AdamW steps, every step logged to lm-gpu/metrics.jsonl
# (tokens/s, MFU against the fp32 peak); at most 60 s. KILN_LM_TF32=1 adds a TF32 run (another
# 60 s at most). A failure or a timeout fails the check (the steps done so far stay in the
# metrics); the exit status is in the summary line. The checkpoint (1.5 GB) is deleted.
lm_rc=0
lm_runs=fp32
[ "${KILN_LM_TF32:-0}" = 1 ] && lm_runs="fp32 tf32"
for mode in $lm_runs; do
	extra=()
	[ "$mode" = tf32 ] && extra=(--tf32)
	timeout 60 "$here/kiln" lm train --device cuda --tokenizer gpt2 --cache-dir "$out/lm-tokens" \
		--layers 12 --heads 12 --width 768 --context 1024 --bias --dropout 0 --batch 8 \
		--iters "${KILN_LM_ITERS:-30}" --eval-every 0 --log-every 1 --out "$out/lm-gpu-$mode" ${extra[@]+"${extra[@]}"} \
		>"$out/lm-gpu-$mode.log" 2>&1 || lm_rc=$?
	tail -4 "$out/lm-gpu-$mode.log"
	rm -f "$out/lm-gpu-$mode"/model*.safetensors
done
rm -rf "$out/lm-tokens"

phase "PyTorch on the same GPU"
PYTHONUNBUFFERED=1 timeout 120 python3 "$here/torch_gpu.py" >"$out/torch.jsonl" 2>"$out/torch.err"
cat "$out/torch.jsonl"; tail -5 "$out/torch.err"
# The same GPT-2 small step in PyTorch eager, fp32 then TF32 (gpu-build.sh copies it; in a
# checkout it is in bench/); at most 60 s.
tgpt="$here/torch_gpt_gpu.py"
[ -f "$tgpt" ] || tgpt="$here/../bench/torch_gpt_gpu.py"
if [ -f "$tgpt" ]; then
	PYTHONUNBUFFERED=1 timeout 60 python3 "$tgpt" >"$out/torch-gpt.jsonl" 2>"$out/torch-gpt.err"
	cat "$out/torch-gpt.jsonl"; tail -3 "$out/torch-gpt.err"
else
	echo "torch_gpt_gpu.py not found beside this script: no PyTorch GPT-2 figure"
fi
# Counterparts of the Ops2 benchmarks (batched GEMM, im2col, pooling, norms, masked softmax,
# cross-entropy, embedding, permute) and of BenchmarkCNNTrainStep/BenchmarkLMTrainStep, into
# their own files (gpu_summary.py reads both). Timeout: the budget left, at most 90 s.
left=$(( ${KILN_GPU_BUDGET:-270} - (SECONDS - t0) ))
[ "$left" -gt 90 ] && left=90
if [ "$left" -ge 20 ]; then
	PYTHONUNBUFFERED=1 timeout "$left" python3 "$here/torch_gpu.py" --only ops2,train2 >"$out/torch-ops2.jsonl" 2>"$out/torch-ops2.err"
	echo "torch_gpu.py --only ops2,train2: exit $? (timeout ${left}s)"
	cat "$out/torch-ops2.jsonl"; tail -5 "$out/torch-ops2.err"
else
	echo "torch_gpu.py --only ops2,train2 skipped: ${left}s left of the ${KILN_GPU_BUDGET:-270}s budget"
fi

phase "summary"
pass=$(grep -c -- '--- PASS' "$out/tests.log"); fail=$(grep -c -- '--- FAIL' "$out/tests.log")
echo "tests: exit $test_rc, $pass passed, $fail failed (subtests included); benchmarks exit $bench_rc; kiln train --device cuda exit $train_rc; kiln bench exit $kbench_rc; kiln lm train (GPT-2 small) exit $lm_rc"
grep -E -- '--- FAIL' "$out/tests.log" | head -30
python3 "$here/gpu_summary.py" "$out"

failed=()
[ "$test_rc" -eq 0 ] && [ "$fail" -eq 0 ] || failed+=("tests (exit $test_rc, $fail failed)")
[ "$bench_rc" -eq 0 ] || failed+=("kernel benchmarks (exit $bench_rc)")
[ "$train_rc" -eq 0 ] || failed+=("kiln train (exit $train_rc)")
[ "$kbench_rc" -eq 0 ] || failed+=("kiln bench (exit $kbench_rc)")
[ "$lm_rc" -eq 0 ] || failed+=("kiln lm train (exit $lm_rc)")
if [ ${#failed[@]} -gt 0 ]; then
	msg=$(printf '%s; ' "${failed[@]}")
	echo "gpu-check: FAILED: ${msg%; }"
	exit 1
fi
echo "gpu-check: ok"
