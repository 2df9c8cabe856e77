#!/usr/bin/env bash
# Training throughput of examples/mnist-cnn's CNN (batch 64, AdamW) on the
# CPU: kiln's default build, kiln's -tags openblas build (bench/cnnbench)
# and PyTorch 1.13 with two threads (bench/torch_cnn.py, Debian's torch
# under /usr/bin/python3), round-robin in one sitting, then medians and
# ratios. Minutes per epoch are 60,000 samples (an MNIST epoch) at the
# median samples/s.
#
#   bench/cnn.sh [steps [rounds]]     defaults: 20 timed steps (after 3 warm-up), 3 rounds
#   BATCH=N bench/cnn.sh …            another batch size (default 64)
#
# Each run reports the median of its timed steps; the three runners take
# turns, the one that starts a round rotating, so that the machine's load
# (the development VMs are shared) falls on all of them alike. The load
# average is printed at the start and before every round. OPENBLAS_CORETYPE
# is used as the environment has it (printed, never set here).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
rounds=${2:-3}
batch=${BATCH:-64}
warmup=3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. bench/lib.sh
sitting_header

go build -o "$tmp/kiln-default" ./bench/cnnbench
go build -tags openblas -o "$tmp/kiln-openblas" ./bench/cnnbench

runner() { # runner NAME: one run, its output to stdout
	case $1 in
	kiln-default | kiln-openblas) "$tmp/$1" -batch "$batch" -steps "$steps" -warmup "$warmup" ;;
	torch) torchpy bench/torch_cnn.py --batch "$batch" --steps "$steps" --warmup "$warmup" ;;
	esac
}
names=(kiln-default kiln-openblas torch)
round_robin "$rounds" "${names[@]}"

torch_sps=$(col torch 4 | median)
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %14s %11s %12s %14s %s\n' runner "median ms/step" samples/s "min/epoch" "× PyTorch" "samples/s per round"
for name in "${names[@]}"; do
	ms=$(col "$name" 3 | median)
	sps=$(col "$name" 4 | median)
	printf '%-14s %14.1f %11.1f %12.2f %14.2f %s\n' "$name" "$ms" "$sps" \
		"$(awk -v s="$sps" 'BEGIN { print 60000 / s / 60 }')" \
		"$(awk -v s="$sps" -v t="$torch_sps" 'BEGIN { print s / t }')" \
		"$(col "$name" 4 | tr '\n' ' ')"
done
echo "(CNN of examples/mnist-cnn, batch $batch, AdamW; median of $steps steps a run, median of $rounds rounds; min/epoch: 60,000 samples)"
