#!/usr/bin/env bash
# docker-build-stage.sh [--print] — run the RUN lines of docker/Dockerfile's `build` stage (the
# cuda build) on this machine, so CI proves the Docker image's build still works without a Docker
# daemon: the same apt packages, the same `go build -tags cuda` line.
#
# It reads the stage from the Dockerfile rather than repeating its commands, so the two cannot
# drift apart. The repository root stands in for the image's /src (after `COPY . .`); ARG lines
# give defaults that the environment may override (VERSION and REVISION default to what git
# says; OUT to a temporary folder); ENV lines are exported. Any other instruction in the stage
# is an error, so a Dockerfile change this script does not understand fails loudly.
#
# Needs: Debian 12 with Go installed, run as root (apt-get), apt sources in
# /etc/apt/sources.list.d/debian.sources. With --print it only prints the commands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=$root/docker/Dockerfile
stage=build
print_only=false
case "${1:-}" in
--print) print_only=true ;;
"") ;;
*) echo "usage: $0 [--print]" >&2; exit 2 ;;
esac
[ -f "$dockerfile" ] || { echo "docker-build-stage: $dockerfile not found" >&2; exit 1; }

# One instruction per line: comments dropped, backslash continuations joined, and only the
# instructions between `FROM ... AS build` and the next FROM kept.
instructions=$(awk -v want="$stage" '
	function flush() { if (cur != "") { if (in_stage) print cur; cur = "" } }
	/^[[:space:]]*#/ { next } # Docker drops comment lines, also inside a continuation
	{
		line = $0
		cont = sub(/\\[[:space:]]*$/, "", line)
		cur = cur (cur == "" ? "" : " ") line
		if (cont) next
		split(cur, w, /[[:space:]]+/)
		if (toupper(w[1]) == "FROM") {
			in_stage = 0
			n = split(cur, f, /[[:space:]]+/)
			if (n >= 4 && toupper(f[3]) == "AS" && f[4] == want) { in_stage = 1; found = 1 }
			cur = ""
			next
		}
		if (cur ~ /^[[:space:]]*$/) { cur = ""; next }
		flush()
	}
	END { flush(); if (!found) exit 3 }
' "$dockerfile") || { echo "docker-build-stage: no stage named '$stage' in $dockerfile" >&2; exit 1; }

if ! $print_only && [ "$(id -u)" -ne 0 ]; then
	echo "docker-build-stage: run as root (the stage installs packages with apt-get)" >&2
	exit 1
fi

export VERSION=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
export REVISION=${REVISION:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}
if [ -z "${OUT:-}" ]; then
	OUT=$(mktemp -d)
	$print_only || trap 'rm -rf "$OUT"' EXIT
fi
export OUT

cd "$root"
ran=0
while IFS= read -r ins; do
	ins=${ins#"${ins%%[![:space:]]*}"}
	keyword=${ins%%[[:space:]]*}
	rest=${ins#"$keyword"}
	rest=${rest#"${rest%%[![:space:]]*}"}
	case "${keyword^^}" in
	ARG)
		name=${rest%%=*}
		if [[ $rest == *=* ]] && [ -z "${!name:-}" ]; then
			export "$name=${rest#*=}"
		fi
		;;
	ENV)
		# ENV key=value (one pair per line in the build stage).
		[[ $rest == *=* ]] || { echo "docker-build-stage: ENV needs key=value: $ins" >&2; exit 1; }
		export "${rest%%=*}=${rest#*=}"
		;;
	WORKDIR | COPY) ;; # the repository root is the build context, already in place
	RUN)
		if [[ $rest == --* || $rest == \[* ]]; then
			echo "docker-build-stage: RUN flags and exec form are not supported: $ins" >&2
			exit 1
		fi
		echo "+ $rest"
		ran=$((ran + 1))
		$print_only || sh -ec "$rest"
		;;
	*)
		echo "docker-build-stage: unsupported instruction in the $stage stage: $ins" >&2
		exit 1
		;;
	esac
done <<<"$instructions"

[ "$ran" -gt 0 ] || { echo "docker-build-stage: the $stage stage has no RUN lines" >&2; exit 1; }
$print_only && exit 0

bin=$OUT/kiln
[ -x "$bin" ] || { echo "docker-build-stage: the stage did not produce $bin" >&2; exit 1; }
# The binary cannot be started here (gorgonia.org/cu exits at start-up without a GPU), so check
# what the toolchain recorded in it instead.
go version -m "$bin" | grep -q -- '-tags=cuda' || { echo "docker-build-stage: $bin was not built with -tags cuda" >&2; exit 1; }
echo "docker-build-stage: built $bin ($(du -h "$bin" | cut -f1), -tags cuda, version $VERSION)"
