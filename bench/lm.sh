#!/usr/bin/env bash
# nanoGPT's CPU recipe (4 layers, 4 heads, width 128, context 64, batch 12,
# AdamW 1e-3 → 1e-4, warm-up 100, dropout 0, character-level) on the
# embedded Moby-Dick, trained by `kiln lm train` (default build, and the
# -tags openblas build when OpenBLAS is installed) and by PyTorch 1.13 with
# two threads and one (bench/torch_gpt.py), one after the other, with the same
# number of steps; prints each one's final validation loss and its mean
# training tokens/s (evaluation excluded).
#
#   bench/lm.sh [iters]        default 2000, the recipe (about 10 minutes per run on 2 cores)
#   EVAL_EVERY=N bench/lm.sh   validation interval (default 250)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-2000}
every=${EVAL_EVERY:-250}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. bench/lib.sh

sitting_header
echo "recipe: $iters steps, validation every $every steps over 20 batches"

go build -o "$tmp/kiln" ./cmd/kiln
builds=(default)
if go build -tags openblas -o "$tmp/kiln-openblas" ./cmd/kiln 2>/dev/null; then builds+=(openblas); fi

summary=()
for b in "${builds[@]}"; do
	bin="$tmp/kiln"; [ "$b" = openblas ] && bin="$tmp/kiln-openblas"
	echo "== kiln ($b build)"
	"$bin" lm train --device cpu --iters "$iters" --eval-every "$every" --log-every 100 --out "$tmp/out-$b" --cache-dir "$tmp/cache" | tee "$tmp/kiln-$b.log"
	val=$(sed -n 's/^final val loss: //p' "$tmp/kiln-$b.log")
	tps=$(sed -n 's/.*mean \([0-9]*\) tokens\/s.*/\1/p' "$tmp/kiln-$b.log")
	summary+=("$(printf '%-22s val loss %s  tokens/s %s' "kiln ($b)" "$val" "$tps")")
done
for th in 2 1; do
	echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $th thread(s)"
	torchpy bench/torch_gpt.py --iters "$iters" --eval-every "$every" --threads "$th" | grep -v '^step .*tok/s$' | tee "$tmp/torch-$th.log"
	summary+=("$(printf '%-22s val loss %s  tokens/s %s' "pytorch ($th thread(s))" "$(sed -n 's/^val loss: //p' "$tmp/torch-$th.log")" "$(sed -n 's/^tokens\/s: //p' "$tmp/torch-$th.log")")")
done

echo "== summary ($iters steps; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
