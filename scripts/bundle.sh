#!/usr/bin/env bash
# plugins/main.ts -> one CommonJS file (esbuild): what scripts/build.sh puts into the executable, and what the
# bench's host-local part loads under node when no build is at hand. One place, so both are the same bundle.
# The executable's entry, plugins/boot.ts, is bundled the same way (second argument).
# usage: scripts/bundle.sh <outfile> [entry (default plugins/main.ts)]
set -euo pipefail
out=$(realpath -m "$1")
entry=${2:-plugins/main.ts}
cd "$(dirname "$0")/.."
# scripts/bundle.js runs esbuild: graceful-fs (proper-lockfile's fs) patches and clones fs when loaded, a cost on
# every IPAM call, and its EMFILE retry queue serves long-lived processes with thousands of open files, not a CNI
# call: plain fs. signal-exit (proper-lockfile's and execa's) gives way to pkg/shim/signal-exit.ts, for the reason
# given there; human-signals (execa's) to pkg/shim/human-signals.ts, likewise. etcd3's .proto files are embedded.
node scripts/bundle.js "$entry" "$out"
# `import * as fs from 'fs'` becomes __toESM(require("fs")): a copy of the module with a getter per export,
# made once per importing file at load. For Node's built-in modules the module object itself serves (our code
# only reads their properties and imports none by default), and the copies cost each plugin call a few ms of
# CPU. Not for the etcd agent's bundle: its third-party code imports built-ins by default, and it starts once.
case "$entry" in
  plugins/etcd-cmd.ts) ;;
  *)
    sed -E -i 's/__toESM\(require\("(node:)?([a-z0-9_]+(\/[a-z0-9_]+)?)"\)\)/require("\1\2")/g' "$out"
    if grep -qE '__toESM\(require\("(node:)?[a-z0-9_]+' "$out"; then echo "bundle: a built-in module still copied by __toESM" >&2; exit 1; fi
    ;;
esac
