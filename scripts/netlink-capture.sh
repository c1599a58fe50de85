#!/usr/bin/env bash
# Re-captures pkg/netlink/testdata/kernel.json from this kernel and iproute2 (root; strace): see
# scripts/netlink-capture.ts. Run after changing what an op sends or a read decodes, and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "netlink-capture: needs root (network namespaces)" >&2; exit 1; }
command -v strace >/dev/null || { echo "netlink-capture: needs strace (apt-get install strace)" >&2; exit 1; }
[ -f build/native/netlink.node ] || bash scripts/native.sh build/native
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node_modules/.bin/esbuild scripts/netlink-capture.ts --bundle --platform=node --target=node20 --log-level=warning --outfile="$tmp/capture.js"
TSCNI_NETLINK_NODE=$PWD/build/native/netlink.node node "$tmp/capture.js"
