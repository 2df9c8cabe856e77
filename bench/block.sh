#!/usr/bin/env bash
# Forward+backward of a pre-norm transformer block (nanoGPT's Block, the
# one of nn's BenchmarkBlockStep) at [batch 8, context 256, width 384,
# 6 heads] on the CPU: kiln's default build, kiln's -tags openblas build
# (bench/blockbench) and PyTorch 1.13 with two threads
# (bench/torch_block.py, Debian's torch under /usr/bin/python3),
# round-robin in one sitting, then medians and ratios (samples are
# sequences of 256 tokens).
#
#   bench/block.sh [steps [rounds]]   defaults: 10 timed steps (after 2 warm-up), 3 rounds
#   BATCH=N CTX=T bench/block.sh …    another batch size or context (defaults 8, 256)
#
# Each run reports the median of its timed steps; the three runners take
# turns, the one that starts a round rotating, so that the machine's load
# (the development VMs are shared) falls on all of them alike. The load
# average is printed at the start and before every round. OPENBLAS_CORETYPE
# is used as the environment has it (printed, never set here).
set -euo pipefail
cd "$(dirname "$0")/.."
# PyTorch runs with Debian's OpenMP OpenBLAS when it is installed (with the
# default pthread build torch at 2 threads is 3-5x slower); kiln's binaries
# keep the environment as it is.
torchpy() {
	local omp=/usr/lib/x86_64-linux-gnu/openblas-openmp
	if [ -d "$omp" ]; then LD_LIBRARY_PATH="$omp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" /usr/bin/python3 "$@"; else /usr/bin/python3 "$@"; fi
}
steps=${1:-10}
rounds=${2:-3}
batch=${BATCH:-8}
ctx=${CTX:-256}
warmup=2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openblas_core() { # the core OpenBLAS picks at run time, from library $1
	/usr/bin/python3 -c 'import ctypes, sys
l = ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' "$1" 2>/dev/null || echo "?"
}
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus the working tree)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p')), $(nproc) cores"
echo "flags: $(grep -m1 -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; OpenBLAS core: $(openblas_core /usr/lib/x86_64-linux-gnu/libopenblas.so.0) (libopenblas.so.0, kiln -tags openblas), $(openblas_core /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0) (openblas-openmp, torch)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "go: $(go version | cut -d' ' -f3); $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)')"

go build -o "$tmp/kiln-default" ./bench/blockbench
go build -tags openblas -o "$tmp/kiln-openblas" ./bench/blockbench

runner() { # runner NAME: one run, its output to stdout
	case $1 in
	kiln-default | kiln-openblas) "$tmp/$1" -batch "$batch" -ctx "$ctx" -steps "$steps" -warmup "$warmup" ;;
	torch) torchpy bench/torch_block.py --batch "$batch" --ctx "$ctx" --steps "$steps" --warmup "$warmup" ;;
	esac
}
names=(kiln-default kiln-openblas torch)
for r in $(seq "$rounds"); do
	echo
	echo "round $r (load $(cut -d' ' -f1-3 /proc/loadavg))"
	for i in 0 1 2; do
		name=${names[$(((i + r - 1) % 3))]}
		runner "$name" >"$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
		line=$(sed -n 's/^result: //p' "$tmp/out")
		[ -n "$line" ] || { cat "$tmp/out"; exit 1; }
		ms=$(sed 's/.*median_step_ms=\([0-9.]*\).*/\1/' <<<"$line")
		sps=$(sed 's/.*samples_per_s=\([0-9.]*\).*/\1/' <<<"$line")
		printf '  %-14s %9.1f ms/step %9.2f samples/s\n' "$name" "$ms" "$sps"
		echo "$name $r $ms $sps" >>"$tmp/results"
	done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$tmp/results"; }
torch_sps=$(col torch 4 | median)
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %14s %11s %12s %14s %s\n' runner "median ms/step" samples/s "tokens/s" "× PyTorch" "ms/step per round"
for name in "${names[@]}"; do
	ms=$(col "$name" 3 | median)
	sps=$(col "$name" 4 | median)
	printf '%-14s %14.1f %11.2f %12.0f %14.2f %s\n' "$name" "$ms" "$sps" \
		"$(awk -v s="$sps" -v t="$ctx" 'BEGIN { print s * t }')" \
		"$(awk -v s="$sps" -v t="$torch_sps" 'BEGIN { print s / t }')" \
		"$(col "$name" 3 | tr '\n' ' ')"
done
echo "(transformer block [batch $batch, ctx $ctx, width 384, 6 heads], forward+backward; median of $steps steps a run, median of $rounds rounds)"
