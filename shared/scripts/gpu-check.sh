#!/bin/sh
# The device check, from the folder `npm run gpu:bundle` writes: unpacks the Node and Dawn it
# carries into a temporary folder (the machine may have no Node and no package registry),
# runs the bundled check there and prints its one JSON object on stdout (progress on stderr).
#   sh gpu-check.sh [--shapes smollm2-135m,smollm2-360m,qwen2.5-0.5b] [--prompt 512] ...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/commons-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar xzf "$here/node.tar.gz" -C "$work"
tar xzf "$here/dawn.tar.gz" -C "$work"
cp -R "$here/gpu-check.mjs" "$here/kernel-worker.ts" "$here/wasm" "$work/"
"$work/bin/node" "$work/gpu-check.mjs" "$@"
