#!/usr/bin/env bash
# tscni demo: two pods on our bridge, pinging each other, then cleaned up.
# usage: scripts/demo.sh <scratch root>   (as `make demo` runs it: <root>/opt/cni/bin, <root>/etc/cni/net.d)
#
# Everything happens in throwaway namespaces: tscni-demo-node stands in for the node (the bridge, the
# host-side veths and the masquerade rules live there), so the machine's own namespace is never changed.
# The plugins get a PATH with nft alone (a node's first pod creates its nftables table with it): no ip,
# nsenter or bridge, since the kernel work goes through netlink inside the plugin.
#
# TODO: also show a pod reaching an "outside" namespace through the masquerade (as e2e/bridge.e2e.ts does).
set -euo pipefail

ROOT=${1:?usage: $0 <scratch root>}
BIN=$ROOT/opt/cni/bin
CONFLIST=$ROOT/etc/cni/net.d/10-tscni-bridge.conflist
NODE=tscni-demo-node
PODS=(tscni-demo-pod1 tscni-demo-pod2)

[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces): sudo make demo" >&2; exit 1; }
[ -x "$BIN/bridge" ] || { echo "demo: $BIN/bridge missing: run 'make demo'" >&2; exit 1; }

if ! env -i CNI_COMMAND=VERSION "$BIN/bridge" </dev/null >/dev/null 2>&1; then
  echo "demo: $BIN/bridge does not answer VERSION; is bridge registered in plugins/main.ts?" >&2
  exit 1
fi

# the plugins' PATH: nft only
HOSTBIN=$ROOT/hostbin
mkdir -p "$HOSTBIN"
ln -sf "$(command -v nft)" "$HOSTBIN/nft"

cleanup() {
  set +e
  for p in "${PODS[@]}"; do cni DEL "$p" >/dev/null 2>&1; ip netns del "$p" 2>/dev/null; done
  ip netns del "$NODE" 2>/dev/null
  rm -rf "$ROOT/var" "$HOSTBIN"
}
trap cleanup EXIT

# The bridge plugin's own config from the conflist (what libcni hands the first plugin), with the IPAM
# store moved into the scratch dir.
net_conf=$(jq -c --arg data "$ROOT/var/lib/cni/networks" \
  '.plugins[0] + {cniVersion, name} | .ipam.dataDir = $data' "$CONFLIST")

# cni <ADD|DEL|CHECK> <pod> [prevResult]: one plugin call as a runtime makes it, with a clean
# environment, in the node ns; CHECK and DEL get the ADD result as prevResult, as libcni passes it
cni() {
  local conf=$net_conf
  [ -z "${3:-}" ] || conf=$(jq -c --argjson prev "$3" '. + {prevResult: $prev}' <<<"$net_conf")
  echo "$conf" | ip netns exec "$NODE" env -i PATH="$HOSTBIN" \
    CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/var/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$BIN" \
    "$BIN/bridge"
}

ip netns add "$NODE"
ip -n "$NODE" link set lo up
for p in "${PODS[@]}"; do
  ip netns add "$p"
  ip -n "$p" link set lo up
done

declare -A result
for p in "${PODS[@]}"; do
  echo "== ADD $p"
  result[$p]=$(cni ADD "$p")
  jq . <<<"${result[$p]}"
done

# Debian's minimal images may lack iputils-ping; busybox-static (from make deps) has one
PING=(ping)
command -v ping >/dev/null || PING=(busybox ping)
addr2=$(jq -r '.ips[0].address | split("/")[0]' <<<"${result[${PODS[1]}]}")
gw=$(jq -r '.ips[0].gateway' <<<"${result[${PODS[0]}]}")
echo "== ${PODS[0]} pings ${PODS[1]} ($addr2) and the gateway ($gw)"
ip netns exec "${PODS[0]}" "${PING[@]}" -c 2 -W 1 "$addr2"
ip netns exec "${PODS[0]}" "${PING[@]}" -c 2 -W 1 "$gw"

for p in "${PODS[@]}"; do
  echo "== CHECK $p"
  cni CHECK "$p" "${result[$p]}"
  echo ok
done
for p in "${PODS[@]}"; do
  echo "== DEL $p"
  cni DEL "$p" "${result[$p]}"
  echo ok
done
echo "== demo done (the plugins ran with PATH=$HOSTBIN: $(ls "$HOSTBIN")); namespaces removed on exit"
