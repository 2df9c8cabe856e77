#!/usr/bin/python3
"""float32 GEMM throughput of numpy (Debian's python3-numpy, whose BLAS is
whatever libblas.so.3 points to: OpenBLAS on the development machines), at
the sizes of kiln's BenchmarkGemm, for bench/cpu.sh to compare against.

Prints one line per size: "m n k GFLOP/s", the median over repeats of
C = A @ B with A m×k and B k×n (no transposes, as the Go benchmark).
Run with /usr/bin/python3 so that Debian's numpy is the one measured.

    gemm_numpy.py [min_time [m n k]]   all sizes, or just m×n×k
"""
import statistics
import sys
import time

import numpy as np

SIZES = [(256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048), (64, 128, 784), (256, 1024, 1024)]


def bench(m, n, k, min_time=1.0, min_reps=5, max_reps=200):
    rng = np.random.default_rng(1)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread pool, page faults
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return 2.0 * m * n * k / statistics.median(times) / 1e9


def main():
    min_time = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    sizes = SIZES
    if len(sys.argv) == 5:
        sizes = [tuple(int(a) for a in sys.argv[2:5])]
    for m, n, k in sizes:
        print(f"{m} {n} {k} {bench(m, n, k, min_time):.2f}", flush=True)


if __name__ == "__main__":
    main()
