# Shared by the bench/*.sh scripts that run kiln beside PyTorch: source it
# after `cd` to the repository root and after making $tmp.

# torchpy runs /usr/bin/python3 (Debian's torch) with Debian's OpenMP
# OpenBLAS when it is installed (with the default pthread build torch at 2
# threads is 3-5x slower); kiln's binaries keep the environment as it is.
torchpy() {
	local omp=/usr/lib/x86_64-linux-gnu/openblas-openmp
	if [ -d "$omp" ]; then LD_LIBRARY_PATH="$omp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" /usr/bin/python3 "$@"; else /usr/bin/python3 "$@"; fi
}

# openblas_core prints the core OpenBLAS picks at run time, from library $1.
openblas_core() {
	/usr/bin/python3 -c 'import ctypes, sys
l = ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' "$1" 2>/dev/null || echo "?"
}

# sitting_header prints what a figure needs beside it: date, commit,
# machine, CPU flags, the OpenBLAS cores in use, load, Go and torch.
sitting_header() {
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus the working tree)"
	echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p')), $(nproc) cores"
	echo "flags: $(grep -m1 -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
	echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; OpenBLAS core: $(openblas_core /usr/lib/x86_64-linux-gnu/libopenblas.so.0) (libopenblas.so.0, kiln -tags openblas), $(openblas_core /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0) (openblas-openmp, torch)"
	grep -qw avx2 /proc/cpuinfo && case "${OPENBLAS_CORETYPE-unset}:$(openblas_core /usr/lib/x86_64-linux-gnu/libopenblas.so.0)" in
	unset:Prescott | unset:Nehalem | unset:Core2 | unset:Sandybridge)
		echo "note: OpenBLAS does not know this CPU and runs an old core's kernels for both kiln's openblas build and torch's matrix products;"
		echo "      OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) in the environment gives both the kernels the CPU supports" ;;
	esac
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "go: $(go version | cut -d' ' -f3); $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)')"
}

# round_robin ROUNDS NAME... runs `runner NAME` (defined by the caller) for
# every name in each round, the one that starts rotating so that the
# machine's load falls on all alike; each run must print a line
# "result: median_step_ms=M samples_per_s=S". Appends "NAME ROUND M S" to
# $tmp/results.
round_robin() {
	local rounds=$1 r i name line ms sps
	shift
	local names=("$@") n=$#
	for r in $(seq "$rounds"); do
		echo
		echo "round $r (load $(cut -d' ' -f1-3 /proc/loadavg))"
		for i in $(seq 0 $((n - 1))); do
			name=${names[$(((i + r - 1) % n))]}
			runner "$name" >"$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
			line=$(sed -n 's/^result: //p' "$tmp/out")
			[ -n "$line" ] || { cat "$tmp/out"; exit 1; }
			ms=$(sed 's/.*median_step_ms=\([0-9.]*\).*/\1/' <<<"$line")
			sps=$(sed 's/.*samples_per_s=\([0-9.]*\).*/\1/' <<<"$line")
			printf '  %-14s %9.1f ms/step %9.2f samples/s\n' "$name" "$ms" "$sps"
			echo "$name $r $ms $sps" >>"$tmp/results"
		done
	done
}

# median of the numbers on stdin; col NAME COLUMN: that column of NAME's rows.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$tmp/results"; }
