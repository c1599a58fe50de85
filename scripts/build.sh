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

node scripts/sea.js build/tscni.js build/bin/tscni.new
mv -f build/bin/tscni.new build/bin/tscni

for p in "${PLUGINS[@]}"; do ln -sfn tscni "build/bin/$p"; done

# Smoke test: the executable must answer VERSION with no Node.js reachable (env -i: empty PATH).
out=$(env -i CNI_COMMAND=VERSION build/bin/host-local </dev/null)
case "$out" in
  *supportedVersions*) ;;
  *) echo "build: build/bin/host-local VERSION printed: $out" >&2; exit 1 ;;
esac
echo "build: build/bin/tscni ($(du -m build/bin/tscni | cut -f1) MiB) + links: ${PLUGINS[*]}"
