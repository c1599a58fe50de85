#!/usr/bin/env bash
# tscni demo: two pods on our bridge, pinging each other, then cleaned up.
# usage: scripts/demo.sh <scratch root>   (as `make demo` runs it: <root>/opt/cni/bin, <root>/etc/cni/net.d)
#
# Everything happens in throwaway namespaces: tscni-demo-node stands in for the node (the bridge, the
# host-side veths and the masquerade rules live there), so the machine's own namespace is never changed.
#
# TODO(bridge): this is a skeleton written before plugins/bridge existed. Once `bridge` is registered in
# plugins/main.ts, run `make demo`, check the printed results and the ping, and trim the output.
set -euo pipefail

ROOT=${1:?usage: $0 <scratch root>}
BIN=$ROOT/opt/cni/bin
CONFLIST=$ROOT/etc/cni/net.d/10-tscni-bridge.conflist
NODE=tscni-demo-node
PODS=(tscni-demo-pod1 tscni-demo-pod2)

[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces): sudo make demo" >&2; exit 1; }
[ -x "$BIN/bridge" ] || { echo "demo: $BIN/bridge missing: run 'make demo'" >&2; exit 1; }

# TODO(bridge): drop this guard once plugins/bridge is registered.
if ! env -i CNI_COMMAND=VERSION "$BIN/bridge" </dev/null >/dev/null 2>&1; then
  echo "demo: TODO: the bridge plugin is not registered in plugins/main.ts yet; nothing to show" >&2
  exit 1
fi

cleanup() {
  set +e
  for p in "${PODS[@]}"; do cni DEL "$p" >/dev/null 2>&1; ip netns del "$p" 2>/dev/null; done
  ip netns del "$NODE" 2>/dev/null
  rm -rf "$ROOT/var"
}
trap cleanup EXIT

# The bridge plugin's own config from the conflist (what libcni hands the first plugin), with the IPAM
# store moved into the scratch dir.
net_conf=$(jq -c --arg data "$ROOT/var/lib/cni/networks" \
  '.plugins[0] + {cniVersion, name} | .ipam.dataDir = $data' "$CONFLIST")

# cni <ADD|DEL|CHECK> <pod>: one plugin call as a runtime makes it, with a clean environment, in the node ns
cni() {
  echo "$net_conf" | ip netns exec "$NODE" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/var/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$BIN" \
    "$BIN/bridge"
}

ip netns add "$NODE"
ip -n "$NODE" link set lo up
for p in "${PODS[@]}"; do
  ip netns add "$p"
  ip -n "$p" link set lo up
done

for p in "${PODS[@]}"; do
  echo "== ADD $p"
  cni ADD "$p" | jq .
done

addr2=$(ip -n "${PODS[1]}" -j -4 addr show dev eth0 | jq -r '.[0].addr_info[0].local')
echo "== ${PODS[0]} pings ${PODS[1]} ($addr2)"
ip netns exec "${PODS[0]}" ping -c 3 -W 1 "$addr2"

for p in "${PODS[@]}"; do
  echo "== CHECK $p"
  cni CHECK "$p"
done
for p in "${PODS[@]}"; do
  echo "== DEL $p"
  cni DEL "$p"
done
echo "== demo done; namespaces removed on exit"
