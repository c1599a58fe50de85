#!/usr/bin/env bash
# Builds the multi-call executable: plugins/main.ts -> build/tscni.js (esbuild, one CommonJS file)
# -> build/bin/tscni (Node single-executable application through @yao-pkg/pkg's SEA code path, with the
# local Node binary; see scripts/sea.js for why not the pkg CLI) -> one symlink per plugin name.
# Offline: nothing here downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

# Names a CNI runtime may invoke; plugins/main.ts dispatches on the invoked name.
PLUGINS=(bridge host-local ptp host-gw ipip vxlan)

# OUT: where the bundle and executable go (default build/; bench and experiments build elsewhere so a
# shared checkout's build/bin stays what others test)
OUT=${OUT:-build}
mkdir -p "$OUT/bin" "$OUT/tmp"
# Identifiers are kept (no --minify-identifiers) so stack traces on stderr stay readable.
# graceful-fs (proper-lockfile's fs) patches and clones fs when loaded, a cost on every IPAM call; its
# EMFILE retry queue serves long-lived processes with thousands of open files, not a CNI call: plain fs.
# signal-exit (proper-lockfile's and execa's) gives way to pkg/shim/signal-exit.ts, for the reason given there.
# human-signals (execa's) gives way to pkg/shim/human-signals.ts, likewise.
node_modules/.bin/esbuild plugins/main.ts \
  --bundle --platform=node --target=node20 --format=cjs --alias:graceful-fs=fs --alias:signal-exit=./pkg/shim/signal-exit.ts --alias:human-signals=./pkg/shim/human-signals.ts \
  --minify-whitespace --minify-syntax --legal-comments=none \
  --log-level=warning --outfile="$OUT/tscni.js"

# Base binary: this machine's Node. Its symbol and debug sections (about 12 MB) serve no purpose in a
# plugin, so drop them from a copy; they are stripped BEFORE postject injects the blob, which SEA
# tolerates (stripping an injected binary could drop the blob's note).
cp "$(node -p 'require("fs").realpathSync(process.execPath)')" "$OUT/tmp/node-base"
if command -v strip >/dev/null; then strip --strip-all "$OUT/tmp/node-base"; fi
node scripts/sea.js "$OUT/tscni.js" "$OUT/bin/tscni.new" "$OUT/tmp/node-base"
rm -f "$OUT/tmp/node-base"
mv -f "$OUT/bin/tscni.new" "$OUT/bin/tscni"

for p in "${PLUGINS[@]}"; do ln -sfn tscni "$OUT/bin/$p"; done

# Smoke test: the executable must answer VERSION with no Node.js reachable (env -i: empty PATH).
out=$(env -i CNI_COMMAND=VERSION "$OUT/bin/host-local" </dev/null)
case "$out" in
  *supportedVersions*) ;;
  *) echo "build: $OUT/bin/host-local VERSION printed: $out" >&2; exit 1 ;;
esac
echo "build: $OUT/bin/tscni ($(du -m "$OUT/bin/tscni" | cut -f1) MiB) + links: ${PLUGINS[*]}"
