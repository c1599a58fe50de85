#!/usr/bin/env bash
# One CommonJS bundle -> one self-contained executable (Node SEA through scripts/sea.js) on this machine's
# Node, stripped of its symbol and debug sections (about 12 MB that serve no purpose in a plugin). They are
# stripped BEFORE postject injects the blob, which SEA tolerates (stripping an injected binary could drop
# the blob's note). Used by scripts/build.sh for tscni and by bench/run.sh for the bench's floor program,
# so both start the same way.
# usage: scripts/sea-exe.sh <bundle.js> <output executable> [asset-name=file ...]
set -euo pipefail
bundle=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tscni-sea.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$(node -p 'require("fs").realpathSync(process.execPath)')" "$tmp/node-base"
if command -v strip >/dev/null; then strip --strip-all "$tmp/node-base"; fi
node scripts/sea.js "$bundle" "$out.new" "$tmp/node-base" "${@:3}"
mv -f "$out.new" "$out"
