#!/usr/bin/env bash
# Assemble every generated PTX with ptxas for the GPU targets it is meant
# for, so a PTX the driver's JIT would refuse is caught without a GPU:
#   kernels/ptx/*_sm70.ptx (compute_70, portable) for sm_70, sm_80, sm_90;
#   kernels/ptx/*_sm80.ptx (compute_80)           for sm_80, sm_90.
# Targets the installed ptxas does not know are reported and skipped.
# Usage: scripts/ptxas-check.sh [ptxas]   (default: ptxas on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
PTXAS=${1:-ptxas}
command -v "$PTXAS" >/dev/null || { echo "ptxas-check: $PTXAS not found" >&2; exit 2; }
echo "ptxas-check: $("$PTXAS" --version | grep -i release || "$PTXAS" --version | tail -1)"

known=$("$PTXAS" --help 2>/dev/null | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')
supported() { case " $known " in *" $1 "*) return 0 ;; esac; return 1; }

shopt -s nullglob
files=(kernels/ptx/*.ptx)
if [ ${#files[@]} -eq 0 ]; then
  echo "ptxas-check: no PTX under kernels/ptx (run go generate ./kernels)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
checked=0
for f in "${files[@]}"; do
  case "$f" in
    *_sm70.ptx) targets="sm_70 sm_80 sm_90" ;;
    *_sm80.ptx) targets="sm_80 sm_90" ;;
    *) echo "ptxas-check: $f: unknown suffix" >&2; fail=1; continue ;;
  esac
  for t in $targets; do
    if ! supported "$t"; then
      echo "ptxas-check: skip $f for $t ($PTXAS does not know $t)"
      continue
    fi
    if out=$("$PTXAS" -arch="$t" -O3 -o "$tmp/out.cubin" "$f" 2>&1); then
      checked=$((checked + 1))
      [ -n "$out" ] && echo "$f [$t]: $out"
    else
      echo "FAIL $f [$t]:" >&2
      echo "$out" >&2
      fail=1
    fi
  done
done
if [ $fail -ne 0 ]; then
  echo "ptxas-check: FAILED" >&2
  exit 1
fi
echo "ptxas-check: ok ($checked assemblies)"
