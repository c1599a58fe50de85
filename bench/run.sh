#!/usr/bin/env bash
# make bench: tscni beside the reference Go plugins (/usr/lib/cni), from one run on this machine.
#   1. ADD/DEL median latency, bridge+host-local and ptp+host-local, same config, calls interleaved
#      (bench/latency.ts), with the ratios against the targets (ADD <= 1.5x, DEL <= 1.0x), VERSION start-up
#      and the spawns per verb of ours; beside bridge, the floor program (bench/floor.ts): what a Node
#      executable that only drives iproute2 takes for the same pod;
#   2. host-local in an empty and a 99%-full /16 (bench/ipam-fill.ts);
#   3. the fabric at 0-5000 synthetic peers: sync and pod ADD/DEL, host-gw and vxlan (bench/fabric.ts);
#   4. etcd mode with 200 registered nodes: a new node's record to its route (bench/etcd.ts);
#   5. bench/dataplane.sh when present.
# Every pod and node lives in a throwaway network namespace (prefix tscni-t-bench<pid>), removed on exit.
# Installs nothing: scripts/deps.sh (make bench runs it) provides the reference plugins and esbuild.
# env: PODS (default 20), WARMUP (3), ROUNDS (host-local rounds, 20), PLUGINS (bridge,ptp), TSCNI_BIN_DIR (build/bin),
#      PEERS (fabric peer counts, 0,500,2000,5000; FABRIC=0 skips it), ETCD=0 skips the etcd part,
#      DATAPLANE=0 skips bench/dataplane.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-20} WARMUP=${WARMUP:-3} ROUNDS=${ROUNDS:-20} PLUGINS=${PLUGINS:-bridge,ptp}
BIN=$(realpath "${TSCNI_BIN_DIR:-build/bin}")
REF=/usr/lib/cni

[ "$(id -u)" = 0 ] || { echo "bench: needs root (it builds network namespaces)" >&2; exit 1; }
[ -x "$BIN/tscni" ] || { echo "bench: $BIN/tscni missing: run 'make build'" >&2; exit 1; }
[ -x "$REF/bridge" ] && [ -x "$REF/ptp" ] && [ -x "$REF/host-local" ] ||
  { echo "bench: reference plugins missing in $REF: run 'bash scripts/deps.sh' (containernetworking-plugins)" >&2; exit 1; }

export BENCH_PREFIX=tscni-t-bench$$
work=$(mktemp -d /tmp/tscni-bench.XXXXXX)
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$BENCH_PREFIX" || true); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

esb() { node_modules/.bin/esbuild "$1" --bundle --platform=node --target=node20 --log-level=warning --outfile="$2"; }
esb bench/latency.ts "$work/latency.js"
esb bench/ipam-fill.ts "$work/ipam-fill.js"
esb bench/fabric.ts "$work/fabric.js"
esb bench/etcd.ts "$work/etcd.js"
# the floor program, made into an executable the way ours is (same Node, same SEA settings)
esb bench/floor.ts "$work/floor.js"
mkdir -p "$work/floor"
bash scripts/sea-exe.sh "$work/floor.js" "$work/floor/bridge" >/dev/null

# a clean environment, as a container runtime gives: this shell's NODE_EXTRA_CA_CERTS alone costs Node ~35 ms
clean=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin BENCH_PREFIX="$BENCH_PREFIX")

echo "== tscni ($BIN) against the reference plugins ($REF, $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?'))"
"${clean[@]}" node "$work/latency.js" --ours "$BIN" --ref "$REF" --floor "$work/floor" --pods "$PODS" --warmup "$WARMUP" --plugins "$PLUGINS"

echo
echo "== host-local, /16 pool empty and 99% full (ours: node + the bundle the executable is built from)"
bundle=$(dirname "$BIN")/tscni.js
[ -f "$bundle" ] || bundle=$work/tscni.js
[ -f "$bundle" ] || bash scripts/bundle.sh "$bundle"
"${clean[@]}" TSCNI_BUNDLE="$bundle" ROUNDS="$ROUNDS" TMPDIR="$work" node "$work/ipam-fill.js"

if [ "${FABRIC:-1}" != 0 ]; then
  echo
  echo "== fabric at scale"
  "${clean[@]}" node "$work/fabric.js" --bin "$BIN" --peers "${PEERS:-0,500,2000,5000}"
fi

if [ "${ETCD:-1}" != 0 ]; then
  echo
  echo "== etcd mode"
  "${clean[@]}" node "$work/etcd.js" --bin "$BIN" --records 200
fi

if [ -x bench/dataplane.sh ] && [ "${DATAPLANE:-1}" != 0 ]; then
  echo
  TSCNI_BIN_DIR="$BIN" bench/dataplane.sh
fi
