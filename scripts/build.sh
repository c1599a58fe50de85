#!/usr/bin/env bash
# Builds the multi-call executable: plugins/main.ts -> build/tscni.js (esbuild, one CommonJS file)
# -> build/bin/tscni (Node single-executable application through @yao-pkg/pkg's SEA code path, with the
# local Node binary; see scripts/sea.js for why not the pkg CLI) -> one symlink per plugin name.
# Offline: nothing here downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

# Names a CNI runtime may invoke; plugins/main.ts dispatches on the invoked name.
PLUGINS=(bridge host-local ptp host-gw ipip vxlan)

mkdir -p build/bin
# Identifiers are kept (no --minify-identifiers) so stack traces on stderr stay readable.
node_modules/.bin/esbuild plugins/main.ts \
  --bundle --platform=node --target=node20 --format=cjs \
  --minify-whitespace --minify-syntax --legal-comments=none \
  --log-level=warning --outfile=build/tscni.js

# Base binary: this machine's Node. Its symbol and debug sections (about 12 MB) serve no purpose in a
# plugin, so drop them from a copy; they are stripped BEFORE postject injects the blob, which SEA
# tolerates (stripping an injected binary could drop the blob's note).
mkdir -p build/tmp
cp "$(node -p 'require("fs").realpathSync(process.execPath)')" build/tmp/node-base
if command -v strip >/dev/null; then strip --strip-all build/tmp/node-base; fi
node scripts/sea.js build/tscni.js build/bin/tscni.new build/tmp/node-base
rm -f build/tmp/node-base
mv -f build/bin/tscni.new build/bin/tscni

for p in "${PLUGINS[@]}"; do ln -sfn tscni "build/bin/$p"; done

# Smoke test: the executable must answer VERSION with no Node.js reachable (env -i: empty PATH).
out=$(env -i CNI_COMMAND=VERSION build/bin/host-local </dev/null)
case "$out" in
  *supportedVersions*) ;;
  *) echo "build: build/bin/host-local VERSION printed: $out" >&2; exit 1 ;;
esac
echo "build: build/bin/tscni ($(du -m build/bin/tscni | cut -f1) MiB) + links: ${PLUGINS[*]}"
