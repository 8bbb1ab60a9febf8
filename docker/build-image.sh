#!/usr/bin/env bash
# Builds the hoard image FROM scratch: the hoard binary and the shared libraries it links (as ldd lists
# them), nothing else.
#
#   docker/build-image.sh                       # builds target/release/hoard first, tags hoard:local
#   docker/build-image.sh path/to/hoard tag     # an already built binary, any tag
set -euo pipefail
cd "$(dirname "$0")/.."

binary="${1:-}"
tag="${2:-hoard:local}"
if [ -z "$binary" ]; then
  cargo build --release -p hoard --bin hoard
  binary=target/release/hoard
fi
[ -x "$binary" ] || { echo "no hoard binary at $binary" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/data" "$context/rootfs/tmp"
cp "$binary" "$context/rootfs/hoard"
# Every library the binary loads, at the path the dynamic loader looks for it (the loader included).
for lib in $(ldd "$binary" | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$context/rootfs$(dirname "$lib")"
  cp -L "$lib" "$context/rootfs$lib"
done
cp docker/Dockerfile "$context/Dockerfile"
if ! out="$(docker build --quiet -t "$tag" "$context" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
echo "$tag"
