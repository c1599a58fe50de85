#!/usr/bin/env bash
# Builds the multi-call executable: plugins/main.ts -> build/tscni.js (esbuild, one CommonJS file) and
# pkg/netlink/native -> build/native/netlink.node (scripts/native.sh) -> build/bin/tscni (Node single-executable application through @yao-pkg/pkg's SEA code path, with the
# local Node binary; see scripts/sea.js for why not the pkg CLI) -> one symlink per plugin name.
# Offline: nothing here downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

# Names a CNI runtime may invoke; plugins/main.ts dispatches on the invoked name.
PLUGINS=(bridge host-local ptp host-gw ipip vxlan)

# OUT: where the bundle and executable go (default build/; bench and experiments build elsewhere so a
# shared checkout's build/bin stays what others test)
OUT=${OUT:-build}
mkdir -p "$OUT/bin"
bash scripts/bundle.sh "$OUT/tscni.js"
# the etcd agent apart (pkg/bundled.ts): no plugin call reads or compiles its client
bash scripts/bundle.sh "$OUT/etcd.js" plugins/etcd-cmd.ts
# beside the bundle (a checkout's runs load it from there) and inside the executable as an SEA asset
bash scripts/native.sh "$OUT/native"

# the entry (plugins/boot.ts) compiles the bundle, an asset, with V8's code cache: the build-time one (made
# by the same Node that becomes the executable), then the one each node's first calls leave
bash scripts/bundle.sh "$OUT/boot.js" plugins/boot.ts
node "$OUT/boot.js" --code-cache "$OUT/tscni.js" "$OUT/tscni.cache"
sha256sum "$OUT/tscni.js" | cut -c1-16 >"$OUT/tscni.id"
bash scripts/sea-exe.sh "$OUT/boot.js" "$OUT/bin/tscni" "tscni.js=$OUT/tscni.js" "tscni.cache=$OUT/tscni.cache" "tscni.id=$OUT/tscni.id" "etcd.js=$OUT/etcd.js" \
  "netlink.node=$OUT/native/netlink.node" "netlink.node.id=$OUT/native/netlink.node.id"

for p in "${PLUGINS[@]}"; do ln -sfn tscni "$OUT/bin/$p"; done

# Smoke test: the executable must answer VERSION with no Node.js reachable (env -i: empty PATH).
out=$(env -i CNI_COMMAND=VERSION "$OUT/bin/host-local" </dev/null)
case "$out" in
  *supportedVersions*) ;;
  *) echo "build: $OUT/bin/host-local VERSION printed: $out" >&2; exit 1 ;;
esac
echo "build: $OUT/bin/tscni ($(du -m "$OUT/bin/tscni" | cut -f1) MiB) + links: ${PLUGINS[*]}"
