#!/usr/bin/env bash
# Dataplane benchmark (issue 4): pod-to-pod iperf3 throughput and ping RTT for bridge, ptp, host-gw and vxlan,
# our plugins (build/bin, or TSCNI_BIN_DIR) against the same topology built by hand with iproute2.
# Needs root, iperf3, a built tree (`make build`). Env: BENCH_SECS, BENCH_REPS, BENCH_MODES, BENCH_JSON (see
# bench/dataplane.ts). Everything runs in tscni-t-* namespaces; nothing touches the root namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "bench/dataplane.sh: needs root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench/dataplane.sh: iperf3 missing (apt-get install -y iperf3)" >&2; exit 1; }
[ -x "${TSCNI_BIN_DIR:-build/bin}/tscni" ] || { echo "bench/dataplane.sh: ${TSCNI_BIN_DIR:-build/bin}/tscni missing: run 'make build' first" >&2; exit 1; }

work=$(mktemp -d /tmp/tscni-bench-dataplane.XXXXXX)
export TSCNI_BENCH_STATE="$work/state" TSCNI_REPO="$PWD" TSCNI_BIN_DIR="$(realpath "${TSCNI_BIN_DIR:-build/bin}")"
: >"$TSCNI_BENCH_STATE"

# Backstop for a bench killed hard (the program cleans up itself on errors and signals): the iperf3 daemons
# it started and the namespaces and temp dirs of its world, all listed in the state file.
cleanup() {
  local val pid ns
  # daemons first: their pidfiles live in the world's temp dirs
  for val in $(awk '$1 == "pidfile" {print $2}' "$TSCNI_BENCH_STATE"); do
    if [ -f "$val" ]; then pid=$(cat "$val"); kill "$pid" 2>/dev/null || true; fi
  done
  for val in $(awk '$1 == "prefix" {print $2}' "$TSCNI_BENCH_STATE"); do
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$val-" || true); do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "${TMPDIR:-/tmp}/$val"-* "${TMPDIR:-/tmp}/tscni-t-owners/$val"
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

node_modules/.bin/esbuild bench/dataplane.ts --bundle --platform=node --target=node20 --log-level=warning --outfile="$work/dataplane.js"
node "$work/dataplane.js"
