#!/usr/bin/env bash
# pkg/netlink/native/netlink.c -> <out>/netlink.node: the two syscalls (a netlink socket, setns) that the
# in-process netlink door needs and Node lacks. Plain C against Node-API's headers (npm node-api-headers), so
# no node-gyp and no Python; the result loads in any Node >= 18 (NAPI_VERSION 8).
# usage: scripts/native.sh <outdir>
set -euo pipefail
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
cc=${CC:-gcc}
command -v "$cc" >/dev/null || { echo "native: no C compiler ($cc): apt-get install gcc libc6-dev (scripts/deps.sh does)" >&2; exit 1; }
mkdir -p "$out"
"$cc" -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -s \
  -I node_modules/node-api-headers/include \
  -o "$out/netlink.node.new" pkg/netlink/native/netlink.c
mv -f "$out/netlink.node.new" "$out/netlink.node"
# its name on the target, computed here so a plugin call never hashes the module
sha256sum "$out/netlink.node" | cut -c1-16 >"$out/netlink.node.id"
