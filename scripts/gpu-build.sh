#!/usr/bin/env bash
# gpu-build.sh [DIR] — build, on a machine without a GPU, everything the GPU check needs, into
# DIR (default .gpu): the cuda test binary, the cuda build of kiln, the check script and the
# PyTorch comparison scripts. Copy DIR to the GPU machine and run `bash DIR/gpu-check.sh OUTDIR`
# there. Needs cuda.h and libcuda.so here (Debian's nvidia-cuda-toolkit), not a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpu}
mkdir -p "$dir"
go test -c -tags cuda -ldflags='-s -w' -o "$dir/cuda.test" ./device/cuda
go build -tags cuda -trimpath -ldflags='-s -w' -o "$dir/kiln" ./cmd/kiln
cp scripts/gpu-check.sh bench/torch_gpu.py bench/torch_gpt_gpu.py bench/gpu_summary.py "$dir/"
du -sh "$dir"
