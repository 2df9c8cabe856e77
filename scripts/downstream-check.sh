#!/usr/bin/env bash
# downstream-check.sh — can a new user `go get` kiln and build against it?
#
# Creates a throwaway module in a temporary folder that imports every public package of kiln
# (device, device/cpu, nn, train, data by name, and every other importable package that
# `go list ./...` finds, such as data/text or nn/gpt, with a blank import; not main packages,
# internal ones or test-only folders), points it at this checkout with a replace directive, and
# runs `go mod tidy && go build ./... && go vet ./...` there, as a downstream user would.
# This is what catches a requirement graph that only works inside kiln's own module: an
# "ambiguous import" between split modules (genproto), or a test-only dependency (BuildKit)
# leaking into every user's go.sum. It needs the Go module proxy (or a warm module cache).
#
# Usage: bash scripts/downstream-check.sh   (from anywhere; exits non-zero on any failure)
# KILN_DOWNSTREAM_KEEP=1 keeps the temporary module and prints where it is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
module=$(cd "$root" && go list -m)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-downstream.XXXXXX")
if [ "${KILN_DOWNSTREAM_KEEP:-}" = 1 ]; then
	echo "downstream module kept in $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
fi

# Every importable package of the module: not a main package, not internal, with Go files.
pkgs=$(cd "$root" && go list -f '{{if and (ne .Name "main") .GoFiles}}{{.ImportPath}}{{end}}' ./... | grep -v '/internal/')
for p in data device device/cpu nn train; do
	grep -qx "$module/$p" <<<"$pkgs" || { echo "downstream-check: $module/$p is not in go list ./..." >&2; exit 1; }
done
blank=$(grep -vxE "$module/(data|device|device/cpu|nn|train)" <<<"$pkgs" | sed 's/.*/\t_ "&"/')

cd "$tmp"
# The go line of the downstream module matches kiln's, so that `go mod tidy` does not refuse it.
gover=$(cd "$root" && go list -m -f '{{.GoVersion}}')
cat >go.mod <<EOF
module example.com/kilnuser

go $gover

require $module v0.0.0

replace $module => $root
EOF

# One program that uses each public package, so that every package and its dependencies are
# compiled and linked, not just listed.
cat >main.go <<EOF
// Command kilnuser is a downstream module's smallest use of every public kiln package.
package main

import (
	"fmt"
	"os"

	"$module/data"
	"$module/device"
	_ "$module/device/cpu"
	"$module/nn"
	"$module/train"
$blank
)

func main() {
	dev, err := device.Open("cpu")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer dev.Close()
	spec, err := nn.ParseSpec("2-4-tanh-2")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(spec, len(data.Names), fmt.Sprintf("%T", train.Optimizer(nil)))
}
EOF

echo "+ go mod tidy (in $tmp)"
go mod tidy
echo "+ go build ./..."
go build ./...
echo "+ go vet ./..."
go vet ./...
echo "+ go run ."
go run .

# BuildKit is needed only by kiln's Dockerfile test; it must not reach a library user's build.
if grep -q 'github.com/moby/buildkit' go.mod go.sum; then
	echo "downstream-check: github.com/moby/buildkit reached the downstream module's requirements:" >&2
	grep -n 'github.com/moby/buildkit' go.mod go.sum >&2
	exit 1
fi
echo "downstream-check: ok ($module builds as a dependency; no BuildKit in the user's go.mod/go.sum)"
