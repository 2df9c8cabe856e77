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
steps=${1:-10}
rounds=${2:-3}
batch=${BATCH:-8}
ctx=${CTX:-256}
warmup=2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. bench/lib.sh
sitting_header

go build -o "$tmp/kiln-default" ./bench/blockbench
go build -tags openblas -o "$tmp/kiln-openblas" ./bench/blockbench

runner() { # runner NAME: one run, its output to stdout
	case $1 in
	kiln-default | kiln-openblas) "$tmp/$1" -batch "$batch" -ctx "$ctx" -steps "$steps" -warmup "$warmup" ;;
	torch) torchpy bench/torch_block.py --batch "$batch" --ctx "$ctx" --steps "$steps" --warmup "$warmup" ;;
	esac
}
names=(kiln-default kiln-openblas torch)
round_robin "$rounds" "${names[@]}"

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
