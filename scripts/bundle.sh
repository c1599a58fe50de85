#!/usr/bin/env bash
# plugins/main.ts -> one CommonJS file (esbuild): what scripts/build.sh turns into the executable, and what the
# bench's host-local part loads under node when no build is at hand. One place, so both are the same bundle.
# usage: scripts/bundle.sh <outfile>
set -euo pipefail
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
# Identifiers are kept (no --minify-identifiers) so stack traces on stderr stay readable.
# graceful-fs (proper-lockfile's fs) patches and clones fs when loaded, a cost on every IPAM call; its
# EMFILE retry queue serves long-lived processes with thousands of open files, not a CNI call: plain fs.
# signal-exit (proper-lockfile's and execa's) gives way to pkg/shim/signal-exit.ts, for the reason given there.
# human-signals (execa's) gives way to pkg/shim/human-signals.ts, likewise.
node_modules/.bin/esbuild plugins/main.ts \
  --bundle --platform=node --target=node20 --format=cjs --alias:graceful-fs=fs --alias:signal-exit=./pkg/shim/signal-exit.ts --alias:human-signals=./pkg/shim/human-signals.ts \
  --minify-whitespace --minify-syntax --legal-comments=none \
  --log-level=warning --outfile="$out"
