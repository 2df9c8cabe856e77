#!/usr/bin/env bash
# Measures float32 GEMM on the CPU backend in both builds (gonum's pure-Go
# Sgemm by default, OpenBLAS under -tags openblas) and numpy on the same
# sizes, in one run, and prints a side-by-side table in GFLOP/s; then the
# elementwise kernels against a plain copy, in GB/s.
#
#   bench/cpu.sh [benchtime [rounds]]   defaults: 0.3s, 3 (Go -benchtime; rounds)
#
# In each round gonum runs all sizes, then OpenBLAS and numpy alternate
# size by size, so that a busy machine (the development VMs are shared)
# affects them alike; each figure is
# the best of the rounds: contention only ever slows a run down, so the
# best is the closest to what the machine can do. A Go figure is the mean
# over the b.N calls of one run; numpy's is the median of its repeats
# (bench/gemm_numpy.py). Needs Go, libopenblas-dev and Debian's
# python3-numpy (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-0.3s}
rounds=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "go: $(go version | cut -d' ' -f3); $(/usr/bin/python3 -c 'import numpy; print("numpy", numpy.__version__)')"

go test -c -o "$tmp/gonum.test" ./device/cpu/
go test -c -tags openblas -o "$tmp/openblas.test" ./device/cpu/

sizes="256 256 256
1024 1024 1024
2048 2048 2048
64 128 784
256 1024 1024"
for r in $(seq "$rounds"); do
	"$tmp/gonum.test" -test.run '^$' -test.bench 'BenchmarkGemm' -test.benchtime "$benchtime" >>"$tmp/gonum.txt"
	# OpenBLAS and numpy alternate size by size: the machine's load
	# changes by the second, and both call the same library.
	while read -r m n k; do
		"$tmp/openblas.test" -test.run '^$' -test.bench "BenchmarkGemm/${m}x${n}x${k}\$" -test.benchtime "$benchtime" >>"$tmp/openblas.txt"
		/usr/bin/python3 bench/gemm_numpy.py 0.3 "$m" "$n" "$k" >>"$tmp/numpy.txt"
	done <<<"$sizes"
done

# best FILE NAME METRIC: the largest METRIC figure of benchmark NAME in FILE.
best() {
	awk -v name="$2-" -v metric="$3" '
		index($1, name) == 1 { for (i = 2; i < NF; i++) if ($(i+1) == metric && $i > m) m = $i }
		END { if (m != "") print m }' "$1"
}

echo
printf '%-16s %10s %10s %10s %10s\n' "GEMM m×n×k" "gonum" "openblas" "numpy" "ob/numpy"
awk '!seen[$1 " " $2 " " $3]++ { print $1, $2, $3 }' "$tmp/numpy.txt" | while read -r m n k; do
	g=$(best "$tmp/gonum.txt" "BenchmarkGemm/${m}x${n}x${k}" GFLOP/s)
	o=$(best "$tmp/openblas.txt" "BenchmarkGemm/${m}x${n}x${k}" GFLOP/s)
	p=$(awk -v m="$m" -v n="$n" -v k="$k" '$1 == m && $2 == n && $3 == k && $4 > b { b = $4 } END { print b }' "$tmp/numpy.txt")
	ratio=$(awk -v o="$o" -v p="$p" 'BEGIN { if (p > 0 && o != "") printf "%.0f%%", 100 * o / p; else print "-" }')
	printf '%-16s %10s %10s %10s %10s\n' "${m}×${n}×${k}" "${g:--}" "${o:--}" "$p" "$ratio"
done
echo "(GFLOP/s, 2mnk flops per call, best of $rounds rounds)"

echo
for r in $(seq "$rounds"); do
	"$tmp/gonum.test" -test.run '^$' -test.bench 'BenchmarkElementwise|BenchmarkCopyBandwidth' -test.benchtime 10x >>"$tmp/ew.txt"
done
printf '%-28s %10s %10s\n' "kernel" "GB/s" "of copy"
copybw=$(best "$tmp/ew.txt" "BenchmarkCopyBandwidth/builtin" GB/s)
awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1 }' "$tmp/ew.txt" | awk '!seen[$0]++' | while read -r name; do
	v=$(best "$tmp/ew.txt" "$name" GB/s)
	printf '%-28s %10s %10s\n' "${name#Benchmark}" "$v" "$(awk -v v="$v" -v c="$copybw" 'BEGIN { printf "%.0f%%", 100 * v / c }')"
done
echo "(bytes read + written per second, best of $rounds rounds; 'of copy' is against CopyBandwidth/builtin)"
